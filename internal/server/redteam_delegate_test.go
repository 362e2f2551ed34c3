package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// TestRedteamDelegationToASiblingAgent (red team, token exchange: a
// sub-agent wider than its parent).
//
// Attack: token exchange lets a session name any active agent of its
// sponsor as its sub-agent ("agent"). The child's scope is narrowed to the
// parent's, but policies decide the child as the agent it names, with that
// agent's groups and trust: an agent in group "interns", which a policy
// forbids to write notes, exchanged its grant for one as agent "helper"
// (same sponsor, no groups) and the child wrote the note. A delegated
// session must be decided as every agent of its chain: what the parent
// may not do, no sub-agent it spawns may do.
func TestRedteamDelegationToASiblingAgent(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("most") permit (principal, action == Action::"call_tool", resource) unless { resource == Tool::"demo.write_note" };
@id("writers") permit (principal in Group::"writers", action == Action::"call_tool", resource == Tool::"demo.write_note");
@id("interns-keep") forbid (principal in Group::"interns", action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600))
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, MaxDepth: 2})
	n.setupAgent("intern", []string{"interns"}, map[string][]string{"tools": {"demo.*"}})
	n.setupAgent("helper", []string{"writers"}, map[string][]string{"tools": {"demo.*"}})
	parent, _ := n.startSession("intern", "summarize the notes", nil, "")
	ctx := ctxT(t)
	call := func(cs *mcp.ClientSession, tool string, args map[string]any) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err == nil && res.IsError {
			return errors.New(textOf(res))
		}
		return err
	}
	write := map[string]any{"name": "n", "text": "x"}
	del := map[string]any{"name": "welcome"}
	pcs := n.connect(t, parent.HTTPClient(false), nil)
	if call(pcs, "demo.write_note", write) == nil || call(pcs, "demo.delete_note", del) == nil {
		t.Fatal("control: the intern wrote or deleted a note")
	}
	status, out, childKey := exchange(t, n, parent, url.Values{"agent": {"helper"}})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, out)
	}
	var cv api.IssuedView
	if err := json.Unmarshal(out["session"], &cv); err != nil {
		t.Fatal(err)
	}
	ccs := n.connect(t, n.credentials(childKey, cv).HTTPClient(false), nil)
	if err := call(ccs, "demo.echo", map[string]any{"text": "hi"}); err != nil {
		t.Fatalf("the sub-agent may not do what both agents may: %v", err)
	}
	// Nor is it shown what it may not call.
	tools, err := ccs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(tools.Tools); got["write_note"] || got["delete_note"] || got["demo.write_note"] || got["demo.delete_note"] || !got["echo"] && !got["demo.echo"] {
		t.Errorf("the sub-agent is shown %v", got)
	}
	if call(ccs, "demo.write_note", write) == nil {
		t.Error("the intern's sub-agent, as agent helper, wrote a note its parent may not write (default deny)")
	}
	if call(ccs, "demo.delete_note", del) == nil {
		t.Error("the intern's sub-agent, as agent helper, deleted a note a policy forbids its parent to delete")
	}
}

// TestRedteamSubAgentsShareTheirDelegatorsBudgets (red team, token
// exchange: a sub-agent wider than its parent, budgets).
//
// Attack: a limit allows 2 calls of demo.echo per session and 3 to the
// agents of group "interns". A sub-agent is a session of its own, of any
// agent of the sponsor: the intern, its budget spent, exchanged its grant
// for a child (same agent) and for a child as agent helper (no groups),
// and each made its own 2 calls. A delegated session's calls count
// against the sessions, agents and groups it was delegated from too.
func TestRedteamSubAgentsShareTheirDelegatorsBudgets(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly, MaxDepth: 2, Limits: []quota.Limit{
		{ID: "per-session", Scope: quota.ScopeSession, Window: time.Hour, Max: 2, Match: quota.Matcher{Tools: []string{"demo.echo"}}},
		{ID: "interns", Scope: quota.ScopeGroup, Key: "interns", Window: time.Hour, Max: 3, Match: quota.Matcher{Tools: []string{"demo.add"}}},
	}})
	n.setupAgent("intern", []string{"interns"}, map[string][]string{"tools": {"demo.*"}})
	n.setupAgent("helper", nil, map[string][]string{"tools": {"demo.*"}})
	parent, _ := n.startSession("intern", "summarize the notes", nil, "")
	ctx := ctxT(t)
	echo := func(cs *mcp.ClientSession) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "x"}})
		if err == nil && res.IsError {
			return errors.New(textOf(res))
		}
		return err
	}
	add := func(cs *mcp.ClientSession) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.add", Arguments: map[string]any{"a": 1, "b": 2}})
		if err == nil && res.IsError {
			return errors.New(textOf(res))
		}
		return err
	}
	pcs := n.connect(t, parent.HTTPClient(false), nil)
	for i := range 2 {
		if err := echo(pcs); err != nil {
			t.Fatalf("echo %d: %v", i+1, err)
		}
	}
	for i := range 3 {
		if err := add(pcs); err != nil {
			t.Fatalf("add %d: %v", i+1, err)
		}
	}
	if echo(pcs) == nil || add(pcs) == nil {
		t.Fatal("control: the budgets did not hold for the parent")
	}
	for _, agent := range []string{"", "helper"} {
		form := url.Values{}
		if agent != "" {
			form.Set("agent", agent)
		}
		status, out, childKey := exchange(t, n, parent, form)
		if status != http.StatusOK {
			t.Fatalf("exchange: %d %v", status, out)
		}
		var cv api.IssuedView
		if err := json.Unmarshal(out["session"], &cv); err != nil {
			t.Fatal(err)
		}
		ccs := n.connect(t, n.credentials(childKey, cv).HTTPClient(false), nil)
		if echo(ccs) == nil {
			t.Errorf("a sub-agent (agent %q) called demo.echo past its parent session's budget", cv.Agent)
		}
		if add(ccs) == nil {
			t.Errorf("a sub-agent (agent %q) called demo.add past the budget of its parent's group", cv.Agent)
		}
	}
}

// TestRedteamBlankScopeSkipsTheCeiling (red team, token exchange: scope
// widening).
//
// Attack: "scope" given but blank (" ") parsed to an empty scope, which
// grant.Narrow reads as "the parent's scope"; the check that an inherited
// scope fits the sub-agent's own ceiling ran only when no scope was given
// at all. So a sub-agent of agent "helper", whose ceiling is demo.echo,
// got its parent's demo.*.
func TestRedteamBlankScopeSkipsTheCeiling(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly, MaxDepth: 2})
	n.setupAgent("intern", nil, map[string][]string{"tools": {"demo.*"}})
	n.setupAgent("helper", nil, map[string][]string{"tools": {"demo.echo"}})
	parent, _ := n.startSession("intern", "summarize the notes", nil, "")
	for _, scope := range []string{" ", "\t"} {
		status, out, childKey := exchange(t, n, parent, url.Values{"agent": {"helper"}, "scope": {scope}})
		if status != http.StatusOK {
			continue // refused: holds
		}
		var cv api.IssuedView
		if err := json.Unmarshal(out["session"], &cv); err != nil {
			t.Fatal(err)
		}
		ccs := n.connect(t, n.credentials(childKey, cv).HTTPClient(false), nil)
		tools, err := ccs.ListTools(ctxT(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := toolNames(tools.Tools); len(got) != 1 || !got["echo"] && !got["demo.echo"] {
			t.Errorf("scope %q: a sub-agent of helper (ceiling demo.echo) got scope %s and sees %v", scope, cv.Scope, got)
		}
	}
}

// TestRedteamTaintCrossesTheDelegationTree (red team, a sub-agent wider
// than its parent: taint).
//
// Attack: a sub-agent got its parent's labels once, when it was created.
// A parent that spawned a child and only then read untrusted content
// (an injection) handed it instructions, and the child, still clean, wrote
// the note a policy refuses to untrusted sessions; likewise a child that
// read the untrusted content reported back to a clean parent, which wrote.
// Sessions of one delegation tree hand each other whatever they read:
// each is decided with the labels of every session of its tree.
func TestRedteamTaintCrossesTheDelegationTree(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("all") permit (principal, action, resource);
@id("no-write-when-untrusted") forbid (principal, action == Action::"call_tool", resource == Tool::"demo.write_note")
  when { context.taint.contains("untrusted") };
`), 0o600))
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, MaxDepth: 2,
		TaintTools: map[string][]string{"demo.read_note": {"untrusted"}, "demo.*": {"trusted"}}})
	n.setupAgent("intern", nil, map[string][]string{"tools": {"demo.*"}})
	ctx := ctxT(t)
	call := func(cs *mcp.ClientSession, tool string, args map[string]any) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err == nil && res.IsError {
			return errors.New(textOf(res))
		}
		return err
	}
	write := map[string]any{"name": "n", "text": "x"}
	read := map[string]any{"name": "welcome"}
	child := func(parent *sessioncred.Credentials) *mcp.ClientSession {
		status, out, key := exchange(t, n, parent, url.Values{})
		if status != http.StatusOK {
			t.Fatalf("exchange: %d %v", status, out)
		}
		var cv api.IssuedView
		if err := json.Unmarshal(out["session"], &cv); err != nil {
			t.Fatal(err)
		}
		return n.connect(t, n.credentials(key, cv).HTTPClient(false), nil)
	}
	// The parent reads after delegating.
	p1, _ := n.startSession("intern", "summarize the notes", nil, "")
	p1cs := n.connect(t, p1.HTTPClient(false), nil)
	c1 := child(p1)
	if err := call(c1, "demo.write_note", write); err != nil {
		t.Fatalf("control: a clean child may write: %v", err)
	}
	if err := call(p1cs, "demo.read_note", read); err != nil {
		t.Fatal(err)
	}
	if call(p1cs, "demo.write_note", write) == nil {
		t.Fatal("control: the untrusted parent wrote")
	}
	if call(c1, "demo.write_note", write) == nil {
		t.Error("the child of a parent that read untrusted content after delegating wrote as a clean session")
	}
	// The child reads; the parent writes.
	p2, _ := n.startSession("intern", "summarize the notes", nil, "")
	p2cs := n.connect(t, p2.HTTPClient(false), nil)
	c2 := child(p2)
	if err := call(c2, "demo.read_note", read); err != nil {
		t.Fatal(err)
	}
	if call(p2cs, "demo.write_note", write) == nil {
		t.Error("the parent of a child that read untrusted content wrote as a clean session")
	}
}

// TestRedteamDelegatorChangeReachesTheSubAgent (red team, a sub-agent
// wider than its parent: stale delegators).
//
// Attack: a session's caller is cached for a moment, and a change to an
// agent (trust lowered by an operator or the monitor, groups) evicted the
// cached callers of that agent's sessions only. A sub-agent of another
// agent kept deciding as its delegator's old trust until the cache
// expired. The change reaches every session delegated from the agent at
// once.
func TestRedteamDelegatorChangeReachesTheSubAgent(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly, MaxDepth: 2})
	n.setupAgent("intern", nil, map[string][]string{"tools": {"demo.*"}})
	n.setupAgent("helper", nil, map[string][]string{"tools": {"demo.*"}})
	parent, _ := n.startSession("intern", "summarize the notes", nil, "")
	status, out, _ := exchange(t, n, parent, url.Values{"agent": {"helper"}})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, out)
	}
	var cv api.IssuedView
	if err := json.Unmarshal(out["session"], &cv); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	c, err := n.Auth.Caller(ctx, cv.Session)
	if err != nil || len(c.Delegators) != 1 || c.Delegators[0].Agent != "intern" {
		t.Fatalf("caller %+v, %v", c, err)
	}
	if status, b := n.call(n.admin, "POST", "/v1/agents/intern/trust", map[string]any{"trust": 5}); status != http.StatusOK {
		t.Fatalf("set trust: %d %s", status, b)
	}
	if c, err = n.Auth.Caller(ctx, cv.Session); err != nil || c.Delegators[0].Trust != 5 {
		t.Fatalf("after the intern's trust was set to 5, its sub-agent decides as %+v (%v)", c.Delegators, err)
	}
}
