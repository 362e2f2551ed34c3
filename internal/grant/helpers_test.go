package grant

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// t0 is the fixed instant tests run at: 2026-01-01T00:00:00Z.
var t0 = time.Unix(1767225600, 0)

const (
	td       = "example.org"
	rootID   = "spiffe://example.org/agent/report/session/s1"
	childID  = "spiffe://example.org/agent/helper/session/s2"
	grandID  = "spiffe://example.org/agent/helper/session/s3"
	greatID  = "spiffe://example.org/agent/helper/session/s4"
	issuerID = "spiffe://example.org"
)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func jkt(tb testing.TB, k *ecdsa.PrivateKey) string {
	tb.Helper()
	s, err := Thumbprint(&k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func objective(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// fixture is an issuer, a matching verifier and a session key at t0.
type fixture struct {
	signKey    *ecdsa.PrivateKey
	issuer     *Issuer
	verifier   *Verifier
	sessionKey *ecdsa.PrivateKey
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{signKey: newKey(tb), sessionKey: newKey(tb)}
	var err error
	f.issuer, err = NewIssuer(IssuerConfig{Key: f.signKey, TrustDomain: td, Now: fixedClock(t0)})
	if err != nil {
		tb.Fatal(err)
	}
	f.verifier, err = NewVerifier(VerifierConfig{
		Keys:        map[string]*ecdsa.PublicKey{f.issuer.KeyID(): f.issuer.PublicKey()},
		TrustDomain: "spiffe://" + td,
		Now:         fixedClock(t0),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// rootClaims are the claims of a typical root grant bound to key.
func rootClaims(tb testing.TB, key *ecdsa.PrivateKey) Claims {
	return Claims{
		Session:   "s1",
		SPIFFEID:  rootID,
		Agent:     "report",
		Sponsor:   "alice@example.org",
		Scope:     Scope{Tools: []string{"fs.*", "db.query"}, Resources: []string{"file:///data/*"}, Prompts: []string{"summarize"}, Hosts: []string{"api.example.com", "*.cdn.example.com"}},
		Objective: objective("write the quarterly report"),
		JKT:       jkt(tb, key),
		Expiry:    t0.Add(15 * time.Minute),
	}
}

// sign makes a compact JWS from raw header and payload JSON, signed with
// key whatever the header says.
func sign(tb testing.TB, key *ecdsa.PrivateKey, header, payload string) string {
	tb.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	sig, err := signES256(key, input)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// parts returns the decoded header and payload JSON of a compact JWS.
func parts(tb testing.TB, tok string) (header, payload string) {
	tb.Helper()
	h, p, _, err := splitCompact(tok, 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	hb, err := b64.DecodeString(h)
	if err != nil {
		tb.Fatal(err)
	}
	pb, err := b64.DecodeString(p)
	if err != nil {
		tb.Fatal(err)
	}
	return string(hb), string(pb)
}
