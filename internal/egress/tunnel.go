package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// established answers a CONNECT that the proxy carries out.
var established = []byte("HTTP/1.1 200 Connection established\r\n\r\n")

// serveConnect handles CONNECT: a tunnel, or TLS interception for a host
// with a credential.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request, x *exchange) {
	req, err := parseAuthority(r.RequestURI)
	if err != nil {
		p.refuse(r.Context(), w, x, http.StatusBadRequest, err.Error(), nil)
		return
	}
	req.Source = x.req.Source
	x.req, x.cred = &req, p.credentialFor(&req)
	ctx, release, err := p.open(r.Context(), x.id.Session, true)
	if err != nil {
		status := http.StatusTooManyRequests
		if errors.Is(err, errClosed) {
			status = http.StatusServiceUnavailable
		}
		p.refuse(r.Context(), w, x, status, err.Error(), nil)
		return
	}
	defer release()
	if !p.decide(ctx, w, x) {
		return
	}
	if x.cred != nil {
		p.intercept(ctx, w, x, release)
		return
	}
	addrs := p.resolve(ctx, w, x)
	if addrs == nil || !p.forwarding(ctx, w, x) {
		return
	}
	upstream, err := p.dialAny(ctx, addrs)
	if err != nil {
		p.fail(ctx, w, x, http.StatusBadGateway, "cannot connect to "+net.JoinHostPort(x.req.Host, strconv.Itoa(x.req.Port)), err)
		return
	}
	agent, pre, err := hijack(w)
	if err != nil {
		upstream.Close()
		p.fail(ctx, w, x, http.StatusInternalServerError, "CONNECT is not supported on this connection", err)
		return
	}
	up, down, err := p.splice(ctx, agent, pre, upstream)
	release() // before the record, so a waiting client can open the next tunnel
	_ = p.finish(ctx, x, http.StatusOK, up, down, err)
}

// hijack takes over the agent's connection and answers the CONNECT. pre is
// what the agent sent after its request and the server had already read.
// Reads must go to conn directly: the server's buffered reader cancels the
// request context on any read error, a deadline included.
func hijack(w http.ResponseWriter) (conn net.Conn, pre []byte, err error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		pre, _ = brw.Reader.Peek(n)
		pre = bytes.Clone(pre)
	}
	if _, err := conn.Write(established); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, pre, nil
}

// splice copies between the agent (first pre) and upstream until
// both directions end, one fails, the tunnel is idle for IdleTimeout or ctx
// is cancelled, and closes both. up and down count agent-to-upstream and
// upstream-to-agent bytes.
func (p *Proxy) splice(ctx context.Context, agent net.Conn, pre []byte, upstream net.Conn) (up, down int64, err error) {
	closeBoth := func() { agent.Close(); upstream.Close() }
	defer closeBoth()
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	type result struct {
		n   int64
		err error
	}
	upc := make(chan result, 1)
	go func() {
		n, err := pipe(upstream, io.MultiReader(bytes.NewReader(pre), agent), agent, p.cfg.IdleTimeout, &last)
		if err != nil {
			closeBoth()
		} else {
			closeWrite(upstream)
		}
		upc <- result{n, err}
	}()
	down, derr := pipe(agent, upstream, upstream, p.cfg.IdleTimeout, &last)
	if derr != nil {
		closeBoth()
	} else {
		closeWrite(agent)
	}
	u := <-upc
	if ctx.Err() != nil {
		return u.n, down, errors.New("tunnel ended by ward")
	}
	for _, err := range []error{u.err, derr} {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return u.n, down, err
		}
	}
	return u.n, down, nil
}

// pipe copies src (reading conn srcConn, perhaps through a buffer) to dst
// until EOF or an error. last is the time of the latest traffic in either
// direction: a read deadline ends the copy only if the whole tunnel has
// been idle for idle.
func pipe(dst net.Conn, src io.Reader, srcConn net.Conn, idle time.Duration, last *atomic.Int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		srcConn.SetReadDeadline(time.Now().Add(idle))
		nr, rerr := src.Read(buf)
		if nr > 0 {
			last.Store(time.Now().UnixNano())
			dst.SetWriteDeadline(time.Now().Add(idle))
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		switch {
		case rerr == nil:
		case rerr == io.EOF:
			return n, nil
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			if time.Since(time.Unix(0, last.Load())) >= idle {
				return n, fmt.Errorf("tunnel idle for %s", idle)
			}
		default:
			return n, rerr
		}
	}
}

// closeWrite half-closes c if it can, so the peer sees EOF while the other
// direction goes on; otherwise it closes c.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// intercept answers a CONNECT to a host with a credential, terminates the
// agent's TLS with a certificate for that host, and serves the requests
// inside as HTTP/1.1, each decided and forwarded on its own.
func (p *Proxy) intercept(ctx context.Context, w http.ResponseWriter, x *exchange, release func()) {
	leaf, err := p.leaves.get(x.req.Host, time.Now())
	if err != nil {
		p.refuse(ctx, w, x, http.StatusBadGateway, "cannot intercept TLS for "+x.req.Host, err)
		return
	}
	if !p.forwarding(ctx, w, x) {
		return
	}
	conn, pre, err := hijack(w)
	if err != nil {
		p.fail(ctx, w, x, http.StatusInternalServerError, "CONNECT is not supported on this connection", err)
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	agent := &countingConn{Conn: conn, pre: pre}
	tc := tls.Server(agent, &tls.Config{
		Certificates: []tls.Certificate{*leaf},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	hctx, cancel := context.WithTimeout(ctx, readHeaderTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		err = fmt.Errorf("TLS handshake with agent: %w", err)
	} else {
		srv := p.newServer(p.inner(x), func() context.Context { return ctx })
		_ = srv.Serve(newConnListener(tc)) // returns once the connection is closed
	}
	conn.Close()
	release()
	_ = p.finish(ctx, x, http.StatusOK, agent.up.Load(), agent.down.Load(), err)
}

// inner handles the requests inside the intercepted tunnel t: their target
// is t's host and port whatever they say, so a Host that names anything else
// is refused.
func (p *Proxy) inner(t *exchange) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := &exchange{id: t.id, cred: t.cred, start: time.Now(), req: &Request{
			Method: r.Method, Scheme: "https", Host: t.req.Host, Port: t.req.Port, Path: r.URL.EscapedPath(),
		}}
		host, port, hasPort, err := parseHostPort(r.Host)
		if !hasPort {
			port = 443
		}
		switch {
		case r.Method == http.MethodConnect:
			p.refuse(r.Context(), w, x, http.StatusMethodNotAllowed, "CONNECT inside a tunnel", nil)
		case err != nil || host != t.req.Host || port != t.req.Port:
			p.refuse(r.Context(), w, x, http.StatusMisdirectedRequest, fmt.Sprintf("host %s is not the tunnel's %s", quote(r.Host), hostPort(x.req)), nil)
		case r.URL.IsAbs() && r.URL.Scheme != "https" || !strings.HasPrefix(x.req.Path, "/"):
			p.refuse(r.Context(), w, x, http.StatusBadRequest, "bad request target "+quote(r.RequestURI), nil)
		default:
			p.serveRequest(w, r, x)
		}
	})
}

// countingConn counts the raw bytes of an intercepted connection; reads
// start with pre, what the agent sent before the proxy answered.
type countingConn struct {
	net.Conn
	pre      []byte
	up, down atomic.Int64
}

func (c *countingConn) Read(b []byte) (n int, err error) {
	if len(c.pre) > 0 {
		n = copy(b, c.pre)
		c.pre = c.pre[n:]
	} else {
		n, err = c.Conn.Read(b)
	}
	c.up.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.down.Add(int64(n))
	return n, err
}

// connListener gives one connection to an http.Server, then blocks Accept
// until that connection is closed, so that Serve returns when it is done.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	addr net.Addr
}

func newConnListener(c net.Conn) *connListener {
	l := &connListener{ch: make(chan net.Conn, 1), done: make(chan struct{}), addr: c.LocalAddr()}
	l.ch <- &notifyConn{Conn: c, done: l.done}
	return l
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error   { return nil }
func (l *connListener) Addr() net.Addr { return l.addr }

// notifyConn closes done when it is closed.
type notifyConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}
