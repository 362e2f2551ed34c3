package streamable

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestClientConnPush: after Push, what the server sends reaches the
// deliver function, on readers started by RunWith's function (a
// request's progress before its answer, in order), never Read, and ended
// hears once why the connection ended: the server forgetting the
// session, then Close, which adds nothing.
func TestClientConnPush(t *testing.T) {
	server := mcp.NewServer(&mcp.Implementation{Name: "sdk-server", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "work", Description: "works with progress"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			for i := 1; i <= 3; i++ {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: req.Params.GetProgressToken(), Progress: float64(i), Total: 3,
				}); err != nil {
					return nil, nil, err
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := Dial(ctx, ClientConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan jsonrpc.Message, 64)
	ended := make(chan error, 4)
	var ran atomic.Int32 // streams whose reader RunWith's function started
	cc.RunWith(func(f func()) { ran.Add(1); go f() })
	cc.Push(func(m jsonrpc.Message) { got <- m }, func(err error) { ended <- err })
	next := func() jsonrpc.Message {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-ctx.Done():
			t.Fatal("nothing delivered")
			return nil
		}
	}
	write := func(m jsonrpc.Message) {
		t.Helper()
		if err := cc.Write(ctx, m); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	write(&jsonrpc.Request{ID: mustID(1), Method: "initialize", Params: json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ward-test","version":"1"}}`)})
	if r, ok := next().(*jsonrpc.Response); !ok || r.ID != mustID(1) || r.Error != nil {
		t.Fatalf("first message delivered is not initialize's answer: %#v", r)
	}
	write(&jsonrpc.Request{Method: "notifications/initialized"})
	write(&jsonrpc.Request{ID: mustID(2), Method: "tools/call", Params: json.RawMessage(`{"name":"work","arguments":{},"_meta":{"progressToken":"p"}}`)})
	for i := 1; i <= 3; i++ {
		m := next()
		n, ok := m.(*jsonrpc.Request)
		if !ok || n.Method != "notifications/progress" {
			t.Fatalf("message %d of the call: %#v, want its progress", i, m)
		}
		var p struct{ Progress float64 }
		if json.Unmarshal(n.Params, &p) != nil || p.Progress != float64(i) {
			t.Fatalf("progress %s delivered as number %d", n.Params, i)
		}
	}
	if r, ok := next().(*jsonrpc.Response); !ok || r.ID != mustID(2) || r.Error != nil {
		t.Fatalf("the call's answer: %#v", r)
	}
	if n := ran.Load(); n < 2 {
		t.Fatalf("RunWith started %d stream readers, want those of initialize and the call at least", n)
	}
	// Nothing waits for Read.
	done, stop := context.WithCancel(ctx)
	stop()
	if m, err := cc.Read(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after Push: %v, %v; want nothing", m, err)
	}
	// The server forgets the session: the next request fails, and so
	// does the connection, once.
	for ss := range server.Sessions() {
		ss.Close()
	}
	if err := cc.Write(ctx, &jsonrpc.Request{ID: mustID(3), Method: "ping"}); !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("ping in a forgotten session: %v, want ErrSessionExpired", err)
	}
	cc.Close()
	cc.Close()
	if err := <-ended; !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("ended with %v, want ErrSessionExpired", err)
	}
	select {
	case err := <-ended:
		t.Fatalf("ended told twice (then %v)", err)
	default:
	}
	for len(got) > 0 {
		if r, ok := (<-got).(*jsonrpc.Response); ok && r.ID == mustID(3) {
			t.Fatalf("an answer to the refused ping was delivered: %#v", r)
		}
	}
}

// TestClientConnPushClose: a connection closed without failing tells
// ended so once.
func TestClientConnPushClose(t *testing.T) {
	cc, err := Dial(context.Background(), ClientConfig{URL: "http://127.0.0.1:1/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 4)
	cc.Push(func(jsonrpc.Message) { t.Error("delivered from a connection that never sent") }, func(err error) { ended <- err })
	cc.Close()
	cc.Close()
	if len(ended) != 1 {
		t.Fatalf("ended told %d times, want once", len(ended))
	}
	if err := <-ended; !errors.Is(err, errConnClosed) {
		t.Fatalf("ended with %v, want the connection closed", err)
	}
}
