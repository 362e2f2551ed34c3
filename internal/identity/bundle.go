package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
)

// X509Authorities returns the root certificates X.509-SVIDs chain to,
// the active one first, then those retiring. The slice is the caller's;
// the certificates must not be modified.
func (ca *CA) X509Authorities() []*x509.Certificate {
	return slices.Clone(ca.state().roots)
}

// CertPool returns a new pool holding the X.509 authorities, for TLS
// clients that verify ward's server certificate or servers that verify
// X.509-SVIDs as client certificates.
func (ca *CA) CertPool() *x509.CertPool {
	return ca.state().pool.Clone()
}

// Bundle returns a copy of the trust domain's SPIFFE bundle: its X.509
// authorities, its JWT authorities by key ID, a refresh hint and a
// sequence number. Changing the copy does not affect the CA.
func (ca *CA) Bundle() *spiffebundle.Bundle {
	return ca.state().bundle.Clone()
}

// BundleJSON returns the SPIFFE bundle document, the JSON Web Key Set
// served at /.well-known/spiffe-bundle, which spiffebundle.Parse reads back.
func (ca *CA) BundleJSON() ([]byte, error) {
	return slices.Clone(ca.state().bundleJSON), nil
}

// JWKS returns a plain JSON Web Key Set of the JWT-SVID verification keys
// (the active one first, then those retiring), each with kid, "alg":"ES256"
// and "use":"sig". It holds public keys only.
func (ca *CA) JWKS() ([]byte, error) {
	return slices.Clone(ca.state().jwks), nil
}

// BundlePEM returns the X.509 authorities as PEM "CERTIFICATE" blocks, the
// active root first.
func (ca *CA) BundlePEM() []byte {
	return slices.Clone(ca.state().bundlePEM)
}

func marshalJWKS(kids []string, pubs []*ecdsa.PublicKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for i, pub := range pubs {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kids[i], Algorithm: string(jose.ES256), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal jwks: %w", err)
	}
	return b, nil
}
