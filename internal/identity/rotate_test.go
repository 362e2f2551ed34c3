package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// TestInstallRotates: after Install of a new root and JWT key with the old
// ones retiring, new SVIDs are signed by the new keys, old and new verify
// (here and with go-spiffe against the published bundle), ward's TLS
// certificate comes from the retiring root and ends with it, and once the
// old keys are left out, what they signed is refused.
func TestInstallRotates(t *testing.T) {
	now := time.Now()
	ca := newCA(t, Config{Now: func() time.Time { return now }})
	id := spiffeid.RequireFromString("spiffe://example.org/agent/a/session/s1")
	agent := newP256(t)
	oldChain, err := ca.MintX509SVID(makeCSR(t, agent, nil), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldJWT, _, err := ca.MintJWTSVID(id, []string{"svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	old := ca.state()

	newKey, newJWT := newP256(t), newP256(t)
	newRoot, err := NewRoot(ca.TrustDomain(), newKey, now)
	if err != nil {
		t.Fatal(err)
	}
	retireAt := now.Add(2 * time.Hour)
	err = ca.Install(KeySet{Key: newKey, Cert: newRoot, JWTKey: newJWT, Sequence: old.seq + 1,
		Retiring:    []RetiringRoot{{Cert: old.cert, Key: old.key, NotAfter: retireAt}},
		RetiringJWT: []*ecdsa.PublicKey{&old.jwtKey.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	newChain, err := ca.MintX509SVID(makeCSR(t, agent, nil), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newTok, _, err := ca.MintJWTSVID(id, []string{"svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if newChain[0].CheckSignatureFrom(newRoot) != nil {
		t.Fatal("a new X.509-SVID is not signed by the new root")
	}
	if h, _ := decodeJWT(t, newTok); h["kid"] == old.kid {
		t.Fatal("a new JWT-SVID names the old key")
	}
	bundle := parsedBundle(t, ca)
	for _, chain := range [][]*x509.Certificate{oldChain, newChain} {
		if _, err := ca.VerifyX509SVID(chain); err != nil {
			t.Fatalf("verify: %v", err)
		}
		if _, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(now)); err != nil {
			t.Fatalf("go-spiffe: %v", err)
		}
	}
	for _, tok := range []string{oldJWT, newTok} {
		if _, err := ca.VerifyJWTSVID(tok, []string{"svc"}); err != nil {
			t.Fatalf("verify: %v", err)
		}
		if _, err := jwtsvid.ParseAndValidate(tok, bundle, []string{"svc"}); err != nil {
			t.Fatalf("go-spiffe: %v", err)
		}
	}
	jwks, _ := ca.JWKS()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks: %d keys, %v", len(set.Keys), err)
	}
	doc, _ := ca.BundleJSON()
	for _, b := range [][]byte{jwks, doc, ca.BundlePEM()} {
		if strings.Contains(string(b), `"d"`) || strings.Contains(string(b), "PRIVATE") {
			t.Fatal("a published document holds a private key")
		}
	}
	if strings.Count(string(ca.BundlePEM()), "BEGIN CERTIFICATE") != 2 {
		t.Fatal("bundle.pem does not carry both roots")
	}
	srv, err := ca.ServerCertificate([]string{"localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Leaf.CheckSignatureFrom(old.cert) != nil || srv.Leaf.NotAfter.After(retireAt) {
		t.Fatalf("ward's TLS certificate during the overlap: issued by the retiring root %v, ends %s (root retires %s)",
			srv.Leaf.CheckSignatureFrom(old.cert) == nil, srv.Leaf.NotAfter, retireAt)
	}

	// The old keys left out: what they signed is refused, even cached.
	if err := ca.Install(KeySet{Key: newKey, Cert: newRoot, JWTKey: newJWT, Sequence: old.seq + 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.VerifyX509SVID(oldChain); err == nil {
		t.Fatal("an X.509-SVID of a dropped root verifies")
	}
	if _, err := ca.VerifyJWTSVID(oldJWT, []string{"svc"}); err == nil {
		t.Fatal("a JWT-SVID of a dropped key verifies")
	}
	if _, err := ca.VerifyX509SVID(newChain); err != nil {
		t.Fatal(err)
	}
	srv, _ = ca.ServerCertificate([]string{"localhost"}, 0)
	if srv.Leaf.CheckSignatureFrom(newRoot) != nil {
		t.Fatal("ward's TLS certificate is not from the new root once the old one is dropped")
	}
}

// TestInstallRefuses: a key set that does not hang together is refused
// and the keys in force stay.
func TestInstallRefuses(t *testing.T) {
	ca := newCA(t, Config{})
	st := ca.state()
	other := newCA(t, Config{TrustDomain: "other.org"})
	k := newP256(t)
	root, _ := NewRoot(ca.TrustDomain(), k, time.Now())
	for name, ks := range map[string]KeySet{
		"no jwt key":          {Key: st.key, Cert: st.cert},
		"root of another key": {Key: k, Cert: st.cert, JWTKey: st.jwtKey},
		"foreign root":        {Key: other.state().key, Cert: other.state().cert, JWTKey: st.jwtKey},
		"jwt key is the root": {Key: st.key, Cert: st.cert, JWTKey: st.key},
		"retiring foreign":    {Key: k, Cert: root, JWTKey: st.jwtKey, Retiring: []RetiringRoot{{Cert: other.state().cert}}},
		"retiring twice":      {Key: k, Cert: root, JWTKey: st.jwtKey, Retiring: []RetiringRoot{{Cert: st.cert}, {Cert: st.cert}}},
		"retiring is active":  {Key: k, Cert: root, JWTKey: st.jwtKey, Retiring: []RetiringRoot{{Cert: root}}},
		"retiring wrong key":  {Key: k, Cert: root, JWTKey: st.jwtKey, Retiring: []RetiringRoot{{Cert: st.cert, Key: k}}},
		"jwt twice":           {Key: k, Cert: root, JWTKey: st.jwtKey, RetiringJWT: []*ecdsa.PublicKey{&st.jwtKey.PublicKey}},
		"nil retiring jwt":    {Key: k, Cert: root, JWTKey: st.jwtKey, RetiringJWT: []*ecdsa.PublicKey{nil}},
	} {
		if err := ca.Install(ks); err == nil {
			t.Errorf("%s: installed", name)
		}
		if ca.state() != st {
			t.Fatalf("%s: the keys in force changed", name)
		}
	}
}
