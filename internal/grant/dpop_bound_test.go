package grant

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// TestVerifyBoundRefusesOtherKeysBeforeRecording: proofs by a key other
// than the grant's are refused and do not take space in the replay cache.
func TestVerifyBoundRefusesOtherKeysBeforeRecording(t *testing.T) {
	now := time.Now()
	owner, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := Thumbprint(owner.Public())
	pv := NewProofVerifier(ProofVerifierConfig{ReplayCacheSize: 8, Now: func() time.Time { return now }})
	for i := 0; i < 50; i++ {
		thief, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		proof, _ := NewProof(thief, "POST", "https://w/mcp", "tok", now)
		if _, err := pv.VerifyBound(proof, "POST", "https://w/mcp", "tok", jkt); !errors.Is(err, ErrInvalid) {
			t.Fatalf("thief's proof: %v", err)
		}
	}
	proof, _ := NewProof(owner, "POST", "https://w/mcp", "tok", now)
	if _, err := pv.VerifyBound(proof, "POST", "https://w/mcp", "tok", jkt); err != nil {
		t.Fatalf("owner's proof after the flood: %v", err)
	}
}
