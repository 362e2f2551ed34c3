package sessioncred

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/strictjson"
)

// streamingNode stands in for the node: /v1/records keeps what is
// recorded; /mcp reads the body and answers, for a request with
// "X-Events: N", an SSE stream of N events spaced by gap, else "node ok".
type streamingNode struct {
	srv *httptest.Server
	gap time.Duration

	mu      sync.Mutex
	records []map[string]any
}

func newStreamingNode(t *testing.T, gap time.Duration) *streamingNode {
	n := &streamingNode{gap: gap}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/v1/records" {
			var rec struct {
				Kind    string         `json:"kind"`
				Content map[string]any `json:"content"`
			}
			if err := strictjson.Unmarshal(body, &rec); err != nil || rec.Kind != "note" {
				http.Error(w, "bad record", http.StatusBadRequest)
				return
			}
			n.mu.Lock()
			n.records = append(n.records, rec.Content)
			n.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			return
		}
		var events int
		if _, err := fmt.Sscan(r.Header.Get("X-Events"), &events); err != nil {
			io.WriteString(w, "node ok")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(w, "id: %d\ndata: {}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(n.gap):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(func() { n.srv.CloseClientConnections(); n.srv.Close() })
	return n
}

// refused returns the refusals recorded, summed by reason.
func (n *streamingNode) refused() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	got := map[string]int{}
	for _, rec := range n.records {
		kinds, _ := rec["refused"].([]any)
		for _, k := range kinds {
			m, _ := k.(map[string]any)
			reason, _ := m["reason"].(string)
			count, _ := m["count"].(float64)
			got[reason] += int(count)
		}
	}
	return got
}

// slowClient is a raw connection to the sidecar that sends what it is
// given a byte at a time, spaced by gap, until the sidecar closes it.
type slowClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialSlow(t *testing.T, network, addr string) *slowClient {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Bounds the test should the sidecar never cut the client off.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	return &slowClient{c: c, br: bufio.NewReader(c)}
}

// trickle writes s a byte at a time in the background, until the
// connection fails or the test ends.
func (s *slowClient) trickle(s2 string, gap time.Duration) {
	go func() {
		for i := 0; ; i++ {
			if _, err := s.c.Write([]byte{s2[i%len(s2)]}); err != nil {
				return
			}
			time.Sleep(gap)
		}
	}()
}

// answer reads the answer to the request being sent, if any, then
// checks that the sidecar closes the connection. status is 0 when the
// sidecar closed it without an answer.
func (s *slowClient) answer(t *testing.T) (status int, body string) {
	t.Helper()
	resp, err := http.ReadResponse(s.br, nil)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status, body = resp.StatusCode, string(b)
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		t.Fatalf("the connection stayed open: %v", err)
	}
	if _, err := s.br.ReadByte(); err == nil || (!errors.Is(err, io.EOF) && !isReset(err)) {
		t.Fatalf("the connection stayed open after the answer (%d %q): %v", status, body, err)
	}
	return status, body
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestSidecarCutsSlowClients: a client of `ward mcp serve` that sends its
// headers or body too slowly, or keeps a connection idle, is cut off, and
// no more than MaxConns connections are held at once — while a prompt
// request's answer streams for as long as it lasts. Before, a request
// body had no deadline and idle connections none either: 200 connections
// sending their bodies a byte at a time stayed open for minutes.
func TestSidecarCutsSlowClients(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			cutsSlowClients(t, network)
		})
	}
}

func cutsSlowClients(t *testing.T, network string) {
	const (
		headerTimeout = 200 * time.Millisecond
		bodyTimeout   = 300 * time.Millisecond
		idleTimeout   = 300 * time.Millisecond
		maxConns      = 16
		maxBody       = 128 << 10 // small (an oversized body arrives well within bodyTimeout), above the slow bodies' 100000
		gap           = 20 * time.Millisecond
	)
	node := newStreamingNode(t, gap)
	target, _ := url.Parse(node.srv.URL + "/mcp")
	records, _ := url.Parse(node.srv.URL + "/v1/records")
	token := NewToken()
	listen := "127.0.0.1:0"
	if network == "unix" {
		listen = "unix:" + filepath.Join(t.TempDir(), "ward", "mcp.sock")
	}
	ln, err := Listen(listen)
	if err != nil {
		t.Fatal(err)
	}
	addr, host := ln.Addr().String(), ln.Addr().String()
	if network == "unix" {
		host = "localhost"
	}
	stop := serve(t, SidecarConfig{Target: target, Transport: http.DefaultTransport, Token: token, Records: records,
		RefusalInterval: time.Hour, HeaderTimeout: headerTimeout, BodyTimeout: bodyTimeout, IdleTimeout: idleTimeout, MaxConns: maxConns, MaxBodyBytes: maxBody}, ln)
	head := func(extra string) string {
		return fmt.Sprintf("POST /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n%s\r\n", host, token, extra)
	}
	endpoint := "http://" + addr + "/mcp"
	tr := &http.Transport{}
	if network == "unix" {
		endpoint = "http://localhost/mcp"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}
	}
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	do := func(method string, hdr map[string]string) (*http.Response, error) {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(initBody)
		}
		req, _ := http.NewRequest(method, endpoint, body)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return hc.Do(req)
	}

	t.Run("slow body", func(t *testing.T) {
		c := dialSlow(t, network, addr)
		io.WriteString(c.c, head("Content-Length: 100000\r\n"))
		c.trickle(initBody, gap)
		if status, body := c.answer(t); status != http.StatusRequestTimeout || !strings.Contains(body, "did not arrive within") {
			t.Fatalf("a body sent a byte at a time: %d %q, want 408", status, body)
		}
	})
	t.Run("slow chunked body", func(t *testing.T) {
		c := dialSlow(t, network, addr)
		io.WriteString(c.c, head("Transfer-Encoding: chunked\r\n"))
		c.trickle("1\r\nx\r\n", gap)
		if status, _ := c.answer(t); status != http.StatusRequestTimeout {
			t.Fatalf("a chunked body sent a byte at a time: %d, want 408", status)
		}
	})
	t.Run("slow headers", func(t *testing.T) {
		c := dialSlow(t, network, addr)
		io.WriteString(c.c, "POST /mcp HTTP/1.1\r\n")
		c.trickle("X-Slow: a\r\n", gap)
		// net/http closes the connection, with 400 or without an answer.
		if status, _ := c.answer(t); status != 0 && status != http.StatusBadRequest {
			t.Fatalf("headers sent a byte at a time: answered %d", status)
		}
	})
	t.Run("silent connection", func(t *testing.T) {
		c := dialSlow(t, network, addr)
		if status, _ := c.answer(t); status != 0 {
			t.Fatalf("a connection that sends nothing: answered %d", status)
		}
	})
	t.Run("idle kept-alive connection", func(t *testing.T) {
		c := dialSlow(t, network, addr)
		io.WriteString(c.c, fmt.Sprintf("GET /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", host, token))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "node ok" {
			t.Fatalf("GET: %d %q", resp.StatusCode, b)
		}
		if status, _ := c.answer(t); status != 0 {
			t.Fatalf("an idle connection: answered %d", status)
		}
	})
	t.Run("many slow bodies", func(t *testing.T) {
		const clients = 200
		statuses := make(chan int, clients)
		for range clients {
			c := dialSlow(t, network, addr)
			go func() {
				io.WriteString(c.c, head("Content-Length: 100000\r\n"))
				c.trickle(initBody, gap)
				resp, err := http.ReadResponse(c.br, nil)
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		got := map[int]int{}
		for range clients {
			got[<-statuses]++
		}
		if got[http.StatusRequestTimeout] == 0 || got[http.StatusServiceUnavailable] == 0 || got[http.StatusRequestTimeout]+got[http.StatusServiceUnavailable] != clients {
			t.Fatalf("%d slow clients were answered %v; want each 408 (cut off) or 503 (over the %d connections)", clients, got, maxConns)
		}
		// The slots came back: the owner is served.
		resp, err := do("POST", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "node ok" {
			t.Fatalf("a prompt request after the slow ones: %d %q", resp.StatusCode, b)
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = bytes.NewReader(make([]byte, maxBody+1))
			if chunked {
				body = io.MultiReader(body) // no length known: sent chunked
			}
			req, _ := http.NewRequest("POST", endpoint, body)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "exceeds") {
				t.Fatalf("a body of %d bytes (chunked %v): %d %q, want 413", maxBody+1, chunked, resp.StatusCode, b)
			}
		}
	})
	t.Run("streams outlive the timeouts", func(t *testing.T) {
		// An answer of 60 events spaced by 20 ms lasts four times the
		// body and idle timeouts and six times the header timeout.
		const events = 60
		for _, method := range []string{"POST", "GET"} {
			resp, err := do(method, map[string]string{"X-Events": fmt.Sprint(events), "Accept": "text/event-stream"})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || strings.Count(string(b), "data: {}") != events {
				t.Fatalf("%s streaming for %v: %d, %d of %d events, %v", method, events*gap, resp.StatusCode, strings.Count(string(b), "data: {}"), events, err)
			}
		}
	})

	stop()
	got := node.refused()
	for _, reason := range []string{"slow request body", "slow request header", "too many connections"} {
		if got[reason] == 0 {
			t.Errorf("no refusal %q recorded: %v", reason, got)
		}
	}
}

// TestSidecarBoundsMustBePositive: a negative bound is a mistake, not a
// way to turn a bound off.
func TestSidecarBoundsMustBePositive(t *testing.T) {
	target, _ := url.Parse("https://127.0.0.1:1/mcp")
	for _, cfg := range []SidecarConfig{{HeaderTimeout: -1}, {BodyTimeout: -1}, {IdleTimeout: -1}, {MaxConns: -1}} {
		cfg.Target, cfg.Transport = target, http.DefaultTransport
		if _, err := NewSidecar(cfg); err == nil {
			t.Errorf("NewSidecar(%+v) accepted a negative bound", cfg)
		}
	}
}
