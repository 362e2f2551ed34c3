package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	// DefaultX509TTL is the lifetime of an X.509-SVID when the caller asks
	// for zero.
	DefaultX509TTL = 5 * time.Minute
	// DefaultJWTTTL is the lifetime of a JWT-SVID when the caller asks for
	// zero.
	DefaultJWTTTL = 5 * time.Minute
	// MaxSVIDTTL is the longest lifetime an SVID may be minted with; longer
	// requests are refused, not shortened.
	MaxSVIDTTL = 24 * time.Hour
	// DefaultServerCertTTL is the lifetime of ServerCertificate's
	// certificate when the caller asks for zero. Longer lifetimes are
	// allowed up to the CA's own expiry.
	DefaultServerCertTTL = 24 * time.Hour
	// DefaultBundleRefreshHint is the spiffe_refresh_hint published in the
	// bundle: how often federated peers should fetch it again.
	DefaultBundleRefreshHint = 5 * time.Minute

	// caValidity is the lifetime of a newly created root certificate.
	caValidity = 10 * 365 * 24 * time.Hour
	// caBackdate moves a new root's NotBefore into the past so that peers
	// with slightly slow clocks accept it at once.
	caBackdate = time.Hour
	// leafBackdate does the same for leaf certificates.
	leafBackdate = 30 * time.Second

	caKeyFile  = "ca.key"
	caCertFile = "ca.pem"
	jwtKeyFile = "jwt.key"
)

// Config configures Open.
type Config struct {
	// TrustDomain is the trust domain name, e.g. "example.org" (the form
	// "spiffe://example.org" is accepted too). Required.
	TrustDomain string
	// Dir holds ca.key, ca.pem and jwt.key; it is created 0700 on first
	// Open. Required.
	Dir string
	// Now returns the current time; nil means time.Now. Tests use it to
	// mint already-expired SVIDs.
	Now func() time.Time
}

// CA is a trust domain's certificate authority and JWT-SVID issuer. It is
// safe for concurrent use. Its keys change only as a whole, atomically,
// by Install (key rotation, rotate.go); everything else is fixed at Open.
type CA struct {
	td  spiffeid.TrustDomain
	now func() time.Time
	st  atomic.Pointer[caState]
}

// Open loads the CA stored in cfg.Dir, creating the keys and root
// certificate it lacks. created reports whether a new root certificate was
// made. Open refuses a directory whose certificate does not match ca.key or
// belongs to another trust domain.
func Open(cfg Config) (ca *CA, created bool, err error) {
	td, err := parseTrustDomain(cfg.TrustDomain)
	if err != nil {
		return nil, false, err
	}
	if cfg.Dir == "" {
		return nil, false, errors.New("open ca: empty data directory")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, dirMode); err != nil {
		return nil, false, fmt.Errorf("open ca: create data directory: %w", err)
	}
	keyPath := filepath.Join(cfg.Dir, caKeyFile)
	certPath := filepath.Join(cfg.Dir, caCertFile)

	// Creating a key next to an existing certificate could only produce a
	// mismatch; say what is really wrong instead.
	if _, err := os.Stat(certPath); err == nil {
		if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("open ca: %s exists but %s is missing", certPath, keyPath)
		}
	}
	key, _, err := LoadOrCreateECKey(keyPath)
	if err != nil {
		return nil, false, fmt.Errorf("open ca: %w", err)
	}
	cert, err := loadCACert(certPath)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		cert, err = createCACert(certPath, td, key, now())
		if err != nil {
			return nil, false, fmt.Errorf("open ca: %w", err)
		}
		created = true
	default:
		return nil, false, fmt.Errorf("open ca: %w", err)
	}
	if err := checkCACert(cert, td, key, now()); err != nil {
		return nil, false, fmt.Errorf("open ca: %s: %w", certPath, err)
	}

	jwtPath := filepath.Join(cfg.Dir, jwtKeyFile)
	jwtKey, _, err := LoadOrCreateECKey(jwtPath)
	if err != nil {
		return nil, false, fmt.Errorf("open ca: %w", err)
	}
	if jwtKey.PublicKey.Equal(&key.PublicKey) {
		return nil, false, errors.New("open ca: jwt.key is the same key as ca.key")
	}
	jwtInfo, err := os.Stat(jwtPath)
	if err != nil {
		return nil, false, fmt.Errorf("open ca: %w", err)
	}

	ca = &CA{td: td, now: now}
	// The sequence number grows whenever the published keys change: a new
	// root (NotBefore) or a new JWT key (its file's time).
	seq := max(cert.NotBefore.Unix(), jwtInfo.ModTime().Unix(), 1)
	if err := ca.Install(KeySet{Key: key, Cert: cert, JWTKey: jwtKey, Sequence: uint64(seq)}); err != nil {
		return nil, false, fmt.Errorf("open ca: %w", err)
	}
	return ca, created, nil
}

func parseTrustDomain(s string) (spiffeid.TrustDomain, error) {
	if s == "" {
		return spiffeid.TrustDomain{}, errors.New("open ca: empty trust domain")
	}
	td, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("open ca: trust domain %q: %w", truncate(s), err)
	}
	// TrustDomainFromString also takes full SPIFFE IDs; a path here is a
	// configuration mistake, not something to drop silently.
	if s != td.Name() && s != td.IDString() {
		return spiffeid.TrustDomain{}, fmt.Errorf("open ca: trust domain %q: want a name like %q", truncate(s), td.Name())
	}
	return td, nil
}

func loadCACert(path string) (*x509.Certificate, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	der, err := singlePEM(data, pemTypeCertificate)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

func createCACert(path string, td spiffeid.TrustDomain, key *ecdsa.PrivateKey, now time.Time) (*x509.Certificate, error) {
	cert, err := newRoot(td, key, now, "ward "+td.Name()+" CA")
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: cert.Raw})
	if err := writeFileExclusive(path, data, certFileMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return loadCACert(path)
		}
		return nil, err
	}
	return cert, nil
}

// NewRoot makes a new self-signed root certificate for td with key, valid
// ten years from now (an hour backdated), for a key rotation. Its common
// name carries the time it was made, so that roots in force together are
// told apart by name too.
func NewRoot(td spiffeid.TrustDomain, key *ecdsa.PrivateKey, now time.Time) (*x509.Certificate, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("new root: want an ECDSA P-256 key")
	}
	return newRoot(td, key, now, "ward "+td.Name()+" CA "+now.UTC().Format("20060102T150405Z"))
}

func newRoot(td spiffeid.TrustDomain, key *ecdsa.PrivateKey, now time.Time, cn string) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"ward"}, CommonName: cn},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.Add(caValidity),
		URIs:                  []*url.URL{td.ID().URL()},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// checkCACert verifies that cert is a usable root for td signed by key.
func checkCACert(cert *x509.Certificate, td spiffeid.TrustDomain, key *ecdsa.PrivateKey, now time.Time) error {
	if len(cert.URIs) != 1 {
		return fmt.Errorf("root certificate has %d URI SANs, want 1", len(cert.URIs))
	}
	certID, err := spiffeid.FromURI(cert.URIs[0])
	if err != nil {
		return fmt.Errorf("root certificate URI SAN: %w", err)
	}
	if certID.TrustDomain() != td {
		return fmt.Errorf("data dir belongs to trust domain %s, config says %s", certID.TrustDomain().Name(), td.Name())
	}
	if certID.Path() != "" {
		return fmt.Errorf("root certificate names %s, want the trust domain ID %s", certID, td.IDString())
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("root certificate does not match ca.key")
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("root certificate is not a CA certificate")
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fmt.Errorf("root certificate is not self-signed: %w", err)
	}
	if !now.Before(cert.NotAfter) {
		return fmt.Errorf("root certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint of pub (SHA-256,
// base64url without padding), used as the key ID of JWT-SVID signing keys.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("jwk thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// TrustDomain returns the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }
