package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/refusal"
	"github.com/ward-dev/ward/internal/store"
)

// rawUpstream is an MCP server that speaks raw JSON-RPC and keeps every
// request it receives exactly as it arrived, so tests can compare what the
// gateway decided with what a server would read. It answers initialize,
// the lists (tools, prompts, resources, templates: a fixed catalog, or
// what tools() returns) and every decided method with a fixed result.
type rawUpstream struct {
	tools func() string // the tools array as JSON; nil: rawTools
	// answer, if set, may give the result of a request instead.
	answer func(method string) (json.RawMessage, bool)

	mu       sync.Mutex
	received []*jsonrpc.Request
	conns    []*rawConn
}

// emit sends msg from the upstream's newest connection, as a server sends
// a request or notification of its own.
func (u *rawUpstream) emit(msg jsonrpc.Message) {
	u.mu.Lock()
	c := u.conns[len(u.conns)-1]
	u.mu.Unlock()
	select {
	case c.in <- msg:
	case <-c.done:
	}
}

const rawTools = `[{"name":"echo","description":"Echo.","inputSchema":{"type":"object"}},
{"name":"send","description":"Send.","inputSchema":{"type":"object"}}]`

func (u *rawUpstream) dial(ctx context.Context) (mcp.Connection, error) {
	c := &rawConn{u: u, in: make(chan jsonrpc.Message, 64), done: make(chan struct{})}
	u.mu.Lock()
	u.conns = append(u.conns, c)
	u.mu.Unlock()
	return c, nil
}

// requests returns the requests received with method.
func (u *rawUpstream) requests(method string) []*jsonrpc.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*jsonrpc.Request
	for _, r := range u.received {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

type rawConn struct {
	u    *rawUpstream
	in   chan jsonrpc.Message
	once sync.Once
	done chan struct{}
}

func (c *rawConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case m := <-c.in:
		return m, nil
	case <-c.done:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *rawConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	req, ok := msg.(*jsonrpc.Request)
	if !ok || !req.IsCall() {
		return nil
	}
	// Keep a copy of the params exactly as sent: a real server parses
	// these bytes.
	wire, err := jsonrpc.EncodeMessage(req)
	if err != nil {
		return err
	}
	got, err := jsonrpc.DecodeMessage(wire)
	if err != nil {
		return err
	}
	c.u.mu.Lock()
	c.u.received = append(c.u.received, got.(*jsonrpc.Request))
	c.u.mu.Unlock()
	if c.u.answer != nil {
		if res, ok := c.u.answer(req.Method); ok {
			select {
			case c.in <- &jsonrpc.Response{ID: req.ID, Result: res}:
			case <-c.done:
			}
			return nil
		}
	}
	var result string
	switch req.Method {
	case "initialize":
		result = `{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"prompts":{},"resources":{"subscribe":true},"completions":{},"logging":{}},"serverInfo":{"name":"raw","version":"1"}}`
	case "tools/list":
		tools := rawTools
		if c.u.tools != nil {
			tools = c.u.tools()
		}
		result = `{"tools":` + tools + `}`
	case "prompts/list":
		result = `{"prompts":[{"name":"greet","arguments":[{"name":"who"}]}]}`
	case "resources/list":
		result = `{"resources":[{"uri":"note://a","name":"a"},{"uri":"note://b","name":"b"}]}`
	case "resources/templates/list":
		result = `{"resourceTemplates":[{"uriTemplate":"note://{id}","name":"notes"}]}`
	case "completion/complete":
		result = `{"completion":{"values":["x"]}}`
	default:
		result = `{"content":[{"type":"text","text":"ok"}]}`
	}
	select {
	case c.in <- &jsonrpc.Response{ID: req.ID, Result: json.RawMessage(result)}:
	case <-c.done:
	}
	return nil
}

func (c *rawConn) Close() error      { c.once.Do(func() { close(c.done) }); return nil }
func (c *rawConn) SessionID() string { return "" }

// downstream collects what the gateway sends the client.
type downstream struct {
	mu   sync.Mutex
	msgs []jsonrpc.Message
	ch   chan struct{}
}

func newDownstream() *downstream { return &downstream{ch: make(chan struct{}, 1024)} }

func (d *downstream) Send(msg jsonrpc.Message, _ jsonrpc.ID) error {
	d.mu.Lock()
	d.msgs = append(d.msgs, msg)
	d.mu.Unlock()
	select {
	case d.ch <- struct{}{}:
	default:
	}
	return nil
}

// reset forgets what was sent so far.
func (d *downstream) reset() {
	d.mu.Lock()
	d.msgs = nil
	d.mu.Unlock()
}

// response waits for the response to id.
func (d *downstream) response(t testing.TB, id jsonrpc.ID) *jsonrpc.Response {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		d.mu.Lock()
		for _, m := range d.msgs {
			if r, ok := m.(*jsonrpc.Response); ok && r.ID == id {
				d.mu.Unlock()
				return r
			}
		}
		d.mu.Unlock()
		select {
		case <-d.ch:
		case <-deadline:
			t.Fatalf("no response to %v", id.Raw())
		}
	}
}

// recordingGuard is the real pipeline, keeping every operation it allowed
// as it was when allowed.
type recordingGuard struct {
	*enforce.Pipeline
	mu      sync.Mutex
	allowed []enforce.Operation
}

func (g *recordingGuard) Check(ctx context.Context, c *gateway.Caller, op *gateway.Operation) (gateway.Verdict, error) {
	v, err := g.Pipeline.Check(ctx, c, op)
	if err == nil && v.Allow {
		g.mu.Lock()
		g.allowed = append(g.allowed, *op)
		g.mu.Unlock()
	}
	return v, err
}

func (g *recordingGuard) take() []enforce.Operation {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.allowed
	g.allowed = nil
	return out
}

// rawFixture is a gateway in front of a rawUpstream, with the real
// pipeline (SQLite pins, an audit log) and a policy that permits
// everything.
type rawFixture struct {
	up       *rawUpstream
	guard    *recordingGuard
	g        *gateway.Gateway
	log      *audit.Log
	st       *store.Store
	refusals *refusal.Recorder
}

func newRawFixture(t testing.TB, up *rawUpstream, wrap func(gateway.Guard) gateway.Guard) *rawFixture {
	t.Helper()
	f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "up", Dial: up.dial}}, wrap)
	f.up = up
	return f
}

// newUpstreamsFixture is a rawFixture in front of ups.
func newUpstreamsFixture(t testing.TB, ups []gateway.Upstream, wrap func(gateway.Guard) gateway.Guard) *rawFixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenSQLite(context.Background(), store.Config{Path: filepath.Join(dir, "ward.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	skey, vkey, err := audit.NewNoteKey("test/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	log, err := audit.Open(audit.Config{Dir: filepath.Join(dir, "audit"), Origin: "test/audit", Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	set, err := policy.Parse(map[string][]byte{"all.cedar": []byte(`permit (principal, action, resource);`)})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := refusal.New(refusal.Config{Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	p, err := enforce.New(enforce.Config{Policies: func() *policy.Set { return set }, Pins: st, Audit: log, Refusals: rc})
	if err != nil {
		t.Fatal(err)
	}
	f := &rawFixture{guard: &recordingGuard{Pipeline: p}, log: log, st: st, refusals: rc}
	var guard gateway.Guard = f.guard
	if wrap != nil {
		guard = wrap(guard)
	}
	f.g, err = gateway.New(gateway.Config{Guard: guard, Upstreams: ups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.g.Close)
	return f
}

var rawCaller = &gateway.Caller{Session: "s1", SPIFFEID: "spiffe://test/agent/a/session/s1", Agent: "a", Sponsor: "acme",
	Scope: grant.Scope{Tools: []string{"up.*"}, Prompts: []string{"up.*"}, Resources: []string{"note://*"}}, Expiry: time.Now().Add(24 * time.Hour)}

// open starts an initialized proxy session and lists everything, so the
// catalog is known.
func (f *rawFixture) open(t testing.TB) (*gateway.Session, *downstream) {
	t.Helper()
	return f.openAs(t, rawCaller)
}

func (f *rawFixture) openAs(t testing.TB, c *gateway.Caller) (*gateway.Session, *downstream) {
	t.Helper()
	d := newDownstream()
	s := f.g.NewSession(c, d)
	t.Cleanup(s.Close)
	send(t, s, d, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	for _, m := range []string{"tools/list", "prompts/list", "resources/list", "resources/templates/list"} {
		send(t, s, d, `{"jsonrpc":"2.0","id":"`+m+`","method":"`+m+`"}`)
	}
	return s, d
}

// send gives the session one raw client message and, for a request, waits
// for its answer.
func send(t testing.TB, s *gateway.Session, d *downstream, raw string) *jsonrpc.Response {
	t.Helper()
	msg, err := jsonrpc.DecodeMessage([]byte(raw))
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	s.Receive(context.Background(), msg)
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
		return d.response(t, req.ID)
	}
	return nil
}

// TestCaseVariantsRefused: a request whose params hold "uri" and "URI"
// (or any two names differing only in case, at any depth) was decided on
// one and served the other. It is refused and recorded; the upstream
// never sees it.
func TestCaseVariantsRefused(t *testing.T) {
	f := newRawFixture(t, &rawUpstream{}, nil)
	s, d := f.open(t)
	for i, raw := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"note://a","URI":"note://secret"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"URI":"note://secret","uri":"note://a"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"up.echo","NAME":"up.send","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"up.echo","arguments":{"to":"a@example.com","To":"evil@example.com"}}}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"up.echo","arguments":{"x":{"path":"/ok","PATH":"/etc/shadow"}}}}`,
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"up.echo","Arguments":{"to":"evil@example.com"},"arguments":{}}}`,
		`{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"up.greet","arguments":{"who":"a","WHO":"b"}}}`,
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"up.echo","arguments":{"k":1,"\u212a":2}}}`, // Kelvin sign folds to k
		`{"jsonrpc":"2.0","id":9,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"up.greet","NAME":"x"},"argument":{"name":"who","value":"a"}}}`,
	} {
		before := len(f.up.requests("resources/read")) + len(f.up.requests("tools/call")) + len(f.up.requests("prompts/get")) + len(f.up.requests("completion/complete"))
		resp := send(t, s, d, raw)
		if resp.Error == nil || !strings.Contains(resp.Error.Error(), "differ only in case") {
			t.Errorf("request %d: %s answered %+v, want a refusal naming the names that differ in case", i+1, raw, resp)
		}
		after := len(f.up.requests("resources/read")) + len(f.up.requests("tools/call")) + len(f.up.requests("prompts/get")) + len(f.up.requests("completion/complete"))
		if after != before {
			t.Errorf("request %d reached the upstream", i+1)
		}
	}
	if ops := f.guard.take(); len(ops) > 0 {
		t.Fatalf("allowed %v", ops)
	}
	// Recorded as refusals: the first ones of the session one by one, the
	// rest counted in a summary (appended at the window's end, or now).
	if err := f.refusals.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	refusals := 0
	events, _ := f.log.Read(0, f.log.Size())
	for _, e := range events {
		var d struct{ Count int }
		json.Unmarshal(e.Data, &d)
		switch {
		case e.Type == "refusal" && strings.Contains(string(e.Data), "differ only in case"):
			refusals++
		case e.Type == "refusal.summary":
			refusals += d.Count
		}
	}
	if refusals != 9 {
		t.Fatalf("%d refusals recorded, want 9", refusals)
	}
}

// TestMalformedParamsDoNotStopTheProcess: one completion/complete with
// "REF" for "ref" once panicked on a nil map and killed the node. Every
// method with every shape of wrong params is answered with an error; the
// session keeps serving.
func TestMalformedParamsDoNotStopTheProcess(t *testing.T) {
	f := newRawFixture(t, &rawUpstream{}, nil)
	s, d := f.open(t)
	bad := []string{`null`, `[]`, `1`, `"x"`, `{}`, `{"REF":{"type":"ref/prompt","name":"up.greet"},"argument":{"name":"who","value":"a"}}`,
		`{"ref":null}`, `{"ref":1}`, `{"ref":{"type":1}}`, `{"ref":{"type":"ref/prompt"}}`, `{"ref":{"type":"ref/prompt","name":"up.greet"}}`,
		`{"ref":{"type":"ref/prompt","name":"up.greet"},"argument":{"name":1}}`, `{"ref":{"type":"ref/resource","uri":5},"argument":{"name":"a","value":"b"}}`,
		`{"ref":{"type":"ref/prompt","name":"up.greet"},"argument":{"name":"who","value":"a"},"context":{"arguments":{"x":1}}}`,
		`{"ref":{"type":"ref/prompt","name":"up.greet"},"argument":{"name":"who","value":"a"},"context":[]}`,
		`{"name":5}`, `{"name":"up.echo","arguments":[1]}`, `{"name":"up.echo","arguments":"x"}`, `{"uri":{}}`, `{"level":7}`, `{"cursor":1}`,
		`{"name":"up.echo","arguments":{"a":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}}`}
	id := 100
	for _, method := range []string{"completion/complete", "tools/call", "prompts/get", "resources/read", "resources/subscribe",
		"resources/unsubscribe", "logging/setLevel", "tools/list", "ping"} {
		for _, params := range bad {
			id++
			raw := `{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"` + method + `","params":` + params + `}`
			resp := send(t, s, d, raw)
			if resp == nil {
				t.Fatalf("no answer to %s", raw)
			}
		}
	}
	// Still serving.
	resp := send(t, s, d, `{"jsonrpc":"2.0","id":"last","method":"tools/call","params":{"name":"up.echo","arguments":{"a":1}}}`)
	if resp.Error != nil {
		t.Fatalf("after malformed input: %v", resp.Error)
	}
}

// panickingGuard fails inside Check for one tool, as a bug would.
type panickingGuard struct{ gateway.Guard }

func (g panickingGuard) Check(ctx context.Context, c *gateway.Caller, op *gateway.Operation) (gateway.Verdict, error) {
	if op.Name == "up.send" {
		var m map[string]int
		m["boom"]++ // a nil map, as the REF bug had
	}
	return g.Guard.Check(ctx, c, op)
}

// TestFailureInARequestIsContained: a panic while serving one request is
// answered with an internal error and recorded; the process and the
// session go on.
func TestFailureInARequestIsContained(t *testing.T) {
	f := newRawFixture(t, &rawUpstream{}, func(g gateway.Guard) gateway.Guard { return panickingGuard{g} })
	s, d := f.open(t)
	resp := send(t, s, d, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"up.send","arguments":{}}}`)
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "internal error") {
		t.Fatalf("answer %+v, want an internal error", resp)
	}
	if strings.Contains(resp.Error.Error(), "nil map") || strings.Contains(resp.Error.Error(), "goroutine") {
		t.Fatalf("the client saw the panic: %v", resp.Error)
	}
	resp = send(t, s, d, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"up.echo","arguments":{}}}`)
	if resp.Error != nil {
		t.Fatalf("after the failure: %v", resp.Error)
	}
	events, _ := f.log.Read(0, f.log.Size())
	found := false
	for _, e := range events {
		if e.Type == "refusal" && strings.Contains(string(e.Data), "ward failed while serving this request") {
			found = true
		}
	}
	if !found {
		t.Fatal("the failure was not recorded")
	}
}

func itoa(n int) string { return strings.TrimSpace(string(json.RawMessage(mustMarshal(n)))) }

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
