package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
)

// Key rotation.
//
// A CA's keys are a KeySet: the active root and its key, which sign every
// new X.509-SVID, the active JWT-SVID key, which signs every new JWT-SVID,
// and the retiring roots and JWT keys, which sign nothing new but are still
// trusted (in Bundle, BundleJSON, JWKS, BundlePEM, CertPool and by
// VerifyX509SVID and VerifyJWTSVID) until the credentials they signed have
// expired. Install replaces the set as a whole: a call running at the same
// time sees either the old set or the new one, never a mix.
//
// One exception to "nothing new": ward's own TLS serving certificate
// (ServerCertificate) is issued by the oldest retiring root that still has
// its key, and lives no longer than that root is trusted. Clients that
// pinned the bundle from before a rotation (a service's wardauth, an
// agent's WARD_CA) therefore keep reaching the node through the whole
// overlap, and have until the old root is dropped to fetch the new bundle.
// A cross-signed intermediate cannot do this job: roots are made with a
// path length of zero, so they cannot vouch for another CA.

// KeySet is the CA's keys in force (see Install).
type KeySet struct {
	// Key and Cert are the active root: Cert is self-signed by Key, names
	// the trust domain and signs new X.509-SVIDs.
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate
	// JWTKey signs new JWT-SVIDs (ES256), named by its RFC 7638 thumbprint.
	JWTKey *ecdsa.PrivateKey
	// Retiring are roots still trusted, oldest first.
	Retiring []RetiringRoot
	// RetiringJWT are JWT-SVID keys still trusted, oldest first.
	RetiringJWT []*ecdsa.PublicKey
	// Sequence is the bundle's spiffe_sequence; the caller makes it grow
	// whenever the set changes.
	Sequence uint64
}

// RetiringRoot is a root the CA trusts but no longer issues SVIDs with.
type RetiringRoot struct {
	Cert *x509.Certificate
	// Key, if set, issues ward's own TLS certificate during the overlap.
	Key *ecdsa.PrivateKey
	// NotAfter is when the root stops being trusted; the TLS certificate
	// it issues ends no later. Zero: not said (no TLS certificate).
	NotAfter time.Time
}

// caState is what Install builds from a KeySet. It is never modified.
type caState struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	jwtKey *ecdsa.PrivateKey
	kid    string
	rootID string
	signer jose.Signer

	// The issuer of ward's TLS certificate, and the time its
	// certificates must end by (zero: the issuer's own expiry).
	tlsCert  *x509.Certificate
	tlsKey   *ecdsa.PrivateKey
	tlsUntil time.Time

	roots      []*x509.Certificate // active first
	jwtKIDs    []string            // active first
	bundle     *spiffebundle.Bundle
	pool       *x509.CertPool
	bundleJSON []byte
	jwks       []byte
	bundlePEM  []byte
	seq        uint64

	verified verifiedChains // against this state's roots only
}

// Install makes ks the CA's keys. It checks every root (self-signed CA of
// the trust domain, not expired, matching its key) and refuses a JWT key
// that is also a root key and two keys with one key ID; on any refusal the
// keys in force stay.
func (ca *CA) Install(ks KeySet) error {
	now := ca.now()
	if ks.Key == nil || ks.Cert == nil || ks.JWTKey == nil {
		return errors.New("install keys: the active root, its key and the JWT key are required")
	}
	if err := checkCACert(ks.Cert, ca.td, ks.Key, now); err != nil {
		return fmt.Errorf("install keys: active root: %w", err)
	}
	if ks.JWTKey.Curve != elliptic.P256() {
		return errors.New("install keys: the JWT key is not ECDSA P-256")
	}
	st := &caState{cert: ks.Cert, key: ks.Key, jwtKey: ks.JWTKey, seq: ks.Sequence, tlsCert: ks.Cert, tlsKey: ks.Key}
	var err error
	if st.rootID, err = Thumbprint(&ks.Key.PublicKey); err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	if st.kid, err = Thumbprint(&ks.JWTKey.PublicKey); err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	seen := map[string]bool{st.rootID: true}
	if seen[st.kid] {
		return errors.New("install keys: the JWT key is the same key as the root's")
	}
	seen[st.kid] = true
	st.signer, err = jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ks.JWTKey, KeyID: st.kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return fmt.Errorf("install keys: jwt signer: %w", err)
	}
	st.bundle = spiffebundle.New(ca.td)
	st.pool = x509.NewCertPool()
	st.roots = append(st.roots, ks.Cert)
	for i, r := range ks.Retiring {
		if r.Cert == nil {
			return fmt.Errorf("install keys: retiring root %d is nil", i)
		}
		pub, ok := r.Cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return fmt.Errorf("install keys: retiring root %d is not ECDSA P-256", i)
		}
		key := r.Key
		if key == nil {
			key = &ecdsa.PrivateKey{PublicKey: *pub} // public part only: checkCACert compares public keys
		}
		if err := checkCACert(r.Cert, ca.td, key, now); err != nil {
			return fmt.Errorf("install keys: retiring root %d: %w", i, err)
		}
		id, err := Thumbprint(pub)
		if err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
		if seen[id] {
			return fmt.Errorf("install keys: key %s appears twice", id)
		}
		seen[id] = true
		st.roots = append(st.roots, r.Cert)
		if r.Key != nil && st.tlsCert == ks.Cert && r.NotAfter.After(now) {
			st.tlsCert, st.tlsKey, st.tlsUntil = r.Cert, r.Key, r.NotAfter
		}
	}
	for _, c := range st.roots {
		st.bundle.AddX509Authority(c)
		st.pool.AddCert(c)
		st.bundlePEM = append(st.bundlePEM, pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: c.Raw})...)
	}
	jwtKeys := append([]*ecdsa.PublicKey{&ks.JWTKey.PublicKey}, ks.RetiringJWT...)
	for i, pub := range jwtKeys {
		if pub == nil || pub.Curve != elliptic.P256() {
			return fmt.Errorf("install keys: retiring JWT key %d is not ECDSA P-256", i-1)
		}
		kid, err := Thumbprint(pub)
		if err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
		if i > 0 && seen[kid] {
			return fmt.Errorf("install keys: key %s appears twice", kid)
		}
		seen[kid] = true
		if err := st.bundle.AddJWTAuthority(kid, pub); err != nil {
			return fmt.Errorf("install keys: %w", err)
		}
		st.jwtKIDs = append(st.jwtKIDs, kid)
	}
	st.bundle.SetRefreshHint(DefaultBundleRefreshHint)
	st.bundle.SetSequenceNumber(ks.Sequence)
	if st.bundleJSON, err = st.bundle.Marshal(); err != nil {
		return fmt.Errorf("install keys: marshal bundle: %w", err)
	}
	if st.jwks, err = marshalJWKS(st.jwtKIDs, jwtKeys); err != nil {
		return fmt.Errorf("install keys: %w", err)
	}
	ca.st.Store(st)
	return nil
}

// state returns the keys in force.
func (ca *CA) state() *caState { return ca.st.Load() }

// KeyIDs returns the RFC 7638 thumbprints of the active root's key and of
// the active JWT-SVID key.
func (ca *CA) KeyIDs() (root, jwt string) {
	st := ca.state()
	return st.rootID, st.kid
}

// Sequence returns the bundle's sequence number, which grows whenever the
// keys in force change.
func (ca *CA) Sequence() uint64 { return ca.state().seq }
