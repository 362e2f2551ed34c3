package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/sandbox"
	"github.com/ward-dev/ward/internal/sandbox/changes"
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
	Applied   bool      `json:"applied"`
	Discarded bool      `json:"discarded,omitempty"`
}

// runsDir is where change sets are kept: $WARD_HOME/runs.
func runsDir() string { return filepath.Join(wardHome(), "runs") }

func cmdRun(args []string, stdout io.Writer) error {
	fs := flags("run")
	agent := fs.String("agent", "", "agent to start a session for")
	objective := fs.String("objective", "", "the session's declared objective (attested before the program starts)")
	workspace := fs.String("workspace", "", "directory the program works on, as /workspace (changes are captured, then applied or discarded)")
	keep := fs.Bool("keep", false, "apply the changes to the workspace when the program ends (the default, unless protected paths changed)")
	rollback := fs.Bool("rollback", false, "discard the changes: the workspace stays byte-for-byte as it was (the change set is kept)")
	timeout := fs.Duration("timeout", 10*time.Minute, "end the session, and the runtime, after this long")
	memory := fs.String("memory", "2G", "memory limit (K, M, G suffixes)")
	disk := fs.String("disk", "1G", "limit on the workspace's changes plus /tmp")
	cpus := fs.Float64("cpus", 0, "CPU limit in CPUs (0: none)")
	pids := fs.Int("pids", sandbox.DefaultPids, "limit on processes and threads")
	requireLandlock := fs.Bool("require-landlock", false, "refuse to run where the kernel has no Landlock")
	var tags, allow, hosts, protect, ro multi
	fs.Var(&tags, "tag", "objective tag (repeatable)")
	fs.Var(&allow, "allow", "narrow the grant's scope (repeatable): tool:…, resource:…, prompt:…, host:…")
	fs.Var(&hosts, "allow-host", "a host the program may reach through the egress proxy (repeatable)")
	fs.Var(&protect, "protect", "a protected workspace path pattern, in addition to the defaults (repeatable)")
	fs.Var(&ro, "ro", "another host path to show read-only in the runtime (repeatable)")
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

	r := &runner{c: c, stderr: os.Stderr, events: make(chan api.RuntimeEvent, sandbox.MaxEvents+16), done: make(chan struct{}), disk: lim.Disk}
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
				if err := json.Unmarshal(body, &in); err != nil {
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
					Addr string `json:"addr"`
				}
				if err := json.Unmarshal(body, &in); err != nil {
					return nil, err
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
		ExitCode: res.ExitCode, Stopped: res.Stopped}
	set, cerr := r.capture(res.Upper, *workspace, &rec)
	if err := sb.Release(); err != nil {
		fmt.Fprintf(r.stderr, "ward run: teardown: %v\n", err)
	}
	rec.Ended = time.Now()
	outcome := fmt.Sprintf("program exited with status %d", res.ExitCode)
	if res.Stopped != "" {
		outcome = "runtime stopped: " + res.Stopped
	}
	if cerr != nil {
		fmt.Fprintf(r.stderr, "ward run: changes: %v\n", cerr)
	} else {
		r.decide(set, &rec, *workspace, *rollback, append(append([]string(nil), defaultProtected...), protect...))
	}
	if err := writeRunRecord(rec); err != nil {
		fmt.Fprintf(r.stderr, "ward run: %v\n", err)
	}
	data := map[string]any{"exit_code": res.ExitCode, "stopped": res.Stopped, "applied": rec.Applied, "protected": rec.Protected}
	if set != nil {
		data["changes"] = set.Paths()
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

	mu    sync.Mutex
	id    string
	ended bool
}

func (r *runner) setSession(id string) {
	r.mu.Lock()
	r.id = id
	r.mu.Unlock()
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

// end ends the session (once), revoking its grants.
func (r *runner) end(reason string) {
	r.mu.Lock()
	id, ended := r.id, r.ended
	r.ended = true
	r.mu.Unlock()
	if id == "" || ended {
		return
	}
	if err := r.c.do("POST", "/v1/sessions/"+url.PathEscape(id)+"/end", map[string]string{"reason": reason}, nil); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != 404 {
			fmt.Fprintf(r.stderr, "ward run: ending session %s: %v\n", id, err)
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
// RUNS/SESSION/changes.
func (r *runner) capture(upper, workspace string, rec *runRecord) (*changes.Set, error) {
	lower := workspace
	if lower == "" {
		empty, err := os.MkdirTemp("", "ward-empty-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(empty)
		lower = empty
	}
	set, err := changes.Scan(upper, lower, r.disk)
	if err != nil {
		return nil, err
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

// decide applies a captured change set to the workspace, or keeps it
// aside, and says which.
func (r *runner) decide(set *changes.Set, rec *runRecord, workspace string, rollback bool, protect []string) {
	fmt.Fprint(r.stderr, indent(set.Summary(), "ward run:   "))
	dir := filepath.Join(runsDir(), rec.Session, "changes")
	rec.Protected = changes.Protected(set, protect)
	switch {
	case len(set.Paths()) == 0:
		return
	case workspace == "":
		fmt.Fprintf(r.stderr, "ward run: no workspace: the changes are kept in %s\n", dir)
	case rollback:
		fmt.Fprintf(r.stderr, "ward run: rolled back: the workspace is as it was; the changes are kept in %s\n", dir)
	case rec.Stopped != "":
		fmt.Fprintf(r.stderr, "ward run: not applied, since ward stopped the runtime; review with `ward changes show %s`\n", rec.Session)
	case len(rec.Protected) > 0:
		fmt.Fprintf(r.stderr, "ward run: not applied: protected paths changed (%s); review with `ward changes show %s`, then `ward changes apply %s`\n",
			strings.Join(rec.Protected, ", "), rec.Session, rec.Session)
	default:
		if err := changes.Apply(set, dir, workspace); err != nil {
			fmt.Fprintf(r.stderr, "ward run: applying the changes failed: %v; they are kept in %s\n", err, dir)
			return
		}
		rec.Applied = true
		fmt.Fprintf(r.stderr, "ward run: applied to %s\n", workspace)
	}
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
