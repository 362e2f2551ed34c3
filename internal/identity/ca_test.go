package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const testTD = "example.org"

func newCA(t testing.TB, cfg Config) *CA {
	t.Helper()
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = testTD
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ca, _, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// parsedBundle returns the CA's bundle as a relying party sees it: parsed
// from the published document, not the in-memory object.
func parsedBundle(t testing.TB, ca *CA) *spiffebundle.Bundle {
	t.Helper()
	doc, err := ca.BundleJSON()
	if err != nil {
		t.Fatal(err)
	}
	b, err := spiffebundle.Parse(ca.TrustDomain(), doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenTwiceSameCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ca1, created, err := Open(Config{TrustDomain: testTD, Dir: dir})
	if err != nil || !created {
		t.Fatalf("first Open: created=%v err=%v", created, err)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(dir, "ca.key"), 0o600)
	checkMode(t, filepath.Join(dir, "jwt.key"), 0o600)
	ca2, created, err := Open(Config{TrustDomain: "spiffe://" + testTD, Dir: dir})
	if err != nil || created {
		t.Fatalf("second Open: created=%v err=%v", created, err)
	}
	if !ca1.state().cert.Equal(ca2.state().cert) || !ca1.state().key.Equal(ca2.state().key) || !ca1.state().jwtKey.Equal(ca2.state().jwtKey) {
		t.Fatal("second Open loaded a different CA")
	}
	if ca1.state().kid != ca2.state().kid {
		t.Fatalf("kid changed: %s vs %s", ca1.state().kid, ca2.state().kid)
	}
	if !ca1.Bundle().Equal(ca2.Bundle()) {
		t.Fatal("bundles differ")
	}
	// An SVID from the first instance verifies with the second.
	id := mustSessionID(t, ca1, "a", "s")
	tok, _, err := ca1.MintJWTSVID(id, []string{"aud"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ca2.VerifyJWTSVID(tok, []string{"aud"}); err != nil || got != id {
		t.Fatalf("VerifyJWTSVID across reopen = %v, %v", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	base := t.TempDir()
	setup := func(t *testing.T) string {
		dir := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
		if _, _, err := Open(Config{TrustDomain: testTD, Dir: dir}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name   string
		td     string
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{"other trust domain", "other.org", nil, "data dir belongs to trust domain example.org, config says other.org"},
		{"key does not match cert", testTD, func(t *testing.T, dir string) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			os.Remove(filepath.Join(dir, "ca.key"))
			writePKCS8(t, filepath.Join(dir, "ca.key"), k)
		}, "does not match ca.key"},
		{"cert without key", testTD, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "ca.key"))
		}, "ca.key is missing"},
		{"garbage cert", testTD, func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("junk"), 0o644)
		}, "no PEM"},
		{"jwt key is wrong type", testTD, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "jwt.key"))
			if _, _, err := LoadOrCreateEd25519Key(filepath.Join(dir, "jwt.key")); err != nil {
				t.Fatal(err)
			}
		}, "want ECDSA P-256"},
		{"jwt key equals ca key", testTD, func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
			os.WriteFile(filepath.Join(dir, "jwt.key"), b, 0o600)
		}, "same key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setup(t)
			if tt.mutate != nil {
				tt.mutate(t, dir)
			}
			ca, _, err := Open(Config{TrustDomain: tt.td, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, %v; want error containing %q", ca, err, tt.want)
			}
		})
	}
}

func TestOpenBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{TrustDomain: "", Dir: t.TempDir()},
		{TrustDomain: "Example.org", Dir: t.TempDir()},
		{TrustDomain: "spiffe://example.org/path", Dir: t.TempDir()},
		{TrustDomain: "exa mple", Dir: t.TempDir()},
		{TrustDomain: testTD, Dir: ""},
	} {
		if _, _, err := Open(cfg); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

func TestOpenExpiredRoot(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, Config{Dir: dir})
	later := ca.state().cert.NotAfter.Add(time.Second)
	if _, _, err := Open(Config{TrustDomain: testTD, Dir: dir, Now: func() time.Time { return later }}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Open after root expiry: %v", err)
	}
}

func TestRootCertificateProfile(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ca := newCA(t, Config{Now: func() time.Time { return now }})
	c := ca.state().cert
	if c.Subject.CommonName != "ward example.org CA" {
		t.Errorf("CN %q", c.Subject.CommonName)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://example.org" {
		t.Errorf("URIs %v", c.URIs)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %b", c.KeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T", c.PublicKey)
	}
	if got := c.NotAfter.Sub(now); got != caValidity {
		t.Errorf("validity %s after now, want %s", got, caValidity)
	}
	if !c.NotBefore.Before(now) {
		t.Errorf("NotBefore %s not before now", c.NotBefore)
	}
	if c.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %s too short", c.SerialNumber)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Error("no subject key id")
	}
	if ca.TrustDomain().Name() != testTD {
		t.Errorf("TrustDomain %s", ca.TrustDomain())
	}
}

func TestBundleDocuments(t *testing.T) {
	ca := newCA(t, Config{})
	parsed := parsedBundle(t, ca)
	if !parsed.Equal(ca.Bundle()) {
		t.Fatal("bundle parsed from BundleJSON differs from Bundle()")
	}
	if got := parsed.X509Authorities(); len(got) != 1 || !got[0].Equal(ca.state().cert) {
		t.Fatalf("x509 authorities %v", got)
	}
	pub, ok := parsed.FindJWTAuthority(ca.state().kid)
	if !ok || !ca.state().jwtKey.PublicKey.Equal(pub) {
		t.Fatalf("jwt authority %s missing or wrong", ca.state().kid)
	}
	if hint, ok := parsed.RefreshHint(); !ok || hint != DefaultBundleRefreshHint {
		t.Fatalf("refresh hint %s %v", hint, ok)
	}
	if seq, ok := parsed.SequenceNumber(); !ok || seq == 0 {
		t.Fatalf("sequence number %d %v", seq, ok)
	}

	// The document itself: one x509-svid and one jwt-svid entry.
	doc, _ := ca.BundleJSON()
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatal(err)
	}
	uses := map[string]int{}
	for _, k := range raw.Keys {
		uses[k["use"].(string)]++
		if _, ok := k["d"]; ok {
			t.Fatal("bundle contains private key material")
		}
	}
	if uses["x509-svid"] != 1 || uses["jwt-svid"] != 1 || len(raw.Keys) != 2 {
		t.Fatalf("bundle key uses %v", uses)
	}

	// The plain JWKS.
	jwksDoc, err := ca.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksDoc, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("jwks has %d keys", len(set.Keys))
	}
	k := set.Keys[0]
	if k.KeyID != ca.state().kid || k.Algorithm != "ES256" || k.Use != "sig" || !k.IsPublic() || !ca.state().jwtKey.PublicKey.Equal(k.Key) {
		t.Fatalf("jwks key %+v", k)
	}
	if tp, err := Thumbprint(k.Key); err != nil || tp != k.KeyID {
		t.Fatalf("kid %s is not the RFC 7638 thumbprint %s (%v)", k.KeyID, tp, err)
	}

	// The PEM bundle.
	block, rest := pem.Decode(ca.BundlePEM())
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatal("BundlePEM is not a single certificate")
	}
	if c, err := x509.ParseCertificate(block.Bytes); err != nil || !c.Equal(ca.state().cert) {
		t.Fatalf("BundlePEM certificate: %v", err)
	}
	if !ca.CertPool().Equal(func() *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.state().cert); return p }()) {
		t.Fatal("CertPool does not hold exactly the root")
	}
	if got := ca.X509Authorities(); len(got) != 1 || !got[0].Equal(ca.state().cert) {
		t.Fatal("X509Authorities")
	}
}

func TestBundleIsACopy(t *testing.T) {
	ca := newCA(t, Config{})
	b := ca.Bundle()
	b.RemoveJWTAuthority(ca.state().kid)
	b.SetX509Authorities(nil)
	if !ca.Bundle().HasJWTAuthority(ca.state().kid) || len(ca.Bundle().X509Authorities()) != 1 {
		t.Fatal("mutating Bundle() changed the CA")
	}
	doc, _ := ca.BundleJSON()
	doc[0] = 'x'
	if again, _ := ca.BundleJSON(); again[0] != '{' {
		t.Fatal("mutating BundleJSON() changed the CA")
	}
	p := ca.CertPool()
	other := newCA(t, Config{TrustDomain: "other.org"})
	p.AddCert(other.state().cert)
	if ca.CertPool().Equal(p) {
		t.Fatal("mutating CertPool() changed the CA")
	}
}

func mustSessionID(t testing.TB, ca *CA, agent, session string) spiffeid.ID {
	t.Helper()
	id, err := SessionID(ca.TrustDomain(), agent, session)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
