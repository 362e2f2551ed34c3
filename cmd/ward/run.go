package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/sandbox"
	"github.com/ward-dev/ward/internal/sandbox/changes"
	"github.com/ward-dev/ward/internal/strictjson"
)

// Ports of ward inside a runtime, on its 127.0.0.1.
const (
	runtimeProxyPort = 3128 // the egress proxy
	runtimeMCPPort   = 8700 // the session's MCP endpoint (the gateway)
)

// defaultProtected are workspace paths whose changes are never applied
// without an operator's `ward changes apply`.
var defaultProtected = []string{".git", ".env", ".env.*", "*.pem", "*.key", ".ssh", ".github/workflows/**", ".ward"}

// exitStatus is a program's exit status, passed through by `ward run`.
type exitStatus int

func (e exitStatus) Error() string { return "the program exited with status " + strconv.Itoa(int(e)) }

// runRecord is kept beside a run's change set: RUNS/SESSION/run.json.
type runRecord struct {
	Session   string    `json:"session"`
	Agent     string    `json:"agent"`
	Workspace string    `json:"workspace,omitempty"`
	Command   []string  `json:"command"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	ExitCode  int       `json:"exit_code"`
	Stopped   string    `json:"stopped,omitempty"`
	Protected []string  `json:"protected,omitempty"`
	// Outside are the symlinks whose target leaves the workspace.
	Outside []string `json:"links_outside,omitempty"`
	// Limits are the runtime's limits the program ran into.
	Limits    []string `json:"limits,omitempty"`
	Applied   bool     `json:"applied"`
	Discarded bool     `json:"discarded,omitempty"`
	// AppliedAt and DiscardedAt say when `ward changes` applied or
	// discarded the changes (absent in records of older versions).
	AppliedAt   *time.Time `json:"applied_at,omitempty"`
	DiscardedAt *time.Time `json:"discarded_at,omitempty"`
	// RolledBack: --rollback discarded the changes; only Summary is
	// kept of them.
	RolledBack bool   `json:"rolled_back,omitempty"`
	Summary    string `json:"summary,omitempty"`
}

// runsDir is where change sets are kept: $WARD_HOME/runs.
func runsDir() string { return filepath.Join(wardHome(), "runs") }

func cmdRun(args []string, stdout io.Writer) error {
	fs := flags("run")
	agent := fs.String("agent", "", "`agent` to start a session for")
	objective := fs.String("objective", "", "the session's declared `objective` (attested before the program starts)")
	workspace := fs.String("workspace", "", "`directory` the program works on, as /workspace (changes are captured, then applied or discarded)")
	keep := fs.Bool("keep", false, "apply the changes to the workspace when the program ends (the default, unless protected paths changed)")
	rollback := fs.Bool("rollback", false, "discard the changes: the workspace stays byte-for-byte as it was (only their summary is kept)")
	timeout := fs.Duration("timeout", 10*time.Minute, "end the session, and the runtime, after this long")
	memory := fs.String("memory", "2G", "memory limit, a `size` (K, M, G suffixes)")
	disk := fs.String("disk", "1G", "limit on the workspace's changes plus /tmp, a `size`")
	cpus := fs.Float64("cpus", 0, "CPU limit in `CPUs` (0: none)")
	pids := fs.Int("pids", sandbox.DefaultPids, "limit on processes and threads")
	requireLandlock := fs.Bool("require-landlock", false, "refuse to run where the kernel has no Landlock")
	recordDiff := fs.Bool("record-diff", true, "send the diff of the text files changed to the node, which redacts it and records it with the session (bounded; --record-diff=false sends only the changed paths)")
	var tags, allow, hosts, protect, ro multi
	fs.Var(&tags, "tag", "objective `tag` (repeatable)")
	fs.Var(&allow, "allow", "narrow the grant's scope to a `pattern` (repeatable): tool:…, resource:…, prompt:…, host:…")
	fs.Var(&hosts, "allow-host", "a `host` the program may reach through the egress proxy (repeatable)")
	fs.Var(&protect, "protect", "a protected workspace path `pattern`, in addition to the defaults (repeatable)")
	fs.Var(&ro, "ro", "another host `path` to show read-only in the runtime (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if *agent == "" || *objective == "" || len(argv) == 0 {
		return usagef("usage: ward run --agent NAME --objective TEXT [--workspace DIR] [--allow-host HOST]... [--keep|--rollback] -- CMD [ARGS...]")
	}
	if *keep && *rollback {
		return usagef("--keep and --rollback contradict each other")
	}
	lim := sandbox.Limits{CPU: *cpus, Pids: *pids}
	var err error
	if lim.Memory, err = parseSize(*memory); err != nil {
		return usagef("--memory: %v", err)
	}
	if lim.Disk, err = parseSize(*disk); err != nil {
		return usagef("--disk: %v", err)
	}
	if *workspace != "" {
		// Absolute, for the run record; sandbox.Start checks the rest
		// before anything is created.
		if *workspace, err = filepath.Abs(*workspace); err != nil {
			return err
		}
	}
	c, err := operatorClient()
	if err != nil {
		return err
	}
	reapStale(c, os.Stderr)
	patterns := append([]string(nil), allow...)
	if len(hosts) > 0 && len(patterns) == 0 {
		// Hosts alone: the agent's ceiling for the rest, as a session
		// started without a scope would get.
		var av api.AgentView
		if err := c.do("GET", "/v1/agents/"+url.PathEscape(*agent), nil, &av); err != nil {
			return fmt.Errorf("agent %s: %w", *agent, err)
		}
		var ceiling grant.Scope
		if err := json.Unmarshal(av.Ceiling, &ceiling); err != nil {
			return fmt.Errorf("agent %s: ceiling: %w", *agent, err)
		}
		ceiling.Hosts = nil
		patterns = authority.FormatPatterns(ceiling)
	}
	for _, h := range hosts {
		patterns = append(patterns, "host:"+h)
	}
	scope, err := scopeFlag(patterns)
	if err != nil {
		return err
	}
	base, err := url.Parse(c.base)
	if err != nil || base.Host == "" {
		return fmt.Errorf("WARD_SERVER %q is not a URL", c.base)
	}
	command := execCommand(argv[0], *workspace)

	runDir, err := os.MkdirTemp("", "ward-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(runDir)

	r := &runner{c: c, stderr: os.Stderr, events: make(chan api.RuntimeEvent, sandbox.MaxEvents+16), done: make(chan struct{}), disk: lim.Disk,
		runDir: runDir, liveStop: make(chan bool, 1)}
	req := api.SessionRequest{Agent: *agent, Objective: *objective, Tags: tags, Scope: scope, TTL: timeout.String()}
	var egressMu sync.Mutex
	egressAddr := ""
	spec := sandbox.Spec{
		Argv: argv, Workspace: *workspace, ReadOnly: ro, RunDir: runDir, Limits: lim, Service: "ward",
		ServicePorts:    []uint16{runtimeMCPPort},
		RequireLandlock: *requireLandlock,
		Env:             runtimeEnv(),
		Stdin:           os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Forwards: []sandbox.Forward{
			{Name: "node", Dial: func(ctx context.Context) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", hostPort(base))
			}},
			{Name: "egress", Port: runtimeProxyPort, Dial: func(ctx context.Context) (net.Conn, error) {
				egressMu.Lock()
				addr := egressAddr
				egressMu.Unlock()
				if addr == "" {
					return nil, errors.New("this node runs no egress proxy")
				}
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			}},
		},
		OnEvent: func(e sandbox.Event) {
			fmt.Fprintf(r.stderr, "ward run: refused: %s\n", e.Detail)
			r.post(api.RuntimeEvent{Time: e.Time, Kind: e.Kind, Detail: e.Detail, Pid: e.Pid})
		},
		Serve: func(method string, body json.RawMessage) (any, error) {
			switch method {
			case "session":
				var in struct {
					CSR string `json:"csr"`
				}
				if err := strictjson.Unmarshal(body, &in); err != nil {
					return nil, err
				}
				req.CSR = in.CSR
				var v api.IssuedView
				if err := c.do("POST", "/v1/sessions", req, &v); err != nil {
					return nil, fmt.Errorf("start a session: %w", err)
				}
				if v.Session == "" || v.Session != filepath.Base(v.Session) || strings.HasPrefix(v.Session, ".") {
					return nil, fmt.Errorf("the node answered with a malformed session id %q", v.Session)
				}
				r.setSession(v.Session)
				var d api.ExecDecision
				if err := c.do("POST", "/v1/sessions/"+url.PathEscape(v.Session)+"/exec",
					policy.ExecRequest{Command: command, Args: argv[1:], Dir: "/workspace"}, &d); err != nil {
					r.end("ward run: could not decide exec")
					return nil, fmt.Errorf("decide exec of %s: %w", command, err)
				}
				if !d.Allow {
					r.end("ward run: exec refused")
					return nil, fmt.Errorf("policy refuses to run %s: %s", command, d.Reason)
				}
				return runtimeIssued{IssuedView: v, Server: c.base}, nil
			case "egress":
				var in struct {
					Addr        string `json:"addr"`
					Unavailable string `json:"unavailable"`
				}
				if err := strictjson.Unmarshal(body, &in); err != nil {
					return nil, err
				}
				if in.Unavailable != "" {
					return struct{}{}, noEgress(r.stderr, grantedHosts(scope), in.Unavailable)
				}
				if err := checkEgressAddr(in.Addr, base); err != nil {
					return nil, err
				}
				egressMu.Lock()
				egressAddr = in.Addr
				egressMu.Unlock()
				return struct{}{}, nil
			}
			return nil, fmt.Errorf("unknown runtime call %q", method)
		},
	}
	go r.flush()
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	sb, err := sandbox.Start(ctx, spec)
	cancel()
	if err != nil {
		r.end("ward run: the runtime did not start")
		r.close()
		return err
	}
	for _, line := range sb.Report() {
		fmt.Fprintf(r.stderr, "ward run: %s\n", line)
	}
	fmt.Fprintf(r.stderr, "ward run: session %s; program started in %s\n", r.session(), sb.StartedIn().Round(time.Microsecond))
	r.post(api.RuntimeEvent{Time: time.Now(), Kind: "start", Detail: "program " + command + " started",
		Data: map[string]any{"confinement": sb.Report(), "started_us": sb.StartedIn().Microseconds(), "workspace": *workspace}})

	stop := make(chan struct{})
	go r.watch(sb, stop, *timeout)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case s := <-sigs:
			sb.Stop("ward run received " + s.String())
		case <-stop:
		}
	}()
	res, werr := sb.Wait()
	close(stop)
	signal.Stop(sigs)

	rec := runRecord{Session: r.session(), Agent: *agent, Workspace: *workspace, Command: argv, Started: started,
		ExitCode: res.ExitCode, Stopped: res.Stopped, Limits: res.Limits}
	for _, l := range res.Limits {
		fmt.Fprintf(r.stderr, "ward run: limit reached: %s\n", l)
	}
	set, cerr := r.capture(res.Upper, *workspace, *rollback, &rec)
	if err := sb.Release(); err != nil {
		fmt.Fprintf(r.stderr, "ward run: teardown: %v\n", err)
	}
	rec.Ended = time.Now()
	outcome := fmt.Sprintf("program exited with status %d", res.ExitCode)
	if res.Stopped != "" {
		outcome = "runtime stopped: " + res.Stopped
	}
	if len(res.Limits) > 0 {
		outcome += " (" + strings.Join(res.Limits, "; ") + ")"
	}
	var patch *changes.Patch
	if cerr != nil {
		fmt.Fprintf(r.stderr, "ward run: changes: %v\n", cerr)
	} else {
		if *recordDiff && !*rollback {
			// Before decide, which may apply the set: the workspace
			// is still the old side.
			patch = runPatch(set, *workspace, rec.Session)
			if len(patch.Files) > 0 {
				fmt.Fprintf(r.stderr, "ward run: the diff of %d changed files goes to the session's audit trail, redacted by the node (--record-diff=false: paths only)\n", len(patch.Files))
			}
		}
		r.decide(set, &rec, *workspace, *rollback, append(append([]string(nil), defaultProtected...), protect...))
	}
	if err := writeRunRecord(rec); err != nil {
		fmt.Fprintf(r.stderr, "ward run: %v\n", err)
	}
	data := map[string]any{"exit_code": res.ExitCode, "stopped": res.Stopped, "applied": rec.Applied, "protected": rec.Protected,
		"links_outside": rec.Outside, "limits": res.Limits, "rolled_back": rec.RolledBack}
	if set != nil {
		data["changes"] = set.Paths()
	}
	if patch != nil {
		data["diff"] = patch
	}
	r.post(api.RuntimeEvent{Time: time.Now(), Kind: "end", Detail: outcome, Data: data})
	r.end("ward run: " + outcome)
	r.close()
	fmt.Fprintf(r.stderr, "ward run: %s; session %s ended\n", outcome, r.session())
	if werr != nil {
		return werr
	}
	if res.Stopped != "" {
		return fmt.Errorf("%s", outcome)
	}
	if res.ExitCode != 0 {
		return exitStatus(res.ExitCode)
	}
	return nil
}

// runtimeIssued is what the runtime's service receives for the session.
type runtimeIssued struct {
	api.IssuedView
	Server string `json:"server"`
}

// runner is the outside half of `ward run`'s conversation with the node.
type runner struct {
	c      *client
	stderr io.Writer
	events chan api.RuntimeEvent
	done   chan struct{}
	disk   int64 // the runtime's disk limit, also the most a capture holds
	runDir string
	// liveStop ends the session's liveness channel: true once ward run
	// has ended the session itself, false to break it off.
	liveStop chan bool
	liveDone chan struct{} // closed when the liveness channel is closed

	mu    sync.Mutex
	id    string
	ended bool
}

// setSession notes the session the runtime runs for, in the run
// directory too (where a later ward run finds it if this one is
// killed), and opens its liveness channel to the node.
func (r *runner) setSession(id string) {
	r.mu.Lock()
	r.id = id
	r.liveDone = make(chan struct{})
	r.mu.Unlock()
	os.WriteFile(filepath.Join(r.runDir, "session"), []byte(id), 0o600)
	go r.live(id)
}

func (r *runner) session() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.id
}

// post queues an event for the audit log; flush sends them in order. The
// queue holds every refusal a runtime reports (sandbox.MaxEvents) and
// ward run's own few, so it is full only if the node stopped answering.
func (r *runner) post(e api.RuntimeEvent) {
	select {
	case r.events <- e:
	default:
		fmt.Fprintf(r.stderr, "ward run: event queue full; not recorded: %s\n", e.Detail)
	}
}

func (r *runner) flush() {
	defer close(r.done)
	for e := range r.events {
		batch := []api.RuntimeEvent{e}
	more:
		for len(batch) < 100 {
			select {
			case e, ok := <-r.events:
				if !ok {
					break more
				}
				batch = append(batch, e)
			default:
				break more
			}
		}
		id := r.session()
		if id == "" {
			continue
		}
		if err := r.c.do("POST", "/v1/sessions/"+url.PathEscape(id)+"/runtime", map[string]any{"events": batch}, nil); err != nil {
			fmt.Fprintf(r.stderr, "ward run: recording %d runtime events failed: %v\n", len(batch), err)
		}
	}
}

// close sends what is queued and waits for it.
func (r *runner) close() {
	close(r.events)
	<-r.done
}

// end ends the session (once), revoking its grants, then closes the
// liveness channel: cleanly if the session ended, by breaking it off
// otherwise, so that the node ends the session itself.
func (r *runner) end(reason string) {
	r.mu.Lock()
	id, ended, liveDone := r.id, r.ended, r.liveDone
	r.ended = true
	r.mu.Unlock()
	if id == "" || ended {
		return
	}
	err := r.c.do("POST", "/v1/sessions/"+url.PathEscape(id)+"/end", map[string]string{"reason": reason}, nil)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != 404 {
			fmt.Fprintf(r.stderr, "ward run: ending session %s: %v\n", id, err)
		}
	}
	r.liveStop <- err == nil
	select {
	case <-liveDone:
	case <-time.After(10 * time.Second):
	}
}

// liveInterval is how often ward run tells the node, on the session's
// liveness channel, that its runtime is alive.
const liveInterval = 5 * time.Second

// live holds the session's liveness channel to the node while the
// runtime lives: POST /v1/sessions/ID/runtime/live, whose body is a line
// "alive" every liveInterval and "end" once ward run has ended the
// session itself, and whose answer is "live", then one last line. If
// ward run dies (SIGKILL included), the kernel closes the connection
// without "end" and the node ends the session at once; if ward run's
// host goes away, the node ends it when the heartbeat stops. A channel
// that breaks while ward run lives, or that a node shutting down lets go
// of, is opened again; one the node refuses (the session is not active,
// or a node that does not offer it), or after which it ended the
// session, is not.
func (r *runner) live(id string) {
	defer close(r.liveDone)
	hc := &http.Client{Transport: r.c.http.Transport} // no overall timeout: it lasts as long as the runtime
	broken := errors.New("ward run stopped without ending the session")
	for {
		pr, pw := io.Pipe()
		req, err := http.NewRequest("POST", r.c.base+"/v1/sessions/"+url.PathEscape(id)+"/runtime/live", pr)
		if err != nil {
			<-r.liveStop
			return
		}
		req.Header.Set("Authorization", "Bearer "+r.c.token)
		req.Header.Set("Content-Type", "text/plain")
		// The channel has a connection of its own, closed with it: the
		// node answers "end" as soon as it reads that line, and a
		// connection kept for reuse could then carry the rest of this
		// body (the chunked encoding's last chunk) as if it were a new
		// request, which the node answers 400 on a connection this side
		// thinks idle (net/http logs "Unsolicited response received on
		// idle HTTP channel").
		req.Close = true
		// The node's last line, "" if the channel broke, or "HTTP n".
		answered := make(chan string, 1)
		go func() {
			resp, err := hc.Do(req)
			if err != nil {
				answered <- ""
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				answered <- "HTTP " + strconv.Itoa(resp.StatusCode)
				return
			}
			last := ""
			sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<10))
			for sc.Scan() {
				last = sc.Text()
			}
			if sc.Err() != nil || last == "live" {
				last = ""
			}
			answered <- last
		}()
		// Lines are written by a goroutine of their own, so that a stalled
		// connection never holds up ward run.
		lines := make(chan string, 2)
		go func() {
			for l := range lines {
				if _, err := io.WriteString(pw, l+"\n"); err != nil {
					return
				}
			}
			pw.Close()
		}()
		tick := time.NewTicker(liveInterval)
		last := ""
	beat:
		for {
			select {
			case clean := <-r.liveStop:
				tick.Stop()
				if clean {
					select {
					case lines <- "end":
						close(lines)
						select {
						case <-answered:
						case <-time.After(5 * time.Second):
						}
						return
					default:
					}
				}
				pw.CloseWithError(broken)
				return
			case last = <-answered:
				break beat
			case <-tick.C:
				select {
				case lines <- "alive":
				default: // earlier lines are not sent yet: the node's deadline decides
				}
			}
		}
		tick.Stop()
		pw.CloseWithError(broken)
		switch {
		case strings.HasPrefix(last, "gone: "):
			fmt.Fprintf(r.stderr, "ward run: the node ended the session: %s\n", strings.TrimPrefix(last, "gone: "))
			<-r.liveStop
			return
		case strings.HasPrefix(last, "HTTP 4"):
			if last != "HTTP 404" && last != "HTTP 409" {
				fmt.Fprintf(r.stderr, "ward run: the node refused the session's liveness channel (%s)\n", last)
			}
			<-r.liveStop
			return
		}
		select {
		case <-r.liveStop:
			return
		case <-time.After(time.Second):
		}
	}
}

// watch stops the runtime when its session ends, is quarantined or times
// out. It polls: a session's end is seen within 250ms.
func (r *runner) watch(sb *sandbox.Sandbox, stop <-chan struct{}, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-deadline.C:
			sb.Stop("timed out after " + timeout.String())
			return
		case <-tick.C:
			var v api.SessionView
			err := r.c.do("GET", "/v1/sessions/"+url.PathEscape(r.session()), nil, &v)
			if err != nil {
				continue // the node may be restarting: the grant still expires on its own
			}
			if v.Status != "active" {
				reason := "session " + v.Status
				if v.EndReason != "" {
					reason += ": " + v.EndReason
				}
				sb.Stop(reason)
				return
			}
		}
	}
}

// capture reads the workspace's changes from the runtime and keeps them in
// RUNS/SESSION/changes; with rollback, only their summary is kept.
func (r *runner) capture(upper, workspace string, rollback bool, rec *runRecord) (*changes.Set, error) {
	lower := workspace
	if lower == "" {
		lower = filepath.Join(r.runDir, "empty-workspace")
		if err := os.Mkdir(lower, 0o700); err != nil {
			return nil, err
		}
	}
	set, err := changes.Scan(upper, lower, r.disk)
	if err != nil {
		return nil, err
	}
	if rollback {
		rec.RolledBack, rec.Summary = true, set.Summary()
		return set, nil
	}
	dir := filepath.Join(runsDir(), rec.Session, "changes")
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	if err := changes.Save(set, upper, dir); err != nil {
		return nil, err
	}
	return set, nil
}

// runPatch is the bounded diff of a captured change set: the workspace,
// not yet changed, against the set's saved content.
func runPatch(set *changes.Set, workspace, session string) *changes.Patch {
	var old *os.Root
	if workspace != "" {
		if r, err := os.OpenRoot(workspace); err == nil {
			old = r
			defer r.Close()
		}
	}
	saved, err := os.OpenRoot(filepath.Join(runsDir(), session, "changes", "files"))
	if err == nil {
		defer saved.Close()
	}
	p := changes.MakePatch(set, old, saved, changes.PatchConfig{})
	return &p
}

// decide applies a captured change set to the workspace, or keeps it
// aside, and says which.
func (r *runner) decide(set *changes.Set, rec *runRecord, workspace string, rollback bool, protect []string) {
	fmt.Fprint(r.stderr, indent(set.Summary(), "ward run:   "))
	dir := filepath.Join(runsDir(), rec.Session, "changes")
	rec.Protected = changes.Protected(set, protect)
	rec.Outside = changes.Escaping(set, workspace)
	switch {
	case len(set.Paths()) == 0:
		return
	case rollback:
		fmt.Fprintf(r.stderr, "ward run: rolled back: the workspace is as it was; the changes were discarded (their summary is kept)\n")
	case workspace == "":
		fmt.Fprintf(r.stderr, "ward run: no workspace: the changes are kept in %s\n", dir)
	case rec.Stopped != "":
		fmt.Fprintf(r.stderr, "ward run: not applied, since ward stopped the runtime; review with `ward changes show %s`\n", rec.Session)
	case len(rec.Protected) > 0 || len(rec.Outside) > 0:
		var why []string
		if len(rec.Protected) > 0 {
			why = append(why, "protected paths changed ("+strings.Join(rec.Protected, ", ")+")")
		}
		if len(rec.Outside) > 0 {
			why = append(why, "symbolic links point outside the workspace ("+describeLinks(set, rec.Outside)+")")
		}
		fmt.Fprintf(r.stderr, "ward run: not applied: %s; review with `ward changes show %s`, then `ward changes apply %s`\n",
			strings.Join(why, "; "), rec.Session, rec.Session)
	default:
		if err := changes.Apply(set, dir, workspace); err != nil {
			fmt.Fprintf(r.stderr, "ward run: applying the changes failed: %v; they are kept in %s\n", err, dir)
			return
		}
		rec.Applied = true
		fmt.Fprintf(r.stderr, "ward run: applied to %s\n", workspace)
	}
}

// describeLinks is "path -> target, ..." for the symlinks of set at
// paths, quoted where they would not read as plain text.
func describeLinks(set *changes.Set, paths []string) string {
	targets := map[string]string{}
	for _, c := range set.Changes {
		targets[c.Path] = c.Target
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = printable(p) + " -> " + printable(targets[p])
	}
	return strings.Join(out, ", ")
}

// printable is s, quoted if it holds anything but printable characters
// and spaces.
func printable(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) {
		return strconv.Quote(s)
	}
	return s
}

// reapStale cleans up after earlier `ward run`s that were killed: their
// runtimes died with them, but not their cgroups and run directories,
// which sandbox.Reap removes; their sessions, which the node has most
// likely ended already, are ended.
func reapStale(c *client, stderr io.Writer) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "ward-run-*"))
	for _, d := range dirs {
		id := readSession(filepath.Join(d, "session"))
		ok, err := sandbox.Reap(d)
		if err != nil {
			fmt.Fprintf(stderr, "ward run: %v\n", err)
			continue
		}
		if !ok {
			continue
		}
		if id == "" {
			fmt.Fprintf(stderr, "ward run: cleaned up after a runtime whose ward run was killed (%s)\n", d)
			continue
		}
		fmt.Fprintf(stderr, "ward run: cleaned up after a runtime whose ward run was killed (session %s)\n", id)
		var v api.SessionView
		if err := c.do("GET", "/v1/sessions/"+url.PathEscape(id), nil, &v); err == nil && v.Status == "active" {
			if err := c.do("POST", "/v1/sessions/"+url.PathEscape(id)+"/end",
				map[string]string{"reason": "its runtime is gone: its ward run was killed"}, nil); err != nil {
				fmt.Fprintf(stderr, "ward run: ending session %s: %v\n", id, err)
			}
		}
	}
}

// readSession reads a session id a ward run left in its run directory,
// "" if there is none that could be one.
func readSession(path string) string {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 256))
	id := string(b)
	if id == "" || len(id) > 128 || id != filepath.Base(id) || strings.HasPrefix(id, ".") || strings.ContainsFunc(id, unicode.IsSpace) {
		return ""
	}
	return id
}

func writeRunRecord(rec runRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(runsDir(), rec.Session)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "run.json"), append(b, '\n'), 0o600)
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
	}
	return b.String()
}

// runtimeEnv is the program's environment before ward's service adds the
// session's: nothing of the caller's environment crosses, but the terminal
// type and locale.
func runtimeEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/agent", "USER=agent",
		"LANG=C.UTF-8", "TMPDIR=/tmp"}
	for _, k := range []string{"TERM", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// execCommand is the absolute path policy decides exec on: the runtime
// shows the host's system directories at the same paths and the workspace
// at /workspace.
func execCommand(name, workspace string) string {
	switch {
	case filepath.IsAbs(name):
		return filepath.Clean(name)
	case strings.Contains(name, "/"):
		return filepath.Join("/workspace", name)
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && !fi.IsDir() {
			return filepath.Join(dir, name)
		}
	}
	return "/usr/bin/" + name
}

// checkEgressAddr accepts the egress proxy address the node gave the
// session only if it is on the node's host or on loopback.
func checkEgressAddr(addr string, node *url.URL) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("egress proxy address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || strings.EqualFold(host, node.Hostname()) {
		return nil
	}
	return fmt.Errorf("egress proxy address %q is neither on loopback nor on the node's host", addr)
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "http" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// parseSize reads "512M", "2G", "1048576".
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 512M or 2G", s)
	}
	return n * mult, nil
}
