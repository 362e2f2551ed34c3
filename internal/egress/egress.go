package egress

import (
	"cmp"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults for the limits in Config.
const (
	// DefaultMaxHeaderBytes bounds the request line and headers of one request.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultIdleTimeout closes a tunnel with no traffic either way, or a
	// keep-alive connection with no request, after this long.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMaxTunnelsPerSession bounds one session's open tunnels.
	DefaultMaxTunnelsPerSession = 64
	// DefaultMaxTunnels bounds the open tunnels of all sessions.
	DefaultMaxTunnels = 4096
)

// Deadlines the proxy applies on its own.
const (
	readHeaderTimeout     = 10 * time.Second // request headers, and the agent's TLS handshake when intercepting
	callTimeout           = 5 * time.Second  // each Authenticator, Decider and Recorder call
	lookupTimeout         = 5 * time.Second  // resolving a destination
	dialTimeout           = 10 * time.Second // connecting to a destination
	responseHeaderTimeout = 5 * time.Minute  // an upstream's response headers (slow model APIs included)
	leafValidity          = 24 * time.Hour   // minted interception certificates
	leafRenewBefore       = time.Hour        // mint anew when a cached one has less left
	leafBackdate          = 5 * time.Minute  // tolerate clock skew in the sandbox
)

// Identity is who sent a proxy request: the ward session that the proxy
// credentials belong to.
type Identity struct {
	Session  string // ward session ID, the proxy user name
	Agent    string // registered agent name
	Sponsor  string // the agent's accountable sponsor
	SPIFFEID string // spiffe://TD/agent/NAME/session/ID
}

// Authenticator checks proxy credentials.
type Authenticator interface {
	// AuthenticateProxy returns the identity that user (a session ID) and
	// password (that session's proxy token) belong to, or an error if they
	// are not valid now. The error is recorded, so it must not contain the
	// password; the agent only sees 407.
	AuthenticateProxy(ctx context.Context, user, password string) (*Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, user, password string) (*Identity, error)

// AuthenticateProxy calls f.
func (f AuthenticatorFunc) AuthenticateProxy(ctx context.Context, user, password string) (*Identity, error) {
	return f(ctx, user, password)
}

// Request is what the proxy asks the Decider about and reports to the
// Recorder. Implementations must not modify it.
type Request struct {
	// Method is "CONNECT" for a tunnel, else the HTTP method.
	Method string
	// Scheme is "http" or "https"; "" for a tunnel, whose content the proxy
	// does not see.
	Scheme string
	// Host is a lower-case DNS name without a trailing dot, or an IP address
	// in canonical form without brackets (IPv4-mapped IPv6 unmapped).
	Host string
	// Port is in 1..65535, the scheme's default if the URL had none.
	Port int
	// Path is the escaped URL path without the query, "/" if empty; "" for
	// a tunnel.
	Path string
	// Source is the address the request came from, without the port.
	Source string
	// Tunnel is set for CONNECT.
	Tunnel bool
}

// Verdict is a Decider's answer.
type Verdict struct {
	Allow bool
	// Reason is recorded and, for a denial, shown to the agent.
	Reason string
}

// Decider decides each request; host allowlists and policy live behind it.
type Decider interface {
	// DecideEgress is called for every CONNECT, every forwarded request and
	// every request inside an intercepted tunnel. An error denies (502).
	// It may replace r.Path with the form it decided on (normal form):
	// the proxy forwards r.Path, never the agent's spelling of it.
	DecideEgress(ctx context.Context, id *Identity, r *Request) (Verdict, error)
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(ctx context.Context, id *Identity, r *Request) (Verdict, error)

// DecideEgress calls f.
func (f DeciderFunc) DecideEgress(ctx context.Context, id *Identity, r *Request) (Verdict, error) {
	return f(ctx, id, r)
}

// Record phases; see the package documentation for when each is written.
const (
	PhaseForward = "forward" // allowed, about to act on the request
	PhaseDone    = "done"    // finished, one per request
)

// Decisions in a Record.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// Record is one report about a request.
type Record struct {
	Phase    string // PhaseForward or PhaseDone
	Decision string // DecisionAllow or DecisionDeny
	// Reason is the Decider's reason, or why the proxy refused.
	Reason string
	// Status is the HTTP status the agent got (200 for an established
	// tunnel); 0 in a PhaseForward record.
	Status int
	// BytesUp and BytesDown are body bytes (tunnel bytes for a tunnel) sent
	// by the agent and delivered to it.
	BytesUp, BytesDown int64
	// Duration runs from the request's arrival to this record.
	Duration time.Duration
	// Error is what went wrong inside ward or upstream, for operators.
	Error string
}

// Recorder receives records. An error on a PhaseForward record stops the
// request before anything is sent upstream.
type Recorder interface {
	// RecordEgress records rec about r. id is nil if the agent did not
	// authenticate, and r has only Method and Tunnel if the request was
	// refused before its target was parsed. Both records of one request
	// carry the same r.
	RecordEgress(ctx context.Context, id *Identity, r *Request, rec Record) error
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, id *Identity, r *Request, rec Record) error

// RecordEgress calls f.
func (f RecorderFunc) RecordEgress(ctx context.Context, id *Identity, r *Request, rec Record) error {
	return f(ctx, id, r, rec)
}

// Config configures a Proxy. Auth, Decider and Recorder are required.
type Config struct {
	Auth     Authenticator
	Decider  Decider
	Recorder Recorder

	// OnResponse, if set, is called with the upstream response of every
	// forwarded and intercepted request before it is sent to the agent
	// (taint labelling). It must not read the body.
	OnResponse func(id *Identity, r *Request, resp *http.Response)

	// Credentials are injected into requests to their hosts; CA and CAKey
	// sign the certificates presented to the agent when intercepting TLS
	// for them, and are required if there are credentials. Best use a CA
	// made for interception and trusted only inside sandboxes.
	Credentials []Credential
	CA          *x509.Certificate
	CAKey       crypto.Signer
	// UpstreamRoots verifies upstream TLS servers; nil means the system roots.
	UpstreamRoots *x509.CertPool

	// Dial connects to a checked destination address ("tcp", "IP:port");
	// nil means a net.Dialer. The proxy bounds each dial by its own timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// AllowAddr reports whether a resolved destination address may be
	// dialled; nil means PublicAddr.
	AllowAddr func(netip.Addr) bool

	// Limits; zero means the default constant of the same name.
	MaxHeaderBytes       int
	IdleTimeout          time.Duration
	MaxTunnelsPerSession int
	MaxTunnels           int
}

// Proxy is the egress proxy. It is an http.Handler for HTTP/1 servers (CONNECT
// needs to hijack the connection); Serve runs it on its own server.
type Proxy struct {
	cfg       Config
	creds     map[credKey]*credential
	leaves    *leafCache
	scrubber  *masker // every credential's secrets, for records
	transport *http.Transport
	buffers   bufferPool // response copy buffers
	server    *http.Server

	mu      sync.Mutex
	closed  bool
	flows   map[*flow]struct{}
	tunnels map[string]int // open tunnels per session
	nTunnel int
}

var _ http.Handler = (*Proxy)(nil)

// discardLog silences net/http's own logging: the proxy reports through its
// Recorder.
var discardLog = log.New(io.Discard, "", 0)

// New checks cfg and returns a proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Auth == nil || cfg.Decider == nil || cfg.Recorder == nil {
		return nil, errors.New("egress: Auth, Decider and Recorder are required")
	}
	if cfg.MaxHeaderBytes < 0 || cfg.IdleTimeout < 0 || cfg.MaxTunnelsPerSession < 0 || cfg.MaxTunnels < 0 {
		return nil, errors.New("egress: negative limit")
	}
	cfg.MaxHeaderBytes = cmp.Or(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	cfg.IdleTimeout = cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxTunnelsPerSession = cmp.Or(cfg.MaxTunnelsPerSession, DefaultMaxTunnelsPerSession)
	cfg.MaxTunnels = cmp.Or(cfg.MaxTunnels, DefaultMaxTunnels)
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: dialTimeout}).DialContext
	}
	if cfg.AllowAddr == nil {
		cfg.AllowAddr = PublicAddr
	}
	creds, err := parseCredentials(cfg.Credentials)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	p := &Proxy{cfg: cfg, creds: creds, flows: make(map[*flow]struct{}), tunnels: make(map[string]int)}
	if len(creds) > 0 {
		if err := checkCA(cfg.CA, cfg.CAKey); err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
		p.leaves = &leafCache{ca: cfg.CA, key: cfg.CAKey, certs: make(map[string]*tls.Certificate)}
		var secrets [][]byte
		for _, c := range creds {
			secrets = append(secrets, c.masks...)
		}
		p.scrubber = newMasker(secrets)
	}
	p.transport = &http.Transport{
		Proxy:                  nil, // never the environment's proxy
		DialContext:            p.dialChecked,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.UpstreamRoots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    readHeaderTimeout,
		ResponseHeaderTimeout:  responseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: int64(cfg.MaxHeaderBytes),
	}
	p.server = p.newServer(p, context.Background)
	return p, nil
}

// newServer returns an HTTP/1 server with the proxy's limits for h.
func (p *Proxy) newServer(h http.Handler, base func() context.Context) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ErrorLog:          discardLog,
		BaseContext:       func(net.Listener) context.Context { return base() },
	}
}

// Serve accepts proxy connections on ln until Close; it then returns nil.
func (p *Proxy) Serve(ln net.Listener) error {
	err := p.server.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops Serve, ends every tunnel and request in flight, and refuses
// requests that arrive later through ServeHTTP.
func (p *Proxy) Close() error {
	err := p.server.Close()
	p.mu.Lock()
	p.closed = true
	for f := range p.flows {
		f.cancel()
	}
	p.mu.Unlock()
	p.transport.CloseIdleConnections()
	return err
}

// CloseSession ends the tunnels and requests in flight for session (when
// the session ends or is quarantined) and returns how many there were. It
// does not stop new ones: the Authenticator refuses those.
func (p *Proxy) CloseSession(session string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for f := range p.flows {
		if f.session == session {
			f.cancel()
			n++
		}
	}
	return n
}

// flow is a tunnel or request in flight.
type flow struct {
	session string
	tunnel  bool
	cancel  context.CancelFunc
}

var (
	errTooManyTunnels = errors.New("too many open tunnels")
	errClosed         = errors.New("proxy is shutting down")
)

// open registers a flow for session and returns its context, which
// CloseSession and Close cancel, and the function that ends it (safe to call
// more than once).
func (p *Proxy) open(ctx context.Context, session string, tunnel bool) (context.Context, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, nil, errClosed
	case tunnel && (p.nTunnel >= p.cfg.MaxTunnels || p.tunnels[session] >= p.cfg.MaxTunnelsPerSession):
		return nil, nil, errTooManyTunnels
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &flow{session: session, tunnel: tunnel, cancel: cancel}
	p.flows[f] = struct{}{}
	if tunnel {
		p.nTunnel++
		p.tunnels[session]++
	}
	return ctx, func() {
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, ok := p.flows[f]; !ok {
			return
		}
		delete(p.flows, f)
		if tunnel {
			p.nTunnel--
			if p.tunnels[session]--; p.tunnels[session] == 0 {
				delete(p.tunnels, session)
			}
		}
	}, nil
}

// sourceOf is the host of a remote address.
func sourceOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// exchange is one request through the proxy, from arrival to its done record.
type exchange struct {
	id     *Identity
	req    *Request
	cred   *credential // nil unless the host has a credential
	start  time.Time
	reason string // the Decider's, once it allowed
}

// ServeHTTP handles one proxy request: CONNECT or absolute-form.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{req: &Request{Method: r.Method, Tunnel: r.Method == http.MethodConnect, Source: sourceOf(r.RemoteAddr)}, start: time.Now()}
	id, err := p.authenticate(r)
	if err != nil {
		w.Header().Set("Proxy-Authenticate", `Basic realm="ward"`)
		p.refuse(r.Context(), w, x, http.StatusProxyAuthRequired, "proxy authentication required", err)
		return
	}
	x.id = id
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r, x)
		return
	}
	if !r.URL.IsAbs() {
		p.refuse(r.Context(), w, x, http.StatusBadRequest, "not a proxy request: the request target must be an absolute URL", nil)
		return
	}
	req, err := parseAbsolute(r.Method, r.URL)
	if err != nil {
		p.refuse(r.Context(), w, x, http.StatusBadRequest, err.Error(), nil)
		return
	}
	req.Source = x.req.Source
	x.req, x.cred = &req, p.credentialFor(&req)
	p.serveRequest(w, r, x)
}

// authenticate checks the request's Proxy-Authorization header.
func (p *Proxy) authenticate(r *http.Request) (*Identity, error) {
	user, password, ok := parseProxyAuth(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return nil, errors.New("no Basic proxy credentials")
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	id, err := p.cfg.Auth.AuthenticateProxy(ctx, user, password)
	if err == nil && id == nil {
		err = errors.New("authenticator returned no identity")
	}
	if err != nil {
		// The Authenticator should not echo the password; make sure.
		return nil, fmt.Errorf("session %s: %s", quote(user), strings.ReplaceAll(err.Error(), password, "[password]"))
	}
	return id, nil
}

// credentialFor returns the credential for r's host and port, if any.
func (p *Proxy) credentialFor(r *Request) *credential {
	if c := p.creds[credKey{r.Host, r.Port}]; c != nil {
		return c
	}
	return p.creds[credKey{r.Host, 0}]
}

// decide asks the Decider about x and keeps its reason in x; on a denial or
// an error it answers the agent and records the request, and returns false.
func (p *Proxy) decide(ctx context.Context, w http.ResponseWriter, x *exchange) bool {
	dctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := p.cfg.Decider.DecideEgress(dctx, x.id, x.req)
	switch {
	case err != nil:
		p.refuse(ctx, w, x, http.StatusBadGateway, "policy decision failed", err)
		return false
	case !v.Allow:
		reason := v.Reason
		if reason == "" {
			reason = "not allowed by policy"
		}
		p.refuse(ctx, w, x, http.StatusForbidden, "denied: "+reason, nil)
		return false
	}
	x.reason = v.Reason
	return true
}

// resolve looks up x's destination; on failure it answers the agent and
// records the request, and returns nil.
func (p *Proxy) resolve(ctx context.Context, w http.ResponseWriter, x *exchange) []netip.AddrPort {
	addrs, err := p.lookup(ctx, x.req.Host, x.req.Port)
	switch {
	case errors.Is(err, errAddrRefused):
		p.refuse(ctx, w, x, http.StatusForbidden, fmt.Sprintf("host %s %v", x.req.Host, errAddrRefused), err)
	case err != nil:
		p.refuse(ctx, w, x, http.StatusBadGateway, "cannot resolve host "+x.req.Host, err)
	}
	return addrs
}

// forwarding writes x's PhaseForward record; if that fails it answers the
// agent and records the refusal, and returns false.
func (p *Proxy) forwarding(ctx context.Context, w http.ResponseWriter, x *exchange) bool {
	if err := p.record(ctx, x, Record{Phase: PhaseForward, Decision: DecisionAllow, Reason: x.reason}); err != nil {
		p.refuse(ctx, w, x, http.StatusBadGateway, "cannot record the request", err)
		return false
	}
	return true
}

// refuse records x as denied with status and answers the agent with reason.
func (p *Proxy) refuse(ctx context.Context, w http.ResponseWriter, x *exchange, status int, reason string, cause error) {
	rec := Record{Phase: PhaseDone, Decision: DecisionDeny, Reason: reason, Status: status}
	if cause != nil {
		rec.Error = cause.Error()
	}
	_ = p.record(ctx, x, rec) // the request is refused whether or not this is kept
	p.answer(w, status, reason)
}

// finish writes the PhaseDone record of a request that was forwarded.
func (p *Proxy) finish(ctx context.Context, x *exchange, status int, up, down int64, cause error) error {
	rec := Record{Phase: PhaseDone, Decision: DecisionAllow, Reason: x.reason, Status: status, BytesUp: up, BytesDown: down}
	if cause != nil {
		rec.Error = cause.Error()
	}
	return p.record(ctx, x, rec)
}

// fail finishes a forwarded request that got no further than ward, and
// answers the agent with msg.
func (p *Proxy) fail(ctx context.Context, w http.ResponseWriter, x *exchange, status int, msg string, cause error) {
	_ = p.finish(ctx, x, status, 0, 0, cause)
	p.answer(w, status, msg)
}

// answer writes a proxy-generated error response.
func (p *Proxy) answer(w http.ResponseWriter, status int, msg string) {
	if p.scrubber != nil {
		msg = p.scrubber.string(msg)
	}
	http.Error(w, "ward egress: "+msg, status)
}

// record sends rec about x to the Recorder, with secrets masked and the
// duration filled in. It runs even if the agent has gone away.
func (p *Proxy) record(ctx context.Context, x *exchange, rec Record) error {
	rec.Duration = time.Since(x.start)
	if p.scrubber != nil {
		rec.Reason, rec.Error = p.scrubber.string(rec.Reason), p.scrubber.string(rec.Error)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	if err := p.cfg.Recorder.RecordEgress(ctx, x.id, x.req, rec); err != nil {
		return fmt.Errorf("record egress: %w", err)
	}
	return nil
}
