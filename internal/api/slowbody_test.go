package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// bodyReadTimeout is the node's bound on sending a request body
// (api.bodyReadTimeout).
const bodyReadTimeout = 30 * time.Second

// TestSlowBodyIsCutOff: a client that sends a request body a byte at a
// time is answered and disconnected once the body deadline passes, on the
// MCP endpoint and the JSON API alike, whatever the body's framing. The
// deadline used to be lifted on any read error, including its own expiry;
// net/http then reads what is left of a short body before it answers, with
// no deadline, so such a client held its connection and a goroutine for
// as long as it kept sending (the answer never came). Runs at the real
// 30 s, all cases at once.
func TestSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	srv := httptest.NewServer(n.h)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	type result struct {
		name   string
		status int
		err    error
		open   bool
	}
	cases := map[string]string{
		"mcp, length":       "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n",
		"mcp, chunked":      "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
		"sponsors, length":  "POST /v1/sponsors HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 10000\r\nAuthorization: Bearer " + n.admin + "\r\n",
		"sponsors, chunked": "POST /v1/sponsors HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer " + n.admin + "\r\n",
	}
	results := make(chan result, len(cases))
	var wg sync.WaitGroup
	for name, head := range cases {
		wg.Go(func() {
			r := result{name: name}
			defer func() { results <- r }()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				r.err = err
				return
			}
			defer c.Close()
			// Bounds the test should the node never cut the client off.
			c.SetReadDeadline(time.Now().Add(3 * bodyReadTimeout))
			fmt.Fprintf(c, "%sHost: %s\r\n\r\n", head, srv.Listener.Addr())
			chunk := " " // 300 bytes in 30 s: the body is never whole
			if strings.Contains(head, "chunked") {
				chunk = "1\r\n \r\n"
			}
			go func() {
				for {
					if _, err := c.Write([]byte(chunk)); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				r.err = err
				return
			}
			io.Copy(io.Discard, resp.Body)
			r.status = resp.StatusCode
			_, err = br.ReadByte()
			r.open = err == nil
		})
	}
	wg.Wait()
	close(results)
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("%s: no answer to a body sent a byte at a time: %v", r.name, r.err)
		case r.status < 400 || r.status >= 500:
			t.Errorf("%s: answered %d, want a refusal", r.name, r.status)
		case r.open:
			t.Errorf("%s: the connection stayed open after the answer", r.name)
		}
		if r.name == "mcp, length" || r.name == "mcp, chunked" {
			if r.status != 0 && r.status != http.StatusRequestTimeout {
				t.Errorf("%s: answered %d, want 408", r.name, r.status)
			}
		}
	}
}
