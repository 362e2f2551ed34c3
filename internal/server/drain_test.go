package server_test

import (
	"context"
	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/server"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestCloseAnswersCallsInFlight: a node shutting down (SIGTERM: ward up
// calls Close) answers the tool calls it has begun before it ends their
// sessions, so an agent whose call the upstream ran gets its result rather
// than an error, and refuses new calls while it drains. Before, Close ended
// every MCP session at once (found by cmd/wardfault).
func TestCloseAnswersCallsInFlight(t *testing.T) {
	up := startSlowUpstream(t)
	n := slowNode(t, up)
	cs, _ := n.connectCounting(t, "HTTP/2.0", "wait for a slow tool", nil)
	late, _ := n.connectCounting(t, "HTTP/2.0", "call while the node stops", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	got := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow.wait", Arguments: map[string]any{"seconds": 2}})
		got <- answer{res, err}
	}()
	// The call is in flight once the upstream has a session and the call
	// has had time to reach it.
	time.Sleep(500 * time.Millisecond)
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	// While the node drains, a new call is refused.
	time.Sleep(200 * time.Millisecond)
	if _, err := late.CallTool(ctx, &mcp.CallToolParams{Name: "slow.wait", Arguments: map[string]any{"seconds": 0}}); err == nil {
		t.Error("a call made while the node shuts down was served")
	}
	if status, body := n.call("", "GET", "/healthz", nil); status != 503 || !strings.Contains(string(body), "shutting down") {
		t.Errorf("/healthz while the node drains: %d %s", status, body)
	}
	a := <-got
	if a.err != nil || a.res.IsError || textOf(a.res) != "waited" {
		t.Fatalf("the call in flight when the node began to shut down: %+v %v; want its answer", a.res, a.err)
	}
	<-closed
}

// TestCloseAnswersHeldCalls: a call held for approval when the node shuts
// down is answered at once as pending (its approval request stays), not
// cut and not kept waiting for approvers the drain cannot wait for.
func TestCloseAnswersHeldCalls(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("writes-need-review") @escalate("1 of group:dba")
permit (principal, action == Action::"call_tool", resource == Tool::"demo.write_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: 50 * time.Second,
		ApproverGroups: map[string][]string{"dba": {"admin"}}})
	n.setupAgent("writer", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("writer", "write", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "n", "text": "t"}})
		done <- err
	}()
	var pending []approval.Request
	for deadline := time.Now().Add(30 * time.Second); len(pending) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		n.must("GET", "/v1/approvals?state=pending", nil, &pending)
	}
	if len(pending) == 0 {
		t.Fatal("no approval request appeared")
	}
	start := time.Now()
	n.Close()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), pending[0].ID) {
		t.Fatalf("the held call when the node stopped: %v; want it answered as pending on %s", err, pending[0].ID)
	}
	// Not a timed assertion on speed: the drain bound (10 s) is far below
	// the hold (50 s); a hold that outlived the drain would be cut.
	t.Logf("closed in %v", time.Since(start))
}
