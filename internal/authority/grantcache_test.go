package authority

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/store"
)

type noAudit struct{}

func (noAudit) Append(context.Context, audit.Event) (uint64, error) { return 0, nil }

// clock is a settable clock for the authority and its issuer.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func grantAuthority(t testing.TB) (*Authority, *grant.Issuer, *clock) {
	t.Helper()
	clk := &clock{now: time.Now().Truncate(time.Second)}
	dir := t.TempDir()
	ca, _, err := identity.Open(identity.Config{TrustDomain: "cache.test", Dir: filepath.Join(dir, "ca"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), store.Config{Path: filepath.Join(dir, "ward.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := grant.NewIssuer(grant.IssuerConfig{Key: key, TrustDomain: "cache.test", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{CA: ca, Grants: iss, Store: st, Audit: noAudit{}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a, iss, clk
}

func issueGrant(t testing.TB, iss *grant.Issuer, exp time.Time) string {
	t.Helper()
	sessionKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, err := grant.Thumbprint(&sessionKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Issue(grant.Claims{Session: "s1", SPIFFEID: "spiffe://cache.test/agent/a/session/s1", Agent: "a", Sponsor: "p",
		JKT: jkt, Expiry: exp})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestVerifyGrantCache: verified grants are remembered by their exact
// bytes; other bytes (a flipped signature, a token of another signer) are
// verified in full and refused; a remembered grant is refused once its
// expiry (and the verifier's leeway) has passed; the cache stays bounded.
func TestVerifyGrantCache(t *testing.T) {
	a, iss, clk := grantAuthority(t)
	tok := issueGrant(t, iss, clk.Now().Add(time.Minute))
	first, err := a.VerifyGrant(tok)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.VerifyGrant(tok)
	if err != nil || again != first {
		t.Fatalf("the same bytes again: %v, same claims %v", err, again == first)
	}

	// The same grant with its signature's last character changed: not the
	// cached bytes, so verified, and refused.
	last := tok[len(tok)-1]
	flip := byte('A')
	if last == 'A' {
		flip = 'B'
	}
	if _, err := a.VerifyGrant(tok[:len(tok)-1] + string(flip)); err == nil {
		t.Fatal("a grant with an altered signature was accepted (served from the cache?)")
	}
	// A grant of the same claims by another key.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := grant.NewIssuer(grant.IssuerConfig{Key: otherKey, TrustDomain: "cache.test", Now: clk.Now})
	if _, err := a.VerifyGrant(issueGrant(t, other, clk.Now().Add(time.Minute))); err == nil {
		t.Fatal("a grant signed by another key was accepted")
	}

	// Past its expiry and the leeway, the remembered grant is refused, as
	// a first verification would refuse it.
	clk.add(time.Minute + grant.DefaultLeeway)
	if _, err := a.VerifyGrant(tok); !errors.Is(err, grant.ErrExpired) {
		t.Fatalf("an expired grant from the cache: %v, want ErrExpired", err)
	}
	if _, ok := a.grants[sha256.Sum256([]byte(tok))]; ok {
		t.Fatal("the expired grant is still cached")
	}

	// Bounded: full of entries, one more verification leaves it no larger.
	a.mu.Lock()
	for i := len(a.grants); i < maxCachedGrants; i++ {
		k := sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16), 1})
		a.grants[k] = &grant.Claims{Expiry: clk.Now().Add(time.Hour)}
	}
	a.mu.Unlock()
	if _, err := a.VerifyGrant(issueGrant(t, iss, clk.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if n := len(a.grants); n > maxCachedGrants {
		t.Fatalf("cache holds %d grants, bound %d", n, maxCachedGrants)
	}
}

// BenchmarkVerifyGrantCached is the per-request cost of a grant already
// verified (the same bytes on every request of a session), against a first
// verification (an ECDSA P-256 verification).
func BenchmarkVerifyGrantCached(b *testing.B) {
	for _, cached := range []bool{false, true} {
		name := "first"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			a, iss, clk := grantAuthority(b)
			tok := issueGrant(b, iss, clk.Now().Add(time.Hour))
			b.ReportAllocs()
			for b.Loop() {
				if !cached {
					a.mu.Lock()
					clear(a.grants)
					a.mu.Unlock()
				}
				if _, err := a.VerifyGrant(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
