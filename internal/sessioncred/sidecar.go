package sessioncred

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds on the sidecar's clients ([SidecarConfig]). A client that is too
// slow is cut off: it cannot hold a connection, a goroutine and a slot of
// the node's session for ever by sending a request byte by byte.
const (
	// DefaultHeaderTimeout bounds the time a client takes to send a
	// request's headers, from its connection or from the first byte of a
	// later request on it.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds the time a client takes to send a
	// request's body, from the start of the request (a POST of a few
	// megabytes takes milliseconds on loopback). It is lifted once the
	// body has been read, so the answer (an SSE stream) is not bounded.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection with no request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConns bounds the connections open at once. Beyond it a
	// connection is answered 503 at once and closed: its client is told,
	// rather than left waiting, and the sidecar keeps the descriptors it
	// needs for the node.
	DefaultMaxConns = 256
)

// SidecarConfig configures a session's local MCP endpoint ([NewSidecar]).
type SidecarConfig struct {
	// Target is the node's MCP endpoint, https://NODE/mcp.
	Target *url.URL
	// Transport authenticates every forwarded request as the session.
	Transport http.RoundTripper
	// Token is the secret a client presents, as "Authorization: Bearer
	// TOKEN" or as the last segment of the URL path /mcp/TOKEN ([NewToken],
	// [TokenFile]). Serving on TCP requires one; on a Unix socket it is
	// checked when set.
	Token string
	// Records, if set, is the node's records endpoint
	// (https://NODE/v1/records): refused requests are posted there, as
	// "note" records of the session, aggregated (RefusalInterval).
	Records *url.URL
	// Logger gets one line per report of refused requests; nil logs
	// nothing.
	Logger *slog.Logger
	// RefusalInterval is the shortest time between two reports of refused
	// requests; 0 means DefaultRefusalInterval.
	RefusalInterval time.Duration
	// HeaderTimeout, BodyTimeout and IdleTimeout bound how long a client
	// may take to send a request's headers and body, and keep an idle
	// connection; 0 means DefaultHeaderTimeout, DefaultBodyTimeout and
	// DefaultIdleTimeout. A request whose body is late is answered 408.
	HeaderTimeout, BodyTimeout, IdleTimeout time.Duration
	// MaxConns bounds the connections open at once; 0 means
	// DefaultMaxConns.
	MaxConns int
	// MaxBodyBytes bounds a request's body (413 beyond it); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// SidecarServer is a session's local MCP endpoint bound to the user who
// runs it; see the package documentation.
type SidecarServer struct {
	cfg   SidecarConfig
	token tokenDigest
}

// NewSidecar checks cfg and returns a sidecar ready to [SidecarServer.Serve].
func NewSidecar(cfg SidecarConfig) (*SidecarServer, error) {
	if cfg.Target == nil || cfg.Transport == nil {
		return nil, errors.New("sidecar: a target and a transport are required")
	}
	if cfg.Token != "" {
		if err := checkToken(cfg.Token); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
	}
	if cfg.HeaderTimeout < 0 || cfg.BodyTimeout < 0 || cfg.IdleTimeout < 0 || cfg.MaxConns < 0 || cfg.MaxBodyBytes < 0 {
		return nil, errors.New("sidecar: timeouts and the connection limit cannot be negative")
	}
	cfg.HeaderTimeout = cmp.Or(cfg.HeaderTimeout, DefaultHeaderTimeout)
	cfg.BodyTimeout = cmp.Or(cfg.BodyTimeout, DefaultBodyTimeout)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, DefaultMaxConns)
	return &SidecarServer{cfg: cfg, token: digestToken(cfg.Token)}, nil
}

// Serve answers on ln (from [Listen]) until ctx is done, then stops,
// waiting up to 5 s for requests in flight, and reports the refusals not
// yet reported. Only the user running Serve is served: on a Unix socket
// the kernel's peer credentials must name that user; on TCP loopback the
// request must carry the token and, on Linux, the client's socket must
// belong to that user. Serve closes ln.
func (s *SidecarServer) Serve(ctx context.Context, ln net.Listener) error {
	h := &sidecar{owner: int64(os.Geteuid()), bodyTimeout: s.cfg.BodyTimeout, maxBody: s.cfg.MaxBodyBytes}
	h.proxy = newProxy(s.cfg.Target, s.cfg.Transport, h)
	if err := s.bind(h, ln.Addr()); err != nil {
		ln.Close()
		return err
	}
	return s.serve(ctx, h, ln)
}

// bind sets what h checks on a listener at addr, or refuses the address.
func (s *SidecarServer) bind(h *sidecar, addr net.Addr) error {
	switch a := addr.(type) {
	case *net.UnixAddr:
		if !hasPeerCredentials {
			return errors.New("a Unix socket sidecar needs peer credentials, which ward reads on Linux only: listen on 127.0.0.1:PORT")
		}
	case *net.TCPAddr:
		if !a.IP.IsLoopback() {
			return fmt.Errorf("the sidecar serves loopback only, not %s", a)
		}
		if s.cfg.Token == "" {
			return errors.New("a sidecar on TCP needs a token: loopback tells nobody which user connects")
		}
		h.port = a.Port
	default:
		return fmt.Errorf("the sidecar serves a Unix socket or TCP loopback, not %s", addr.Network())
	}
	if s.cfg.Token != "" {
		h.token, h.hasToken = s.token, true
	}
	return nil
}

// serve runs h on ln until ctx is done.
func (s *SidecarServer) serve(ctx context.Context, h *sidecar, ln net.Listener) error {
	var post func(context.Context, []byte) error
	if s.cfg.Records != nil {
		post = recordPoster(s.cfg.Records, s.cfg.Transport)
	}
	h.refused = newRefusals(s.cfg.Logger, post, s.cfg.RefusalInterval)
	rctx, stopReports := context.WithCancel(context.Background())
	reported := make(chan struct{})
	go func() { defer close(reported); h.refused.run(rctx) }()
	defer func() { stopReports(); <-reported }()

	slow := &slowHeaders{timeout: s.cfg.HeaderTimeout, opened: map[net.Conn]time.Time{}, refused: h.refused}
	srv := &http.Server{Handler: h,
		// No ReadTimeout or WriteTimeout: they would end SSE streams. The
		// body has its own deadline (sidecar.ServeHTTP).
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         slow.state,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc, ok := c.(*limitedConn); ok {
				c = lc.Conn // the peer is found on the socket itself
			}
			return context.WithValue(ctx, peerKey{}, &peer{conn: c})
		}}
	lim := &limitListener{Listener: ln, slots: make(chan struct{}, s.cfg.MaxConns), refused: h.refused}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lim) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv.Shutdown(sctx) != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// recordPoster posts refusals to the node's records endpoint as the
// session.
func recordPoster(records *url.URL, rt http.RoundTripper) func(context.Context, []byte) error {
	return func(ctx context.Context, content []byte) error {
		body, _ := json.Marshal(map[string]any{"kind": "note", "content": json.RawMessage(content)})
		req, err := http.NewRequestWithContext(ctx, "POST", records.String(), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("the node answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil
	}
}

// Sidecar returns the bare handler of a session's local MCP endpoint: it
// accepts requests only for /mcp with a loopback Host on port and, if an
// Origin is sent, an http Origin naming a loopback host on that port; it
// forwards them to target through rt (which authenticates as the session)
// without the client's credentials, cookies, Origin or Referer, and streams
// responses back unbuffered.
//
// It does not check who connects: serve it only where nothing but the
// session can connect (ward run serves it inside the runtime's own network
// namespace). Anywhere else use [NewSidecar].
//
// A request's body must arrive within DefaultBodyTimeout (408 otherwise);
// the http.Server serving the handler bounds the headers
// (ReadHeaderTimeout) and idle connections (IdleTimeout), and must have no
// ReadTimeout or WriteTimeout, which would end SSE streams.
func Sidecar(target *url.URL, rt http.RoundTripper, port int) http.Handler {
	h := &sidecar{port: port, owner: -1, bodyTimeout: DefaultBodyTimeout}
	h.proxy = newProxy(target, rt, h)
	return h
}

func newProxy(target *url.URL, rt http.RoundTripper, h *sidecar) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path, pr.Out.URL.RawPath = target.Scheme, target.Host, target.Path, ""
			pr.Out.Host = target.Host
			// The sidecar has checked the client; what reaches the node is
			// the session's own request. The client's credentials and
			// cookies are not the session's, and its Origin names the
			// sidecar, which the node (checking Origin against its own
			// address) would refuse.
			for _, h := range []string{"Authorization", "DPoP", "Cookie", "Origin", "Referer"} {
				pr.Out.Header.Del(h)
			}
		},
		Transport:     rt,
		FlushInterval: -1,
		BufferPool:    &bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if b, ok := r.Context().Value(bodyKey{}).(*deadlineBody); ok && b.late() {
				h.refuse(w, http.StatusRequestTimeout, refusal{"slow request body", h.peerUID(r)}, "",
					fmt.Sprintf("ward sidecar: the request body did not arrive within %v: send it at once", h.bodyTimeout))
				return
			}
			http.Error(w, "ward sidecar: cannot reach the gateway: "+err.Error(), http.StatusBadGateway)
		},
	}
}

// bufferPool holds the buffers the proxy copies answers through: without
// one it allocates 32 KiB for every answer, most of what forwarding one
// call allocated.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// deadlineBody is a request body read under a deadline on the connection,
// lifted once the whole body has been read (io.EOF), so the answer that
// follows (an SSE stream) is not cut off. After any other error the
// deadline stands: the server then reads what is left of the body to
// reuse the connection, and that read must be bounded too.
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	deadline time.Time
	read     atomic.Bool // the whole body was read
}

// bodyKey finds a request's deadlineBody in its context (the proxy hands
// its error handler a copy of the request with another body).
type bodyKey struct{}

func newDeadlineBody(w http.ResponseWriter, body io.ReadCloser, timeout time.Duration) (*deadlineBody, bool) {
	b := &deadlineBody{ReadCloser: body, rc: http.NewResponseController(w), deadline: time.Now().Add(timeout)}
	return b, b.rc.SetReadDeadline(b.deadline) == nil
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.lift()
	}
	return n, err
}

// lift removes the deadline once the whole body was read.
func (b *deadlineBody) lift() {
	if !b.read.Swap(true) {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

// late reports that the body was not read whole by its deadline. (The
// error a reader sees may be the request's context, cancelled by the
// server when the deadline broke the connection.)
func (b *deadlineBody) late() bool {
	return !b.read.Load() && !time.Now().Before(b.deadline)
}

// limitListener hands out at most cap(slots) connections at once; it
// answers any more with 503 and closes them (and reports the refusal).
type limitListener struct {
	net.Listener
	slots   chan struct{}
	refused *refusals
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
			go l.refuse(c)
		}
	}
}

func (l *limitListener) refuse(c net.Conn) {
	defer c.Close()
	uid := int64(-1)
	if id, err := peerUID(c); err == nil {
		uid = int64(id)
	}
	l.refused.add(refusal{"too many connections", uid}, "")
	msg := fmt.Sprintf("ward mcp serve: too many connections open (limit %d): close idle ones or retry later\n", cap(l.slots))
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
}

// limitedConn gives its slot back when it is closed.
type limitedConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.free)
	return c.Conn.Close()
}

// slowHeaders reports connections closed without having sent a whole
// request within the header timeout: the server drops them without an
// answer, and a refusal that leaves no record is not allowed.
type slowHeaders struct {
	timeout time.Duration
	refused *refusals

	mu     sync.Mutex
	opened map[net.Conn]time.Time // connections that have not sent a request yet
}

func (s *slowHeaders) state(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	opened, waiting := s.opened[c]
	switch st {
	case http.StateNew:
		s.opened[c] = time.Now()
	default:
		delete(s.opened, c)
	}
	s.mu.Unlock()
	if st != http.StateClosed || !waiting || time.Since(opened) < s.timeout {
		return
	}
	// The sidecar has closed its end; a TCP client's socket can still be
	// found, a Unix socket's credentials no longer can (-1).
	uid := int64(-1)
	if lc, ok := c.(*limitedConn); ok {
		if id, err := peerUID(lc.Conn); err == nil {
			uid = int64(id)
		}
	}
	s.refused.add(refusal{"slow request header", uid}, "")
}

// sidecar is the endpoint's handler; see Sidecar and SidecarServer.Serve.
type sidecar struct {
	proxy       http.Handler
	port        int   // TCP port that Host and Origin must name; 0 on a Unix socket (no Host check)
	owner       int64 // the only uid served; -1: who connects is not checked
	token       tokenDigest
	hasToken    bool
	refused     *refusals     // nil: refusals are not reported
	bodyTimeout time.Duration // bounds reading a request's body
	maxBody     int64         // bounds a request's body; 0: DefaultMaxBodyBytes
}

// peer is the process at the other end of one connection, found once, on
// the connection's first request.
type peer struct {
	conn net.Conn
	once sync.Once
	id   uint32
	err  error
}

type peerKey struct{}

func (p *peer) uid() (uint32, error) {
	p.once.Do(func() { p.id, p.err = peerUID(p.conn) })
	return p.id, p.err
}

func (s *sidecar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody && s.bodyTimeout > 0 {
		// The deadline stands for a refused request too, whose body the
		// server reads (in part) before it reads the next request.
		if b, ok := newDeadlineBody(w, r.Body, s.bodyTimeout); ok {
			r.Body = b
			r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, b))
		}
	}
	if s.owner >= 0 && !s.ownerConnected(w, r) {
		return
	}
	if r.Method == http.MethodOptions && s.preflight(w, r) {
		return
	}
	path := r.URL.Path
	if s.hasToken {
		var ok bool
		if path, ok = s.tokenPresented(w, r); !ok {
			return
		}
	}
	if s.port != 0 && !loopbackHost(r.Host, s.port) {
		s.refuse(w, http.StatusForbidden, refusal{"foreign Host", -1}, r.Host,
			"ward sidecar: Host "+trim(r.Host, 100)+" refused (DNS rebinding protection): use 127.0.0.1")
		return
	}
	if origins := r.Header.Values("Origin"); len(origins) > 0 {
		if len(origins) > 1 || !s.loopbackOrigin(origins[0]) {
			s.refuse(w, http.StatusForbidden, refusal{"foreign Origin", -1}, strings.Join(origins, ", "),
				"ward sidecar: Origin "+trim(strings.Join(origins, ", "), 100)+" refused (DNS rebinding protection): only pages of this endpoint's own address may call it")
			return
		}
	}
	if path != "/mcp" {
		http.NotFound(w, r)
		return
	}
	s.allowOrigin(w, r)
	if !s.readBody(w, r) {
		return
	}
	s.proxy.ServeHTTP(w, r)
}

// DefaultMaxBodyBytes bounds one request body the sidecar forwards: one
// MCP message, as the node bounds it (streamable.DefaultMaxBodyBytes).
const DefaultMaxBodyBytes = 4 << 20

// readBody reads a request's body whole, under its deadline, before the
// request is forwarded. Only then is the connection's read deadline lifted
// for certain: a body forwarded as it arrives may be read to its length
// but never to io.EOF, leaving the deadline to cut the answer's stream
// once it passes. An MCP message is small and the node reads it whole
// anyway. A body that is late is answered 408, one that is too large 413.
func (s *sidecar) readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	limit := cmp.Or(s.maxBody, DefaultMaxBodyBytes)
	tooLarge := func() bool {
		s.refuse(w, http.StatusRequestEntityTooLarge, refusal{"request body too large", s.peerUID(r)}, "",
			fmt.Sprintf("ward sidecar: the request body exceeds %d bytes: one MCP message must be smaller", limit))
		return false
	}
	if r.ContentLength > limit {
		return tooLarge() // said up front: not read
	}
	// Read to io.EOF, which lifts the deadline (deadlineBody.Read).
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return tooLarge()
	case err != nil:
		if b, ok := r.Context().Value(bodyKey{}).(*deadlineBody); ok && b.late() {
			s.refuse(w, http.StatusRequestTimeout, refusal{"slow request body", s.peerUID(r)}, "",
				fmt.Sprintf("ward sidecar: the request body did not arrive within %v: send it at once", s.bodyTimeout))
			return false
		}
		http.Error(w, "ward sidecar: cannot read the request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	// The node may ask for a DPoP nonce; Transport then sends the body again.
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Header.Del("Transfer-Encoding")
	return true
}

// ownerConnected checks that the connection comes from the owner's uid.
func (s *sidecar) ownerConnected(w http.ResponseWriter, r *http.Request) bool {
	p, _ := r.Context().Value(peerKey{}).(*peer)
	if p == nil {
		s.refuse(w, http.StatusForbidden, refusal{"unknown peer", -1}, "",
			"ward mcp serve: cannot tell which user opened this connection, so it is refused")
		return false
	}
	uid, err := p.uid()
	switch {
	case errors.Is(err, errNoPeerCredentials):
		return true // TCP where the system cannot say: the token decides
	case err != nil:
		s.refuse(w, http.StatusForbidden, refusal{"unknown peer", -1}, "",
			fmt.Sprintf("ward mcp serve: cannot tell which user opened this connection (%v), so it is refused; if this persists, serve on a Unix socket (ward mcp serve --listen unix:PATH)", err))
		return false
	case int64(uid) != s.owner:
		s.refuse(w, http.StatusForbidden, refusal{"not the owner", int64(uid)}, "",
			fmt.Sprintf("ward mcp serve: this endpoint serves only the user who started it (uid %d); this connection comes from uid %d. Run your own sidecar as that user: ward mcp serve --session ID", s.owner, uid))
		return false
	}
	return true
}

// tokenPresented checks the token, from the Authorization header or the
// path /mcp/TOKEN; every token presented must be right. It returns the
// path without the token.
func (s *sidecar) tokenPresented(w http.ResponseWriter, r *http.Request) (string, bool) {
	const how = `send the header "Authorization: Bearer TOKEN" or use the URL http://HOST:PORT/mcp/TOKEN, with the token ward mcp serve printed when it started (or the content of its --token-file)`
	path := r.URL.Path
	var presented []string
	switch auth := r.Header.Values("Authorization"); len(auth) {
	case 0:
	case 1:
		scheme, tok, ok := strings.Cut(auth[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			s.unauthorized(w, r, "malformed Authorization", "ward mcp serve: Authorization must be \"Bearer TOKEN\": "+how)
			return "", false
		}
		presented = append(presented, tok)
	default:
		s.unauthorized(w, r, "malformed Authorization", "ward mcp serve: send one Authorization header: "+how)
		return "", false
	}
	if tok, ok := strings.CutPrefix(path, "/mcp/"); ok {
		presented, path = append(presented, tok), "/mcp"
	}
	if len(presented) == 0 {
		s.unauthorized(w, r, "no token", "ward mcp serve: this endpoint needs its token: "+how)
		return "", false
	}
	for _, tok := range presented {
		if !s.token.matches(tok) {
			s.unauthorized(w, r, "wrong token", "ward mcp serve: the token presented is not this endpoint's (without --token-file it changes at every start): "+how)
			return "", false
		}
	}
	return path, true
}

func (s *sidecar) unauthorized(w http.ResponseWriter, r *http.Request, reason, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="ward mcp serve"`)
	s.refuse(w, http.StatusUnauthorized, refusal{reason, s.peerUID(r)}, "", msg)
}

// peerUID is the uid of the request's client when the sidecar checks it,
// -1 otherwise.
func (s *sidecar) peerUID(r *http.Request) int64 {
	if p, _ := r.Context().Value(peerKey{}).(*peer); p != nil && s.owner >= 0 {
		if id, err := p.uid(); err == nil {
			return int64(id)
		}
	}
	return -1
}

func (s *sidecar) refuse(w http.ResponseWriter, status int, k refusal, example, msg string) {
	s.refused.add(k, example)
	http.Error(w, msg, status)
}

var loopbackNames = []string{"127.0.0.1", "localhost", "[::1]"}

// loopbackHost reports whether hostport names a loopback host on port.
func loopbackHost(hostport string, port int) bool {
	hostport = strings.ToLower(hostport)
	for _, h := range loopbackNames {
		if hostport == fmt.Sprintf("%s:%d", h, port) {
			return true
		}
	}
	return false
}

// loopbackOrigin accepts a serialized origin http://HOST[:PORT] naming a
// loopback host. Without a token (ward run's sidecar, on TCP) only the
// sidecar's own port is accepted; an endpoint that demands its token (ward
// mcp serve) or is a Unix socket accepts a page of any loopback port, so
// that browser-based clients served on their own port (the MCP Inspector)
// can call it: the token, which such a page has only if the user gave it,
// still decides. A page of any other host is refused whatever it presents
// (DNS rebinding).
func (s *sidecar) loopbackOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Opaque != "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return false
	}
	if s.port != 0 && !s.hasToken {
		return loopbackHost(u.Host, s.port)
	}
	if p := u.Port(); p != "" && (p[0] == '0' || !validPort(p)) {
		return false
	}
	switch strings.ToLower(u.Hostname()) {
	case "127.0.0.1", "localhost", "::1":
		return true
	}
	return false
}

// validPort reports whether p is a decimal port 1..65535.
func validPort(p string) bool {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' || n > 65535 {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

// corsHeaders are the request headers a browser-based MCP client sends.
const corsHeaders = "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-Id"

// preflight answers a CORS preflight (OPTIONS with
// Access-Control-Request-Method) from an accepted loopback origin, before
// the token is checked: browsers send no credentials on a preflight, and
// the answer grants nothing by itself. Other OPTIONS requests are left to
// the checks that follow (it reports false).
func (s *sidecar) preflight(w http.ResponseWriter, r *http.Request) bool {
	origins := r.Header.Values("Origin")
	if r.Header.Get("Access-Control-Request-Method") == "" || len(origins) != 1 || !s.loopbackOrigin(origins[0]) ||
		(s.port != 0 && !loopbackHost(r.Host, s.port)) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origins[0])
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// allowOrigin lets the page of an accepted loopback Origin read the answer
// and its session id.
func (s *sidecar) allowOrigin(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate")
		h.Add("Vary", "Origin")
	}
}
