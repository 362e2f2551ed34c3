// Command wardfault runs ward's fault scenarios against real `ward up`
// processes built from this repository, and prints what each lost
// (expected: nothing):
//
//   - crash: agents (each its own ward session and MCP session, the
//     official Go SDK client) call tools of an upstream through a node,
//     which is killed with SIGKILL several times under that load, then
//     stopped with SIGTERM, and started again each time. Every call acknowledged to an agent must be in the
//     audit log, allowed and answered; every call the upstream ran must
//     have been recorded; `ward audit verify` must pass; and a group budget
//     must hold across the restarts (the calls allowed in the log, and run
//     by the upstream, never exceed it).
//   - disk-full: the node's data directory is on a small tmpfs that
//     fills up under load. Calls must be refused (fail closed) and
//     /healthz unready; once space is freed the same process must be
//     ready and answer calls again, and nothing acknowledged may be lost.
//     Mounting needs root; without it the scenario is skipped.
//   - store-loss: a node is killed and its SQLite store (with its WAL)
//     deleted. `ward up` must refuse to start as on a first start, exit
//     non-zero and say how to recover; the log must still hold every
//     acknowledged call.
//   - wal-loss: the store's write-ahead log is deleted while the node runs
//     (after a checkpoint), a session is ended, and the node is killed.
//     `ward up` must start from what ward.db kept without acting as on a
//     first start, and the ended session must stay ended (the log says it
//     ended; the store forgot).
//   - damage: pages of a killed node's store are overwritten. A damaged
//     audit index (derived from the log) must be rebuilt on start and
//     recorded; a damaged sessions table must stop the start, naming the
//     table and what to do.
//
// And with several nodes (-nodes, 3; -short 2) on one PostgreSQL schema of
// a server of wardfault's own (initdb in a temporary directory, on a
// loopback port of its own, run as the postgres user when root; the
// machine's other servers are never touched), agents calling through
// every node under a shared group budget (see cluster.go):
//
//   - node-kill: a node is killed with SIGKILL; sessions are revoked on
//     another while it is down; it starts again.
//   - db-restart: PostgreSQL crashes (pg_ctl stop -m immediate) and
//     starts again; sessions are revoked as soon as it answers.
//   - db-cut: a node is cut off from the database by a proxy that stops
//     moving bytes (a partition); sessions are revoked meanwhile on
//     another node; the cut heals.
//
// Afterwards no acknowledged call may be missing from the nodes' verified
// logs, the logs together may allow no more than the budget, no node may
// have allowed a call of a revoked session more than 1 s after the
// revocation returned, and every node must converge by itself (/readyz
// 200, live sessions served, revoked ones refused); while the database is
// out of a node's reach its /readyz must answer 503.
//
// Usage:
//
//	go run ./cmd/wardfault [-short] [-scenarios crash,disk-full,store-loss,wal-loss,damage,node-kill,db-restart,db-cut]
//	    [-sessions 16] [-kills 5] [-interval 3s] [-budget 100] [-disk-mib 48] [-nodes 3]
//	    [-ward PATH] [-dir DIR] [-keep] [-o json]
//
// It exits 0 when nothing was lost, 1 when a scenario lost or broke
// something (its directory is kept for inspection), and 2 when it could not
// run. The upstream (a Go SDK MCP server) and the agents run in this
// process; only loopback is used.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Config says what to run and how hard.
type Config struct {
	// Ward is the ward binary; empty builds one from this repository.
	Ward string
	// Dir is the work directory (one sub-directory per scenario).
	Dir string
	// Scenarios to run, of scenarioNames.
	Scenarios []string
	// Sessions is the number of concurrent agents of the crash scenario,
	// DiskSessions that of the others.
	Sessions, DiskSessions int
	// Kills is how many times the crash scenario kills the node.
	Kills int
	// Interval is how long agents call between faults.
	Interval time.Duration
	// Budget is the group budget of the crash scenario, in calls of
	// toolSpend per hour.
	Budget int
	// DiskMiB is the size of the disk-full scenario's tmpfs.
	DiskMiB int
	// Nodes is the number of nodes of the scenarios of several nodes
	// (node-kill, db-restart, db-cut), whose agents are Sessions and
	// whose group budget is Budget.
	Nodes int
}

// Defaults, and the -short ones (for CI: about half a minute in all).
var (
	fullConfig  = Config{Sessions: 16, DiskSessions: 4, Kills: 5, Interval: 3 * time.Second, Budget: 100, DiskMiB: 48, Nodes: 3}
	shortConfig = Config{Sessions: 4, DiskSessions: 2, Kills: 2, Interval: 700 * time.Millisecond, Budget: 20, DiskMiB: 48, Nodes: 2}
)

// singleNodeScenarioNames are the scenarios of one node on SQLite.
var singleNodeScenarioNames = []string{"crash", "disk-full", "store-loss", "wal-loss", "damage"}

var scenarioNames = append(slices.Clone(singleNodeScenarioNames), clusterScenarioNames...)

var scenarios = map[string]func(context.Context, Config, string) (*result, error){
	"crash": crash, "disk-full": diskFull, "store-loss": storeLoss, "wal-loss": walLoss, "damage": damage,
	"node-kill": nodeKill, "db-restart": dbRestart, "db-cut": dbCut,
}

func main() {
	fs := flag.NewFlagSet("wardfault", flag.ContinueOnError)
	short := fs.Bool("short", false, "the short run CI makes: fewer agents, kills and seconds (explicit flags still apply)")
	names := fs.String("scenarios", strings.Join(scenarioNames, ","), "the `scenarios` to run, comma-separated: "+strings.Join(scenarioNames, ", "))
	sessions := fs.Int("sessions", fullConfig.Sessions, "`number` of concurrent agents of the crash scenario and of those of several nodes")
	diskSessions := fs.Int("disk-sessions", fullConfig.DiskSessions, "`number` of concurrent agents of the other scenarios")
	kills := fs.Int("kills", fullConfig.Kills, "`number` of kill -9s of the crash scenario")
	interval := fs.Duration("interval", fullConfig.Interval, "how long agents call between faults")
	budget := fs.Int("budget", fullConfig.Budget, "the group budget of the crash scenario and of those of several nodes, in `calls` per hour")
	diskMiB := fs.Int("disk-mib", fullConfig.DiskMiB, "size of the disk-full scenario's tmpfs, in `MiB`")
	nodes := fs.Int("nodes", fullConfig.Nodes, "`number` of nodes of the scenarios of several nodes (node-kill, db-restart, db-cut)")
	ward := fs.String("ward", "", "the ward `binary` to test (default: built from this repository)")
	dir := fs.String("dir", "", "work `directory` (default: a new temporary one, removed unless something was lost or -keep)")
	keep := fs.Bool("keep", false, "keep the work directory")
	out := fs.String("o", "text", "output `format`: text or json")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	cfg := fullConfig
	if *short {
		cfg = shortConfig
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pick := func(name string, dst *int, v int) {
		if set[name] {
			*dst = v
		}
	}
	pick("sessions", &cfg.Sessions, *sessions)
	pick("disk-sessions", &cfg.DiskSessions, *diskSessions)
	pick("kills", &cfg.Kills, *kills)
	pick("budget", &cfg.Budget, *budget)
	pick("disk-mib", &cfg.DiskMiB, *diskMiB)
	pick("nodes", &cfg.Nodes, *nodes)
	if set["interval"] {
		cfg.Interval = *interval
	}
	cfg.Ward, cfg.Dir = *ward, *dir
	for n := range strings.SplitSeq(*names, ",") {
		cfg.Scenarios = append(cfg.Scenarios, strings.TrimSpace(n))
	}
	if *out != "text" && *out != "json" {
		fmt.Fprintf(os.Stderr, "wardfault: -o %q: want text or json\n", *out)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wardfault: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	results, err := run(ctx, &cfg, os.Stderr)
	lost := false
	for _, r := range results {
		lost = lost || r.failed()
	}
	if *out == "json" {
		json.NewEncoder(os.Stdout).Encode(results)
	} else {
		report(os.Stdout, results)
	}
	switch {
	case err != nil:
		if cfg.Dir != "" {
			err = fmt.Errorf("%w (work directory %s)", err, cfg.Dir)
		}
		fmt.Fprintf(os.Stderr, "wardfault: %v\n", err)
		os.Exit(2)
	case lost:
		fmt.Fprintf(os.Stderr, "wardfault: something was lost or broken; work directory kept: %s\n", cfg.Dir)
		os.Exit(1)
	case !*keep && *dir == "":
		os.RemoveAll(cfg.Dir)
	}
}

// run runs cfg's scenarios, one after the other, each in its own
// directory under cfg.Dir (made if empty), with progress on progress.
// It stops at the first scenario that could not run.
func run(ctx context.Context, cfg *Config, progress io.Writer) ([]*result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "wardfault-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
	}
	if cfg.Ward == "" {
		bin, err := buildWard(ctx, cfg.Dir)
		if err != nil {
			return nil, err
		}
		cfg.Ward = bin
	}
	var results []*result
	for _, name := range cfg.Scenarios {
		fmt.Fprintf(progress, "wardfault: %s…\n", name)
		dir := filepath.Join(cfg.Dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return results, err
		}
		start := time.Now()
		r, err := scenarios[name](ctx, *cfg, dir)
		if err != nil {
			return results, fmt.Errorf("%s: %w", name, err)
		}
		r.note("took %v", time.Since(start).Round(100*time.Millisecond))
		results = append(results, r)
	}
	return results, nil
}

func (c *Config) check() error {
	for _, n := range c.Scenarios {
		if !slices.Contains(scenarioNames, n) {
			return fmt.Errorf("unknown scenario %q (want %s)", n, strings.Join(scenarioNames, ", "))
		}
	}
	switch {
	case c.Sessions < 1, c.DiskSessions < 1:
		return fmt.Errorf("need at least one agent per scenario")
	case c.Kills < 1:
		return fmt.Errorf("-kills: need at least one")
	case c.Interval <= 0:
		return fmt.Errorf("-interval: need a positive duration")
	case c.Budget < 1:
		return fmt.Errorf("-budget: need at least one call")
	case c.DiskMiB < 16:
		return fmt.Errorf("-disk-mib: a node needs at least 16 MiB to start")
	case c.Nodes < 2:
		return fmt.Errorf("-nodes: the scenarios of several nodes need at least two")
	}
	return nil
}

// buildWard builds ./cmd/ward of the module this command belongs to.
func buildWard(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "ward")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ward-dev/ward/cmd/ward")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ward (run wardfault from the repository, or give -ward): %v\n%s", err, out)
	}
	return bin, nil
}

// report prints what each scenario found.
func report(w io.Writer, results []*result) {
	for _, r := range results {
		if r.Skipped != "" {
			fmt.Fprintf(w, "%s: SKIPPED: %s\n", r.Scenario, r.Skipped)
			continue
		}
		verdict := "ok"
		if r.failed() {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "%s: %s\n", r.Scenario, verdict)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
		fmt.Fprintf(w, "  calls: %d acknowledged to agents, %d run by the upstream, %d allowed in the verified audit log\n", r.Acked, r.Ran, r.Logged)
		if b := r.Budget; b != nil {
			fmt.Fprintf(w, "  budget: %d calls; %d allowed in the log, %d run by the upstream, %d acknowledged\n", b.Max, b.Allowed, b.Ran, b.Acked)
		}
		fmt.Fprintf(w, "  lost: %s\n", describeLoss(r.Loss))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  PROBLEM: %s\n", p)
		}
	}
}

func describeLoss(l loss) string {
	if l.none() {
		return "nothing"
	}
	var parts []string
	if len(l.Lost) > 0 {
		parts = append(parts, fmt.Sprintf("%d acknowledged calls missing from the log (%s)", len(l.Lost), sample(l.Lost)))
	}
	if len(l.Unrecorded) > 0 {
		parts = append(parts, fmt.Sprintf("%d calls run by the upstream but never recorded (%s)", len(l.Unrecorded), sample(l.Unrecorded)))
	}
	if l.Over > 0 {
		parts = append(parts, fmt.Sprintf("the budget exceeded by %d", l.Over))
	}
	return strings.Join(parts, "; ")
}

func sample(ids []string) string {
	if len(ids) > 5 {
		return strings.Join(ids[:5], ", ") + ", …"
	}
	return strings.Join(ids, ", ")
}
