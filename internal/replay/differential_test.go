package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/mod/sumdb/note"
	"gopkg.in/yaml.v3"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/replay"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/taint"
)

// TestReplayDecidesAsTheGateway runs the same traces through `ward replay`
// and through a live gateway (real pipeline, SQLite pins, audit log,
// approval queue, taint and provenance) in front of servers that answer as
// the trace recorded, and requires the same outcome, the same deciding
// policies and the same taint labels for every call. HTTP requests are
// decided by the pipeline as the egress proxy decides them.
func TestReplayDecidesAsTheGateway(t *testing.T) {
	type suite struct {
		traces   []string
		policies string
		config   string
	}
	evals, _ := filepath.Glob("testdata/eval/*.jsonl")
	diff, _ := filepath.Glob("testdata/differential/*.jsonl")
	if len(evals) == 0 || len(diff) == 0 {
		t.Fatal("no traces")
	}
	for _, s := range []suite{
		{traces: append(evals, diff...), policies: "testdata/eval/policies.cedar", config: "testdata/eval/ward.yaml"},
	} {
		set := loadPolicies(t, s.policies)
		labels, tools := loadConfig(t, s.config)
		for _, trace := range s.traces {
			t.Run(filepath.Base(trace), func(t *testing.T) {
				raw, err := os.ReadFile(trace)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := replay.Run(set, bytes.NewReader(raw), replay.Options{Labels: labels, Tools: tools})
				if err != nil {
					t.Fatal(err)
				}
				live := runLive(t, set, labels, tools, raw)
				if len(live) != len(rep.Calls) {
					t.Fatalf("live decided %d calls, replay %d", len(live), len(rep.Calls))
				}
				for i, c := range rep.Calls {
					l := live[i]
					if c.Line != l.line || c.Outcome != l.outcome || !slices.Equal(c.Policies, l.policies) || !slices.Equal(c.Taint, l.taint) {
						t.Errorf("line %d: replay %s %v taint %v (%s)\n          live %s %v taint %v (%s)",
							c.Line, c.Outcome, c.Policies, c.Taint, c.Reason, l.outcome, l.policies, l.taint, l.reason)
					}
				}
			})
		}
	}
}

func loadPolicies(t *testing.T, path string) *policy.Set {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse(map[string][]byte{filepath.Base(path): b})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func loadConfig(t *testing.T, path string) (*taint.Labeler, map[string]enforce.ToolDeclaration) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Taint struct {
			Tools map[string][]string `yaml:"tools"`
			Hosts map[string][]string `yaml:"hosts"`
		} `yaml:"taint"`
		Tools map[string]enforce.ToolDeclaration `yaml:"tools"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	l, err := taint.NewLabeler(cfg.Taint.Tools, cfg.Taint.Hosts)
	if err != nil {
		t.Fatal(err)
	}
	return l, cfg.Tools
}

// traceRecord is what the live run reads of a trace line.
type traceRecord struct {
	Type, Session, Agent, Sponsor, Objective string
	Groups                                   []string
	Depth                                    int
	Trust                                    *int
	Method, Server, Name                     string
	Arguments, Result, Error, Definition     json.RawMessage
	Params                                   json.RawMessage
	ReadOnly                                 bool `json:"read_only"`
	Approved                                 bool
	Taint                                    []string
	Scheme, Host, Path                       string
	Port                                     int
	Command, Cwd                             string
	Args                                     []string
	line                                     int
}

type liveCall struct {
	line     int
	outcome  string
	policies []string
	taint    []string
	reason   string
}

func parseTrace(t *testing.T, raw []byte) []traceRecord {
	var out []traceRecord
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r traceRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		r.line = n
		if r.Type != "session" && r.Server == "" {
			r.Server, _, _ = strings.Cut(r.Name, ".")
		}
		out = append(out, r)
	}
	return out
}

// runLive plays a trace through a gateway and returns, per call record,
// the first decision the pipeline made on it.
func runLive(t *testing.T, set *policy.Set, labels *taint.Labeler, tools map[string]enforce.ToolDeclaration, raw []byte) []liveCall {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, store.Config{Path: filepath.Join(dir, "ward.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	skey, vkey, _ := audit.NewNoteKey("test/audit")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	log, err := audit.Open(audit.Config{Dir: filepath.Join(dir, "audit"), Origin: "test/audit", Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	queue, err := approval.New(approval.Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs := parseTrace(t, raw)
	var cur struct {
		sync.Mutex
		rec *traceRecord
	}
	sessions := enforce.NewSessions(enforce.SessionsConfig{Labeler: labels})
	p, err := enforce.New(enforce.Config{Policies: func() *policy.Set { return set }, Pins: st, Audit: log, Tools: tools,
		State: sessions, Approvals: queue,
		OnSubmit: func(id string) {
			// A human answers as the trace says.
			cur.Lock()
			approve := cur.rec != nil && cur.rec.Approved
			cur.Unlock()
			go queue.Vote(ctx, id, approval.Voter{Name: "human", Groups: []string{"finance", "security", "dba", "leads", "cfo"}, Kind: approval.KindHuman}, approve, "as the trace says")
		}})
	if err != nil {
		t.Fatal(err)
	}
	guard := &firstVerdicts{Pipeline: p, sessions: sessions, seen: map[int]liveCall{}}

	// One upstream per server, answering as the trace recorded.
	ups := map[string]*scripted{}
	var names []string
	for i := range recs {
		r := &recs[i]
		if r.Type != "call" && r.Type != "notice" {
			continue
		}
		u := ups[r.Server]
		if u == nil {
			u = &scripted{tools: map[string]json.RawMessage{}, prompts: map[string]bool{}, resources: map[string]bool{}, cur: &cur.Mutex, rec: &cur.rec}
			ups[r.Server] = u
			names = append(names, r.Server)
		}
		if r.Type == "notice" {
			continue
		}
		switch r.Method {
		case "tools/call":
			def := map[string]json.RawMessage{"name": mustJSON(strings.TrimPrefix(r.Name, r.Server+".")), "inputSchema": json.RawMessage(`{"type":"object"}`)}
			switch {
			case r.Definition != nil:
				var d map[string]json.RawMessage
				json.Unmarshal(r.Definition, &d)
				for k, v := range d {
					def[k] = v
				}
			case r.ReadOnly:
				def["annotations"] = json.RawMessage(`{"readOnlyHint":true}`)
			}
			u.tools[strings.TrimPrefix(r.Name, r.Server+".")] = mustJSON(def)
		case "prompts/get":
			u.prompts[strings.TrimPrefix(r.Name, r.Server+".")] = true
		default:
			u.resources[r.Name] = true
		}
	}
	var upstreams []gateway.Upstream
	for _, n := range names {
		upstreams = append(upstreams, gateway.Upstream{Name: n, Dial: ups[n].dial})
	}
	g, err := gateway.New(gateway.Config{Guard: guard, Upstreams: upstreams, HoldTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)

	var out []liveCall
	var s *gateway.Session
	var down *capture
	var caller *enforce.Caller
	id := 0
	for i := range recs {
		r := &recs[i]
		if r.Type == "session" {
			trust := replay.DefaultTrust
			if r.Trust != nil {
				trust = *r.Trust
			}
			caller = &enforce.Caller{Session: r.Session, Agent: r.Agent, Sponsor: r.Sponsor, Groups: r.Groups, Depth: r.Depth,
				Trust: trust, Objective: r.Objective, SPIFFEID: "spiffe://t/agent/" + r.Agent + "/session/" + r.Session,
				Scope: grant.Scope{Tools: []string{"*"}, Prompts: []string{"*"}, Resources: []string{"*"}, Hosts: []string{"*"}}}
			down = &capture{ch: make(chan struct{}, 64)}
			s = g.NewSession(caller, down)
			t.Cleanup(s.Close)
			down.call(t, s, &id, "initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`)
			continue
		}
		cur.Lock()
		cur.rec = r
		cur.Unlock()
		guard.line, guard.recorded = r.line, r.Taint
		switch r.Type {
		case "notice":
			// The server sends it; the client gets it once ward has
			// recorded it and taken it in.
			msg := &jsonrpc.Request{Method: r.Method, Params: r.Params}
			if !strings.HasPrefix(r.Method, "notifications/") {
				msg.ID, _ = jsonrpc.MakeID(fmt.Sprint("n", r.line))
			}
			ups[r.Server].send(t, msg)
			down.await(t, r.Method)
			continue
		case "http", "exec":
			op := &enforce.Operation{Action: policy.ActionHTTPRequest, Name: r.Host}
			if r.Type == "http" {
				h := &policy.HTTPRequest{Method: r.Method, Scheme: r.Scheme, Host: r.Host, Port: r.Port, Path: r.Path}
				if h.Scheme == "" && h.Method != policy.MethodConnect {
					h.Scheme = "https"
				}
				if h.Port == 0 {
					h.Port = map[bool]int{true: 80, false: 443}[h.Scheme == "http"]
				}
				if h.Path == "" && h.Method != policy.MethodConnect {
					h.Path = "/"
				}
				op.HTTP = h
			} else {
				op = &enforce.Operation{Action: policy.ActionExec, Name: r.Command, Exec: &policy.ExecRequest{Command: r.Command, Args: r.Args, Dir: r.Cwd}}
			}
			op.Recorded = &enforce.Recorded{Taint: r.Taint}
			labels := slices.Compact(slices.Sorted(slices.Values(slices.Concat(sessions.Labels(caller.Session), r.Taint))))
			v := p.Evaluate(ctx, caller, op).Verdict
			out = append(out, liveCall{line: r.line, outcome: v.Outcome(), policies: v.Policies, taint: nilIfEmpty(labels), reason: v.Reason})
			if r.Type == "http" && (v.Allow || v.Escalate && r.Approved) && (len(r.Result) > 0 && string(r.Result) != "null") {
				sessions.Receive(ctx, caller, enforce.Received{Host: r.Host, Event: uint64(r.line), Body: r.Result})
			}
			continue
		}
		params := map[string]json.RawMessage{}
		switch r.Method {
		case "tools/call", "prompts/get":
			params["name"] = mustJSON(r.Name)
			if len(r.Arguments) > 0 {
				params["arguments"] = r.Arguments
			}
		default:
			params["uri"] = mustJSON(r.Name)
		}
		down.call(t, s, &id, r.Method, string(mustJSON(params)))
		c, ok := guard.take(r.line)
		if !ok {
			t.Fatalf("line %d was never decided", r.line)
		}
		out = append(out, c)
	}
	return out
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// firstVerdicts is the pipeline, keeping the first verdict on each trace
// line and the session's labels when it was decided.
type firstVerdicts struct {
	*enforce.Pipeline
	sessions *enforce.Sessions
	mu       sync.Mutex
	line     int
	recorded []string
	seen     map[int]liveCall
}

func (g *firstVerdicts) Check(ctx context.Context, c *gateway.Caller, op *gateway.Operation) (gateway.Verdict, error) {
	if g.recorded != nil {
		op.Recorded = &enforce.Recorded{Taint: g.recorded}
	}
	labels := slices.Compact(slices.Sorted(slices.Values(slices.Concat(g.sessions.Labels(c.Session), g.recorded))))
	v, err := g.Pipeline.Check(ctx, c, op)
	g.mu.Lock()
	if _, ok := g.seen[g.line]; !ok && err == nil {
		g.seen[g.line] = liveCall{line: g.line, outcome: v.Outcome(), policies: v.Policies, taint: nilIfEmpty(labels), reason: v.Reason}
	}
	g.mu.Unlock()
	return v, err
}

func (g *firstVerdicts) take(line int) (liveCall, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.seen[line]
	return c, ok
}

// scripted is an MCP server that lists the tools, prompts and resources a
// trace uses and answers each call with what the trace recorded for it.
type scripted struct {
	tools     map[string]json.RawMessage
	prompts   map[string]bool
	resources map[string]bool
	cur       *sync.Mutex
	rec       **traceRecord
	last      *scriptConn // the newest session's connection
}

func (u *scripted) dial(ctx context.Context) (mcp.Connection, error) {
	c := &scriptConn{u: u, in: make(chan jsonrpc.Message, 16), done: make(chan struct{})}
	u.cur.Lock()
	u.last = c
	u.cur.Unlock()
	return c, nil
}

// send sends msg from the server to the newest session.
func (u *scripted) send(t *testing.T, msg jsonrpc.Message) {
	t.Helper()
	u.cur.Lock()
	c := u.last
	u.cur.Unlock()
	if c == nil {
		t.Fatal("no session connected to the server")
	}
	select {
	case c.in <- msg:
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not read the server's message")
	}
}

type scriptConn struct {
	u    *scripted
	in   chan jsonrpc.Message
	once sync.Once
	done chan struct{}
}

func (c *scriptConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case m := <-c.in:
		return m, nil
	case <-c.done:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *scriptConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	req, ok := msg.(*jsonrpc.Request)
	if !ok || !req.IsCall() {
		return nil
	}
	resp := &jsonrpc.Response{ID: req.ID}
	list := func(key string, items []json.RawMessage) {
		resp.Result = mustJSON(map[string][]json.RawMessage{key: items})
	}
	switch req.Method {
	case "initialize":
		resp.Result = json.RawMessage(`{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"prompts":{},"resources":{}},"serverInfo":{"name":"scripted","version":"1"}}`)
	case "tools/list":
		var items []json.RawMessage
		for _, d := range c.u.tools {
			items = append(items, d)
		}
		list("tools", items)
	case "prompts/list":
		var items []json.RawMessage
		for n := range c.u.prompts {
			items = append(items, mustJSON(map[string]string{"name": n}))
		}
		list("prompts", items)
	case "resources/list":
		var items []json.RawMessage
		for uri := range c.u.resources {
			items = append(items, mustJSON(map[string]string{"uri": uri, "name": uri}))
		}
		list("resources", items)
	case "resources/templates/list":
		list("resourceTemplates", nil)
	default:
		c.u.cur.Lock()
		r := *c.u.rec
		c.u.cur.Unlock()
		switch {
		case len(r.Error) > 0 && string(r.Error) != "null":
			var e jsonrpc.Error
			if json.Unmarshal(r.Error, &e) != nil || e.Message == "" {
				e = jsonrpc.Error{Code: -32000, Message: string(r.Error)}
			}
			resp.Error = &e
		case len(r.Result) > 0 && string(r.Result) != "null":
			resp.Result = r.Result
		default:
			resp.Result = json.RawMessage(`{"content":[]}`)
		}
	}
	select {
	case c.in <- resp:
	case <-c.done:
	}
	return nil
}

func (c *scriptConn) Close() error      { c.once.Do(func() { close(c.done) }); return nil }
func (c *scriptConn) SessionID() string { return "" }

// capture is a client: it sends requests and waits for their answers.
type capture struct {
	mu   sync.Mutex
	msgs []jsonrpc.Message
	ch   chan struct{}
}

func (d *capture) Send(msg jsonrpc.Message, _ jsonrpc.ID) error {
	d.mu.Lock()
	d.msgs = append(d.msgs, msg)
	d.mu.Unlock()
	select {
	case d.ch <- struct{}{}:
	default:
	}
	return nil
}

// await waits until the client got a request or notification of method
// it has not yet waited for, and consumes it.
func (d *capture) await(t *testing.T, method string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		d.mu.Lock()
		for i, m := range d.msgs {
			if r, ok := m.(*jsonrpc.Request); ok && r.Method == method {
				d.msgs = slices.Delete(d.msgs, i, i+1)
				d.mu.Unlock()
				return
			}
		}
		d.mu.Unlock()
		select {
		case <-d.ch:
		case <-deadline:
			t.Fatalf("the client never got the server's %s", method)
		}
	}
}

func (d *capture) call(t *testing.T, s *gateway.Session, id *int, method, params string) *jsonrpc.Response {
	t.Helper()
	*id++
	rid, _ := jsonrpc.MakeID(fmt.Sprint("r", *id))
	s.Receive(context.Background(), &jsonrpc.Request{ID: rid, Method: method, Params: json.RawMessage(params)})
	deadline := time.After(20 * time.Second)
	for {
		d.mu.Lock()
		for _, m := range d.msgs {
			if r, ok := m.(*jsonrpc.Response); ok && r.ID == rid {
				d.mu.Unlock()
				return r
			}
		}
		d.mu.Unlock()
		select {
		case <-d.ch:
		case <-deadline:
			t.Fatalf("%s got no answer", method)
		}
	}
}

// TestServerNoticesChooseNothing: a value only a server's log message,
// progress report or sampling request carried is the server's untrusted
// text, as its results are: a sink call that uses it waits, as live
// (TestReplayDecidesAsTheGateway plays the same trace through a gateway).
// Without the notices the same calls go through: what stops them is what
// the notices carried.
func TestServerNoticesChooseNothing(t *testing.T) {
	const trace = "testdata/differential/server-notices.jsonl"
	set := loadPolicies(t, "testdata/eval/policies.cedar")
	labels, tools := loadConfig(t, "testdata/eval/ward.yaml")
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var without bytes.Buffer
	for _, l := range bytes.SplitAfter(raw, []byte("\n")) {
		if !bytes.Contains(l, []byte(`"type":"notice"`)) {
			without.Write(l)
		}
	}
	for _, tc := range []struct {
		name    string
		trace   []byte
		harmful string // the outcome every harmful call must have; "" for not allow
	}{
		{"with notices", raw, ""},
		{"without notices", without.Bytes(), "allow"},
	} {
		rep, err := replay.Run(set, bytes.NewReader(tc.trace), replay.Options{Labels: labels, Tools: tools})
		if err != nil {
			t.Fatal(err)
		}
		harmful := 0
		for _, c := range rep.Calls {
			a := string(c.Arguments)
			bad := strings.Contains(a, "reports-mail.example") || strings.Contains(a, "DE8937")
			switch {
			case bad && tc.harmful == "" && c.Outcome == "allow":
				t.Errorf("%s: line %d allowed: %s", tc.name, c.Line, a)
			case bad && tc.harmful != "" && c.Outcome != tc.harmful:
				t.Errorf("%s: line %d %s (%s), want %s", tc.name, c.Line, c.Outcome, c.Reason, tc.harmful)
			case !bad && c.Outcome != "allow":
				t.Errorf("%s: benign line %d %s: %s", tc.name, c.Line, c.Outcome, c.Reason)
			}
			if bad {
				harmful++
			}
		}
		if harmful != 3 {
			t.Fatalf("%s: %d harmful calls decided, want 3", tc.name, harmful)
		}
	}
}
