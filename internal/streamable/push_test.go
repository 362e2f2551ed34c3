package streamable

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestPush: once Push is set, a call's stream hands its messages to the
// function, in the stream's order (three progress notifications, then
// the answer), and none through Read; Read still reports the conn's
// closing, and nothing is pushed after it. The stream is read on a
// goroutine RunWith's runner started.
func TestPush(t *testing.T) {
	server := mcp.NewServer(&mcp.Implementation{Name: "sdk-server", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "work", Description: "works with progress"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			for i := 1; i <= 3; i++ {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: float64(i)}); err != nil {
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
	defer cc.Close()
	roundTrip(t, ctx, cc, "initialize", 1, nil) // before Push: through Read

	var ran atomic.Int32 // stream readers started by the runner given
	cc.RunWith(func(f func()) { ran.Add(1); go f() })
	var mu sync.Mutex
	var pushed []string
	answered := make(chan struct{})
	cc.Push(func(m jsonrpc.Message) {
		mu.Lock()
		defer mu.Unlock()
		switch m := m.(type) {
		case *jsonrpc.Request:
			var p struct {
				Progress float64 `json:"progress"`
			}
			_ = json.Unmarshal(m.Params, &p)
			pushed = append(pushed, fmt.Sprintf("%s:%v", m.Method, p.Progress))
		case *jsonrpc.Response:
			pushed = append(pushed, "answer:"+string(m.Result))
			if m.ID == mustID(2) {
				close(answered)
			}
		}
	})
	if err := cc.Write(ctx, &jsonrpc.Request{ID: mustID(2), Method: "tools/call",
		Params: json.RawMessage(`{"name":"work","arguments":{},"_meta":{"progressToken":"pt"}}`)}); err != nil {
		t.Fatal(err)
	}
	<-answered
	mu.Lock()
	got := strings.Join(pushed, " ")
	mu.Unlock()
	if !strings.HasPrefix(got, "notifications/progress:1 notifications/progress:2 notifications/progress:3 answer:") || !strings.Contains(got, `"done"`) {
		t.Fatalf("pushed %s", got)
	}
	if ran.Load() == 0 {
		t.Fatal("the call's stream was not read on a goroutine of RunWith's")
	}
	select {
	case m := <-cc.incoming:
		t.Fatalf("%+v went through Read too", m)
	default:
	}
	cc.Close()
	if _, err := cc.Read(ctx); err == nil {
		t.Fatal("Read after Close did not fail")
	}
	if f := cc.sink(); f(&jsonrpc.Request{Method: "notifications/late"}) {
		t.Fatal("a message was pushed after Close")
	}
}
