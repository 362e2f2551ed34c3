package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/gateway"
)

func (u *rawUpstream) dials() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

func openShared(t *testing.T, f *rawFixture, c *gateway.Caller) (*gateway.Session, *downstream) {
	t.Helper()
	d := newDownstream()
	s := f.g.NewSession(c, d)
	t.Cleanup(s.Close)
	if resp := send(t, s, d, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); resp.Error != nil {
		t.Fatalf("initialize: %v", resp.Error)
	}
	send(t, s, d, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return s, d
}

// TestSharedUpstream: the MCP sessions of one ward session share one
// connection to a server configured to share (one process for a client
// that opens a session per call); the server is initialized once; ids and
// progress tokens the sessions chose alike never cross; subscriptions are
// counted; another ward session gets a connection of its own; a
// connection that fails is dialled again for the next session.
func TestSharedUpstream(t *testing.T) {
	up := &rawUpstream{}
	f := newUpstreamsFixture(t, []gateway.Upstream{gateway.Share(gateway.Upstream{Name: "up", Dial: up.dial})}, nil)
	s1, d1 := openShared(t, f, rawCaller)
	s2, d2 := openShared(t, f, rawCaller)
	if n := up.dials(); n != 1 {
		t.Fatalf("two MCP sessions of one ward session dialled %d connections, want 1", n)
	}
	if n := len(up.requests("initialize")); n != 1 {
		t.Fatalf("the shared server was initialized %d times, want once", n)
	}

	// Both sessions use id 7 at once; each gets its own answer.
	var wg sync.WaitGroup
	for i, sd := range []struct {
		s *gateway.Session
		d *downstream
	}{{s1, d1}, {s2, d2}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				sd.s.Receive(context.Background(), mustDecode(t, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"n":`+string(rune('0'+i))+`}}}`))
				if resp := sd.d.response(t, intID7); resp.Error != nil {
					t.Errorf("session %d: %v", i, resp.Error)
				}
				sd.d.reset()
			}
		}()
	}
	wg.Wait()
	if n := len(up.requests("tools/call")); n != 40 {
		t.Fatalf("%d calls reached the server, want 40", n)
	}
	seen := map[string]bool{}
	for _, r := range up.requests("tools/call") {
		k := idText(r.ID)
		if seen[k] {
			t.Fatalf("two calls reached the shared server with id %s", k)
		}
		seen[k] = true
	}

	// Progress: both sessions name token "p"; the server sees two tokens
	// and each session gets only its own progress.
	send(t, s1, d1, `{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","_meta":{"progressToken":"p"}}}`)
	send(t, s2, d2, `{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","_meta":{"progressToken":"p"}}}`)
	calls := up.requests("tools/call")
	tokens := []string{}
	for _, r := range calls[len(calls)-2:] {
		var p struct {
			Meta struct {
				ProgressToken json.RawMessage `json:"progressToken"`
			} `json:"_meta"`
		}
		json.Unmarshal(r.Params, &p)
		tokens = append(tokens, string(p.Meta.ProgressToken))
	}
	if tokens[0] == tokens[1] || tokens[0] == `"p"` {
		t.Fatalf("progress tokens on the shared connection: %v", tokens)
	}
	d1.reset()
	d2.reset()
	up.emit(&jsonrpc.Request{Method: "notifications/progress", Params: json.RawMessage(`{"progressToken":` + tokens[1] + `,"progress":1}`)})
	waitNotification(t, d2, "notifications/progress", `"p"`)
	if hasNotification(d1, "notifications/progress") {
		t.Fatal("session 1 got session 2's progress")
	}

	// Subscriptions: the server sees the first subscribe and the last
	// unsubscribe; updates go to the subscribers.
	for _, sd := range []struct {
		s *gateway.Session
		d *downstream
	}{{s1, d1}, {s2, d2}} {
		if resp := send(t, sd.s, sd.d, `{"jsonrpc":"2.0","id":"sub","method":"resources/subscribe","params":{"uri":"note://a"}}`); resp.Error != nil {
			t.Fatalf("subscribe: %v", resp.Error)
		}
	}
	if n := len(up.requests("resources/subscribe")); n != 1 {
		t.Fatalf("the server saw %d subscribes, want 1", n)
	}
	d1.reset()
	d2.reset()
	up.emit(&jsonrpc.Request{Method: "notifications/resources/updated", Params: json.RawMessage(`{"uri":"note://a"}`)})
	waitNotification(t, d1, "notifications/resources/updated", "note://a")
	waitNotification(t, d2, "notifications/resources/updated", "note://a")
	send(t, s1, d1, `{"jsonrpc":"2.0","id":"un","method":"resources/unsubscribe","params":{"uri":"note://a"}}`)
	if n := len(up.requests("resources/unsubscribe")); n != 0 {
		t.Fatalf("the server saw an unsubscribe while session 2 is subscribed")
	}
	send(t, s2, d2, `{"jsonrpc":"2.0","id":"un","method":"resources/unsubscribe","params":{"uri":"note://a"}}`)
	if n := len(up.requests("resources/unsubscribe")); n != 1 {
		t.Fatalf("the server saw %d unsubscribes after the last one left, want 1", n)
	}

	// Another ward session has a connection of its own.
	other := *rawCaller
	other.Session = "s2"
	openShared(t, f, &other)
	if n := up.dials(); n != 2 {
		t.Fatalf("another ward session shared a connection (%d dials, want 2)", n)
	}

	// The shared connection fails: its sessions are told the server is
	// unavailable; the next session dials a new one.
	up.mu.Lock()
	first := up.conns[0]
	up.mu.Unlock()
	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := send(t, s1, d1, `{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"echo"}}`)
		if resp.Error != nil && strings.Contains(resp.Error.Error(), "unavailable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a call after the shared connection failed: %v", resp.Error)
		}
		d1.reset()
		time.Sleep(20 * time.Millisecond)
	}
	s3, d3 := openShared(t, f, rawCaller)
	if n := up.dials(); n != 3 {
		t.Fatalf("no new connection after the shared one failed (%d dials, want 3)", n)
	}
	if resp := send(t, s3, d3, `{"jsonrpc":"2.0","id":"new","method":"tools/call","params":{"name":"echo"}}`); resp.Error != nil {
		t.Fatalf("a call on the new connection: %v", resp.Error)
	}
}

var intID7, _ = jsonrpc.MakeID(float64(7))

func mustDecode(t *testing.T, raw string) jsonrpc.Message {
	m, err := jsonrpc.DecodeMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func idText(id jsonrpc.ID) string {
	b, _ := json.Marshal(id.Raw())
	return string(b)
}

func hasNotification(d *downstream, method string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.msgs {
		if r, ok := m.(*jsonrpc.Request); ok && !r.IsCall() && r.Method == method {
			return true
		}
	}
	return false
}

func waitNotification(t *testing.T, d *downstream, method, contains string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		d.mu.Lock()
		for _, m := range d.msgs {
			if r, ok := m.(*jsonrpc.Request); ok && !r.IsCall() && r.Method == method && strings.Contains(string(r.Params), contains) {
				d.mu.Unlock()
				return
			}
		}
		d.mu.Unlock()
		select {
		case <-d.ch:
		case <-deadline:
			t.Fatalf("no %s with %s", method, contains)
		}
	}
}
