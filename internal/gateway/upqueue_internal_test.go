package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// recordingConn is an mcp.Connection that keeps what is written to it
// and, until released, blocks every write (an upstream not reading).
type recordingConn struct {
	mu      sync.Mutex
	written []string
	release chan struct{}
}

func (c *recordingConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (c *recordingConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	select {
	case <-c.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written = append(c.written, msg.(*jsonrpc.Request).Method)
	return nil
}

func (c *recordingConn) Close() error      { return nil }
func (c *recordingConn) SessionID() string { return "" }

// TestUpstreamQueue: messages queued for an upstream are written in the
// order queued; while the upstream does not read, at most upstreamQueue
// of them wait (plus the one being written) and the others are dropped,
// without blocking the sender.
func TestUpstreamQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drops := &countingHandler{}
	s := &Session{g: &Gateway{cfg: Config{Logger: slog.New(drops)}}, ctx: ctx}
	s.caller.Store(&Caller{Session: "s1"})
	conn := &recordingConn{release: make(chan struct{})}
	up := &upstream{name: "up", conn: conn}
	const sent = 2*upstreamQueue + 10
	for i := range sent {
		s.sendUp(up, &jsonrpc.Request{Method: fmt.Sprintf("m%d", i)})
	}
	close(conn.release)
	// Every message not dropped (each drop is logged) is written.
	accepted := sent - drops.count()
	for {
		conn.mu.Lock()
		n := len(conn.written)
		conn.mu.Unlock()
		if n >= accepted {
			break
		}
		time.Sleep(time.Millisecond)
	}
	conn.mu.Lock()
	got := append([]string(nil), conn.written...)
	conn.mu.Unlock()
	if len(got) < upstreamQueue || len(got) > upstreamQueue+1 {
		t.Fatalf("%d of %d messages written to an upstream that did not read, want %d (the queue) or one more (the one in the writer's hands)", len(got), sent, upstreamQueue)
	}
	// What was written is what was sent, in order, less what was dropped.
	last := -1
	for i, m := range got {
		var n int
		if _, err := fmt.Sscanf(m, "m%d", &n); err != nil || n <= last {
			t.Fatalf("message %d written is %s after m%d: out of order (%q)", i, m, last, got)
		}
		last = n
	}
	if got[0] != "m0" {
		t.Fatalf("the first message written is %s, want m0", got[0])
	}
}

// countingHandler counts the records logged.
type countingHandler struct {
	mu sync.Mutex
	n  int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(context.Context, slog.Record) error {
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// TestUpstreamWriterOnDemand: the writer of an upstream's queue runs only
// while there is something to write (an idle session holds no goroutine
// for it), and a message queued after it ended starts another, so nothing
// queued is left unwritten.
func TestUpstreamWriterOnDemand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Session{g: &Gateway{cfg: Config{Logger: slog.New(slog.DiscardHandler)}}, ctx: ctx}
	s.caller.Store(&Caller{Session: "s1"})
	conn := &recordingConn{release: make(chan struct{})}
	close(conn.release)
	up := &upstream{name: "up", conn: conn}
	up.outMu.Lock()
	writing := up.writing
	up.outMu.Unlock()
	if writing {
		t.Fatal("a writer runs before anything was queued")
	}
	for round := range 3 {
		s.sendUp(up, &jsonrpc.Request{Method: fmt.Sprintf("m%d", round)})
		for {
			up.outMu.Lock()
			writing, queued := up.writing, len(up.out)
			up.outMu.Unlock()
			if !writing {
				if queued != 0 {
					t.Fatalf("round %d: the writer ended with %d messages queued", round, queued)
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
		conn.mu.Lock()
		n := len(conn.written)
		conn.mu.Unlock()
		if n != round+1 {
			t.Fatalf("round %d: %d messages written once the writer ended, want %d", round, n, round+1)
		}
	}
	// Once the session ends, what is queued is dropped and no writer stays.
	cancel()
	s.sendUp(up, &jsonrpc.Request{Method: "late"})
	for {
		up.outMu.Lock()
		writing := up.writing
		up.outMu.Unlock()
		if !writing {
			break
		}
		time.Sleep(time.Millisecond)
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if len(conn.written) != 3 {
		t.Fatalf("written after the session ended: %q", conn.written)
	}
}
