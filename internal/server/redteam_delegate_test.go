package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
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
	if call(ccs, "demo.write_note", write) == nil {
		t.Error("the intern's sub-agent, as agent helper, wrote a note its parent may not write (default deny)")
	}
	if call(ccs, "demo.delete_note", del) == nil {
		t.Error("the intern's sub-agent, as agent helper, deleted a note a policy forbids its parent to delete")
	}
}
