package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/egress"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/monitor"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/refusal"
)

// Egress configures the node's HTTP(S) egress proxy: the way out for
// agents whose runtime routes their traffic through ward. Each request
// must first have a host the session's grant lists (grant.Scope.Hosts;
// none listed, none reached), and is then decided by policy as the action
// http_request on Host::"<host>", with the session's taint labels in
// context.taint. Every request, refused or not, is recorded in the audit
// log.
type Egress struct {
	// Addr is where the proxy listens ("127.0.0.1:3128"); sessions get
	// their proxy URL from POST /v1/egress/token.
	Addr string
	// Credentials are injected by the proxy into requests to their hosts;
	// agents never see them.
	Credentials []egress.Credential
	// AllowAddr overrides which resolved addresses may be dialled (default
	// egress.PublicAddr: no loopback or internal ranges).
	AllowAddr func(netip.Addr) bool
	// UpstreamRoots verify upstream servers' TLS when the proxy terminates
	// it for brokered credentials (nil: system roots).
	UpstreamRoots *x509.CertPool
}

// egressTokens are the proxy passwords of sessions, kept as SHA-256
// digests. They live in memory: after a restart an agent asks again.
type egressTokens struct {
	mu     sync.Mutex
	digest map[string]tokenEntry // by session
}

type tokenEntry struct {
	digest [32]byte
	expiry time.Time
}

// openEgress starts the proxy when configured.
func (n *Node) openEgress(cfg Config) error {
	if cfg.Egress == nil {
		return nil
	}
	n.egressTokens = &egressTokens{digest: map[string]tokenEntry{}}
	var ca *x509.Certificate
	var caKey *ecdsa.PrivateKey
	if len(cfg.Egress.Credentials) > 0 {
		var err error
		if ca, caKey, err = interceptionCA(filepath.Join(cfg.Data, "keys")); err != nil {
			return fmt.Errorf("egress interception CA: %w", err)
		}
	}
	p, err := egress.New(egress.Config{
		CA: ca, CAKey: caKey, UpstreamRoots: cfg.Egress.UpstreamRoots,
		Auth:        egress.AuthenticatorFunc(n.authenticateProxy),
		Decider:     egress.DeciderFunc(n.decideEgress),
		Recorder:    egress.RecorderFunc(n.recordEgress),
		Credentials: cfg.Egress.Credentials,
		AllowAddr:   cfg.Egress.AllowAddr,
		OnResponse:  n.egressResponse,
	})
	if err != nil {
		return fmt.Errorf("egress proxy: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Egress.Addr)
	if err != nil {
		return fmt.Errorf("egress proxy: listen %s: %w", cfg.Egress.Addr, err)
	}
	n.Egress, n.egressLn = p, ln
	return nil
}

// interceptionCA loads or creates the CA the egress proxy signs its TLS
// certificates for hosts with brokered credentials with. Only runtimes
// that route through the proxy should trust it (DATA/keys/egress-ca.pem);
// it is separate from the trust domain's CA.
func interceptionCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, created, err := identity.LoadOrCreateECKey(filepath.Join(dir, "egress-ca.key"))
	if err != nil {
		return nil, nil, err
	}
	pemPath := filepath.Join(dir, "egress-ca.pem")
	if !created {
		if b, err := os.ReadFile(pemPath); err == nil {
			if blk, _ := pem.Decode(b); blk != nil {
				if cert, err := x509.ParseCertificate(blk.Bytes); err == nil && cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) && time.Now().Before(cert.NotAfter) {
					return cert, key, nil
				}
			}
		}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "ward egress interception CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(pemPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// EgressAddr is where the egress proxy listens, or "" without one.
func (n *Node) EgressAddr() string {
	if n.egressLn == nil {
		return ""
	}
	return n.egressLn.Addr().String()
}

// EgressToken issues the calling session's proxy credentials: a fresh
// token replaces the previous one. The answer is the proxy URL to put in
// HTTP_PROXY and HTTPS_PROXY.
func (n *Node) EgressToken(ctx context.Context, c *gateway.Caller) (string, error) {
	if n.Egress == nil {
		return "", errors.New("this node runs no egress proxy")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	n.egressTokens.mu.Lock()
	n.egressTokens.digest[c.Session] = tokenEntry{digest: sha256.Sum256([]byte(token)), expiry: c.Expiry}
	n.egressTokens.mu.Unlock()
	return "http://" + c.Session + ":" + token + "@" + n.EgressAddr(), nil
}

// forgetEgress drops ended sessions' proxy tokens and closes what they have
// in flight.
func (n *Node) forgetEgress(ids []string) {
	if n.Egress == nil {
		return
	}
	n.egressTokens.mu.Lock()
	for _, id := range ids {
		delete(n.egressTokens.digest, id)
	}
	n.egressTokens.mu.Unlock()
	for _, id := range ids {
		n.Egress.CloseSession(id)
	}
}

func (n *Node) authenticateProxy(ctx context.Context, session, token string) (*egress.Identity, error) {
	n.egressTokens.mu.Lock()
	e, ok := n.egressTokens.digest[session]
	n.egressTokens.mu.Unlock()
	d := sha256.Sum256([]byte(token))
	if !ok || subtle.ConstantTimeCompare(d[:], e.digest[:]) != 1 || time.Now().After(e.expiry) {
		return nil, errors.New("unknown session or proxy token")
	}
	c, err := n.Auth.Caller(ctx, session)
	if err != nil {
		return nil, err
	}
	return &egress.Identity{Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, SPIFFEID: c.SPIFFEID}, nil
}

// decideEgress decides a request through the enforcement pipeline, as the
// action http_request: a host the session's grant does not list is refused
// before policy is asked, whatever the policies say (for a CONNECT tunnel
// and for each request inside a brokered one alike); the destination's
// provenance is checked; the monitor sees every request. Escalation is not
// offered on this path: a request that would need approval is refused,
// saying so. The proxy records the decision (egress events).
func (n *Node) decideEgress(ctx context.Context, id *egress.Identity, r *egress.Request) (egress.Verdict, error) {
	c, err := n.Auth.Caller(ctx, id.Session)
	if err != nil {
		return egress.Verdict{}, err
	}
	hr := &policy.HTTPRequest{Method: r.Method, Scheme: r.Scheme, Host: r.Host, Port: r.Port}
	if r.Tunnel {
		// A tunnel has neither scheme nor path: what goes through it is
		// decided by host and port alone.
		hr.Method, hr.Scheme = policy.MethodConnect, ""
	} else if hr.Path, err = policy.CleanHTTPPath(r.Path); err != nil {
		return egress.Verdict{Reason: "the request path is not a valid URL path"}, nil
	} else if l := strings.ToLower(hr.Path); strings.Contains(l, "%2f") || strings.Contains(l, "%5c") {
		// A server that decodes an encoded separator before it routes
		// reads another path than the one decided: refused.
		return egress.Verdict{Reason: "the request path holds an encoded / or \\; ward refuses it rather than guess how the server reads it"}, nil
	} else if strings.Contains(hr.Path, ";") {
		// Servers that take ';' for path parameters (Tomcat, Spring)
		// read "/x/..;/admin" as "/admin": refused.
		return egress.Verdict{Reason: "the request path holds a ';' (path parameters); ward refuses it rather than guess how the server reads it"}, nil
	} else if strings.Contains(r.Path, "//") {
		// An empty segment is significant in the normal form ("//admin"
		// is not under "/admin/"), but servers that merge slashes before
		// they route read another path: refused.
		return egress.Verdict{Reason: "the request path holds an empty segment (//); ward refuses it rather than guess how the server reads it"}, nil
	} else {
		// What is decided is what is forwarded: "/a/../b" and "/a/%2e%2e/b"
		// go out as "/b".
		r.Path = hr.Path
	}
	op := &enforce.Operation{Action: policy.ActionHTTPRequest, Name: r.Host, HTTP: hr}
	v := n.pipeline.Evaluate(ctx, c, op).Verdict
	// The monitor sees every request, refused or not; a refusal's reason
	// stands whatever it answers.
	block := n.watch.observe(ctx, c, monitor.Event{Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Groups: c.Groups,
		Kind: monitor.KindEgress, Name: r.Host, Verb: hr.Method, Decision: v.Outcome()})
	switch {
	case v.Allow && block != "":
		return egress.Verdict{Reason: block}, nil
	case v.Allow:
		if r.Tunnel {
			// What comes through a tunnel cannot be read: the session gets
			// the host's labels before the first byte flows.
			n.sessions.ReceiveHost(ctx, c, r.Host)
		}
		return egress.Verdict{Allow: true, Reason: v.Reason}, nil
	case v.Escalate:
		return egress.Verdict{Reason: "needs approval, which egress requests cannot wait for: refused (" + v.Reason + ")"}, nil
	}
	return egress.Verdict{Reason: v.Reason}, nil
}

func (n *Node) recordEgress(ctx context.Context, id *egress.Identity, r *egress.Request, rec egress.Record) error {
	if rec.Decision == egress.DecisionDeny && (id == nil || rec.Status == http.StatusBadRequest) {
		// Refused before anything was decided (no or bad proxy
		// credentials, a request that is not one): counted with the
		// node's other refusals, so that a flood cannot fill the log.
		ref := refusal.Refusal{Kind: "egress", Status: rec.Status, Method: r.Method, Path: r.Host, Reason: rec.Reason, Source: r.Source}
		if id != nil {
			ref.Principal, ref.Proven, ref.Session, ref.Agent, ref.Sponsor = id.SPIFFEID, true, id.Session, id.Agent, id.Sponsor
		}
		return n.refusals.Record(ctx, ref)
	}
	e := audit.Event{Type: "egress", Data: jsonData(map[string]any{
		"phase": rec.Phase, "decision": rec.Decision, "reason": rec.Reason, "method": r.Method, "scheme": r.Scheme,
		"host": r.Host, "port": r.Port, "path": n.redactPath(r.Host, r.Path), "tunnel": r.Tunnel, "status": rec.Status,
		"bytes_up": rec.BytesUp, "bytes_down": rec.BytesDown, "duration_us": rec.Duration.Microseconds(), "error": rec.Error,
	})}
	if id != nil {
		e.Actor, e.Session, e.Agent, e.Sponsor = id.SPIFFEID, id.Session, id.Agent, id.Sponsor
	}
	_, err := n.Audit.Append(ctx, e)
	return err
}

// redactPath redacts secrets from a URL path before it is recorded
// (webhook and bot URLs carry tokens in their paths), by the same rules as
// call arguments, with "host:HOST" as the tool name.
func (n *Node) redactPath(host, path string) string { return n.redactText("host:"+host, path) }

// redactText redacts a string that is about to be recorded, by the rules
// for the named tool.
func (n *Node) redactText(name, text string) string {
	if text == "" {
		return ""
	}
	doc, _ := json.Marshal(text)
	out, _, err := n.redactor.JSON(name, doc)
	var clean string
	if err != nil || json.Unmarshal(out, &clean) != nil {
		return "(not recorded: it could not be redacted)"
	}
	return clean
}

// maxInspect bounds how much of a response body is scanned and indexed.
const maxInspect = 1 << 20

// egressResponse labels the session with what the host's answers carry
// before the agent sees them, and has the body, as it streams to the
// agent, indexed for provenance (untrusted hosts) and scanned for
// instructions aimed at the model: both happen before the agent reads the
// body's end.
func (n *Node) egressResponse(id *egress.Identity, r *egress.Request, resp *http.Response) {
	ctx := context.Background()
	c, err := n.Auth.Caller(ctx, id.Session)
	if err != nil {
		return
	}
	n.sessions.ReceiveHost(ctx, c, r.Host)
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	if ct != "" && !strings.HasPrefix(ct, "text/") && !strings.Contains(ct, "json") && !strings.Contains(ct, "xml") && !strings.Contains(ct, "javascript") {
		return // images, archives, ...: nothing addressed to the model
	}
	encoding := strings.ToLower(resp.Header.Get("Content-Encoding"))
	resp.Body = &inspectBody{rc: resp.Body, done: func(body []byte, truncated bool) {
		sum := sha256.Sum256(body)
		inspected := true
		switch encoding {
		case "", "identity":
		case "gzip", "x-gzip":
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				body, _ = io.ReadAll(io.LimitReader(zr, maxInspect+1))
			} else {
				inspected = false
			}
		default:
			inspected = false // an encoding ward cannot read
		}
		if !inspected {
			// Not indexable: provenance must not clear what it cannot see.
			body = make([]byte, maxInspect+1)
		}
		idx, err := n.Audit.Append(ctx, audit.Event{Type: "egress.content", Actor: "ward", Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
			Data: jsonData(map[string]any{"host": r.Host, "path": n.redactPath(r.Host, r.Path), "encoding": encoding, "inspected": inspected,
				"truncated": truncated, "sha256": hex.EncodeToString(sum[:])})})
		if err != nil {
			n.cfg.Logger.Error("recording egress content failed", "err", err)
		}
		n.sessions.Receive(ctx, c, enforce.Received{Host: r.Host, Event: idx, Body: body})
	}}
}

// inspectBody passes a response body through, keeping its first
// maxInspect bytes, and hands them to done once, at the end of the body
// or when it is closed early.
type inspectBody struct {
	rc        io.ReadCloser
	buf       []byte
	truncated bool
	once      sync.Once
	done      func(body []byte, truncated bool)
}

func (b *inspectBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	// One byte more than is inspected: a longer body is seen as such
	// (provenance then reports it as partial rather than clearing it).
	if keep := min(n, maxInspect+1-len(b.buf)); keep > 0 {
		b.buf = append(b.buf, p[:keep]...)
	}
	if len(b.buf) > maxInspect {
		b.truncated = true
	}
	if err != nil {
		b.finish()
	}
	return n, err
}

func (b *inspectBody) Close() error {
	b.finish()
	return b.rc.Close()
}

func (b *inspectBody) finish() { b.once.Do(func() { b.done(b.buf, b.truncated) }) }
