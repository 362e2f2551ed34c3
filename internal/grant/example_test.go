package grant_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/ward-dev/ward/internal/grant"
)

// The authority issues a grant bound to the session's key; the gateway
// checks grant, proof and binding on every request.
func Example() {
	now := time.Unix(1767225600, 0)
	clock := func() time.Time { return now }
	authorityKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sessionKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	issuer, _ := grant.NewIssuer(grant.IssuerConfig{Key: authorityKey, TrustDomain: "example.org", Now: clock})
	jkt, _ := grant.Thumbprint(&sessionKey.PublicKey)
	token, err := issuer.Issue(grant.Claims{
		Session:  "s1",
		SPIFFEID: "spiffe://example.org/agent/report/session/s1",
		Scope:    grant.Scope{Tools: []string{"db.read_*"}},
		JKT:      jkt,
		Expiry:   now.Add(15 * time.Minute),
	})
	if err != nil {
		panic(err)
	}

	// The agent signs a proof for each request with its session key.
	proof, _ := grant.NewProof(sessionKey, "POST", "https://ward.example/mcp", token, now)

	// The gateway.
	verifier, _ := grant.NewVerifier(grant.VerifierConfig{
		Keys:        map[string]*ecdsa.PublicKey{issuer.KeyID(): issuer.PublicKey()},
		TrustDomain: "example.org",
		Now:         clock,
	})
	proofs := grant.NewProofVerifier(grant.ProofVerifierConfig{Now: clock})
	claims, err := verifier.Verify(token)
	if err != nil {
		panic(err)
	}
	p, err := proofs.Verify(proof, "POST", "https://ward.example/mcp", token)
	if err != nil {
		panic(err)
	}
	fmt.Println("bound:", claims.CheckBinding(p) == nil)
	fmt.Println("may call db.read_rows:", claims.Scope.Allows(grant.KindTool, "db.read_rows"))
	fmt.Println("may call db.drop:", claims.Scope.Allows(grant.KindTool, "db.drop"))

	_, err = proofs.Verify(proof, "POST", "https://ward.example/mcp", token)
	fmt.Println("replayed:", errors.Is(err, grant.ErrReplay))
	// Output:
	// bound: true
	// may call db.read_rows: true
	// may call db.drop: false
	// replayed: true
}

// A sub-agent may get less than its parent, never more.
func ExampleNarrow() {
	now := time.Unix(1767225600, 0)
	parent := &grant.Claims{
		ID:       "cGFyZW50LWdyYW50",
		Issuer:   "spiffe://example.org",
		Subject:  "spiffe://example.org/agent/report/session/s1",
		Audience: "ward",
		Session:  "s1",
		SPIFFEID: "spiffe://example.org/agent/report/session/s1",
		Scope:    grant.Scope{Tools: []string{"fs.read_*"}},
		JKT:      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		Expiry:   now.Add(10 * time.Minute),
	}
	d := grant.Delegation{
		Session:  "s2",
		SPIFFEID: "spiffe://example.org/agent/helper/session/s2",
		JKT:      "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA",
		Scope:    grant.Scope{Tools: []string{"fs.read_file"}},
		TTL:      time.Hour,
	}
	child, err := grant.Narrow(parent, d, grant.DefaultMaxDepth, now)
	fmt.Println(err, child.Depth, child.Act.Sub, child.Expiry.Sub(now))

	d.Scope.Tools = append(d.Scope.Tools, "fs.write_file")
	_, err = grant.Narrow(parent, d, grant.DefaultMaxDepth, now)
	fmt.Println(err)
	// Output:
	// <nil> 1 spiffe://example.org/agent/helper/session/s2 10m0s
	// narrow: scope widens parent: tool pattern "fs.write_file" not covered by parent
}
