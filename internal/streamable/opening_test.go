package streamable

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestOpeningSessionIsInUse: a session whose initialize is being opened is
// in use: not idle, and not retired. ward's gateway retires the idlest of
// a ward session's MCP sessions to admit a new one, so concurrent
// initializes of one ward session used to retire each other while they
// were being opened, and their clients got 503 "session closed while it
// was being opened".
func TestOpeningSessionIsInUse(t *testing.T) {
	type seen struct {
		s             *Session
		idle, retired bool
	}
	during := make(chan seen, 1)
	h := NewHandler(HandlerConfig{IdleTimeout: time.Hour, Open: func(_ *http.Request, s *Session) (SessionHandler, error) {
		_, idle := s.Idle()
		during <- seen{s, idle, s.Retire()}
		return newRawServer(s), nil
	}})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	status, _, body := post(t, srv.URL, "", nil, initBody("2025-06-18"))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	d := <-during
	if d.idle || d.retired {
		t.Fatalf("while its initialize was being opened the session was idle: %v, retired: %v", d.idle, d.retired)
	}
	opened := d.s
	// Once the initialize is answered, the session is idle, and can be
	// retired.
	if _, idle := opened.Idle(); !idle {
		t.Fatal("the session is not idle after its initialize was answered")
	}
	if !opened.Retire() {
		t.Fatal("an idle session could not be retired")
	}
}
