package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
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

// TestDuplicateIDInFlightRefused: a request reusing the id of a call still
// in flight is refused and recorded, and the call it collided with is left
// alone: it is answered once its upstream answers.
func TestDuplicateIDInFlightRefused(t *testing.T) {
	release := make(chan struct{})
	up := &rawUpstream{answer: func(method string) (json.RawMessage, bool) {
		if method != "tools/call" {
			return nil, false
		}
		<-release
		return json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`), true
	}}
	f := newRawFixture(t, up, nil)
	s, d := f.open(t)
	first, _ := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"up.echo","arguments":{}}}`))
	s.Receive(context.Background(), first)
	// The call is in flight once the upstream has it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		up.mu.Lock()
		n := len(up.received)
		var last string
		if n > 0 {
			last = up.received[n-1].Method
		}
		up.mu.Unlock()
		if last == "tools/call" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the call did not reach the upstream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dup := send(t, s, d, `{"jsonrpc":"2.0","id":9,"method":"ping"}`)
	if dup.Error == nil || !strings.Contains(dup.Error.Error(), "already in flight") {
		t.Fatalf("a request reusing an id in flight: %+v", dup)
	}
	d.reset()
	close(release)
	if r := d.response(t, intID(9)); r.Error != nil || !strings.Contains(string(r.Result), "done") {
		t.Fatalf("the call in flight after the duplicate was refused: %+v", r)
	}
	events, _ := f.log.Read(0, f.log.Size())
	recorded := false
	for _, e := range events {
		if e.Type == "refusal" && strings.Contains(string(e.Data), "already in flight") {
			recorded = true
		}
	}
	if !recorded {
		t.Fatal("the refusal of a duplicate id was not recorded")
	}
}
