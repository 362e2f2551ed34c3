package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/quota"
)

// TestCutCallKeepsQuota: a call whose POST reached an HTTP upstream, which
// ran it, but whose answer never came (the connection dropped: an upstream
// or proxy restarting, or ward itself shutting down mid-call) keeps its
// quota. The gateway used to take any failed POST for a call that was not
// sent and refund it, so under a limit of 2 the upstream ran every call
// (found by cmd/wardfault: a node stopped with SIGTERM mid-burst let the
// upstream run one call beyond a group budget).
func TestCutCallKeepsQuota(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "cut", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "transfer", Description: "Move money."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
		})
	sdk := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var ran atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && bytes.Contains(body, []byte(`"tools/call"`)) {
			// The transfer is made; the answer is lost with the connection.
			ran.Add(1)
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sdk.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)

	lim, err := quota.New(quota.Config{Limits: []quota.Limit{{ID: "transfers", Scope: quota.ScopeSession,
		Match: quota.Matcher{Tools: []string{"up.transfer"}}, Window: time.Hour, Max: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	p, log, _ := redteamPipeline(t, enforce.Config{Quotas: lim})
	g, err := gateway.New(gateway.Config{Guard: p, Upstreams: []gateway.Upstream{gateway.HTTP("up", up.URL, nil, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	d := newDownstream()
	s := g.NewSession(rawCaller, d)
	t.Cleanup(s.Close)
	send(t, s, d, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	send(t, s, d, `{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)

	refused := 0
	for i := 1; i <= 5; i++ {
		resp := send(t, s, d, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"up.transfer","arguments":{}}}`, i))
		switch {
		case resp.Error == nil:
			t.Fatalf("call %d was answered although its answer was lost: %+v", i, resp)
		case strings.Contains(resp.Error.Error(), "transfers"):
			refused++
		}
	}
	if n := ran.Load(); n != 2 || refused != 3 {
		t.Fatalf("the upstream ran %d transfers under a limit of 2, %d refused: a call cut after it was sent was refunded", n, refused)
	}
	events, err := log.Read(0, log.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		var r struct{ Refunded bool }
		if e.Type == "result" && json.Unmarshal(e.Data, &r) == nil && r.Refunded {
			t.Fatalf("a call that reached its upstream was recorded as refunded: %s", e.Data)
		}
	}
}
