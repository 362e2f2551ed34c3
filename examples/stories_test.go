// Package examples holds the end-to-end test of the runnable stories in
// this directory: each is run against a real node (the ward binary,
// `ward up` with the story's configuration, in a temporary directory, on
// a free loopback port), and what ward decided is then read back from the
// node's audit log with `ward audit search -o json` and the node's API
// through the CLI, never from what the story printed.
package examples

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ward-dev/ward/examples/internal/story"
)

// bin holds the binaries TestMain builds: ward and each story.
var bin string

// root is the module root: stories and their configurations are run from
// there, as a user does.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ward-stories-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	code := func() int {
		for name, pkg := range map[string]string{"ward": "./cmd/ward", "outlived": "./examples/outlived",
			"swarm": "./examples/swarm", "preauthorized": "./examples/preauthorized",
			// Built once here so that the first session's `go run` finds it
			// in the build cache.
			"warehouse": "./examples/preauthorized/warehouse"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
			cmd.Dir = root()
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needNPM skips (or, under `make test`, fails) a story whose MCP servers
// `make deps` installs.
func needNPM(t *testing.T) {
	t.Helper()
	js := filepath.Join(root(), "testdata", "npm", "node_modules", "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
	_, statErr := os.Stat(js)
	_, nodeErr := exec.LookPath("node")
	if statErr == nil && nodeErr == nil {
		return
	}
	if os.Getenv("WARD_REQUIRE_NPM") != "" {
		t.Fatalf("the MCP filesystem server is not installed (run make deps): %v %v", statErr, nodeErr)
	}
	t.Skip("the MCP filesystem server is not installed; `make deps` installs it")
}

// node is a ward node run by `ward up` for one test.
type node struct {
	t    *testing.T
	data string
	env  []string // WARD_SERVER, WARD_CA, WARD_TOKEN as ward up printed them
	log  *syncBuffer
}

// Bounds on how long a test waits for what should take seconds: a node's
// start, a CLI command, a story. They stop a hung test, and assert nothing
// about speed.
const (
	startBound   = 2 * time.Minute
	commandBound = time.Minute
	storyBound   = 4 * time.Minute
)

// startNode runs `ward up --config examples/NAME/ward.yaml` with a fresh
// data directory on a free loopback port, from the module root.
func startNode(t *testing.T, name string) *node {
	t.Helper()
	n := &node{t: t, data: filepath.Join(t.TempDir(), "data"), log: &syncBuffer{}}
	cmd := exec.Command(filepath.Join(bin, "ward"), "up", "--config", filepath.Join("examples", name, "ward.yaml"),
		"--data", n.data, "--addr", "127.0.0.1:0")
	cmd.Dir = root()
	cmd.Stderr = n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Stop the node as Ctrl-C does; if it does not stop, end it and
		// what it started (its process group: upstream servers).
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("ward up's log:\n%s", n.log.String())
		}
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export "); ok {
				found <- strings.Fields(line)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case n.env = <-found:
	case <-exited:
		t.Fatalf("ward up exited:\n%s", n.log.String())
	case <-time.After(startBound):
		t.Fatalf("ward up printed no credentials within %v:\n%s", startBound, n.log.String())
	}
	if len(n.env) != 3 || !strings.HasPrefix(n.env[2], "WARD_TOKEN=ward_") {
		t.Fatalf("ward up printed %q, want WARD_SERVER=… WARD_CA=… WARD_TOKEN=…", n.env)
	}
	return n
}

// ward runs a ward command against the node.
func (n *node) ward(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "ward"), args...)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Env = append(cmd.Env, "WARD_HOME="+n.t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ward %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// must runs a ward command that must succeed.
func (n *node) must(args ...string) string {
	n.t.Helper()
	out, err := n.ward(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// events returns the events `ward audit search` finds with filters.
func (n *node) events(filters ...string) []story.Event {
	n.t.Helper()
	out := n.must(append(append([]string{"audit", "search", "--data", n.data}, filters...), "-n", "0", "-o", "json")...)
	var events []story.Event
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e story.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			n.t.Fatalf("audit search -o json: %v: %s", err, l)
		}
		events = append(events, e)
	}
	return events
}

// runStory runs a story against the node and returns what it printed. A
// story exits non-zero when ward did not do what it tells; the test reads
// the audit log besides.
func (n *node) runStory(name string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storyBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, name))
	cmd.Dir = root()
	cmd.Env = append(append(os.Environ(), n.env...), "WARD_BIN="+filepath.Join(bin, "ward"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		n.t.Fatalf("story %s: %v\n%s", name, err, out)
	}
	n.t.Logf("story %s:\n%s", name, out)
	return string(out)
}

// data decodes an event's data.
func data(t *testing.T, e story.Event) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("event %d: %v", e.Index, err)
	}
	return d
}

// agentNamed returns the one agent registered whose name starts with prefix.
func agentNamed(t *testing.T, n *node, prefix string) string {
	t.Helper()
	var names []string
	for _, e := range n.events("--type", "agent.register") {
		if strings.HasPrefix(e.Agent, prefix) {
			names = append(names, e.Agent)
		}
	}
	if len(names) != 1 {
		t.Fatalf("agents named %s*: %v, want one", prefix, names)
	}
	return names[0]
}

// sessionsOf returns the agent's sessions, in the order they started.
func sessionsOf(t *testing.T, n *node, agent string) []string {
	t.Helper()
	var ids []string
	for _, e := range n.events("--agent", agent, "--type", "session.start") {
		ids = append(ids, e.Session)
	}
	return ids
}

// TestOutlived: the agent that outlived its task. After its session ends,
// nothing the agent holds works (MCP, egress credentials), and every
// attempt is recorded; in its next session, the outside host is refused by
// the egress proxy, the write the injected text asked for is denied, and
// the monitor quarantines the agent for drift.
func TestOutlived(t *testing.T) {
	needNPM(t)
	t.Parallel()
	n := startNode(t, "outlived")
	n.runStory("outlived")

	agent := agentNamed(t, n, "reporter-")
	sessions := sessionsOf(t, n, agent)
	if len(sessions) != 2 {
		t.Fatalf("sessions of %s: %v, want two", agent, sessions)
	}
	first, second := sessions[0], sessions[1]

	// The task: the injected record was read, scanned and flagged.
	flagged := false
	for _, e := range n.events("--session", first, "--type", "signal") {
		d := data(t, e)
		flagged = flagged || (d["kind"] == "content" && d["source"] == "fs.read_text_file")
	}
	if !flagged {
		t.Error("the injected record raised no content signal in the first session")
	}
	if ends := n.events("--session", first, "--type", "session.end"); len(ends) != 1 {
		t.Fatalf("the first session ended %d times, want once", len(ends))
	}

	// After the end: every attempt with the session's credentials was
	// refused and recorded as the session's (its credentials still prove
	// who sent them). Nothing of the session ran after its end.
	end := n.events("--session", first, "--type", "session.end")[0].Index
	refused := map[string]int{}
	for _, e := range n.events("--session", first, "--type", "refusal") {
		d := data(t, e)
		if e.Index > end && e.Session == first && strings.Contains(fmt.Sprint(d["reason"]), "has ended") {
			refused[fmt.Sprint(d["method"], " ", d["path"])]++
		}
	}
	if refused["POST /v1/egress/token"] == 0 || refused["POST /mcp"] == 0 {
		t.Errorf("refusals of the ended session: %v; want its egress token request and MCP calls", refused)
	}
	for _, e := range n.events("--session", first) {
		if e.Index > end && (e.Type == "decision" || e.Type == "result" || e.Type == "egress") {
			t.Errorf("event %d (%s) of the first session after it ended: %s", e.Index, e.Type, e.Data)
		}
	}

	// The next session: the outside host was refused by the proxy before
	// anything was sent, and no egress request of the agent's was allowed.
	exfil := false
	for _, e := range n.events("--agent", agent, "--type", "egress") {
		d := data(t, e)
		if d["decision"] != "deny" {
			t.Errorf("egress event %d was not denied: %s", e.Index, e.Data)
		}
		exfil = exfil || (e.Session == second && d["host"] == "collect.exfil.example" &&
			strings.Contains(fmt.Sprint(d["reason"]), "not in the session's grant"))
	}
	if !exfil {
		t.Error("no refused egress request to collect.exfil.example in the second session")
	}

	// The write the text asked for: denied, never forwarded, with drift
	// and the quarantine recorded.
	var denied, drift bool
	for _, e := range n.events("--session", second, "--tool", "fs.write_file") {
		d := data(t, e)
		switch {
		case e.Type == "decision":
			denied = d["decision"] == "deny"
		case e.Type == "result":
			t.Errorf("fs.write_file was forwarded: %s", e.Data)
		case e.Type == "signal" && d["kind"] == "drift":
			drift = true
		}
	}
	if !denied || !drift {
		t.Errorf("fs.write_file: denied %v, drift signal %v", denied, drift)
	}
	if q := n.events("--agent", agent, "--type", "agent.quarantine"); len(q) != 1 || q[0].Actor != "ward-monitor" {
		t.Errorf("quarantine events of %s: %+v, want one by ward-monitor", agent, q)
	}
	var view struct{ Status string }
	if err := json.Unmarshal([]byte(n.must("agent", "show", agent, "-o", "json")), &view); err != nil || view.Status != "quarantined" {
		t.Errorf("agent %s: status %q (%v), want quarantined", agent, view.Status, err)
	}
	if _, err := os.Stat(filepath.Join(root(), "examples", "outlived", "crm", "outbox.txt")); err == nil {
		t.Error("the table was written to examples/outlived/crm/outbox.txt")
	}
}

// TestSwarm: fifty sessions of one group make the same change at once.
// Exactly the budget's worth reach the server, the rest are held for group
// dba, a swarm signal is raised, and one approval lets exactly one more
// through.
func TestSwarm(t *testing.T) {
	t.Parallel()
	n := startNode(t, "swarm")
	n.runStory("swarm")

	const agents, budget = 50, 5
	agent := agentNamed(t, n, "indexer-")
	if s := sessionsOf(t, n, agent); len(s) != agents {
		t.Fatalf("%d sessions of %s, want %d", len(s), agent, agents)
	}
	results := n.events("--agent", agent, "--tool", "demo.write_note", "--type", "result")
	if len(results) != budget+1 {
		t.Errorf("%d changes reached the server, want the budget (%d) and the one approved", len(results), budget)
	}
	perSession := map[string]int{}
	for _, e := range results {
		perSession[e.Session]++
	}
	held := 0
	for _, e := range n.events("--agent", agent, "--tool", "demo.write_note", "--type", "decision") {
		d := data(t, e)
		if d["decision"] == "escalate" {
			held++
			if !strings.Contains(fmt.Sprint(d["reason"]), `limit "schema-changes"`) {
				t.Errorf("escalation %d does not name the limit: %s", e.Index, e.Data)
			}
		}
	}
	if held < agents-budget {
		t.Errorf("%d calls held for approval, want at least %d", held, agents-budget)
	}
	approved := n.events("--agent", agent, "--type", "approval.approved")
	if len(approved) != 1 {
		t.Fatalf("%d approvals, want 1", len(approved))
	}
	if d := data(t, approved[0]); fmt.Sprint(d["last_vote"].(map[string]any)["voter"]) != "dana" {
		t.Errorf("approved by %v, want dana", d["last_vote"])
	}
	if perSession[approved[0].Session] != 1 {
		t.Errorf("the approved session's change reached the server %d times, want once", perSession[approved[0].Session])
	}
	swarm := false
	for _, e := range n.events("--agent", agent, "--type", "signal") {
		swarm = swarm || data(t, e)["kind"] == "swarm"
	}
	if !swarm {
		t.Error("no swarm signal")
	}
	var pending []struct{ Agent string }
	if err := json.Unmarshal([]byte(n.must("approvals", "list", "-o", "json")), &pending); err != nil {
		t.Fatal(err)
	}
	if len(pending) != agents-budget-1 {
		t.Errorf("%d requests pending, want %d", len(pending), agents-budget-1)
	}
}

// TestPreauthorized: a document's claim of pre-authorization grants
// nothing. The export to the document's address is escalated (naming the
// result it came from), vetoed, and never reaches the warehouse; the export
// to the objective's address does, and only its receipt holds.
func TestPreauthorized(t *testing.T) {
	needNPM(t)
	t.Parallel()
	n := startNode(t, "preauthorized")
	n.runStory("preauthorized")

	agent := agentNamed(t, n, "analyst-")
	sessions := sessionsOf(t, n, agent)
	if len(sessions) != 1 {
		t.Fatalf("sessions of %s: %v", agent, sessions)
	}
	session := sessions[0]
	decisions := map[uint64]map[string]any{}
	escalated := 0
	for _, e := range n.events("--session", session, "--tool", "warehouse.export_dataset", "--type", "decision") {
		d := data(t, e)
		decisions[e.Index] = d
		dest := fmt.Sprint(d["arguments"].(map[string]any)["destination"])
		switch dest {
		case "alice@corp.example":
			if d["decision"] != "allow" {
				t.Errorf("the export to the objective's address: %s", e.Data)
			}
		case "partner-drop@exfil.example":
			reason := fmt.Sprint(d["reason"])
			switch {
			case d["decision"] == "escalate" && strings.Contains(reason, `argument "destination"`) && strings.Contains(reason, "fs.read_text_file"):
				escalated++
			case d["decision"] == "deny" && strings.Contains(reason, "vetoed by dana"):
				// The retry after the veto.
			default:
				t.Errorf("the export to the document's address: %s", e.Data)
			}
		default:
			t.Errorf("an export to %q", dest)
		}
	}
	if escalated == 0 {
		t.Error("the export to the document's address was never escalated")
	}
	results := n.events("--session", session, "--tool", "warehouse.export_dataset", "--type", "result")
	if len(results) != 1 {
		t.Fatalf("%d exports reached the warehouse, want 1", len(results))
	}
	var r struct {
		DecisionEvent uint64 `json:"decision_event"`
	}
	json.Unmarshal(results[0].Data, &r)
	if d := decisions[r.DecisionEvent]; d == nil || d["arguments"].(map[string]any)["destination"] != "alice@corp.example" {
		t.Errorf("the export that ran was decided by event %d: %v", r.DecisionEvent, d)
	}
	denials := n.events("--session", session, "--type", "approval.denied")
	if len(denials) == 0 {
		t.Fatal("no veto recorded")
	}
	for _, e := range denials {
		if v := data(t, e)["last_vote"].(map[string]any); v["voter"] != "dana" || v["approve"] != false {
			t.Errorf("denial %d: %v", e.Index, v)
		}
	}
	if a := n.events("--session", session, "--type", "approval.approved"); len(a) != 0 {
		t.Errorf("approved: %v", a)
	}

	// The receipts: one export, and `ward claim verify` holds it against
	// the log and refuses it for a claim it does not back.
	raw := n.must("receipts", "--session", session)
	var envs []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &envs); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "receipt.json")
	exports := 0
	for _, env := range envs {
		out, err := n.ward("claim", "verify", "--data", n.data, "--session", session, "--tool", "warehouse.export_dataset", "--receipt", writeFile(t, file, env))
		if err != nil {
			continue // a receipt of another tool
		}
		exports++
		if !strings.Contains(out, "claim holds") {
			t.Errorf("claim verify: %s", out)
		}
		if _, err := n.ward("claim", "verify", "--data", n.data, "--session", session, "--tool", "warehouse.export_dataset", "--outcome", "error", "--receipt", file); err == nil {
			t.Error("claim verify accepted a receipt of a successful export for a failed one")
		}
	}
	if len(envs) < 2 {
		t.Errorf("%d receipts; the session's reads and summary have receipts too", len(envs))
	}
	if exports != 1 {
		t.Errorf("%d receipts back an export, want 1", exports)
	}
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
