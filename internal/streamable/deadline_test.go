package streamable

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// heldServer answers initialize and holds every other call until the test
// answers it through its Session.
type heldServer struct {
	s     *Session
	calls chan *jsonrpc.Request
}

func (h *heldServer) Authorize(*http.Request) error { return nil }
func (h *heldServer) Closed()                       {}
func (h *heldServer) Receive(_ context.Context, msg jsonrpc.Message) {
	req, ok := msg.(*jsonrpc.Request)
	if !ok || !req.IsCall() {
		return
	}
	if req.Method == "initialize" {
		res, _ := json.Marshal(map[string]any{"protocolVersion": versionPriming, "capabilities": map[string]any{},
			"serverInfo": map[string]any{"name": "held", "version": "1"}})
		_ = h.s.Send(&jsonrpc.Response{ID: req.ID, Result: res}, jsonrpc.ID{})
		return
	}
	h.calls <- req
}

// heldHandler serves heldServers; sessions receives each one opened.
func heldHandler(cfg HandlerConfig) (*Handler, chan *heldServer) {
	opened := make(chan *heldServer, 16)
	cfg.Open = func(_ *http.Request, s *Session) (SessionHandler, error) {
		h := &heldServer{s: s, calls: make(chan *jsonrpc.Request, 16)}
		opened <- h
		return h, nil
	}
	return NewHandler(cfg), opened
}

// serveHTTP serves h over HTTP/1.1 or, with TLS, HTTP/2 on loopback and
// returns the URL and a client for it.
func serveHTTP(t *testing.T, h http.Handler, proto string) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if proto == "HTTP/2.0" {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv.URL, srv.Client()
}

// sseLines reads an SSE body line by line.
type sseLines struct {
	t  *testing.T
	br *bufio.Reader
}

// until reads lines until one satisfies f, failing the test if the stream
// ends first; it returns how many pings it read on the way.
func (l sseLines) until(what string, f func(line string) bool) int {
	l.t.Helper()
	pings := 0
	for {
		line, err := l.br.ReadString('\n')
		if err != nil {
			l.t.Fatalf("the stream ended (%v) after %d pings, before %s", err, pings, what)
		}
		line = strings.TrimRight(line, "\n")
		if line == ": ping" {
			pings++
		}
		if f(line) {
			return pings
		}
	}
}

func (l sseLines) pings(n int) {
	l.t.Helper()
	got := 0
	l.until(fmt.Sprintf("%d pings", n), func(line string) bool {
		if line == ": ping" {
			got++
		}
		return got == n
	})
}

// TestStreamsOutliveWriteTimeout: a stream lives as long as its session,
// however many write timeouts pass without an event. The write deadline
// used to be set for events and never renewed or lifted, so every stream
// was reset one WriteTimeout after its priming event despite the pings
// (30 s by default: idle standalone streams and tool calls longer than
// 30 s). Here the knobs are shrunk so that one test spans many write
// timeouts; internal/server's tests do the same at the real durations.
func TestStreamsOutliveWriteTimeout(t *testing.T) {
	const (
		writeTimeout = 100 * time.Millisecond
		keepAlive    = 20 * time.Millisecond
		pings        = 25 // 25 keep-alive intervals: 5 write timeouts
	)
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			h, opened := heldHandler(HandlerConfig{WriteTimeout: writeTimeout, KeepAlive: keepAlive})
			t.Cleanup(h.Close)
			url, hc := serveHTTP(t, h, proto)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			do := func(method, sid, body string, hdr map[string]string) *http.Response {
				t.Helper()
				req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if sid != "" {
					req.Header.Set(headerSessionID, sid)
				}
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Proto != proto {
					t.Fatalf("served over %s, want %s", resp.Proto, proto)
				}
				if resp.StatusCode/100 != 2 {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("%s: %d %s", method, resp.StatusCode, b)
				}
				t.Cleanup(func() { resp.Body.Close() })
				return resp
			}
			resp := do("POST", "", initBody(versionPriming), map[string]string{"Accept": "application/json"})
			sid := resp.Header.Get(headerSessionID)
			io.Copy(io.Discard, resp.Body)
			hs := <-opened

			// An idle standalone stream.
			get := sseLines{t, bufio.NewReader(do("GET", sid, "", map[string]string{"Accept": "text/event-stream"}).Body)}
			get.until("the priming event", func(line string) bool { return line == "id: 0_0" })
			get.pings(pings)
			note, _ := json.Marshal(map[string]any{"level": "info", "data": "still here"})
			if err := hs.s.Send(&jsonrpc.Request{Method: "notifications/message", Params: note}, jsonrpc.ID{}); err != nil {
				t.Fatal(err)
			}
			get.until("the notification", func(line string) bool { return strings.Contains(line, "still here") })

			// A call answered long after its priming event.
			post := sseLines{t, bufio.NewReader(do("POST", sid, `{"jsonrpc":"2.0","id":"long","method":"tools/call","params":{"name":"wait"}}`, nil).Body)}
			post.until("the priming event", func(line string) bool { return strings.HasPrefix(line, "id: ") })
			call := <-hs.calls
			post.pings(pings)
			res, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": "waited"}}})
			if err := hs.s.Send(&jsonrpc.Response{ID: call.ID, Result: res}, jsonrpc.ID{}); err != nil {
				t.Fatal(err)
			}
			post.until("the response", func(line string) bool { return strings.Contains(line, `"waited"`) })

			// A resumed stream: the POST's connection drops after its
			// priming event, the client resumes it with GET and waits.
			postResp := do("POST", sid, `{"jsonrpc":"2.0","id":"resumed","method":"tools/call","params":{"name":"wait"}}`, nil)
			var primed string
			sseLines{t, bufio.NewReader(postResp.Body)}.until("the priming event", func(line string) bool {
				primed, _ = strings.CutPrefix(line, "id: ")
				return primed != ""
			})
			postResp.Body.Close()
			call = <-hs.calls
			resumed := sseLines{t, bufio.NewReader(do("GET", sid, "", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": primed}).Body)}
			resumed.pings(pings)
			if err := hs.s.Send(&jsonrpc.Response{ID: call.ID, Result: res}, jsonrpc.ID{}); err != nil {
				t.Fatal(err)
			}
			resumed.until("the response on the resumed stream", func(line string) bool { return strings.Contains(line, `"waited"`) })

			// The standalone stream is still the one opened above.
			if err := hs.s.Send(&jsonrpc.Request{Method: "notifications/message", Params: note}, jsonrpc.ID{}); err != nil {
				t.Fatal(err)
			}
			get.until("the second notification", func(line string) bool { return strings.Contains(line, "still here") })
		})
	}
}

// TestWriteTimeoutStillCutsNonReaders: lifting the deadline between writes
// does not let a client that stops reading hold a stream: a write that
// cannot complete within WriteTimeout ends the connection, and the stream
// is free to be resumed.
func TestWriteTimeoutStillCutsNonReaders(t *testing.T) {
	h, opened := heldHandler(HandlerConfig{WriteTimeout: 200 * time.Millisecond, KeepAlive: time.Hour})
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	status, hdr, body := post(t, srv.URL, "", nil, initBody(versionPriming))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	sid := hdr.Get(headerSessionID)
	hs := <-opened

	// A client that opens the standalone stream and never reads, with a
	// small receive buffer.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\n\r\n", srv.Listener.Addr(), sid)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	attached := func() bool {
		hs.s.mu.Lock()
		defer hs.s.mu.Unlock()
		return hs.s.standalone.attached
	}
	waitFor(t, ctx, attached)
	// Events far larger than any socket buffer, within the pending bound:
	// the writer blocks in a write that cannot finish.
	big, _ := json.Marshal(map[string]any{"level": "info", "data": strings.Repeat("x", 1<<20)})
	for range 6 {
		if err := hs.s.Send(&jsonrpc.Request{Method: "notifications/message", Params: big}, jsonrpc.ID{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, func() bool { return !attached() })
}
