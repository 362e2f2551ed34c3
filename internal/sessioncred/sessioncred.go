// Package sessioncred is the agent's side of a ward session: it generates the
// session key (which never leaves the agent), asks for certificates with a
// PKCS#10 request, keeps the session's credentials in a directory, and
// authenticates HTTP requests to ward — by mutual TLS with the X.509-SVID, or
// with the grant plus a fresh DPoP proof of possession of the session key
// on every request ([Transport]).
//
// A credentials directory holds:
//
//	session.json   session id, SPIFFE ID, agent, server URL, expiry (public)
//	key.pem        the session's private key, PKCS#8, mode 0600
//	svid.pem       the X.509-SVID chain
//	bundle.pem     the trust domain's CA certificates
//	grant.jwt      the session grant (useless without key.pem)
//	jwt-svid.txt   the JWT-SVID (a bearer token: treat as a secret)
//
// # The sidecar
//
// `ward mcp serve` ([NewSidecar], [Listen]) is a local MCP endpoint for
// clients that cannot present the session's credentials: it holds the key
// and forwards every request to the node authenticated as the session, by
// mutual TLS with the X.509-SVID over connections it keeps open
// ([Credentials.MTLSTransport]), or, when the node does not see the
// certificate (TLS terminated in front of it), with a [Transport] adding
// the grant and a DPoP proof to every request ([Credentials.NodeTransport]
// chooses). Whatever reaches it acts as the session, so it serves only
// the user who started it (its effective uid):
//
//   - On a Unix socket ("unix:PATH") the kernel names the client: the
//     uid the socket's peer credentials (SO_PEERCRED) recorded at connect
//     must be the owner's. The socket is mode 0600 in a directory of the
//     owner's that nobody else may enter, so others cannot even connect.
//     No token is needed.
//   - On TCP loopback anyone on the host can connect, so every request must
//     carry the sidecar's token (256 random bits, [NewToken], or kept in a
//     file of the owner's, [TokenFile]), compared in constant time, as
//     "Authorization: Bearer TOKEN" or as the URL path /mcp/TOKEN. On
//     Linux, the client's socket must also belong to the owner: the
//     sidecar asks the kernel for the socket at the other end of the
//     connection by its addresses and ports (an exact sock_diag lookup,
//     as ss does, about 15 µs, once per connection; where the kernel has
//     no sock_diag, the same line of /proc/self/net/tcp{,6}, which costs
//     milliseconds) and reads its uid. That uid is the one the socket was
//     created under; a socket no process holds any more (the client
//     closed it) shows uid 0 and inode 0 and is refused, not taken for
//     root's. The check holds where the token alone would not (a token
//     seen in another user's process list or a readable config file); but
//     it cannot tell apart two processes of one user (the owner's browser,
//     driven by any web page, connects as the owner: the token and the
//     Origin check stop it), a socket handed by
//     the owner to another user's process counts as the owner's, and a
//     uid the sidecar's user namespace does not map shows as the overflow
//     uid (65534). So the token is the guard on TCP and the uid check a
//     second one, never the only one.
//
// Root is not the owner unless it runs the sidecar: a root process can
// read the session key anyway, but a daemon that happens to run as root
// should not act as a user's session by connecting to it.
//
// A refused request gets 401 (no or wrong token) or 403 (another user, a
// foreign Host or Origin) with what to do, and is reported: a log line and,
// when the sidecar knows the node's records endpoint, a "note" record of
// the session (POST /v1/records), the first at once and the rest counted
// per [DefaultRefusalInterval]. Tokens are never logged or forwarded.
//
// Host and Origin are checked against DNS rebinding; the node is sent
// neither the client's Origin (it names the sidecar, and the node refuses
// an Origin that is not its own) nor its credentials, cookies or Referer.
package sessioncred

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ward-dev/ward/internal/grant"
)

// Info is the public description of a session, kept in session.json.
type Info struct {
	Session  string    `json:"session"`
	SPIFFEID string    `json:"spiffe_id"`
	Agent    string    `json:"agent"`
	Parent   string    `json:"parent,omitempty"`
	Server   string    `json:"server"`
	Expires  time.Time `json:"expires"`
}

// Credentials are everything an agent holds for one session.
type Credentials struct {
	Info
	Key     *ecdsa.PrivateKey
	SVID    []*x509.Certificate
	Bundle  *x509.CertPool
	Grant   string
	JWTSVID string
}

// NewKey generates a session key (ECDSA P-256).
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// CSR returns a PKCS#10 request signed by key. ward ignores its subject:
// the SPIFFE ID is ward's to assign.
func CSR(key *ecdsa.PrivateKey) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ward session"}}, key)
}

// Save writes creds into dir (created 0700). The key file is 0600.
func Save(dir string, c *Credentials, svidPEM, bundlePEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials dir: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return err
	}
	info, _ := json.MarshalIndent(c.Info, "", "  ")
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{"grant.jwt", []byte(c.Grant + "\n"), 0o600},
		{"jwt-svid.txt", []byte(c.JWTSVID + "\n"), 0o600},
		{"svid.pem", svidPEM, 0o644},
		{"bundle.pem", bundlePEM, 0o644},
		{"session.json", append(info, '\n'), 0o644},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Load reads a credentials directory written by Save.
func Load(dir string) (*Credentials, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("session credentials: %w", err)
		}
		return b, nil
	}
	c := &Credentials{}
	b, err := read("session.json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &c.Info); err != nil {
		return nil, fmt.Errorf("session credentials: session.json: %w", err)
	}
	if b, err = read("key.pem"); err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("session credentials: key.pem holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("session credentials: key.pem: %w", err)
	}
	var ok bool
	if c.Key, ok = k.(*ecdsa.PrivateKey); !ok {
		return nil, errors.New("session credentials: key.pem is not an ECDSA key")
	}
	if b, err = read("svid.pem"); err != nil {
		return nil, err
	}
	if c.SVID, err = ParseCertificates(b); err != nil {
		return nil, fmt.Errorf("session credentials: svid.pem: %w", err)
	}
	if b, err = read("bundle.pem"); err != nil {
		return nil, err
	}
	c.Bundle = x509.NewCertPool()
	if !c.Bundle.AppendCertsFromPEM(b) {
		return nil, errors.New("session credentials: bundle.pem holds no certificate")
	}
	if b, err = read("grant.jwt"); err != nil {
		return nil, err
	}
	c.Grant = strings.TrimSpace(string(b))
	if b, err = read("jwt-svid.txt"); err == nil {
		c.JWTSVID = strings.TrimSpace(string(b))
	}
	return c, nil
}

// ParseCertificates decodes every CERTIFICATE block of a PEM file.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate found")
	}
	return out, nil
}

// EncodeCertificates returns certs as PEM.
func EncodeCertificates(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// TLSConfig returns a client TLS configuration that trusts the trust
// domain's bundle and, if mtls, presents the X.509-SVID.
func (c *Credentials) TLSConfig(mtls bool) *tls.Config {
	cfg := &tls.Config{RootCAs: c.Bundle, MinVersion: tls.VersionTLS12}
	if mtls {
		chain := make([][]byte, len(c.SVID))
		for i, cert := range c.SVID {
			chain[i] = cert.Raw
		}
		cfg.Certificates = []tls.Certificate{{Certificate: chain, PrivateKey: c.Key, Leaf: c.SVID[0]}}
	}
	return cfg
}

// Transport adds `Authorization: DPoP <grant>` and a fresh `DPoP` proof,
// signed by the session key and bound to the request's method and URL, to
// every request. When the node asks for a DPoP nonce (RFC 9449 §8) it keeps
// the newest one the node sent and puts it in every later proof, and it
// sends a request the node refused for want of it once more with the new
// nonce (when the request's body can be read again: none, or GetBody set).
// A Transport must not be copied after first use.
type Transport struct {
	Base  http.RoundTripper // default http.DefaultTransport
	Key   *ecdsa.PrivateKey
	Grant string
	Now   func() time.Time

	nonce atomic.Pointer[string] // the newest DPoP-Nonce the node sent
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	var nonce string
	if p := t.nonce.Load(); p != nil {
		nonce = *p
	}
	retry := r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
	resp, err := t.send(r, nonce)
	if err != nil {
		return nil, err
	}
	fresh := resp.Header.Get("DPoP-Nonce")
	if fresh == "" {
		return resp, nil
	}
	t.nonce.Store(&fresh)
	if fresh == nonce || !retry || !asksNonce(resp) {
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	again := r.Clone(r.Context())
	if r.GetBody != nil {
		if again.Body, err = r.GetBody(); err != nil {
			return nil, fmt.Errorf("dpop nonce retry: %w", err)
		}
	}
	return t.send(again, fresh)
}

// send sends r with the grant and a proof carrying nonce (none if "").
func (t *Transport) send(r *http.Request, nonce string) (*http.Response, error) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	u := *r.URL
	u.RawQuery, u.Fragment = "", ""
	proof, err := grant.NewProofNonce(t.Key, r.Method, u.String(), t.Grant, nonce, now())
	if err != nil {
		return nil, fmt.Errorf("dpop proof: %w", err)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "DPoP "+t.Grant)
	r.Header.Set("DPoP", proof)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// asksNonce reports whether resp refuses a proof for want of the server's
// nonce: 401 with a DPoP challenge naming error use_dpop_nonce (a resource
// server), or 400 with error use_dpop_nonce in its JSON body (a token
// endpoint). It leaves resp's body as it found it.
func asksNonce(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		for _, c := range resp.Header.Values("WWW-Authenticate") {
			if strings.Contains(c, `error="use_dpop_nonce"`) {
				return true
			}
		}
	case http.StatusBadRequest:
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		var e struct {
			Error string `json:"error"`
		}
		return json.Unmarshal(head, &e) == nil && e.Error == "use_dpop_nonce"
	}
	return false
}

// HTTPClient returns a client that authenticates as this session: with DPoP
// proofs over server-authenticated TLS (mtls false) or with the X.509-SVID
// (mtls true), over kept-alive HTTP/1.1 connections either way (see
// [Credentials.MTLSTransport] for why not HTTP/2).
func (c *Credentials) HTTPClient(mtls bool) *http.Client {
	if mtls {
		return &http.Client{Transport: c.MTLSTransport(nil)}
	}
	base := &http.Transport{TLSClientConfig: c.TLSConfig(false), MaxIdleConnsPerHost: mtlsIdleConns, IdleConnTimeout: mtlsIdleTimeout}
	return &http.Client{Transport: &Transport{Base: base, Key: c.Key, Grant: c.Grant}}
}

// MTLSTransport returns a transport that authenticates every request as
// the session by mutual TLS with its X.509-SVID, over HTTP/1.1 connections
// it keeps open (at most 16 idle, each for up to 90 s): the key signs once
// per connection, not once per request as with DPoP. The node checks on
// every request, not once per connection, that the certificate is still
// valid and that its session is still active, its agent not quarantined.
// dial, if not nil, opens the connections (ward run's runtime reaches the
// node through its own channel).
//
// HTTP/1.1 rather than HTTP/2: over loopback, one call through the node
// cost about 15% less CPU (client and node together) on kept-alive
// HTTP/1.1 connections than on one HTTP/2 connection
// (BenchmarkOwnCPUPerCall in internal/server; Go's HTTP/2 hands every
// frame between goroutines).
//
// The X.509-SVID is minted for the session's whole lifetime, so a
// session's transport never needs another: once it expires, so has the
// session.
func (c *Credentials) MTLSTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{TLSClientConfig: c.TLSConfig(true), MaxIdleConnsPerHost: mtlsIdleConns,
		IdleConnTimeout: mtlsIdleTimeout, DialContext: dial}
}

const (
	// mtlsIdleConns bounds the connections to the node MTLSTransport
	// keeps open while idle; more may be open at once under load.
	mtlsIdleConns = 16
	// mtlsIdleTimeout closes a connection idle this long.
	mtlsIdleTimeout = 90 * time.Second
)

// NodeTransport returns the transport a sidecar forwards the session's
// requests to the node at server ("https://NODE") with, and says which it
// chose: [Credentials.MTLSTransport] when the node accepts the session's
// X.509-SVID, else a DPoP [Transport] (grant and a proof per request).
// It asks the node who the session is (GET /v1/session) by mutual TLS:
// a node behind a proxy that terminates TLS never sees the certificate
// and refuses that, while it takes a DPoP proof (which names the public
// URL). Any other failure is returned: the caller has checked, with DPoP,
// that the session is usable. dial is as for MTLSTransport.
func (c *Credentials) NodeTransport(ctx context.Context, server string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (http.RoundTripper, string, error) {
	mtls := c.MTLSTransport(dial)
	err := c.probe(ctx, mtls, server)
	if err == nil {
		return mtls, "mutual TLS with the session's X.509-SVID", nil
	}
	mtls.CloseIdleConnections()
	base := &http.Transport{TLSClientConfig: c.TLSConfig(false), MaxIdleConnsPerHost: mtlsIdleConns, IdleConnTimeout: mtlsIdleTimeout, DialContext: dial}
	dpop := &Transport{Base: base, Key: c.Key, Grant: c.Grant}
	if derr := c.probe(ctx, dpop, server); derr != nil {
		return nil, "", fmt.Errorf("the node refuses the session by mutual TLS (%v) and by DPoP (%v)", err, derr)
	}
	return dpop, fmt.Sprintf("DPoP proofs (the node refused the session's certificate: %v; a TLS proxy in front of it must pass client certificates through for mutual TLS)", err), nil
}

// probe asks the node, through rt, which session rt authenticates as.
func (c *Credentials) probe(ctx context.Context, rt http.RoundTripper, server string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(server, "/")+"/v1/session", nil)
	if err != nil {
		return err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, e.Error)
	}
	var who struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal(b, &who); err != nil || who.Session != c.Session {
		return fmt.Errorf("the node answered for session %q, not %s", who.Session, c.Session)
	}
	return nil
}

// probeTimeout bounds each of NodeTransport's questions to the node.
const probeTimeout = 30 * time.Second
