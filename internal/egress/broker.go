package egress

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// Credential is an upstream secret the proxy injects as a request header for
// one host; the agent never holds it.
type Credential struct {
	// Host is "name" (every port) or "name:port", as in a URL. A CONNECT
	// to it is always intercepted, so it must carry TLS.
	Host string
	// Header is the header set on every request to Host, e.g.
	// "Authorization" or "X-Api-Key". It replaces a header of that name the
	// agent sent; the agent's Authorization header is dropped in any case.
	Header string
	// Value is the secret header value, e.g. "Bearer sk-...". The proxy
	// masks it in responses, and also its last space-separated field (the
	// token) when that is 8 bytes or longer.
	Value string
}

// String describes c without its secret, so a logged Config leaks nothing.
func (c Credential) String() string { return c.Host + " " + c.Header + ": [redacted]" }

// GoString is String, for %#v.
func (c Credential) GoString() string { return c.String() }

// credential is a checked Credential.
type credential struct {
	header string // canonical header name
	value  string
	masks  [][]byte // forms of the secret masked in responses
	mask   *masker  // masks them
}

// credKey finds a credential: port 0 matches every port.
type credKey struct {
	host string
	port int
}

// forbiddenHeaders are headers a credential may not set: they frame the
// message or belong to the proxy hop.
var forbiddenHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// parseCredentials checks cs; errors name a credential by index, host and
// header, never by value.
func parseCredentials(cs []Credential) (map[credKey]*credential, error) {
	out := make(map[credKey]*credential, len(cs))
	for i, c := range cs {
		host, port, _, err := parseHostPort(c.Host)
		if err != nil {
			return nil, fmt.Errorf("credential %d: host %s: %w", i, quote(c.Host), err)
		}
		key := credKey{host, port}
		if out[key] != nil {
			return nil, fmt.Errorf("credential %d: duplicate host %s", i, quote(c.Host))
		}
		name := textproto.CanonicalMIMEHeaderKey(c.Header)
		if !validToken(name) || forbiddenHeaders[name] || strings.HasPrefix(name, "Proxy-") {
			return nil, fmt.Errorf("credential %d (%s): header %s cannot carry a credential", i, host, quote(c.Header))
		}
		if c.Value == "" || strings.ContainsFunc(c.Value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return nil, fmt.Errorf("credential %d (%s): value is empty or contains control characters", i, host)
		}
		cred := &credential{header: name, value: c.Value, masks: [][]byte{[]byte(c.Value)}}
		if f := strings.Fields(c.Value); len(f) > 1 && len(f[len(f)-1]) >= 8 {
			cred.masks = append(cred.masks, []byte(f[len(f)-1]))
		}
		cred.mask = newMasker(cred.masks)
		out[key] = cred
	}
	return out, nil
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// checkCA checks that ca can sign leaf certificates with key.
func checkCA(ca *x509.Certificate, key crypto.Signer) error {
	if ca == nil || key == nil {
		return errors.New("credentials need CA and CAKey to intercept TLS")
	}
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("CA is not a CA certificate")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.PublicKey) {
		return errors.New("CAKey does not match CA")
	}
	return nil
}

// leafCache mints and keeps the TLS certificates the proxy presents for
// intercepted hosts; there is one per credential host at most.
type leafCache struct {
	ca  *x509.Certificate
	key crypto.Signer

	mu    sync.Mutex
	certs map[string]*tls.Certificate
}

// get returns a certificate for host valid for at least leafRenewBefore.
func (c *leafCache) get(host string, now time.Time) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert := c.certs[host]; cert != nil && now.Add(leafRenewBefore).Before(cert.Leaf.NotAfter) {
		return cert, nil
	}
	cert, err := c.mint(host, now)
	if err != nil {
		return nil, fmt.Errorf("mint certificate for %s: %w", host, err)
	}
	c.certs[host] = cert
	return cert, nil
}

func (c *leafCache) mint(host string, now time.Time) (*tls.Certificate, error) {
	notAfter := now.Add(leafValidity)
	if c.ca.NotAfter.Before(notAfter) {
		notAfter = c.ca.NotAfter
	}
	if !notAfter.After(now.Add(leafRenewBefore)) {
		return nil, fmt.Errorf("CA expires at %s", c.ca.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{Organization: []string{"ward egress"}, CommonName: host},
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, c.ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// masker overwrites every occurrence of any of its secrets with a byte that
// occurs in none of them, so the output contains no secret and has the
// length of the input.
type masker struct {
	secrets [][]byte
	with    byte
	longest int
	windows sync.Pool // *window, for maskReaders
}

func newMasker(secrets [][]byte) *masker {
	m := &masker{secrets: secrets, with: '*'}
	used := make(map[byte]bool)
	for _, s := range secrets {
		m.longest = max(m.longest, len(s))
		for _, c := range s {
			used[c] = true
		}
	}
	for i := range 256 { // header values cannot hold every byte
		if c := byte('*' + i); !used[c] {
			m.with = c
			break
		}
	}
	return m
}

// mark sets hit[i] to 1 for every byte of b inside an occurrence of a
// secret.
func (m *masker) mark(b []byte, hit []byte) {
	for _, s := range m.secrets {
		for i := 0; ; i++ {
			j := bytes.Index(b[i:], s)
			if j < 0 {
				break
			}
			i += j
			for k := i; k < i+len(s); k++ {
				hit[k] = 1
			}
		}
	}
}

// held returns the length of the longest suffix of b that is a proper prefix
// of a secret: bytes that a later read might complete into an occurrence.
func (m *masker) held(b []byte) int {
	n := 0
	for _, s := range m.secrets {
		for k := min(len(b), len(s)-1); k > n; k-- {
			if bytes.HasPrefix(s, b[len(b)-k:]) {
				n = k
				break
			}
		}
	}
	return n
}

// bytes returns b with every secret masked, in place.
func (m *masker) bytes(b []byte) []byte {
	hit := make([]byte, len(b))
	m.mark(b, hit)
	m.apply(b, hit)
	return b
}

// apply masks the bytes of b that hit marks.
func (m *masker) apply(b, hit []byte) {
	if bytes.IndexByte(hit, 1) < 0 {
		return
	}
	for i, h := range hit {
		if h == 1 {
			b[i] = m.with
		}
	}
}

// string returns s with every secret masked.
func (m *masker) string(s string) string {
	for _, sec := range m.secrets {
		if strings.Contains(s, string(sec)) {
			return string(m.bytes([]byte(s)))
		}
	}
	return s
}

// header masks secrets in the values of h and drops keys that contain one.
func (m *masker) header(h http.Header) {
	for k, vs := range h {
		if m.string(k) != k {
			delete(h, k)
			continue
		}
		for i, v := range vs {
			vs[i] = m.string(v)
		}
	}
}

// maskReader streams a response body through a masker. It holds back only
// the bytes that could begin a secret, so a streamed response is delayed by
// less than one secret's length.
type maskReader struct {
	rc      io.ReadCloser
	m       *masker
	onClose func() // after rc is closed: its trailers are final
	*window        // nil once closed
	lo, ok  int    // buf[lo:ok] is ready, buf[ok:hi] is held
	hi      int
	err     error
}

// window is a maskReader's buffer; hit is 1 where buf is part of a secret.
type window struct{ buf, hit []byte }

func newMaskReader(rc io.ReadCloser, m *masker, onClose func()) *maskReader {
	w, ok := m.windows.Get().(*window)
	if !ok {
		n := max(32<<10, 2*m.longest)
		w = &window{make([]byte, n), make([]byte, n)}
	}
	return &maskReader{rc: rc, m: m, onClose: onClose, window: w}
}

func (r *maskReader) Read(p []byte) (int, error) {
	if r.window == nil {
		return 0, errors.New("read after close")
	}
	for r.ok == r.lo {
		if r.err != nil {
			if r.hi == r.lo {
				return 0, r.err
			}
			r.ok = r.hi // nothing follows: the held tail completes no secret
			break
		}
		r.fill()
	}
	n := copy(p, r.buf[r.lo:r.ok])
	r.m.apply(p[:n], r.hit[r.lo:r.lo+n])
	r.lo += n
	return n, nil
}

// fill reads once from the body and marks the secrets in the window.
func (r *maskReader) fill() {
	if r.lo > 0 {
		copy(r.buf, r.buf[r.lo:r.hi])
		copy(r.hit, r.hit[r.lo:r.hi])
		r.hi -= r.lo
		r.lo = 0
	}
	n, err := r.rc.Read(r.buf[r.hi:])
	clear(r.hit[r.hi : r.hi+n])
	r.hi += n
	r.err = err
	w := r.buf[:r.hi]
	r.m.mark(w, r.hit[:r.hi])
	r.ok = r.hi - r.m.held(w)
}

func (r *maskReader) Close() error {
	err := r.rc.Close()
	if r.window != nil {
		r.m.windows.Put(r.window)
		r.window = nil
		if r.onClose != nil {
			r.onClose()
		}
	}
	return err
}
