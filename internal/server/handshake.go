package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/refusal"
)

// claims holds, per connection still handshaking, the identity its client
// certificate claims.
type claims struct {
	mu sync.Mutex
	m  map[string]string // remote address → claimed identity
}

// maxClaims bounds the connections remembered at once.
const maxClaims = 4096

func (c *claims) claim(addr, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	if len(c.m) < maxClaims {
		c.m[addr] = id
	}
}

func (c *claims) take(addr string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.m[addr]
	delete(c.m, addr)
	return id
}

// forget is the HTTP server's ConnState hook: a connection that got past
// its handshake, or closed, needs no claim.
func (c *claims) forget(conn net.Conn, state http.ConnState) {
	if state == http.StateActive || state == http.StateClosed || state == http.StateHijacked {
		c.take(conn.RemoteAddr().String())
	}
}

// handshakeLog is the HTTP server's error log: it passes every line on and
// records a failed TLS handshake (a certificate shown without its key, a
// client that does not trust ward) as a refusal, aggregated with the
// node's others, naming the identity the client's certificate claimed.
type handshakeLog struct {
	n    *Node
	next io.Writer
}

var handshakeError = regexp.MustCompile(`TLS handshake error from (\S+): (.*)`)

func (h *handshakeLog) Write(p []byte) (int, error) {
	if m := handshakeError.FindSubmatch(p); m != nil && h.n.refusals != nil {
		addr, reason := string(m[1]), string(m[2])
		source := addr
		if host, _, err := net.SplitHostPort(addr); err == nil {
			source = host
		}
		r := refusal.Refusal{Kind: "tls", Source: source, Reason: "TLS handshake failed: " + reason}
		if id := h.n.handshakes.take(addr); id != "" {
			r.Principal, r.Basis = id, "client certificate of a failed handshake"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.n.refusals.Record(ctx, r); err != nil {
			h.n.cfg.Logger.Error("recording a failed TLS handshake", "err", err)
		}
		cancel()
	}
	return h.next.Write(p)
}
