// Package wardauth is the check a service puts in front of the HTTP
// handlers that AI agents call through ward, in one line:
//
//	http.ListenAndServeTLS(addr, cert, key, wardauth.Must(wardauth.Config{
//		Node: "https://ward.internal:8443", Bundle: "/etc/ward/bundle.pem", Audience: "billing", MinTrust: 60,
//	}).Wrap(mux))
//
// Every request must carry the calling agent's SVID: its X.509-SVID as the
// TLS client certificate (the server asks for one: see [Verifier.TLSConfig]),
// or its JWT-SVID for Config.Audience as "Authorization: Bearer <token>".
// The middleware asks the ward node (POST /v1/verify) whether the SVID
// verifies against the trust domain, whether its session is still active
// (not ended, not revoked) and its agent not quarantined, and what the
// agent's trust score is; a request passes only if all hold and the score
// is at least Config.MinTrust. What passes reaches the handler with the
// caller in its context ([CallerFrom]); what does not is answered 401 (no
// credential, or one that does not verify) or 403 (revoked, quarantined,
// trusted too little), as a JSON {"error": "..."} naming why.
//
// It fails closed: a node that cannot be reached, answers out of form or
// takes longer than Config.Timeout denies the request (503). Answers are
// kept for Config.CacheTTL (default one second) per credential, so a
// revocation or quarantine is seen within that time.
package wardauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/strictjson"
)

// Defaults for [Config].
const (
	DefaultCacheTTL = time.Second
	DefaultTimeout  = 5 * time.Second
	// maxAnswer bounds the node's answer.
	maxAnswer = 64 << 10
	// maxCache bounds the answers kept.
	maxCache = 10000
)

// Config configures a [Verifier].
type Config struct {
	// Node is the ward node's base URL, e.g. https://ward.internal:8443.
	Node string
	// Bundle is the path of the trust domain's CA bundle (the node's
	// DATA/bundle.pem, or GET /.well-known/spiffe-bundle), which verifies
	// the node's TLS certificate; BundlePEM, if set, is used instead.
	Bundle    string
	BundlePEM []byte
	// Audience is this service's name in the JWT-SVIDs agents present to
	// it; empty: JWT-SVIDs are not accepted, only mutual TLS.
	Audience string
	// MinTrust is the lowest trust score (0-100) let through.
	MinTrust int
	// CacheTTL is how long an answer is reused for the same credential;
	// default DefaultCacheTTL, negative: never.
	CacheTTL time.Duration
	// Timeout bounds one question to the node; default DefaultTimeout.
	Timeout time.Duration
	// Client asks the node; nil: one trusting only the bundle.
	Client *http.Client
}

// Caller is the agent a request came from, as ward vouches for it.
type Caller struct {
	SPIFFEID      string `json:"spiffe_id"`
	Agent         string `json:"agent"`
	Sponsor       string `json:"sponsor"`
	Session       string `json:"session"`
	Trust         int    `json:"trust"`
	ObjectiveHash string `json:"objective_hash"`
	Depth         int    `json:"depth"`
}

// Verifier checks callers against a ward node. It is safe for concurrent
// use.
type Verifier struct {
	cfg   Config
	roots *x509.CertPool

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	v       view
	expires time.Time
}

// view is the node's answer (api.VerifyView).
type view struct {
	Valid         bool   `json:"valid"`
	SPIFFEID      string `json:"spiffe_id"`
	Agent         string `json:"agent"`
	Sponsor       string `json:"sponsor"`
	Session       string `json:"session"`
	Status        string `json:"status"`
	Trust         int    `json:"trust"`
	ObjectiveHash string `json:"objective_hash"`
	Depth         int    `json:"depth"`
}

// New validates cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if !strings.HasPrefix(cfg.Node, "https://") {
		return nil, errors.New("wardauth: Node must be the ward node's https:// URL")
	}
	cfg.Node = strings.TrimRight(cfg.Node, "/")
	if cfg.MinTrust < 0 || cfg.MinTrust > 100 {
		return nil, fmt.Errorf("wardauth: MinTrust %d is not in 0-100", cfg.MinTrust)
	}
	if cfg.BundlePEM == nil {
		if cfg.Bundle == "" {
			return nil, errors.New("wardauth: give the trust domain's bundle (Bundle: DATA/bundle.pem)")
		}
		b, err := os.ReadFile(cfg.Bundle)
		if err != nil {
			return nil, fmt.Errorf("wardauth: bundle: %w", err)
		}
		cfg.BundlePEM = b
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cfg.BundlePEM) {
		return nil, errors.New("wardauth: the bundle holds no PEM certificate")
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Verifier{cfg: cfg, roots: roots, cache: map[[32]byte]cached{}}, nil
}

// Must is New that panics on a bad configuration, for the one line of
// setup in main.
func Must(cfg Config) *Verifier {
	v, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return v
}

// TLSConfig is a server TLS configuration that asks clients for their
// X.509-SVID (the middleware verifies it through the node) and presents
// cert. Agents without one can still send a JWT-SVID.
func (v *Verifier) TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
}

// Error is why a request was refused, with the HTTP status to answer.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

type ctxKey struct{}

// CallerFrom returns the verified caller of a request that passed the
// middleware.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Caller)
	return c, ok
}

// Wrap returns next behind the check.
func (v *Verifier) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Check(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				e = &Error{Status: http.StatusServiceUnavailable, Reason: err.Error()}
			}
			if e.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ward"`)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(e.Status)
			json.NewEncoder(w).Encode(map[string]string{"error": e.Reason})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

// Check verifies the caller of r. Its error is an *Error.
func (v *Verifier) Check(r *http.Request) (*Caller, error) {
	var body map[string]string
	switch {
	case r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
		var buf bytes.Buffer
		for _, c := range r.TLS.PeerCertificates {
			pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		body = map[string]string{"x509_svid": buf.String()}
	default:
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(tok) == "" {
			return nil, &Error{http.StatusUnauthorized, "present your X.509-SVID as the TLS client certificate, or your JWT-SVID as Authorization: Bearer"}
		}
		if v.cfg.Audience == "" {
			return nil, &Error{http.StatusUnauthorized, "this service accepts X.509-SVIDs (mutual TLS) only"}
		}
		body = map[string]string{"jwt_svid": strings.TrimSpace(tok), "audience": v.cfg.Audience}
	}
	ans, err := v.ask(r.Context(), body)
	if err != nil {
		return nil, err
	}
	switch {
	case !ans.Valid && ans.Status == "quarantined":
		return nil, &Error{http.StatusForbidden, fmt.Sprintf("agent %s is quarantined", ans.Agent)}
	case !ans.Valid:
		return nil, &Error{http.StatusForbidden, fmt.Sprintf("session %s is no longer active (ended or revoked)", ans.Session)}
	case ans.Trust < v.cfg.MinTrust:
		return nil, &Error{http.StatusForbidden, fmt.Sprintf("agent %s has trust %d, below the %d this service requires", ans.Agent, ans.Trust, v.cfg.MinTrust)}
	}
	return &Caller{SPIFFEID: ans.SPIFFEID, Agent: ans.Agent, Sponsor: ans.Sponsor, Session: ans.Session, Trust: ans.Trust,
		ObjectiveHash: ans.ObjectiveHash, Depth: ans.Depth}, nil
}

// ask asks the node about a credential, or reuses a recent answer.
func (v *Verifier) ask(ctx context.Context, body map[string]string) (view, error) {
	raw, _ := json.Marshal(body)
	key := sha256.Sum256(raw)
	now := time.Now()
	if v.cfg.CacheTTL > 0 {
		v.mu.Lock()
		c, ok := v.cache[key]
		v.mu.Unlock()
		if ok && now.Before(c.expires) {
			return c.v, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.cfg.Node+"/v1/verify", bytes.NewReader(raw))
	if err != nil {
		return view{}, &Error{http.StatusServiceUnavailable, "ward cannot be asked"}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return view{}, &Error{http.StatusServiceUnavailable, "ward cannot be reached to verify the caller (denied)"}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil || len(b) > maxAnswer {
		return view{}, &Error{http.StatusServiceUnavailable, "ward's answer could not be read (denied)"}
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusBadRequest:
		return view{}, &Error{http.StatusUnauthorized, "the SVID does not verify against the trust domain"}
	default:
		return view{}, &Error{http.StatusServiceUnavailable, fmt.Sprintf("ward answered %d (denied)", resp.StatusCode)}
	}
	var ans view
	if err := strictjson.UnmarshalOpen(b, &ans); err != nil || ans.SPIFFEID == "" || ans.Session == "" {
		return view{}, &Error{http.StatusServiceUnavailable, "ward's answer is not in form (denied)"}
	}
	if v.cfg.CacheTTL > 0 {
		v.mu.Lock()
		if len(v.cache) >= maxCache {
			clear(v.cache)
		}
		v.cache[key] = cached{v: ans, expires: now.Add(v.cfg.CacheTTL)}
		v.mu.Unlock()
	}
	return ans, nil
}
