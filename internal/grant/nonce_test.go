package grant

import (
	"errors"
	"testing"
	"time"
)

func TestNonceCheck(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	n, err := NewNonces(NoncesConfig{Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewNonces(NoncesConfig{Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	nonce := n.Issue(t0)
	tamper := []byte(nonce)
	tamper[len(tamper)-2] ^= 1
	for _, tc := range []struct {
		name  string
		nonce string
		at    time.Time
		ok    bool
	}{
		{"same slot", nonce, t0, true},
		{"next slot", nonce, t0.Add(time.Minute), true},
		{"two slots later", nonce, t0.Add(2 * time.Minute), false},
		{"before it was issued", nonce, t0.Add(-time.Minute), false},
		{"empty", "", t0, false},
		{"not base64url", "!!!", t0, false},
		{"tampered", string(tamper), t0, false},
		{"another server's", other.Issue(t0), t0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n.Check(tc.nonce, tc.at)
			if tc.ok != (err == nil) {
				t.Fatalf("Check = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrUseNonce) {
				t.Fatalf("Check = %v, want ErrUseNonce", err)
			}
		})
	}
	if _, err := NewNonces(NoncesConfig{Key: make([]byte, 16)}); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
	shared := make([]byte, 32)
	a, _ := NewNonces(NoncesConfig{Key: shared})
	b, _ := NewNonces(NoncesConfig{Key: shared})
	if err := b.Check(a.Issue(t0), t0); err != nil {
		t.Fatalf("a nonce under a shared key was refused: %v", err)
	}
}

// TestProofNonce: a verifier that asks for nonces refuses a proof without
// one, or with another verifier's, before it records the jti (so the
// retry with the nonce is not a replay), and accepts the proof with its
// own; a proof made for one node is refused by another node.
func TestProofNonce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	key := newKey(t)
	na, _ := NewNonces(NoncesConfig{})
	nb, _ := NewNonces(NoncesConfig{})
	va := NewProofVerifier(ProofVerifierConfig{Now: clock, Nonces: na})
	vb := NewProofVerifier(ProofVerifierConfig{Now: clock, Nonces: nb})
	const url = "https://ward.example/mcp"
	if NewProofVerifier(ProofVerifierConfig{}).Nonce() != "" {
		t.Fatal("a verifier without nonces issued one")
	}

	bare, err := NewProof(key, "POST", url, "tok", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := va.Verify(bare, "POST", url, "tok"); !errors.Is(err, ErrUseNonce) {
		t.Fatalf("proof without nonce: %v, want ErrUseNonce", err)
	}
	withB, _ := NewProofNonce(key, "POST", url, "tok", vb.Nonce(), now)
	if _, err := va.Verify(withB, "POST", url, "tok"); !errors.Is(err, ErrUseNonce) {
		t.Fatalf("proof with another node's nonce: %v, want ErrUseNonce", err)
	}
	withA, _ := NewProofNonce(key, "POST", url, "tok", va.Nonce(), now)
	if _, err := va.Verify(withA, "POST", url, "tok"); err != nil {
		t.Fatalf("proof with the node's nonce: %v", err)
	}
	if _, err := va.Verify(withA, "POST", url, "tok"); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay on the same node: %v, want ErrReplay", err)
	}
	// The captured proof replayed to the other node.
	if _, err := vb.Verify(withA, "POST", url, "tok"); !errors.Is(err, ErrUseNonce) {
		t.Fatalf("replay on another node: %v, want ErrUseNonce", err)
	}
	// Without nonces, the other node would have accepted it once.
	if _, err := NewProofVerifier(ProofVerifierConfig{Now: clock}).Verify(withA, "POST", url, "tok"); err != nil {
		t.Fatalf("control: %v", err)
	}
	// Stale: two slots later (and a fresh iat), refused.
	now = now.Add(2 * DefaultNonceLifetime)
	old, _ := NewProofNonce(key, "POST", url, "tok", na.Issue(now.Add(-2*DefaultNonceLifetime)), now)
	if _, err := va.Verify(old, "POST", url, "tok"); !errors.Is(err, ErrUseNonce) {
		t.Fatalf("stale nonce: %v, want ErrUseNonce", err)
	}
}

// BenchmarkNonce is what a node asking for nonces adds per request: one
// nonce checked (in Verify) and one issued (offered with the answer).
func BenchmarkNonce(b *testing.B) {
	n, err := NewNonces(NoncesConfig{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	nonce := n.Issue(now)
	for b.Loop() {
		if err := n.Check(nonce, now); err != nil {
			b.Fatal(err)
		}
		_ = n.Issue(now)
	}
}

// FuzzNonceCheck: whatever a client sends as a nonce, Check accepts
// exactly the nonces Issue gives for now's slot and the one before.
func FuzzNonceCheck(f *testing.F) {
	n, err := NewNonces(NoncesConfig{Key: make([]byte, 32), Lifetime: time.Minute})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	for _, s := range []string{"", "x", n.Issue(now), n.Issue(now.Add(-time.Minute)), n.Issue(now.Add(-2 * time.Minute)), n.Issue(now) + "A", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		n.Issue(now)[:10] + "\n" + n.Issue(now)[10:], n.Issue(now)[:10] + "\r\n" + n.Issue(now)[10:]} {
		f.Add(s)
	}
	cur, prev := n.Issue(now), n.Issue(now.Add(-time.Minute))
	f.Fuzz(func(t *testing.T, nonce string) {
		err := n.Check(nonce, now)
		if ok := nonce == cur || nonce == prev; ok != (err == nil) {
			t.Fatalf("Check(%q) = %v; issued for this slot or the last: %v", nonce, err, ok)
		}
		if err != nil && !errors.Is(err, ErrUseNonce) {
			t.Fatalf("Check(%q) = %v, want ErrUseNonce", nonce, err)
		}
	})
}
