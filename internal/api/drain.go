package api

import (
	"context"
	"net/http"
	"sync"
)

// drain tracks the MCP requests in flight so that a node shutting down
// answers the calls it has begun before it ends their sessions: a call the
// upstream ran is answered rather than cut (its record and budget stand
// either way). Once draining, new MCP requests are refused with 503 and
// Retry-After, and readiness says the node is shutting down.
type drain struct {
	mu       sync.Mutex
	draining bool
	inflight int
	idle     chan struct{} // closed when draining and nothing is in flight
}

// begin admits one request, or reports that the node is draining.
func (d *drain) begin() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return false
	}
	d.inflight++
	return true
}

func (d *drain) end() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight--
	if d.draining && d.inflight == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
}

// wait refuses new requests and waits until those in flight are done or
// ctx ends.
func (d *drain) wait(ctx context.Context) {
	d.mu.Lock()
	d.draining = true
	if d.inflight == 0 {
		d.mu.Unlock()
		return
	}
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

func (d *drain) isDraining() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.draining
}

// drained counts the MCP requests that carry messages (POST); a GET
// stream lives as long as its session and is ended by Close.
func (s *Server) drained(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		if !s.drain.begin() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "ward: this node is shutting down: retry, on another node if there is one", http.StatusServiceUnavailable)
			return
		}
		defer s.drain.end()
		next.ServeHTTP(w, r)
	})
}

// Drain refuses new MCP requests and waits, until ctx ends, for those in
// flight to be answered. Call it before Close.
func (s *Server) Drain(ctx context.Context) { s.drain.wait(ctx) }
