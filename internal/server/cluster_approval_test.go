package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/server"
)

// TestClusterApproval: a call held for approval on node A proceeds when
// the quorum is reached by votes cast on node B.
func TestClusterApproval(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("deletes-need-two-dbas") @escalate("2 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	a, b := twoNodes(t, server.Config{Policies: []string{dir}, HoldTimeout: 2 * time.Minute,
		ApproverGroups: map[string][]string{"dba": {"dana", "dora"}}})
	a.setupAgent("janitor", nil, map[string][]string{"tools": {"demo.*"}})
	var dana, dora api.PrincipalView
	a.must("POST", "/v1/sponsors", map[string]any{"name": "dana", "kind": "human"}, &dana)
	a.must("POST", "/v1/sponsors", map[string]any{"name": "dora", "kind": "human"}, &dora)
	creds, _ := a.startSession("janitor", "clean up notes", nil, "")
	cs := a.connect(t, creds.HTTPClient(false), nil)

	type result struct {
		res *mcp.CallToolResult
		err error
	}
	held := make(chan result, 1)
	go func() {
		res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}})
		held <- result{res, err}
	}()
	// The request is visible on B.
	var pending []approval.Request
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request held on A never showed on B")
		}
		time.Sleep(10 * time.Millisecond)
		b.must("GET", "/v1/approvals?state=pending", nil, &pending)
	}
	id := pending[0].ID
	for _, voter := range []string{dana.Credential, dora.Credential} {
		if status, body := b.call(voter, "POST", "/v1/approvals/"+id+"/approve", map[string]string{"reason": "stale note"}); status != http.StatusOK {
			t.Fatalf("vote on B: %d %s", status, body)
		}
	}
	select {
	case r := <-held:
		if r.err != nil || r.res.IsError {
			t.Fatalf("the held call after the quorum on B: %v %+v", r.err, r.res)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the call held on A did not proceed after the quorum on B")
	}
}
