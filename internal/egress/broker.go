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
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
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
	// token) when that is 8 bytes or longer; each of them of 8 bytes or
	// more also in the forms a server commonly gives a secret back in
	// (see the package documentation).
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
//
// An occurrence is the secret as it was sent, or as a server commonly
// gives it back (see [newMasker]): in any letter case, as hexadecimal, as
// base64 (standard or URL alphabet, padded or not, at any of the three
// alignments a secret can have inside a longer encoded string), with any
// of its characters escaped for JSON (\/, \u002f), JavaScript (\x2f), a
// URL (%2F, + for a space) or HTML (&#47;, &#x2f;, &amp;). Every byte
// of the occurrence as it appears, escapes included, is overwritten.
type masker struct {
	secrets  [][]byte  // matched exactly
	patterns []pattern // matched through escapes
	with     byte
	// longest bounds the bytes an occurrence spans in the input.
	longest int
	// starts lists, for each byte, the patterns an occurrence beginning
	// with it may be of.
	starts  [256][]int
	start   [256]bool // whether starts lists any
	windows sync.Pool // *window, for maskReaders
}

// pattern is one encoded form of a secret, as it reads once escapes are
// decoded.
type pattern struct {
	text   []byte
	fold   bool // ASCII letters match in either case (text, hex)
	base64 bool // '-' and '_' read as '+' and '/' (either alphabet)
}

// minEncoded is the shortest secret looked for in encoded forms: a
// shorter one would match ordinary text in some case or encoding. Shorter
// secrets are masked only as sent.
const minEncoded = 8

// maxEscape is the most bytes one escaped character takes: &#x0000002f;.
const maxEscape = 12

// maskWith are the bytes a masker may overwrite with: none of them is a
// letter, digit, escape introducer, or character of base64 or hex.
const maskWith = "*#~!^|?@:;,."

// newMasker returns a masker for secrets. Each secret of minEncoded bytes
// or more is also looked for in every form the masker type describes.
func newMasker(secrets [][]byte) *masker {
	m := &masker{secrets: secrets}
	used := make(map[byte]bool)
	for _, s := range secrets {
		m.longest = max(m.longest, len(s))
		for _, c := range s {
			used[lower(c)], used[upper(c)] = true, true
		}
		if len(s) < minEncoded {
			continue
		}
		m.patterns = append(m.patterns, pattern{text: s, fold: true},
			pattern{text: []byte(hex.EncodeToString(s)), fold: true})
		for off := range 3 {
			// The characters that encode only the secret's own bits when
			// it follows off bytes of something else.
			enc := base64.StdEncoding.EncodeToString(append(make([]byte, off), s...))
			from, to := (8*off+5)/6, (8*off+8*len(s))/6
			m.patterns = append(m.patterns, pattern{text: []byte(enc[from:to]), base64: true})
		}
	}
	m.with = maskWith[0]
	for i := range len(maskWith) {
		if !used[maskWith[i]] {
			m.with = maskWith[i]
			break
		}
	}
	for k, p := range m.patterns {
		m.longest = max(m.longest, len(p.text)*maxEscape)
		firsts := []byte{p.text[0], '\\', '%', '&'}
		switch c := p.text[0]; {
		case p.fold:
			firsts = append(firsts, lower(c), upper(c))
		case p.base64 && c == '+':
			firsts = append(firsts, '-')
		case p.base64 && c == '/':
			firsts = append(firsts, '_')
		case c == ' ':
			firsts = append(firsts, '+')
		}
		for _, c := range firsts {
			if !slices.Contains(m.starts[c], k) {
				m.starts[c] = append(m.starts[c], k)
				m.start[c] = true
			}
		}
	}
	return m
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// Results of matching a pattern at one position.
const (
	noMatch = iota
	matched
	partial // the input ends inside what may still be an occurrence
)

// match matches p at the start of b. It returns matched and the bytes the
// occurrence spans, noMatch, or partial if b ends before that is known;
// with final set, b is all there is and nothing is partial.
func (p *pattern) match(b []byte, final bool) (int, int) {
	i := 0
	for _, want := range p.text {
		if i == len(b) {
			if final {
				return noMatch, 0
			}
			return partial, 0
		}
		c, n, more := b[i], 0, false
		if c == '\\' || c == '%' || c == '&' {
			c, n, more = unescape(b[i:], final)
		}
		if more {
			return partial, 0
		}
		switch {
		case n > 0 && p.same(c, want):
			i += n
		case p.same(b[i], want) || b[i] == '+' && want == ' ' && !p.base64:
			i++
		default:
			return noMatch, 0
		}
	}
	return matched, i
}

// same reports whether the character c reads as want in p.
func (p *pattern) same(c, want byte) bool {
	switch {
	case p.fold:
		return lower(c) == lower(want)
	case p.base64 && c == '-':
		c = '+'
	case p.base64 && c == '_':
		c = '/'
	}
	return c == want
}

// unescape decodes the escaped character at the start of b, if one is
// there: the byte it stands for and its length (0 if b does not start
// with an escape, or one for a character outside ASCII). more is set when
// b ends inside what may be an escape, unless final.
func unescape(b []byte, final bool) (c byte, n int, more bool) {
	hexAt := func(i, digits int) (int, bool, bool) {
		v := 0
		for k := i; k < i+digits; k++ {
			if k == len(b) {
				return 0, false, !final
			}
			d, ok := hexDigit(b[k])
			if !ok {
				return 0, false, false
			}
			v = v<<4 | d
		}
		return v, true, false
	}
	switch b[0] {
	case '%':
		v, ok, more := hexAt(1, 2)
		if ok && v < 0x80 {
			return byte(v), 3, false
		}
		return 0, 0, more
	case '\\':
		if len(b) < 2 {
			return 0, 0, !final
		}
		switch b[1] {
		case 'u':
			v, ok, more := hexAt(2, 4)
			if ok && v < 0x80 {
				return byte(v), 6, false
			}
			return 0, 0, more
		case 'x':
			v, ok, more := hexAt(2, 2)
			if ok && v < 0x80 {
				return byte(v), 4, false
			}
			return 0, 0, more
		case '/', '\\', '"', '\'':
			return b[1], 2, false
		case 't':
			return '\t', 2, false
		}
	case '&':
		return entity(b, final)
	}
	return 0, 0, false
}

// htmlNamed are the named character references servers escape with.
var htmlNamed = map[string]byte{"amp": '&', "lt": '<', "gt": '>', "quot": '"', "apos": '\'', "sol": '/', "plus": '+',
	"equals": '=', "colon": ':', "period": '.', "lowbar": '_', "hyphen": '-', "Tab": '\t'}

// entity decodes an HTML character reference at the start of b ("&"...";").
func entity(b []byte, final bool) (byte, int, bool) {
	end := -1
	for k := 1; k < len(b) && k < maxEscape; k++ {
		if b[k] == ';' {
			end = k
			break
		}
		if !(b[k] == '#' && k == 1 || isAlnum(b[k])) {
			return 0, 0, false
		}
	}
	if end < 0 {
		return 0, 0, !final && len(b) < maxEscape
	}
	ref := string(b[1:end])
	if c, ok := htmlNamed[ref]; ok {
		return c, end + 1, false
	}
	num, ok := strings.CutPrefix(ref, "#")
	if !ok || num == "" {
		return 0, 0, false
	}
	base := 10
	if h, ok := strings.CutPrefix(strings.ToLower(num), "x"); ok {
		num, base = h, 16
	}
	v, err := strconv.ParseUint(num, base, 32)
	if err != nil || v >= 0x80 {
		return 0, 0, false
	}
	return byte(v), end + 1, false
}

func hexDigit(c byte) (int, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// mark sets hit[i] to 1 for every byte of b inside an occurrence of a
// secret. Unless final, an occurrence that b may end inside of is not
// marked: held says where the first one begins.
func (m *masker) mark(b []byte, hit []byte, final bool) {
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
	if len(m.patterns) == 0 {
		return
	}
	for i, c := range b {
		if !m.start[c] {
			continue
		}
		for _, k := range m.starts[c] {
			p := &m.patterns[k]
			// Most candidates fail on their second byte: test it here.
			if i+1 < len(b) && !intro[c] && !intro[b[i+1]] && !p.same(b[i+1], p.text[1]) &&
				!(b[i+1] == '+' && p.text[1] == ' ' && !p.base64) {
				continue
			}
			if r, n := p.match(b[i:], final); r == matched {
				for j := i; j < i+n; j++ {
					hit[j] = 1
				}
			}
		}
	}
}

// intro marks the bytes that begin an escape.
var intro = [256]bool{'\\': true, '%': true, '&': true}

// held returns how many bytes at the end of b could begin an occurrence
// that the bytes after b would complete: a proper prefix of a secret as
// sent, or an encoded form that b ends inside.
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
	for i := max(0, len(b)-m.longest); i < len(b)-n; i++ {
		for _, k := range m.starts[b[i]] {
			if r, _ := m.patterns[k].match(b[i:], false); r == partial {
				return len(b) - i
			}
		}
	}
	return n
}

// bytes returns b with every secret masked, in place.
func (m *masker) bytes(b []byte) []byte {
	hit := make([]byte, len(b))
	m.mark(b, hit, true)
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
	b := []byte(s)
	hit := make([]byte, len(b))
	m.mark(b, hit, true)
	if bytes.IndexByte(hit, 1) < 0 {
		return s
	}
	m.apply(b, hit)
	return string(b)
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
			// Nothing follows: what the held tail holds is all there is.
			r.m.mark(r.buf[r.lo:r.hi], r.hit[r.lo:r.hi], true)
			r.ok = r.hi
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
	r.m.mark(w, r.hit[:r.hi], false)
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
