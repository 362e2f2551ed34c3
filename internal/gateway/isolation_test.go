package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/gateway"
)

// Two agent sessions call, at once, a tool of an HTTP upstream that asks
// the client for a completion while it serves the call. Each sampling
// request (and the log line the server writes beside it) reaches the
// session whose call caused it and no other, and each answer goes back to
// the server that asked for it, so each call returns its own session's
// answer. The upstream's messages reach each session through its own
// connection's stream readers (streamable.ClientConn.Push), not a reader
// of the session's.
func TestServerRequestsReachOnlyTheirSession(t *testing.T) {
	server := mcp.NewServer(&mcp.Implementation{Name: "asker", Version: "1"}, nil)
	type in struct {
		Marker string `json:"marker"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "ask", Description: "Asks the client's model."},
		func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
			if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "asking for " + a.Marker}); err != nil {
				return nil, nil, err
			}
			res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
				Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "question for " + a.Marker}}}})
			if err != nil {
				return nil, nil, err
			}
			text, _ := res.Content.(*mcp.TextContent)
			if text == nil {
				return nil, nil, nil
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Marker + " was told " + text.Text}}}, nil, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })

	f := newUpstreamsFixture(t, []gateway.Upstream{gateway.HTTP("up", srv.URL, nil, nil)}, nil)
	type agent struct {
		name string
		s    *gateway.Session
		d    *downstream
	}
	var agents []agent
	for _, name := range []string{"alice", "bob"} {
		d := newDownstream()
		s := f.g.NewSession(callerWith(name, "up.*"), d)
		t.Cleanup(s.Close)
		send(t, s, d, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"`+name+`","version":"1"}}}`)
		send(t, s, d, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		send(t, s, d, `{"jsonrpc":"2.0","id":"l","method":"logging/setLevel","params":{"level":"info"}}`)
		send(t, s, d, `{"jsonrpc":"2.0","id":"tools","method":"tools/list"}`)
		agents = append(agents, agent{name, s, d})
	}
	// Both calls are in flight before either is asked anything answered.
	for _, a := range agents {
		msg, _ := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":"call","method":"tools/call","params":{"name":"ask","arguments":{"marker":"` + a.name + `"}}}`))
		a.s.Receive(context.Background(), msg)
	}
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() {
			// The session's sampling request: its own, and only once.
			var asked *jsonrpc.Request
			for asked == nil {
				a.d.mu.Lock()
				for _, m := range a.d.msgs {
					if r, ok := m.(*jsonrpc.Request); ok && r.Method == "sampling/createMessage" {
						asked = r
					}
				}
				a.d.mu.Unlock()
				if asked == nil {
					<-a.d.ch
				}
			}
			if !strings.Contains(string(asked.Params), "question for "+a.name) {
				t.Errorf("%s was asked %s", a.name, asked.Params)
			}
			res, _ := json.Marshal(map[string]any{"role": "assistant", "model": "m", "content": map[string]string{"type": "text", "text": "answer for " + a.name}})
			a.s.Receive(context.Background(), &jsonrpc.Response{ID: asked.ID, Result: res})
			callID, _ := jsonrpc.MakeID("call")
			resp := a.d.response(t, callID)
			if resp.Error != nil {
				t.Errorf("%s's call: %v", a.name, resp.Error)
				return
			}
			if want := a.name + " was told answer for " + a.name; !strings.Contains(string(resp.Result), want) {
				t.Errorf("%s's call returned %s, want %q", a.name, resp.Result, want)
			}
		})
	}
	wg.Wait()
	for i, a := range agents {
		other := agents[1-i].name
		a.d.mu.Lock()
		for _, m := range a.d.msgs {
			raw, _ := jsonrpc.EncodeMessage(m)
			if strings.Contains(string(raw), other) {
				t.Errorf("%s was sent a message of %s's call: %s", a.name, other, raw)
			}
		}
		logged := false
		for _, m := range a.d.msgs {
			if r, ok := m.(*jsonrpc.Request); ok && r.Method == "notifications/message" && strings.Contains(string(r.Params), "asking for "+a.name) {
				logged = true
			}
		}
		a.d.mu.Unlock()
		if !logged {
			t.Errorf("%s did not get the server's log line about its own call", a.name)
		}
	}
}
