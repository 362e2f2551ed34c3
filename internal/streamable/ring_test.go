package streamable

import (
	"fmt"
	"testing"
)

// TestRingGrows: a session holds no ring until it retains an event; the
// ring then grows as events come, up to MaxRetainedEvents, keeping the
// newest events in order across every growth and wrap.
func TestRingGrows(t *testing.T) {
	const max = 20
	h := NewHandler(HandlerConfig{MaxRetainedEvents: max})
	defer h.Close()
	s, err := newSession(h, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.ring != nil {
		t.Fatalf("a new session holds a ring of %d", len(s.ring))
	}
	for n := 1; n <= 3*max; n++ {
		s.mu.Lock()
		s.enqueue(s.standalone, fmt.Appendf(nil, "e%d", n))
		var got []string
		for i := range s.ringLen {
			got = append(got, string(s.ring[(s.ringHead+i)%len(s.ring)].data))
		}
		size := len(s.ring)
		s.mu.Unlock()
		if size > max {
			t.Fatalf("after %d events the ring holds %d slots, more than %d", n, size, max)
		}
		if want := min(n, max); len(got) != want {
			t.Fatalf("after %d events %d retained, want %d", n, len(got), want)
		}
		for i, e := range got {
			if want := fmt.Sprintf("e%d", n-len(got)+1+i); e != want {
				t.Fatalf("after %d events, retained %q, want %s at %d", n, got, want, i)
			}
		}
	}
}
