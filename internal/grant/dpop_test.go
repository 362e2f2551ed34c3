package grant

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	mcpURL = "https://ward.example/mcp"
	accTok = "grant-token-value"
)

func newProofVerifier(now time.Time, size int) *ProofVerifier {
	return NewProofVerifier(ProofVerifierConfig{Now: fixedClock(now), ReplayCacheSize: size})
}

func mustProof(t testing.TB, key *ecdsa.PrivateKey, method, url, tok string, now time.Time) string {
	t.Helper()
	p, err := NewProof(key, method, url, tok, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProofEndToEnd is the whole check a gateway makes: grant, proof, binding.
func TestProofEndToEnd(t *testing.T) {
	f := newFixture(t)
	grantTok, err := f.issuer.Issue(rootClaims(t, f.sessionKey))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := f.verifier.Verify(grantTok)
	if err != nil {
		t.Fatal(err)
	}
	pv := newProofVerifier(t0, 0)
	proofTok := mustProof(t, f.sessionKey, "POST", mcpURL, grantTok, t0)
	p, err := pv.Verify(proofTok, "POST", mcpURL, grantTok)
	if err != nil {
		t.Fatalf("valid proof refused: %v", err)
	}
	if err := claims.CheckBinding(p); err != nil {
		t.Errorf("CheckBinding: %v", err)
	}
	if p.JKT != claims.JKT || p.Method != "POST" || p.URL != mcpURL || !p.IssuedAt.Equal(t0) || p.ID == "" {
		t.Errorf("Proof = %+v", p)
	}

	// The same proof again is a replay.
	if _, err := pv.Verify(proofTok, "POST", mcpURL, grantTok); !errors.Is(err, ErrReplay) {
		t.Errorf("replayed proof: Verify = %v, want ErrReplay", err)
	}
	// A fresh proof from the same key is fine.
	if _, err := pv.Verify(mustProof(t, f.sessionKey, "POST", mcpURL, grantTok, t0), "POST", mcpURL, grantTok); err != nil {
		t.Errorf("second proof: %v", err)
	}

	// A stolen grant with the thief's own key: the proof is valid, the
	// binding is not.
	thief := newKey(t)
	stolen, err := pv.Verify(mustProof(t, thief, "POST", mcpURL, grantTok, t0), "POST", mcpURL, grantTok)
	if err != nil {
		t.Fatalf("thief's proof: %v", err)
	}
	if err := claims.CheckBinding(stolen); !errors.Is(err, ErrInvalid) {
		t.Errorf("stolen grant: CheckBinding = %v, want ErrInvalid", err)
	}
}

// TestProofGoJose checks that an independent JOSE implementation reads our
// proofs: the signature verifies under the embedded jwk, and its
// thumbprint is the proof's JKT.
func TestProofGoJose(t *testing.T) {
	key := newKey(t)
	tok := mustProof(t, key, "GET", mcpURL, accTok, t0)
	sig, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := sig.Signatures[0].Header
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		t.Fatal("no public jwk in header")
	}
	if _, err := sig.Verify(h.JSONWebKey); err != nil {
		t.Fatalf("go-jose: %v", err)
	}
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != ProofType {
		t.Errorf("typ = %v", typ)
	}
	p, err := newProofVerifier(t0, 0).Verify(tok, "GET", mcpURL, accTok)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := Thumbprint(&key.PublicKey); p.JKT != want {
		t.Errorf("JKT = %s, want %s", p.JKT, want)
	}
}

func TestProofRefuses(t *testing.T) {
	key := newKey(t)
	kid := newKey(t)
	good := mustProof(t, key, "POST", mcpURL, accTok, t0)
	gh, gp := parts(t, good)
	otherJWK, _ := parts(t, mustProof(t, kid, "POST", mcpURL, accTok, t0))
	replaceHeader := func(old, new string) string {
		if !strings.Contains(gh, old) {
			t.Fatalf("header %s has no %s", gh, old)
		}
		return sign(t, key, strings.Replace(gh, old, new, 1), gp)
	}
	replacePayload := func(old, new string) string {
		if !strings.Contains(gp, old) {
			t.Fatalf("payload %s has no %s", gp, old)
		}
		return sign(t, key, gh, strings.Replace(gp, old, new, 1))
	}
	// The private scalar, as a "d" member.
	dRaw, _ := key.Bytes()
	jwk, err := publicJWK(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	withD := replaceHeader(`"kty":"EC"`, `"kty":"EC","d":"`+b64.EncodeToString(dRaw)+`"`)

	tests := []struct {
		name                string
		proof               string
		method, url, access string
		now                 time.Time
		want                error
		why                 string
	}{
		{"wrong method", good, "GET", mcpURL, accTok, t0, ErrInvalid, "htm"},
		{"method case", good, "post", mcpURL, accTok, t0, ErrInvalid, "htm"},
		{"wrong url path", good, "POST", "https://ward.example/other", accTok, t0, ErrInvalid, "htu"},
		{"wrong url host", good, "POST", "https://evil.example/mcp", accTok, t0, ErrInvalid, "htu"},
		{"wrong url scheme", good, "POST", "http://ward.example/mcp", accTok, t0, ErrInvalid, "htu"},
		{"wrong url port", good, "POST", "https://ward.example:8443/mcp", accTok, t0, ErrInvalid, "htu"},
		{"wrong ath", good, "POST", mcpURL, "another-token", t0, ErrInvalid, "ath does not match"},
		{"ath but no token", good, "POST", mcpURL, "", t0, ErrInvalid, "no access token"},
		{"no ath", mustProof(t, key, "POST", mcpURL, "", t0), "POST", mcpURL, accTok, t0, ErrInvalid, "no ath"},
		{"stale iat", good, "POST", mcpURL, accTok, t0.Add(DefaultProofMaxAge + time.Second), ErrInvalid, "older than"},
		{"future iat", good, "POST", mcpURL, accTok, t0.Add(-DefaultProofLeeway - time.Second), ErrInvalid, "future"},
		{"signed by another key than its jwk", sign(t, kid, gh, gp), "POST", mcpURL, accTok, t0, ErrInvalid, "signature"},
		{"jwk swapped after signing", strings.Join(append([]string{b64.EncodeToString([]byte(otherJWK))}, strings.Split(good, ".")[1:]...), "."), "POST", mcpURL, accTok, t0, ErrInvalid, "signature"},
		{"private key in jwk", withD, "POST", mcpURL, accTok, t0, ErrInvalid, "private"},
		{"P-384 jwk", replaceHeader(`"crv":"P-256"`, `"crv":"P-384"`), "POST", mcpURL, accTok, t0, ErrInvalid, "P-256"},
		{"OKP jwk", replaceHeader(`"kty":"EC"`, `"kty":"OKP"`), "POST", mcpURL, accTok, t0, ErrInvalid, "P-256"},
		{"point off curve", replaceHeader(`"y":"`+jwk.Y+`"`, `"y":"`+strings.Repeat("A", 43)+`"`), "POST", mcpURL, accTok, t0, ErrInvalid, "not on P-256"},
		{"short x", replaceHeader(`"x":"`+jwk.X+`"`, `"x":"`+jwk.X[:42]+`"`), "POST", mcpURL, accTok, t0, ErrInvalid, "32 bytes"},
		{"non-canonical x", replaceHeader(`"x":"`+jwk.X+`"`, `"x":"`+jwk.X+`="`), "POST", mcpURL, accTok, t0, ErrInvalid, "32 bytes"},
		{"no jwk", sign(t, key, `{"typ":"dpop+jwt","alg":"ES256"}`, gp), "POST", mcpURL, accTok, t0, ErrInvalid, "no jwk"},
		{"typ JWT", replaceHeader(`"typ":"dpop+jwt"`, `"typ":"JWT"`), "POST", mcpURL, accTok, t0, ErrInvalid, "typ"},
		{"typ grant", replaceHeader(`"typ":"dpop+jwt"`, `"typ":"ward-grant+jwt"`), "POST", mcpURL, accTok, t0, ErrInvalid, "typ"},
		{"alg none", replaceHeader(`"alg":"ES256"`, `"alg":"none"`), "POST", mcpURL, accTok, t0, ErrInvalid, "alg"},
		{"alg HS256", replaceHeader(`"alg":"ES256"`, `"alg":"HS256"`), "POST", mcpURL, accTok, t0, ErrInvalid, "alg"},
		{"alg RS256", replaceHeader(`"alg":"ES256"`, `"alg":"RS256"`), "POST", mcpURL, accTok, t0, ErrInvalid, "alg"},
		{"crit", replaceHeader(`"alg":"ES256"`, `"alg":"ES256","crit":["x"]`), "POST", mcpURL, accTok, t0, ErrInvalid, "crit"},
		{"unknown header", replaceHeader(`"alg":"ES256"`, `"alg":"ES256","kid":"x"`), "POST", mcpURL, accTok, t0, ErrInvalid, "unknown member"},
		{"duplicate header", replaceHeader(`"alg":"ES256"`, `"alg":"ES256","alg":"ES256"`), "POST", mcpURL, accTok, t0, ErrInvalid, "duplicate"},
		{"duplicate claim", replacePayload(`"htm":"POST"`, `"htm":"GET","htm":"POST"`), "POST", mcpURL, accTok, t0, ErrInvalid, "duplicate"},
		{"no jti", replacePayload(`"jti":"`, `"x":"`), "POST", mcpURL, accTok, t0, ErrInvalid, "jti"},
		{"long jti", replacePayload(`"jti":"`, `"jti":"`+strings.Repeat("j", maxJTILen)), "POST", mcpURL, accTok, t0, ErrInvalid, "jti"},
		{"no iat", replacePayload(`"iat":`, `"x":`), "POST", mcpURL, accTok, t0, ErrInvalid, "iat"},
		{"oversize", good + strings.Repeat("A", MaxProofSize), "POST", mcpURL, accTok, t0, ErrInvalid, "more than"},
		{"truncated", good[:len(good)-3], "POST", mcpURL, accTok, t0, ErrInvalid, "signature"},
		{"garbage", "DPoP proof", "POST", mcpURL, accTok, t0, ErrInvalid, "alphabet"},
		{"empty", "", "POST", mcpURL, accTok, t0, ErrInvalid, "parts"},
		{"request url relative", good, "POST", "/mcp", accTok, t0, ErrInvalid, "request url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newProofVerifier(tt.now, 0).Verify(tt.proof, tt.method, tt.url, tt.access)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if p != nil {
				t.Error("proof returned with an error")
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Verify error = %q, want it to say %q", err, tt.why)
			}
		})
	}
}

func TestProofURLNormalisation(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		proofURL, requestURL string
		ok                   bool
	}{
		{"https://ward.example/mcp", "https://ward.example/mcp", true},
		{"https://WARD.Example:443/mcp?session=1#frag", "https://ward.example/mcp", true},
		{"HTTPS://ward.example/mcp", "https://ward.example:443/mcp?x", true},
		{"http://127.0.0.1:80/a", "http://127.0.0.1/a", true},
		{"http://[::1]:8080/a", "http://[::1]:8080/a?b", true},
		{"https://ward.example", "https://ward.example/", true},
		{"https://ward.example/MCP", "https://ward.example/mcp", false},
		{"https://ward.example:80/mcp", "https://ward.example/mcp", false},
		{"https://ward.example/mcp/", "https://ward.example/mcp", false},
	}
	for _, tt := range tests {
		t.Run(tt.proofURL+"→"+tt.requestURL, func(t *testing.T) {
			_, err := newProofVerifier(t0, 0).Verify(mustProof(t, key, "GET", tt.proofURL, "", t0), "GET", tt.requestURL, "")
			if (err == nil) != tt.ok {
				t.Errorf("Verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	for _, bad := range []string{"", "/mcp", "ftp://ward.example/x", "https://user:pw@ward.example/", "https:ward.example", "https://:443/x", "https://ward example/"} {
		if _, err := NewProof(key, "GET", bad, "", t0); err == nil {
			t.Errorf("NewProof accepted url %q", bad)
		}
	}
	if _, err := NewProof(key, "GET POST", mcpURL, "", t0); err == nil {
		t.Error("NewProof accepted a malformed method")
	}
}

func TestReplayCacheFailsClosed(t *testing.T) {
	key := newKey(t)
	now := t0
	pv := NewProofVerifier(ProofVerifierConfig{Now: func() time.Time { return now }, ReplayCacheSize: 3})
	verify := func(iat time.Time) error {
		_, err := pv.Verify(mustProof(t, key, "GET", mcpURL, "", iat), "GET", mcpURL, "")
		return err
	}
	for i := range 3 {
		if err := verify(t0); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
	}
	// Full of live entries: refuse rather than forget.
	if err := verify(t0); !errors.Is(err, ErrCapacity) {
		t.Fatalf("full cache: Verify = %v, want ErrCapacity", err)
	}
	// Still within MaxAge+Leeway of the entries' iat: still full.
	now = t0.Add(DefaultProofMaxAge + DefaultProofLeeway)
	if err := verify(now); !errors.Is(err, ErrCapacity) {
		t.Fatalf("at the end of the window: Verify = %v, want ErrCapacity", err)
	}
	// Past it, the old entries are evicted and room is made.
	now = t0.Add(DefaultProofMaxAge + DefaultProofLeeway + time.Second)
	for i := range 3 {
		if err := verify(now); err != nil {
			t.Fatalf("after eviction, proof %d: %v", i, err)
		}
	}
	if err := verify(now); !errors.Is(err, ErrCapacity) {
		t.Fatalf("full again: Verify = %v, want ErrCapacity", err)
	}
}

// TestReplayWindow checks that a proof is remembered for as long as it could
// pass the iat check, including a proof dated in the future.
func TestReplayWindow(t *testing.T) {
	key := newKey(t)
	now := t0
	pv := NewProofVerifier(ProofVerifierConfig{Now: func() time.Time { return now }})
	future := mustProof(t, key, "GET", mcpURL, "", t0.Add(DefaultProofLeeway))
	if _, err := pv.Verify(future, "GET", mcpURL, ""); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Second, DefaultProofMaxAge, DefaultProofMaxAge + DefaultProofLeeway} {
		now = t0.Add(d)
		if _, err := pv.Verify(future, "GET", mcpURL, ""); !errors.Is(err, ErrReplay) {
			t.Fatalf("at +%s: Verify = %v, want ErrReplay", d, err)
		}
	}
	now = t0.Add(DefaultProofMaxAge + 2*DefaultProofLeeway)
	if _, err := pv.Verify(future, "GET", mcpURL, ""); errors.Is(err, ErrReplay) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("after the window: Verify = %v, want stale (ErrInvalid)", err)
	}
}

// TestProofConcurrent verifies distinct proofs from many goroutines while
// replaying each once; run with -race.
func TestProofConcurrent(t *testing.T) {
	const workers, perWorker = 16, 20
	pv := newProofVerifier(t0, 0)
	keys := make([]*ecdsa.PrivateKey, workers)
	proofs := make([][]string, workers)
	for w := range workers {
		keys[w] = newKey(t)
		for range perWorker {
			proofs[w] = append(proofs[w], mustProof(t, keys[w], "POST", mcpURL, accTok, t0))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for _, p := range proofs[w] {
				got, err := pv.Verify(p, "POST", mcpURL, accTok)
				if err != nil {
					errs <- fmt.Errorf("worker %d: fresh proof: %w", w, err)
					continue
				}
				if want, _ := Thumbprint(&keys[w].PublicKey); got.JKT != want {
					errs <- fmt.Errorf("worker %d: JKT mismatch", w)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every proof now replays, from any goroutine.
	var accepted sync.Map
	for w := range workers {
		wg.Go(func() {
			for _, p := range proofs[(w+1)%workers] {
				if _, err := pv.Verify(p, "POST", mcpURL, accTok); !errors.Is(err, ErrReplay) {
					accepted.Store(p, err)
				}
			}
		})
	}
	wg.Wait()
	accepted.Range(func(_, v any) bool {
		t.Errorf("replay not refused: %v", v)
		return true
	})
}

// TestProofRaceOnce races many goroutines on the same proof: exactly one
// wins.
func TestProofRaceOnce(t *testing.T) {
	pv := newProofVerifier(t0, 0)
	proof := mustProof(t, newKey(t), "GET", mcpURL, "", t0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 32 {
		wg.Go(func() {
			_, err := pv.Verify(proof, "GET", mcpURL, "")
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrReplay) {
				t.Errorf("Verify = %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d goroutines accepted the same proof, want 1", wins)
	}
}
