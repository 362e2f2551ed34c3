package grant

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

func BenchmarkIssueGrant(b *testing.B) {
	f := newFixture(b)
	c := rootClaims(b, f.sessionKey)
	for b.Loop() {
		if _, err := f.issuer.Issue(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyGrant(b *testing.B) {
	f := newFixture(b)
	tok, err := f.issuer.Issue(rootClaims(b, f.sessionKey))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		if _, err := f.verifier.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyProof verifies distinct proofs, replay cache included. A
// pool of proofs is reused with a fresh verifier each time it wraps.
func BenchmarkVerifyProof(b *testing.B) {
	const pool = 1024
	key := newKey(b)
	proofs := make([]string, pool)
	for i := range proofs {
		proofs[i] = mustProof(b, key, "POST", mcpURL, accTok, t0)
	}
	pv := newProofVerifier(t0, 0)
	i := 0
	for b.Loop() {
		if i == pool {
			i, pv = 0, newProofVerifier(t0, 0)
		}
		if _, err := pv.Verify(proofs[i], "POST", mcpURL, accTok); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkECDSAVerifyP256 is the baseline: one raw P-256 signature check,
// the floor under VerifyGrant and VerifyProof.
func BenchmarkECDSAVerifyP256(b *testing.B) {
	key := newKey(b)
	sum := sha256.Sum256([]byte("ward"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !ecdsa.VerifyASN1(&key.PublicKey, sum[:], sig) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkScopeAllows(b *testing.B) {
	s := Scope{Tools: []string{"git.*", "db.query", "fs.read_*", "fs.list_dir", "web.fetch"}}
	for b.Loop() {
		if !s.Allows(KindTool, "fs.read_file") {
			b.Fatal("denied")
		}
	}
}

// BenchmarkScopeAllowsHost is the egress proxy's grant check, once per
// request.
func BenchmarkScopeAllowsHost(b *testing.B) {
	s := Scope{Hosts: []string{"api.github.com", "*.googleapis.com", "10.0.0.7", "*.s3.amazonaws.com", "pypi.org"}}
	for b.Loop() {
		if !s.Allows(KindHost, "bucket.s3.amazonaws.com") {
			b.Fatal("denied")
		}
	}
}
