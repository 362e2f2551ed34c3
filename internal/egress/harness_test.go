package egress

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The proxy credentials of the test session.
const (
	testSession = "s1"
	testToken   = "proxy-token-0123456789"
)

// fakeAuth knows one session. It checks that every call has a deadline.
type fakeAuth struct{ t testing.TB }

func (a fakeAuth) AuthenticateProxy(ctx context.Context, user, password string) (*Identity, error) {
	if _, ok := ctx.Deadline(); !ok {
		a.t.Errorf("AuthenticateProxy called without a deadline")
	}
	if user != testSession || subtle.ConstantTimeCompare([]byte(password), []byte(testToken)) != 1 {
		return nil, errors.New("unknown session or wrong token")
	}
	return &Identity{Session: user, Agent: "reporter", Sponsor: "alice", SPIFFEID: "spiffe://example.org/agent/reporter/session/" + user}, nil
}

// fakeDecider allows what allow says (everything if nil) and checks the
// contract of what it is asked.
type fakeDecider struct {
	t     testing.TB
	allow func(*Request) (bool, string)
	err   error

	mu   sync.Mutex
	seen []Request
}

func (d *fakeDecider) DecideEgress(ctx context.Context, id *Identity, r *Request) (Verdict, error) {
	if _, ok := ctx.Deadline(); !ok {
		d.t.Errorf("DecideEgress called without a deadline")
	}
	if id == nil || id.Session != testSession {
		d.t.Errorf("DecideEgress: identity %+v, want session %s", id, testSession)
	}
	if err := checkRequest(r); err != nil {
		d.t.Errorf("DecideEgress: %v", err)
	}
	d.mu.Lock()
	d.seen = append(d.seen, *r)
	d.mu.Unlock()
	if d.err != nil {
		return Verdict{}, d.err
	}
	if d.allow == nil {
		return Verdict{Allow: true, Reason: "test allows all"}, nil
	}
	ok, reason := d.allow(r)
	return Verdict{Allow: ok, Reason: reason}, nil
}

func (d *fakeDecider) requests() []Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.seen)
}

// checkRequest states what a decided Request always looks like.
func checkRequest(r *Request) error {
	switch {
	case r.Host == "" || r.Host != strings.ToLower(r.Host) || strings.HasSuffix(r.Host, ".") || strings.ContainsAny(r.Host, "[]"):
		return fmt.Errorf("host %q is not canonical", r.Host)
	case r.Port < 1 || r.Port > 65535:
		return fmt.Errorf("port %d out of range", r.Port)
	case r.Tunnel != (r.Method == http.MethodConnect):
		return fmt.Errorf("tunnel %v with method %s", r.Tunnel, r.Method)
	case r.Tunnel && (r.Scheme != "" || r.Path != ""):
		return fmt.Errorf("tunnel with scheme %q path %q", r.Scheme, r.Path)
	case !r.Tunnel && (r.Scheme != "http" && r.Scheme != "https" || !strings.HasPrefix(r.Path, "/")):
		return fmt.Errorf("request with scheme %q path %q", r.Scheme, r.Path)
	}
	return nil
}

// entry is one call to the Recorder.
type entry struct {
	id  *Identity
	req *Request
	rec Record
}

func (e entry) String() string { return fmt.Sprintf("%+v %+v %+v", e.id, *e.req, e.rec) }

// fakeRecorder keeps records and checks the recording contract: per request
// at most one forward record, then exactly one done record, whose decision
// is allow exactly when a forward record came first.
type fakeRecorder struct {
	t    testing.TB
	fail func(Record) error

	mu      sync.Mutex
	cond    sync.Cond
	entries []entry
	state   map[*Request]string // last phase seen
	nDone   int
}

func newRecorder(t testing.TB) *fakeRecorder {
	r := &fakeRecorder{t: t, state: make(map[*Request]string)}
	r.cond.L = &r.mu
	return r
}

func (r *fakeRecorder) RecordEgress(ctx context.Context, id *Identity, req *Request, rec Record) error {
	if _, ok := ctx.Deadline(); !ok {
		r.t.Errorf("RecordEgress called without a deadline")
	}
	if ctx.Err() != nil {
		r.t.Errorf("RecordEgress called with a dead context: %v", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.state[req]
	switch {
	case rec.Phase == PhaseForward && (prev != "" || rec.Decision != DecisionAllow || rec.Status != 0):
		r.t.Errorf("bad forward record after %q: %+v %+v", prev, *req, rec)
	case rec.Phase == PhaseDone && (prev == PhaseDone || rec.Status == 0):
		r.t.Errorf("bad done record after %q: %+v %+v", prev, *req, rec)
	case rec.Phase == PhaseDone && (rec.Decision == DecisionAllow) != (prev == PhaseForward):
		r.t.Errorf("done record decision %s after %q: %+v %+v", rec.Decision, prev, *req, rec)
	case rec.Phase != PhaseForward && rec.Phase != PhaseDone:
		r.t.Errorf("bad phase %q", rec.Phase)
	case rec.Decision == DecisionAllow && id == nil:
		r.t.Errorf("allowed without identity: %+v", rec)
	}
	if r.fail != nil {
		if err := r.fail(rec); err != nil {
			return err
		}
	}
	r.state[req] = rec.Phase
	r.entries = append(r.entries, entry{id, req, rec})
	if rec.Phase == PhaseDone {
		r.nDone++
		r.cond.Broadcast()
	}
	return nil
}

// waitDone blocks until n done records were kept and returns every record.
func (r *fakeRecorder) waitDone(n int) []entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.nDone < n {
		r.cond.Wait()
	}
	return slices.Clone(r.entries)
}

// done returns the done records among es.
func done(es []entry) []entry {
	var out []entry
	for _, e := range es {
		if e.rec.Phase == PhaseDone {
			out = append(out, e)
		}
	}
	return out
}

// assertNoSecret fails if any record mentions any of secrets.
func assertNoSecret(t *testing.T, es []entry, secrets ...string) {
	t.Helper()
	for _, e := range es {
		for _, s := range secrets {
			if strings.Contains(e.String(), s) {
				t.Errorf("record contains secret %q: %v", s, e)
			}
		}
	}
}

// harness is a proxy serving on loopback with fakes around it.
type harness struct {
	p        *Proxy
	addr     string   // host:port of the proxy
	url      *url.URL // with the test session's credentials
	decider  *fakeDecider
	recorder *fakeRecorder
}

// loopbackOnly is the AllowAddr of tests, whose upstreams are on loopback.
func loopbackOnly(a netip.Addr) bool { return a.IsLoopback() }

// start runs a proxy for cfg. Auth, Decider and Recorder default to the
// fakes; AllowAddr defaults to loopbackOnly.
func start(t testing.TB, cfg Config) *harness {
	h := &harness{decider: &fakeDecider{t: t}, recorder: newRecorder(t)}
	if cfg.Auth == nil {
		cfg.Auth = fakeAuth{t}
	}
	if d, ok := cfg.Decider.(*fakeDecider); ok {
		h.decider = d
	} else if cfg.Decider == nil {
		cfg.Decider = h.decider
	}
	if r, ok := cfg.Recorder.(*fakeRecorder); ok {
		h.recorder = r
	} else if cfg.Recorder == nil {
		cfg.Recorder = h.recorder
	}
	if cfg.AllowAddr == nil {
		cfg.AllowAddr = loopbackOnly
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	h.p, h.addr = p, ln.Addr().String()
	h.url = &url.URL{Scheme: "http", User: url.UserPassword(testSession, testToken), Host: h.addr}
	return h
}

// client returns an HTTP client that uses the proxy and trusts roots.
func (h *harness) client(t testing.TB, roots *x509.CertPool) (*http.Client, *http.Transport) {
	tr := &http.Transport{Proxy: http.ProxyURL(h.url), ForceAttemptHTTP2: false}
	if roots != nil {
		tr.TLSClientConfig = tlsRoots(roots)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, tr
}

func tlsRoots(pool *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: pool} }

// authHeader is the test session's Proxy-Authorization header line.
var authHeader = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(testSession+":"+testToken)) + "\r\n"

// raw sends a hand-written request head to the proxy and returns the
// connection and the response.
func (h *harness) raw(t *testing.T, method, head string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response to %q: %v", head, err)
	}
	return c, br, resp
}

// upstream is an httptest server that counts the connections it accepts.
type upstream struct {
	*httptest.Server
	conns atomic.Int64
}

func newUpstream(t testing.TB, useTLS bool, h http.HandlerFunc) *upstream {
	u := &upstream{Server: httptest.NewUnstartedServer(h)}
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	if useTLS {
		u.EnableHTTP2 = true // as most real upstreams; the proxy negotiates it
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	return u
}

// port is the upstream's port.
func (u *upstream) port() string {
	_, p, _ := net.SplitHostPort(u.Listener.Addr().String())
	return p
}

// roots is a pool with the upstream's certificate.
func (u *upstream) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	if c := u.Certificate(); c != nil {
		pool.AddCert(c)
	}
	return pool
}

// echoListener accepts TCP connections on loopback and echoes them until EOF.
func echoListener(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// newCA returns a self-signed ECDSA CA for interception.
func newCA(t testing.TB) (*x509.Certificate, crypto.Signer) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ward test egress CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
