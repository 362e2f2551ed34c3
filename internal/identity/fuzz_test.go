package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// csrAcceptable is the independent oracle for FuzzMintX509SVID: the
// standard library's view of whether der is a small, self-signed CSR for an
// ECDSA P-256 or Ed25519 key.
func csrAcceptable(der []byte) (crypto.PublicKey, bool) {
	if len(der) == 0 || len(der) > maxCSRSize {
		return nil, false
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil || csr.CheckSignature() != nil {
		return nil, false
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return pub, pub.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return pub, true
	}
	return nil, false
}

// FuzzMintX509SVID feeds arbitrary bytes as a CSR. Invariants: no panic; a
// certificate is issued exactly when the request is acceptable; an issued
// certificate carries the request's key, names only the requested SPIFFE ID
// and verifies against the published bundle.
func FuzzMintX509SVID(f *testing.F) {
	ca := newCA(f, Config{})
	id := mustSessionID(f, ca, "fuzz", "1")
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256 := newP256(f)
	good := makeCSR(f, p256, &x509.CertificateRequest{DNSNames: []string{"x.example"}})
	f.Add(good)
	f.Add(makeCSR(f, edKey, nil))
	f.Add(makeCSR(f, rsaKey, nil))
	bad := slices.Clone(good)
	bad[len(bad)-5] ^= 0xff
	f.Add(bad)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte{})
	bundle := parsedBundle(f, ca)

	f.Fuzz(func(t *testing.T, der []byte) {
		pub, ok := csrAcceptable(der)
		chain, err := ca.MintX509SVID(der, id, time.Minute)
		if !ok {
			if err == nil || chain != nil {
				t.Fatalf("issued a certificate for an unacceptable request %x", der)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused an acceptable request: %v", err)
		}
		leaf := chain[0]
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
			t.Fatal("leaf key differs from request key")
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 || len(leaf.EmailAddresses) != 0 {
			t.Fatalf("leaf names: %v %v %v %v", leaf.URIs, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
		}
		if got, _, err := x509svid.Verify(chain, bundle); err != nil || got != id {
			t.Fatalf("issued leaf does not verify: %v", err)
		}
	})
}

// FuzzVerifyJWTSVID feeds arbitrary tokens to VerifyJWTSVID. Invariants: no
// panic, and anything accepted was signed by the CA, so its subject is the
// one subject the CA signed for in this test.
func FuzzVerifyJWTSVID(f *testing.F) {
	ca := newCA(f, Config{})
	id := mustSessionID(f, ca, "fuzz", "1")
	aud := []string{"ward"}
	tok, _, err := ca.MintJWTSVID(id, aud, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	other := newCA(f, Config{})
	foreign, _, _ := other.MintJWTSVID(mustSessionID(f, other, "evil", "1"), aud, time.Hour)
	parts := strings.Split(tok, ".")
	f.Add(tok)
	f.Add(foreign)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + ".e30." + parts[2])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		got, err := ca.VerifyJWTSVID(token, aud)
		if err != nil {
			return
		}
		if got != id {
			t.Fatalf("accepted a token for %s that the CA never signed", got)
		}
	})
}
