package gateway_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/ward-dev/ward/internal/gateway"
)

// reusingDownstream is a client that sends a new request with the id of
// an answer as soon as the answer reaches it, before the gateway's Send
// has returned.
type reusingDownstream struct {
	*downstream
	t      testing.TB
	s      *gateway.Session
	reuse  jsonrpc.ID
	reused atomic.Bool
	second *jsonrpc.Response // the answer to the request that reused the id
	done   chan struct{}     // closed once second is set
}

func (d *reusingDownstream) Send(msg jsonrpc.Message, related jsonrpc.ID) error {
	if r, ok := msg.(*jsonrpc.Response); ok && r.ID == d.reuse {
		if !d.reused.Swap(true) {
			d.downstream.reset()
			again, _ := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":7,"method":"ping"}`))
			d.s.Receive(context.Background(), again)
			// Answered while the first answer is still being sent.
			d.second = d.downstream.response(d.t, d.reuse)
			close(d.done)
		}
	}
	return d.downstream.Send(msg, related)
}

// TestIDReusableOnceAnswered: a client may reuse a request's id as soon as
// it has the answer. The gateway forgot the call only after its answer had
// been sent, so a client quick enough was told its new request was
// "already in flight" (TestSharedUpstream failed so about one run in
// three under -race).
func TestIDReusableOnceAnswered(t *testing.T) {
	f := newRawFixture(t, &rawUpstream{}, nil)
	d := &reusingDownstream{downstream: newDownstream(), t: t, reuse: intID(7), done: make(chan struct{})}
	s := f.g.NewSession(rawCaller, d)
	t.Cleanup(s.Close)
	d.s = s
	send(t, s, d.downstream, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	first, _ := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":7,"method":"ping"}`))
	s.Receive(context.Background(), first)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request was not answered")
	}
	if d.second == nil || d.second.Error != nil {
		t.Fatalf("a request reusing the id of an answered one: %+v", d.second)
	}
}

func intID(n float64) jsonrpc.ID {
	id, _ := jsonrpc.MakeID(n)
	return id
}
