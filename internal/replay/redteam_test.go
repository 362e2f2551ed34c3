package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/replay"
	"github.com/ward-dev/ward/internal/store"
)

// TestRedteamReplayDecidesWhatTheGatewayRefuses (red team, replay vs live).
//
// Attack: the differential test (differential_test.go) only plays traces
// whose calls reach the pipeline in the same form in both. Three kinds of
// recorded call do not:
//
//  1. A file argument of a server configured with roots: live, the
//     pipeline resolves it under the roots (enforce.Config.Roots) and
//     policy sees the resolved path, so "ROOT/allowed/../secret.txt" is
//     denied by a policy about ROOT/allowed/*. Replay builds its pipeline
//     without roots (internal/replay/simulate.go, newSimulator; replay
//     Options and `ward replay --config` carry no roots), so policy sees
//     the text and allows it.
//  2. Arguments holding two names that differ only in case ("to" and
//     "To"): the gateway refuses them before deciding
//     (internal/gateway/message.go, walk/nameSet); replay decides them.
//  3. A resource URI with a dot segment ("note://a/../secret"): the
//     gateway refuses it (internal/gateway/catalog.go, checkURI); replay's
//     grant check accepts the name and policy allows it.
//
// In each case `ward replay` reports "allow" for a call the live node
// denies, so an operator who replays a trace against new policies is told
// that an attack trace would succeed or, in reverse, that a relative path
// the node allows is denied. What it should do: decide through the same
// checks as the gateway (one decision path), with the node's roots.
func TestRedteamReplayDecidesWhatTheGatewayRefuses(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "allowed"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "allowed", "ok.txt"), []byte("ok"), 0o644)
	os.WriteFile(filepath.Join(root, "secret.txt"), []byte("secret"), 0o644)
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte(strings.ReplaceAll(`
@id("fs-allowed") permit (principal, action == Action::"call_tool", resource in Server::"fs")
  when { context.arguments has path && context.arguments.path like "ROOT/allowed/*" };
@id("mail") permit (principal, action == Action::"call_tool", resource in Server::"mail");
@id("notes") permit (principal, action == Action::"read_resource", resource in Server::"notes");
`, "ROOT", root))})
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		`{"type":"session","session":"s1","agent":"a","objective":"read notes"}`,
		`{"type":"call","method":"tools/call","name":"fs.read_text_file","arguments":{"path":"` + root + `/allowed/../secret.txt"}}`,
		`{"type":"call","method":"tools/call","name":"fs.read_text_file","arguments":{"path":"allowed/ok.txt"}}`,
		`{"type":"call","method":"tools/call","name":"mail.send","arguments":{"to":"team@example.com","To":"evil@example.com"}}`,
		`{"type":"call","method":"resources/read","server":"notes","name":"note://a/../secret"}`,
	}
	trace := strings.Join(lines, "\n") + "\n"
	canon, err := enforce.CanonicalRoots([]string{root})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replay.Run(set, strings.NewReader(trace), replay.Options{Roots: map[string][]string{"fs": canon}})
	if err != nil {
		t.Fatal(err)
	}
	live := runLiveWithRoots(t, set, map[string][]string{"fs": {root}}, []byte(trace))
	if len(live) != len(rep.Calls) {
		t.Fatalf("live decided %d calls, replay %d", len(live), len(rep.Calls))
	}
	for i, c := range rep.Calls {
		if c.Outcome != live[i].outcome {
			t.Errorf("line %d %s %s: replay says %s (%s), the live gateway %s (%s)",
				c.Line, c.Method, c.Name, c.Outcome, c.Reason, live[i].outcome, live[i].reason)
		}
	}
}

// runLiveWithRoots plays a trace's calls through a live gateway whose
// pipeline knows the servers' roots, as a node configured with them, and
// returns the outcome of each call (a refusal before the pipeline is a
// deny).
func runLiveWithRoots(t *testing.T, set *policy.Set, roots map[string][]string, raw []byte) []liveCall {
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
	canon := map[string][]string{}
	for s, r := range roots {
		if canon[s], err = enforce.CanonicalRoots(r); err != nil {
			t.Fatal(err)
		}
	}
	p, err := enforce.New(enforce.Config{Policies: func() *policy.Set { return set }, Pins: st, Audit: log, Roots: canon})
	if err != nil {
		t.Fatal(err)
	}
	recs := parseTrace(t, raw)
	var mu sync.Mutex
	var cur *traceRecord
	ups := map[string]*scripted{}
	var names []string
	for i := range recs {
		r := &recs[i]
		if r.Type != "call" {
			continue
		}
		u := ups[r.Server]
		if u == nil {
			u = &scripted{tools: map[string]json.RawMessage{}, prompts: map[string]bool{}, resources: map[string]bool{}, cur: &mu, rec: &cur}
			ups[r.Server] = u
			names = append(names, r.Server)
		}
		if r.Method == "tools/call" {
			n := strings.TrimPrefix(r.Name, r.Server+".")
			u.tools[n] = mustJSON(map[string]any{"name": n, "inputSchema": map[string]any{"type": "object"}})
		} else {
			u.resources["note://a/ok"] = true
		}
	}
	var upstreams []gateway.Upstream
	for _, n := range names {
		upstreams = append(upstreams, gateway.Upstream{Name: n, Dial: ups[n].dial})
	}
	guard := &lastVerdict{Pipeline: p}
	g, err := gateway.New(gateway.Config{Guard: guard, Upstreams: upstreams, HoldTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	caller := &enforce.Caller{Session: "s1", Agent: "a", SPIFFEID: "spiffe://t/agent/a/session/s1", Expiry: time.Now().Add(time.Hour),
		Scope: grant.Scope{Tools: []string{"*"}, Prompts: []string{"*"}, Resources: []string{"*"}, Hosts: []string{"*"}}}
	down := &capture{ch: make(chan struct{}, 64)}
	s := g.NewSession(caller, down)
	t.Cleanup(s.Close)
	id := 0
	down.call(t, s, &id, "initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`)
	down.call(t, s, &id, "resources/list", `{}`)
	var out []liveCall
	for i := range recs {
		r := &recs[i]
		if r.Type != "call" {
			continue
		}
		mu.Lock()
		cur = r
		mu.Unlock()
		var params bytes.Buffer
		if r.Method == "tools/call" {
			params.WriteString(`{"name":` + string(mustJSON(r.Name)) + `,"arguments":` + string(r.Arguments) + `}`)
		} else {
			params.WriteString(`{"uri":` + string(mustJSON(r.Name)) + `}`)
		}
		guard.reset()
		resp := down.call(t, s, &id, r.Method, params.String())
		outcome, reason := guard.get()
		if resp.Error != nil && outcome == "allow" {
			outcome = "deny"
		}
		if outcome == "" {
			outcome, reason = "deny", resp.Error.Error()
		}
		out = append(out, liveCall{line: r.line, outcome: outcome, reason: reason})
	}
	return out
}

// lastVerdict is the pipeline, keeping the outcome of the last Check.
type lastVerdict struct {
	*enforce.Pipeline
	mu              sync.Mutex
	outcome, reason string
}

func (g *lastVerdict) Check(ctx context.Context, c *gateway.Caller, op *gateway.Operation) (gateway.Verdict, error) {
	v, err := g.Pipeline.Check(ctx, c, op)
	g.mu.Lock()
	g.outcome, g.reason = v.Outcome(), v.Reason
	g.mu.Unlock()
	return v, err
}

func (g *lastVerdict) reset() { g.mu.Lock(); g.outcome, g.reason = "", ""; g.mu.Unlock() }

func (g *lastVerdict) get() (string, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.outcome, g.reason
}
