package identity

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"
)

// BenchmarkECDSASignP256 is the baseline: one raw P-256 signature, the
// floor under every mint below.
func BenchmarkECDSASignP256(b *testing.B) {
	key := newP256(b)
	digest := sha256.Sum256([]byte("ward"))
	for b.Loop() {
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMintJWTSVID(b *testing.B) {
	ca := newCA(b, Config{})
	id := mustSessionID(b, ca, "reporter", "01hx3k")
	aud := []string{"spiffe://example.org/ward/server"}
	for b.Loop() {
		if _, _, err := ca.MintJWTSVID(id, aud, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyJWTSVID(b *testing.B) {
	ca := newCA(b, Config{})
	id := mustSessionID(b, ca, "reporter", "01hx3k")
	aud := []string{"spiffe://example.org/ward/server"}
	tok, _, err := ca.MintJWTSVID(id, aud, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ca.VerifyJWTSVID(tok, aud); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMintX509SVID(b *testing.B) {
	ca := newCA(b, Config{})
	id := mustSessionID(b, ca, "reporter", "01hx3k")
	csr := makeCSR(b, newP256(b), nil)
	for b.Loop() {
		if _, err := ca.MintX509SVID(csr, id, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyX509SVID: a chain's first verification (a new
// connection's first request) and the same chain again (the connection's
// later requests), which is remembered.
func BenchmarkVerifyX509SVID(b *testing.B) {
	ca := newCA(b, Config{})
	id := mustSessionID(b, ca, "reporter", "01hx3k")
	chain, err := ca.MintX509SVID(makeCSR(b, newP256(b), nil), id, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			ca.state().verified = verifiedChains{}
			if _, err := ca.VerifyX509SVID(chain); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("remembered", func(b *testing.B) {
		for b.Loop() {
			if _, err := ca.VerifyX509SVID(chain); err != nil {
				b.Fatal(err)
			}
		}
	})
}
