package streamable

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedOpen is a HandlerConfig.Open that holds every call until release is
// closed, so that many initializes are being opened at once; fail makes
// the calls numbered in it refuse.
type gatedOpen struct {
	release chan struct{}
	entered atomic.Int32
	fail    func(n int32) bool // read only while failing is set
	failing atomic.Bool

	mu       sync.Mutex
	sessions []*rawServer
}

func (g *gatedOpen) open(_ *http.Request, s *Session) (SessionHandler, error) {
	n := g.entered.Add(1)
	<-g.release
	if g.failing.Load() && g.fail(n) {
		return nil, errors.New("refused by test")
	}
	rs := newRawServer(s)
	g.mu.Lock()
	g.sessions = append(g.sessions, rs)
	g.mu.Unlock()
	return rs, nil
}

// TestSessionCapIsExact: MaxSessions holds exactly however many
// initializes arrive at once. The cap used to be checked before Open and
// applied after it, in two critical sections, so every initialize that
// arrived while others were being opened passed the check. A slot is now
// reserved before Open, and given back when opening fails.
func TestSessionCapIsExact(t *testing.T) {
	const limit, clients = 5, 60
	for _, tc := range []struct {
		name string
		fail func(n int32) bool // which Open calls refuse
	}{
		{"all open", nil},
		{"some opens fail", func(n int32) bool { return n%2 == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gatedOpen{release: make(chan struct{}), fail: tc.fail}
			g.failing.Store(tc.fail != nil)
			var refused503 atomic.Int32
			h := NewHandler(HandlerConfig{MaxSessions: limit, Open: g.open, OnRefuse: func(_ *http.Request, status int, _ string) {
				if status == http.StatusServiceUnavailable {
					refused503.Add(1)
				}
			}})
			srv := httptest.NewServer(h)
			t.Cleanup(func() { h.Close(); srv.Close() })

			statuses := make(chan int, clients)
			for range clients {
				go func() {
					status, _, _ := post(t, srv.URL, "", nil, initBody("2025-06-18"))
					statuses <- status
				}()
			}
			// Every initialize is either inside Open or already refused:
			// only then may the opens finish.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			waitFor(t, ctx, func() bool { return g.entered.Load()+refused503.Load() == clients })
			close(g.release)
			counts := map[int]int{}
			for range clients {
				counts[<-statuses]++
			}
			opened := int(g.entered.Load())
			if opened != limit {
				t.Errorf("%d initializes reached Open at once; the cap is %d", opened, limit)
			}
			wantOK := limit
			if tc.fail != nil {
				wantOK = 0
				for n := int32(1); n <= int32(opened); n++ {
					if !tc.fail(n) {
						wantOK++
					}
				}
			}
			if counts[http.StatusOK] != wantOK || counts[http.StatusServiceUnavailable] != clients-opened || counts[http.StatusOK]+counts[http.StatusServiceUnavailable]+counts[http.StatusForbidden] != clients {
				t.Errorf("statuses %v: want %d × 200 and %d × 503", counts, wantOK, clients-opened)
			}
			h.mu.Lock()
			n := len(h.sessions)
			h.mu.Unlock()
			if n != wantOK {
				t.Errorf("%d sessions registered, want %d", n, wantOK)
			}

			// Failed opens gave their slots back: the free slots open now,
			// and one more is refused.
			free := limit - wantOK
			g.failing.Store(false) // g.release stays closed
			for i := range free {
				if status, _, body := post(t, srv.URL, "", nil, initBody("2025-06-18")); status != http.StatusOK {
					t.Fatalf("initialize %d of the %d free slots: %d %s", i+1, free, status, body)
				}
			}
			status, _, body := post(t, srv.URL, "", nil, initBody("2025-06-18"))
			if status != http.StatusServiceUnavailable || !strings.Contains(string(body), fmt.Sprintf("limit %d", limit)) {
				t.Fatalf("initialize beyond the cap: %d %s", status, body)
			}
		})
	}
}

// TestSessionSlotsComeBack: a session's slot is free again whichever way
// it ends (DELETE, Session.Close, idle timeout), and a session closed
// while it is being opened takes no slot and is not registered.
func TestSessionSlotsComeBack(t *testing.T) {
	var closeDuringOpen atomic.Bool
	var mu sync.Mutex
	var opened []*rawServer
	h := NewHandler(HandlerConfig{MaxSessions: 1, IdleTimeout: time.Hour, Open: func(_ *http.Request, s *Session) (SessionHandler, error) {
		rs := newRawServer(s)
		if closeDuringOpen.Load() {
			s.Close()
		}
		mu.Lock()
		opened = append(opened, rs)
		mu.Unlock()
		return rs, nil
	}})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	last := func() *rawServer { mu.Lock(); defer mu.Unlock(); return opened[len(opened)-1] }
	open := func(want int) string {
		t.Helper()
		status, hdr, body := post(t, srv.URL, "", nil, initBody("2025-06-18"))
		if status != want {
			t.Fatalf("initialize: %d %s, want %d", status, body, want)
		}
		return hdr.Get(headerSessionID)
	}
	registered := func() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.sessions) }

	sid := open(http.StatusOK)
	open(http.StatusServiceUnavailable)
	req, _ := http.NewRequest(http.MethodDelete, srv.URL, nil)
	req.Header.Set(headerSessionID, sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	open(http.StatusOK)
	last().s.Close()

	closeDuringOpen.Store(true)
	open(http.StatusServiceUnavailable)
	if n := registered(); n != 0 {
		t.Fatalf("a session closed while it was opened is registered (%d sessions)", n)
	}
	closeDuringOpen.Store(false)
	open(http.StatusOK)
	if n := registered(); n != 1 {
		t.Fatalf("%d sessions registered, want 1", n)
	}
}

// TestSlowBodyIs408: a body that the server in front stops waiting for
// (its read deadline) is answered 408 with a JSON-RPC error, not 400 as
// if the client had sent something malformed, and the connection ends.
func TestSlowBodyIs408(t *testing.T) {
	var refused atomic.Int32
	h := NewHandler(HandlerConfig{Open: func(_ *http.Request, s *Session) (SessionHandler, error) { return newRawServer(s), nil },
		OnRefuse: func(_ *http.Request, status int, _ string) {
			if status == http.StatusRequestTimeout {
				refused.Add(1)
			}
		}})
	t.Cleanup(h.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What internal/api does in front of the handler, shortened.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	for _, framing := range []string{"Content-Length: 1000", "Transfer-Encoding: chunked"} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // bounds the test should nothing cut the client off
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\n\r\n", framing)
		go func() {
			for {
				if _, err := c.Write([]byte("1\r\n \r\n")); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no answer to a slow body: %v", framing, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "not received in time") {
			t.Fatalf("%s: %d %s, want 408", framing, resp.StatusCode, body)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Fatalf("%s: the connection stayed open after the 408", framing)
		}
	}
	if n := refused.Load(); n != 2 {
		t.Errorf("OnRefuse told of %d 408s, want 2", n)
	}
}

// TestCloseDuringOpen: initializes being opened when the handler closes
// are refused, none is registered, and their slots are given back.
func TestCloseDuringOpen(t *testing.T) {
	const clients = 3
	g := &gatedOpen{release: make(chan struct{})}
	h := NewHandler(HandlerConfig{MaxSessions: clients, Open: g.open})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	statuses := make(chan int, clients)
	for range clients {
		go func() {
			status, _, _ := post(t, srv.URL, "", nil, initBody("2025-06-18"))
			statuses <- status
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitFor(t, ctx, func() bool { return g.entered.Load() == clients })
	h.Close()
	close(g.release)
	for range clients {
		if status := <-statuses; status != http.StatusServiceUnavailable {
			t.Errorf("an initialize opened across Handler.Close: %d, want 503", status)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sessions) != 0 || h.slots != 0 {
		t.Errorf("after Close: %d sessions registered, %d slots taken; want none", len(h.sessions), h.slots)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rs := range g.sessions {
		if rs.closed.Load() != 1 {
			t.Errorf("a session opened across Close was closed %d times, want 1", rs.closed.Load())
		}
	}
}
