package streamable

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// BenchmarkRoundTrip measures one tools/list request and its response from
// ClientConn through Handler to a raw session handler and back, over
// loopback HTTP with SSE responses.
func BenchmarkRoundTrip(b *testing.B) {
	var eh *echoHandler
	h := NewHandler(HandlerConfig{Open: func(_ *http.Request, s *Session) (SessionHandler, error) {
		eh = &echoHandler{s: s}
		return eh, nil
	}})
	srv := httptest.NewServer(h)
	b.Cleanup(func() { h.Close(); srv.CloseClientConnections(); srv.Close() })
	ctx := context.Background()
	cc, err := Dial(ctx, ClientConfig{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	roundTrip(b, ctx, cc, "initialize", 1, nil)
	eh.mu.Lock()
	eh.received = nil
	eh.mu.Unlock()
	id := int64(1)
	b.ReportAllocs()
	for b.Loop() {
		id++
		rid, _ := jsonrpc.MakeID(float64(id))
		if err := cc.Write(ctx, &jsonrpc.Request{ID: rid, Method: "tools/list"}); err != nil {
			b.Fatal(err)
		}
		for {
			m, err := cc.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if r, ok := m.(*jsonrpc.Response); ok && r.ID == rid {
				break
			}
		}
		eh.mu.Lock()
		eh.received = eh.received[:0]
		eh.mu.Unlock()
	}
}
