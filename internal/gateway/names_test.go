package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
)

var anyCaller = &gateway.Caller{Session: "s1", SPIFFEID: "spiffe://test/agent/a/session/s1", Agent: "a", Sponsor: "acme",
	Scope: grant.Scope{Tools: []string{"*"}, Prompts: []string{"*"}, Resources: []string{"note://*"}}, Expiry: time.Now().Add(24 * time.Hour)}

func toolUpstream(tools string) *rawUpstream {
	return &rawUpstream{tools: func() string { return tools }}
}

func listedNames(t *testing.T, resp *jsonrpc.Response) []string {
	t.Helper()
	if resp.Error != nil {
		t.Fatalf("list: %v", resp.Error)
	}
	var res struct{ Tools []struct{ Name string } }
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	sort.Strings(out)
	return out
}

// TestNamesAcrossUpstreams: a client sees each server's own tool names
// where they are unambiguous; a name two servers offer is shown (and must
// be called) as SERVER.NAME; SERVER.NAME is always accepted; whatever name
// the client used, the decision, the pin and the upstream see one stable
// identity; and no upstream can take the name another server's tool is
// called by.
func TestNamesAcrossUpstreams(t *testing.T) {
	alpha := toolUpstream(`[{"name":"search","inputSchema":{"type":"object"}},{"name":"only_alpha","inputSchema":{"type":"object"}}]`)
	// beta also offers "search", and a tool named like alpha's prefixed one.
	beta := toolUpstream(`[{"name":"search","inputSchema":{"type":"object"}},{"name":"alpha.only_alpha","inputSchema":{"type":"object"}},{"name":"deploy","inputSchema":{"type":"object"}}]`)
	f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "alpha", Dial: alpha.dial}, {Name: "beta", Dial: beta.dial}}, nil)
	s, d := f.openAs(t, anyCaller)

	got := listedNames(t, send(t, s, d, `{"jsonrpc":"2.0","id":"l","method":"tools/list"}`))
	want := []string{"alpha.search", "beta.alpha.only_alpha", "beta.search", "deploy", "only_alpha"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("tools/list = %v, want %v", got, want)
	}

	call := func(id, name string) *jsonrpc.Response {
		return send(t, s, d, `{"jsonrpc":"2.0","id":"`+id+`","method":"tools/call","params":{"name":"`+name+`","arguments":{}}}`)
	}
	for _, c := range []struct{ called, stable, server, upstream string }{
		{"only_alpha", "alpha.only_alpha", "alpha", "only_alpha"},
		{"alpha.only_alpha", "alpha.only_alpha", "alpha", "only_alpha"}, // not beta's look-alike
		{"beta.alpha.only_alpha", "beta.alpha.only_alpha", "beta", "alpha.only_alpha"},
		{"deploy", "beta.deploy", "beta", "deploy"},
		{"beta.deploy", "beta.deploy", "beta", "deploy"},
		{"alpha.search", "alpha.search", "alpha", "search"},
		{"beta.search", "beta.search", "beta", "search"},
	} {
		before := map[*rawUpstream]int{alpha: len(alpha.requests("tools/call")), beta: len(beta.requests("tools/call"))}
		if resp := call(c.called, c.called); resp.Error != nil {
			t.Fatalf("%s: %v", c.called, resp.Error)
		}
		ops := f.guard.take()
		if len(ops) != 1 || ops[0].Name != c.stable || ops[0].Server != c.server || ops[0].Upstream != c.upstream {
			t.Fatalf("%s decided as %+v, want %s on %s", c.called, ops, c.stable, c.server)
		}
		up, other := alpha, beta
		if c.server == "beta" {
			up, other = beta, alpha
		}
		reqs := up.requests("tools/call")
		if len(reqs) != before[up]+1 || len(other.requests("tools/call")) != before[other] {
			t.Fatalf("%s: not forwarded to %s alone", c.called, c.server)
		}
		var p struct{ Name string }
		json.Unmarshal(reqs[len(reqs)-1].Params, &p)
		if p.Name != c.upstream {
			t.Fatalf("%s forwarded as %q, want %q", c.called, p.Name, c.upstream)
		}
	}
	// The ambiguous name is refused, naming both ways to call it, and
	// recorded; nothing is forwarded.
	n := len(alpha.requests("tools/call")) + len(beta.requests("tools/call"))
	resp := call("amb", "search")
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "alpha.search or beta.search") {
		t.Fatalf("ambiguous call: %v", resp.Error)
	}
	for _, name := range []string{"nope", "gamma.search", "Search", "alpha.Search", ".search", "alpha."} {
		if resp := call(name, name); resp.Error == nil {
			t.Fatalf("%q resolved", name)
		}
	}
	if m := len(alpha.requests("tools/call")) + len(beta.requests("tools/call")); m != n {
		t.Fatalf("refused names reached an upstream (%d calls, want %d)", m, n)
	}
	if ops := f.guard.take(); len(ops) != 0 {
		t.Fatalf("refused names allowed: %+v", ops)
	}
}

// TestNameModes: "keep" takes a contested name, "prefix" never shows a bare
// one; sessions of other callers see the same names.
func TestNameModes(t *testing.T) {
	a := toolUpstream(`[{"name":"fetch","inputSchema":{"type":"object"}},{"name":"solo","inputSchema":{"type":"object"}}]`)
	k := toolUpstream(`[{"name":"fetch","inputSchema":{"type":"object"}}]`)
	p := toolUpstream(`[{"name":"status","inputSchema":{"type":"object"}}]`)
	f := newUpstreamsFixture(t, []gateway.Upstream{
		{Name: "a", Dial: a.dial},
		{Name: "k", Dial: k.dial, Names: gateway.NamesKeep},
		{Name: "p", Dial: p.dial, Names: gateway.NamesPrefix},
	}, nil)
	s, d := f.openAs(t, anyCaller)
	got := listedNames(t, send(t, s, d, `{"jsonrpc":"2.0","id":"l","method":"tools/list"}`))
	if want := "a.fetch fetch p.status solo"; strings.Join(got, " ") != want {
		t.Fatalf("tools/list = %v, want %s", got, want)
	}
	send(t, s, d, `{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"fetch"}}`)
	if ops := f.guard.take(); len(ops) != 1 || ops[0].Name != "k.fetch" {
		t.Fatalf("fetch decided as %+v, want k.fetch", ops)
	}
	if _, err := gateway.New(gateway.Config{Guard: f.guard, Upstreams: []gateway.Upstream{{Name: "x", Dial: a.dial, Names: "bare"}}}); err == nil {
		t.Fatal("unknown name mode accepted")
	}
}

// TestCallBeforeList: a client that calls by a bare name without listing
// first is served (the gateway lists to find it).
func TestCallBeforeList(t *testing.T) {
	a := toolUpstream(`[{"name":"solo","inputSchema":{"type":"object"}}]`)
	f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "a", Dial: a.dial}}, nil)
	d := newDownstream()
	s := f.g.NewSession(anyCaller, d)
	t.Cleanup(s.Close)
	send(t, s, d, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if resp := send(t, s, d, `{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"solo"}}`); resp.Error != nil {
		t.Fatalf("call before list: %v", resp.Error)
	}
}

// TestUnavailableUpstream: a configured server that cannot be reached is
// named to the agent (not "unknown tool"), whatever name the call uses,
// with CodeUpstream; the attempt is recorded; the other servers serve.
func TestUnavailableUpstream(t *testing.T) {
	up := toolUpstream(`[{"name":"echo","inputSchema":{"type":"object"}}]`)
	down := func(ctx context.Context) (mcp.Connection, error) {
		return nil, errors.New("exec: \"npx\": executable file not found in $PATH")
	}
	f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "up", Dial: up.dial}, {Name: "fs", Dial: down}}, nil)
	s, d := f.openAs(t, anyCaller)
	if resp := send(t, s, d, `{"jsonrpc":"2.0","id":"ok","method":"tools/call","params":{"name":"echo"}}`); resp.Error != nil {
		t.Fatalf("the reachable server: %v", resp.Error)
	}
	before := f.log.Size()
	for _, name := range []string{"fs.list_directory", "list_directory"} {
		resp := send(t, s, d, `{"jsonrpc":"2.0","id":"`+name+`","method":"tools/call","params":{"name":"`+name+`"}}`)
		var we *jsonrpc.Error
		if !errors.As(resp.Error, &we) || we.Code != gateway.CodeUpstream ||
			!strings.Contains(we.Message, "server fs is unavailable") || !strings.Contains(we.Message, "executable file not found") {
			t.Fatalf("%s: %v, want CodeUpstream naming fs as unavailable and why", name, resp.Error)
		}
	}
	if f.log.Size() < before+2 {
		t.Fatalf("calls to the unavailable server not recorded (%d new entries)", f.log.Size()-before)
	}
	// A name no server could offer is still just unknown... unless a
	// server is down: then the agent is told which one.
	resp := send(t, s, d, `{"jsonrpc":"2.0","id":"p","method":"prompts/get","params":{"name":"fs.greet"}}`)
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "server fs is unavailable") {
		t.Fatalf("prompt of the unavailable server: %v", resp.Error)
	}
}

// TestProbe: what a node reports at start — the upstream that cannot be
// reached and why, and the names that clash, resolved as sessions resolve
// them — without pinning or recording anything.
func TestProbe(t *testing.T) {
	a := toolUpstream(`[{"name":"search","inputSchema":{"type":"object"}},{"name":"solo","inputSchema":{"type":"object"}}]`)
	b := toolUpstream(`[{"name":"search","inputSchema":{"type":"object"}}]`)
	down := func(ctx context.Context) (mcp.Connection, error) { return nil, errors.New("connection refused") }
	f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "a", Dial: a.dial}, {Name: "b", Dial: b.dial}, {Name: "fs", Dial: down}}, nil)
	rep := f.g.Probe(context.Background())
	if len(rep.Servers) != 3 || rep.Servers[0].Err != nil || rep.Servers[0].Tools != 2 || rep.Servers[1].Tools != 1 ||
		rep.Servers[2].Server != "fs" || rep.Servers[2].Err == nil || !strings.Contains(rep.Servers[2].Err.Error(), "connection refused") {
		t.Fatalf("probe servers = %+v", rep.Servers)
	}
	if len(rep.ToolClashes) != 1 || rep.ToolClashes[0].Name != "search" || strings.Join(rep.ToolClashes[0].Servers, ",") != "a,b" {
		t.Fatalf("probe clashes = %+v", rep.ToolClashes)
	}
	// The prompts both offer ("greet") clash too.
	if len(rep.PromptClashes) != 1 || rep.PromptClashes[0].Name != "greet" {
		t.Fatalf("prompt clashes = %+v", rep.PromptClashes)
	}
	if n := f.log.Size(); n != 0 {
		t.Fatalf("the probe recorded %d entries", n)
	}
	for _, srv := range []string{"a", "b"} {
		if _, err := f.st.GetToolSet(context.Background(), srv); err == nil {
			t.Fatalf("the probe recorded the tool set of %s", srv)
		}
	}
	if f.g.Sessions("ward-probe") != 0 {
		t.Fatal("the probe's session is still open")
	}
	// An agent's listing is what pins (so the check above can fail).
	f.openAs(t, anyCaller)
	if _, err := f.st.GetToolSet(context.Background(), "a"); err != nil {
		t.Fatalf("a session's listing recorded no tool set: %v", err)
	}
}

// TestDiscoverProbeNotRecorded: server/discover (the probe of protocol
// 2026-07-28 clients, the Go SDK's default) is answered method-not-found
// without a record; any other unknown method is refused and recorded.
func TestDiscoverProbeNotRecorded(t *testing.T) {
	f := newRawFixture(t, &rawUpstream{}, nil)
	s, d := f.open(t)
	f.refusals.Flush(context.Background())
	before := f.log.Size()
	resp := send(t, s, d, `{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{}}`)
	var we *jsonrpc.Error
	if !errors.As(resp.Error, &we) || we.Code != jsonrpc.CodeMethodNotFound {
		t.Fatalf("server/discover: %v", resp.Error)
	}
	f.refusals.Flush(context.Background())
	if f.log.Size() != before {
		t.Fatal("the probe was recorded")
	}
	send(t, s, d, `{"jsonrpc":"2.0","id":"x","method":"server/whatever","params":{}}`)
	f.refusals.Flush(context.Background())
	if f.log.Size() == before {
		t.Fatal("an unknown method was not recorded (so the check above proves nothing)")
	}
}
