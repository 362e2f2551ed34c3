package server_test

import (
	"context"
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
