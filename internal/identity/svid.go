package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const (
	// maxCSRSize bounds the DER certificate request MintX509SVID parses.
	maxCSRSize = 8 << 10
	// maxJWTSize bounds the token VerifyJWTSVID parses.
	maxJWTSize = 8 << 10
	// maxJWTHeaderSize bounds the encoded JOSE header of such a token.
	maxJWTHeaderSize = 1 << 10
	// maxChainLen bounds the certificates VerifyX509SVID looks at.
	maxChainLen = 4
	// maxAudiences bounds the audience list of a JWT-SVID.
	maxAudiences = 32
	// maxHosts bounds the names ServerCertificate puts in a certificate.
	maxHosts = 64
	// iatSkew is how far in the future a JWT-SVID's iat may lie.
	iatSkew = 30 * time.Second
)

// wardServerPath is the path of ward's own TLS server identity.
const wardServerPath = "/" + segWard + "/server"

// MintX509SVID issues an X.509-SVID for id to the holder of the key in
// csrDER, a DER PKCS#10 certificate request of at most 8 KiB. The request's
// signature must verify (proof of possession) and its key must be ECDSA
// P-256 or Ed25519; everything else it asks for (subject, SANs, extensions)
// is ignored. The leaf names id as its only URI SAN, has no DNS names, is
// valid for ClientAuth and ServerAuth with DigitalSignature, and lives from
// 30 seconds ago for ttl (DefaultX509TTL if zero, at most MaxSVIDTTL), cut
// short at the CA's expiry. id must be in the CA's trust domain, have a path,
// and not be under /ward. The returned chain is the leaf alone.
func (ca *CA) MintX509SVID(csrDER []byte, id spiffeid.ID, ttl time.Duration) (chain []*x509.Certificate, err error) {
	if err := ca.checkMintID(id); err != nil {
		return nil, fmt.Errorf("mint x509-svid: %w", err)
	}
	ttl, err = checkTTL(ttl, DefaultX509TTL)
	if err != nil {
		return nil, fmt.Errorf("mint x509-svid for %s: %w", id, err)
	}
	pub, err := parseCSR(csrDER)
	if err != nil {
		return nil, fmt.Errorf("mint x509-svid for %s: %w", id, err)
	}
	st := ca.state()
	leaf, err := ca.issue(st.cert, st.key, time.Time{}, pub, ttl, []*url.URL{id.URL()}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("mint x509-svid for %s: %w", id, err)
	}
	return []*x509.Certificate{leaf}, nil
}

// parseCSR returns the public key of a well-formed, correctly self-signed
// certificate request for an accepted key type.
func parseCSR(der []byte) (crypto.PublicKey, error) {
	switch {
	case len(der) == 0:
		return nil, errors.New("empty certificate request")
	case len(der) > maxCSRSize:
		return nil, fmt.Errorf("certificate request larger than %d bytes", maxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, errors.New("malformed certificate request")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, errors.New("certificate request signature does not verify")
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("certificate request key is ECDSA %s, want P-256 or Ed25519", pub.Curve.Params().Name)
		}
		return pub, nil
	case ed25519.PublicKey:
		return pub, nil
	default:
		return nil, fmt.Errorf("certificate request key is %s, want ECDSA P-256 or Ed25519", csr.PublicKeyAlgorithm)
	}
}

// issue signs a leaf certificate for pub with the root cert and its key,
// ending no later than the root nor, if set, than until.
func (ca *CA) issue(cert *x509.Certificate, key *ecdsa.PrivateKey, until time.Time, pub crypto.PublicKey, ttl time.Duration, uris []*url.URL, dns []string, ips []net.IP) (*x509.Certificate, error) {
	now := ca.now()
	notAfter := now.Add(ttl)
	if notAfter.After(cert.NotAfter) {
		notAfter = cert.NotAfter
	}
	if !until.IsZero() && notAfter.After(until) {
		notAfter = until
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("ca certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"ward"}},
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              notAfter,
		URIs:                  uris,
		DNSNames:              dns,
		IPAddresses:           ips,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cert, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	return leaf, nil
}

// ServerCertificate issues ward's own TLS serving certificate with a fresh
// ECDSA P-256 key that never leaves memory. It names
// spiffe://TD/ward/server as its URI SAN and each of hosts as a DNS or IP
// SAN ("localhost", "127.0.0.1", "::1", "[::1]"). ttl is DefaultServerCertTTL
// if zero and is cut short at the CA's expiry; the caller renews it.
func (ca *CA) ServerCertificate(hosts []string, ttl time.Duration) (tls.Certificate, error) {
	if ttl < 0 {
		return tls.Certificate{}, fmt.Errorf("server certificate: negative ttl %s", ttl)
	}
	if ttl == 0 {
		ttl = DefaultServerCertTTL
	}
	if len(hosts) > maxHosts {
		return tls.Certificate{}, fmt.Errorf("server certificate: more than %d hosts", maxHosts)
	}
	var dns []string
	var ips []net.IP
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if ip := net.ParseIP(h); ip != nil {
			if !seen[ip.String()] {
				ips = append(ips, ip)
				seen[ip.String()] = true
			}
			continue
		}
		h = strings.ToLower(h)
		if err := checkDNSName(h); err != nil {
			return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
		}
		if !seen[h] {
			dns = append(dns, h)
			seen[h] = true
		}
	}
	id, err := spiffeid.FromPath(ca.td, wardServerPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: generate key: %w", err)
	}
	st := ca.state()
	leaf, err := ca.issue(st.tlsCert, st.tlsKey, st.tlsUntil, &key.PublicKey, ttl, []*url.URL{id.URL()}, dns, ips)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// checkDNSName accepts host names of letters, digits, hyphens and dots,
// optionally with a leading "*." wildcard label.
func checkDNSName(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(h) > 253 {
		return fmt.Errorf("host %q is not a DNS name or IP address", truncate(h))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is not a DNS name or IP address", truncate(h))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host %q is not a DNS name or IP address", truncate(h))
			}
		}
	}
	return nil
}

// MintJWTSVID signs an ES256 JWT-SVID for id, valid for audience (non-empty,
// no empty entries) for ttl (DefaultJWTTTL if zero, at most MaxSVIDTTL). The
// header carries kid and typ "JWT"; the claims are sub, aud, exp and iat.
// expiresAt is the exp claim. id must be in the CA's trust domain, have a
// path, and not be under /ward.
func (ca *CA) MintJWTSVID(id spiffeid.ID, audience []string, ttl time.Duration) (token string, expiresAt time.Time, err error) {
	if err := ca.checkMintID(id); err != nil {
		return "", time.Time{}, fmt.Errorf("mint jwt-svid: %w", err)
	}
	if err := checkAudience(audience); err != nil {
		return "", time.Time{}, fmt.Errorf("mint jwt-svid for %s: %w", id, err)
	}
	ttl, err = checkTTL(ttl, DefaultJWTTTL)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mint jwt-svid for %s: %w", id, err)
	}
	now := ca.now()
	iat := now.Truncate(time.Second)
	exp := now.Add(ttl).Truncate(time.Second)
	claims := jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		Expiry:   jwt.NewNumericDate(exp),
		IssuedAt: jwt.NewNumericDate(iat),
	}
	token, err = jwt.Signed(ca.state().signer).Claims(claims).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mint jwt-svid for %s: sign: %w", id, err)
	}
	return token, time.Unix(exp.Unix(), 0), nil
}

func checkAudience(audience []string) error {
	if len(audience) == 0 {
		return errors.New("empty audience")
	}
	if len(audience) > maxAudiences {
		return fmt.Errorf("more than %d audiences", maxAudiences)
	}
	for _, a := range audience {
		if a == "" {
			return errors.New("empty audience entry")
		}
	}
	return nil
}

func (ca *CA) checkMintID(id spiffeid.ID) error {
	switch {
	case id.IsZero():
		return errors.New("empty spiffe id")
	case id.TrustDomain() != ca.td:
		return fmt.Errorf("spiffe id %s is not in trust domain %s", id, ca.td.Name())
	case id.Path() == "":
		return fmt.Errorf("spiffe id %s has no path", id)
	case reservedID(id):
		return fmt.Errorf("spiffe id %s is reserved for ward", id)
	}
	return nil
}

func checkTTL(ttl, def time.Duration) (time.Duration, error) {
	switch {
	case ttl == 0:
		return def, nil
	case ttl < 0:
		return 0, fmt.Errorf("negative ttl %s", ttl)
	case ttl > MaxSVIDTTL:
		return 0, fmt.Errorf("ttl %s exceeds the maximum of %s", ttl, MaxSVIDTTL)
	}
	return ttl, nil
}

// VerifyX509SVID verifies an X.509-SVID chain (leaf first, at most four
// certificates) against the CA's bundle at Config.Now with go-spiffe's
// x509svid.Verify, and returns the leaf's SPIFFE ID. A chain that
// verified is remembered (bounded) with the window in which all of its
// certificates and the CA's are valid: within it the same chain (the next
// request on its connection) is accepted without verifying it again.
func (ca *CA) VerifyX509SVID(chain []*x509.Certificate) (spiffeid.ID, error) {
	if len(chain) > maxChainLen {
		return spiffeid.ID{}, fmt.Errorf("verify x509-svid: chain of %d certificates, at most %d", len(chain), maxChainLen)
	}
	for i, c := range chain {
		if c == nil {
			return spiffeid.ID{}, fmt.Errorf("verify x509-svid: certificate %d is nil", i)
		}
	}
	now := ca.now()
	st := ca.state()
	k := chainKey(chain)
	if id, ok := st.verified.lookup(k, now); ok {
		return id, nil
	}
	id, verified, err := x509svid.Verify(chain, st.bundle, x509svid.WithTime(now))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify x509-svid: %w", err)
	}
	if len(verified) == 0 || len(verified[0]) == 0 {
		return spiffeid.ID{}, errors.New("verify x509-svid: no verified chain")
	}
	// The window is that of the chain as verified, its root included.
	st.verified.remember(k, verified[0], id)
	return id, nil
}

// jwtHeader is the only JOSE header VerifyJWTSVID accepts.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// VerifyJWTSVID verifies a JWT-SVID against the CA's bundle with go-spiffe's
// jwtsvid.ParseAndValidate and returns its subject. On top of go-spiffe it
// requires: at most 8 KiB; a protected header of exactly alg "ES256", a kid
// and typ "JWT", without duplicate members; a non-empty audience to check
// against; an iat claim not in the future and no more than MaxSVIDTTL
// before exp; and exp after Config.Now without leeway.
func (ca *CA) VerifyJWTSVID(token string, audience []string) (spiffeid.ID, error) {
	if err := checkAudience(audience); err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify jwt-svid: %w", err)
	}
	if err := checkJWTHeader(token); err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify jwt-svid: %w", err)
	}
	svid, err := jwtsvid.ParseAndValidate(token, ca.state().bundle, audience)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("verify jwt-svid: %w", err)
	}
	now := ca.now()
	if !now.Before(svid.Expiry) {
		return spiffeid.ID{}, errors.New("verify jwt-svid: token has expired")
	}
	iatNum, ok := svid.Claims["iat"].(float64)
	if !ok {
		return spiffeid.ID{}, errors.New("verify jwt-svid: token missing iat claim")
	}
	iat := time.Unix(int64(iatNum), 0)
	if iat.After(now.Add(iatSkew)) {
		return spiffeid.ID{}, errors.New("verify jwt-svid: token issued in the future")
	}
	if svid.Expiry.Sub(iat) > MaxSVIDTTL {
		return spiffeid.ID{}, errors.New("verify jwt-svid: token lifetime exceeds the maximum")
	}
	return svid.ID, nil
}

// checkJWTHeader rejects, before any signature work, tokens that are too
// large, not compact JWS, or whose header is anything but ES256/kid/JWT.
func checkJWTHeader(token string) error {
	if len(token) > maxJWTSize {
		return fmt.Errorf("token larger than %d bytes", maxJWTSize)
	}
	enc, _, ok := strings.Cut(token, ".")
	if !ok || strings.Count(token, ".") != 2 {
		return errors.New("token is not a compact JWS")
	}
	if len(enc) > maxJWTHeaderSize {
		return fmt.Errorf("token header larger than %d bytes", maxJWTHeaderSize)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return errors.New("token header is not base64url")
	}
	var h jwtHeader
	if err := jsonv2.Unmarshal(raw, &h, jsonv2.RejectUnknownMembers(true)); err != nil {
		return errors.New("token header is not exactly alg, kid and typ")
	}
	switch {
	case h.Alg != string(jose.ES256):
		return fmt.Errorf("token algorithm %q, want ES256", truncate(h.Alg))
	case h.Kid == "":
		return errors.New("token header missing kid")
	case h.Typ != "JWT":
		return fmt.Errorf("token type %q, want JWT", truncate(h.Typ))
	}
	return nil
}
