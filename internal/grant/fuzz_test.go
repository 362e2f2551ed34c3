package grant

import (
	"crypto"
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// sentinelCount returns how many of the package's sentinels err wraps.
func sentinelCount(err error) int {
	n := 0
	for _, s := range []error{ErrInvalid, ErrExpired, ErrReplay, ErrCapacity, ErrWiden, ErrDepth} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	good, err := fx.issuer.Issue(rootClaims(f, fx.sessionKey))
	if err != nil {
		f.Fatal(err)
	}
	h, p := parts(f, good)
	kid := fx.issuer.KeyID()
	child, err := Narrow(&Claims{
		ID: "cm9vdA", Issuer: issuerID, Subject: rootID, Audience: Audience, Session: "s1", SPIFFEID: rootID,
		Scope: Scope{Tools: []string{"*"}}, JKT: jkt(f, fx.sessionKey), Expiry: t0.Add(time.Hour),
	}, Delegation{Session: "s2", SPIFFEID: childID, JKT: jkt(f, newKey(f)), Scope: Scope{Tools: []string{"fs.*"}}}, DefaultMaxDepth, t0)
	if err != nil {
		f.Fatal(err)
	}
	childTok, err := fx.issuer.Issue(child)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		good,
		childTok,
		good[:len(good)-1],
		good + "A",
		strings.Replace(good, ".", "..", 1),
		sign(f, newKey(f), h, p),
		sign(f, fx.signKey, strings.Replace(h, "ES256", "none", 1), p),
		sign(f, fx.signKey, `{"alg":"HS256","typ":"ward-grant+jwt","kid":"`+kid+`"}`, p),
		sign(f, fx.signKey, h, strings.Replace(p, `{"jti"`, `{"sub":"x","jti"`, 1)),
		sign(f, fx.signKey, h, strings.Replace(p, `"dep"`, `"dep":2,"x"`, 1)),
		sign(f, fx.signKey, h, `{"act":{"act":{"act":{"act":{"sub":""}}}}}`),
		"", ".", "..", "a.b.c", "e30.e30.e30",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := fx.verifier.Verify(tok)
		if err != nil {
			if c != nil {
				t.Fatal("claims with an error")
			}
			if n := sentinelCount(err); n != 1 || !(errors.Is(err, ErrInvalid) || errors.Is(err, ErrExpired)) {
				t.Fatalf("error %v wraps %d sentinels, want exactly one of ErrInvalid, ErrExpired", err, n)
			}
			if len(tok) >= 16 && strings.Contains(err.Error(), tok) {
				t.Fatal("error quotes the token")
			}
			return
		}
		// Accepted: an independent implementation must agree that the key
		// signed exactly these bytes with ES256.
		jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("accepted a token go-jose cannot parse: %v", err)
		}
		if _, err := jws.Verify(fx.issuer.PublicKey()); err != nil {
			t.Fatalf("accepted a token not signed by the key: %v", err)
		}
		if err := checkClaims(c, fx.verifier.td); err != nil {
			t.Fatalf("accepted inconsistent claims: %v", err)
		}
		if len(tok) > MaxTokenSize {
			t.Fatal("accepted an oversize token")
		}
	})
}

func FuzzProofVerify(f *testing.F) {
	key := newKey(f)
	good := mustProof(f, key, "POST", mcpURL, accTok, t0)
	h, p := parts(f, good)
	for _, seed := range []struct{ proof, method, url, tok string }{
		{good, "POST", mcpURL, accTok},
		{mustProof(f, key, "GET", "http://127.0.0.1:8080/x?y", "", t0), "GET", "http://127.0.0.1:8080/x", ""},
		{sign(f, newKey(f), h, p), "POST", mcpURL, accTok},
		{sign(f, key, strings.Replace(h, `"kty"`, `"d":"AAAA","kty"`, 1), p), "POST", mcpURL, accTok},
		{sign(f, key, h, strings.Replace(p, `"htm"`, `"htm":"GET","htm"`, 1)), "POST", mcpURL, accTok},
		{good[:len(good)-2], "POST", mcpURL, accTok},
		{"", "", "", ""},
		{"a.b.c", "GET", "https://x/", "t"},
	} {
		f.Add(seed.proof, seed.method, seed.url, seed.tok)
	}
	f.Fuzz(func(t *testing.T, proof, method, url, tok string) {
		pv := newProofVerifier(t0, 4)
		got, err := pv.Verify(proof, method, url, tok)
		if err != nil {
			if got != nil {
				t.Fatal("proof with an error")
			}
			if n := sentinelCount(err); n != 1 || !(errors.Is(err, ErrInvalid) || errors.Is(err, ErrReplay) || errors.Is(err, ErrCapacity)) {
				t.Fatalf("error %v wraps %d sentinels", err, n)
			}
			return
		}
		// Accepted: the jwk in the header signed it, per go-jose, and the
		// proof's JKT is that key's thumbprint.
		jws, err := jose.ParseSigned(proof, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("accepted a proof go-jose cannot parse: %v", err)
		}
		jwk := jws.Signatures[0].Header.JSONWebKey
		if jwk == nil || !jwk.IsPublic() {
			t.Fatal("accepted a proof without a public jwk")
		}
		if _, err := jws.Verify(jwk); err != nil {
			t.Fatalf("accepted a proof its jwk did not sign: %v", err)
		}
		pub, ok := jwk.Key.(*ecdsa.PublicKey)
		if !ok {
			t.Fatalf("accepted a %T jwk", jwk.Key)
		}
		tp, _ := jwk.Thumbprint(crypto.SHA256)
		if want, _ := Thumbprint(pub); got.JKT != want || got.JKT != b64.EncodeToString(tp) {
			t.Fatalf("JKT %s, want %s", got.JKT, want)
		}
		if got.Method != method {
			t.Fatalf("Method %q, request %q", got.Method, method)
		}
		// And it cannot be used twice.
		if _, err := pv.Verify(proof, method, url, tok); !errors.Is(err, ErrReplay) {
			t.Fatalf("second Verify = %v, want ErrReplay", err)
		}
	})
}

// splitPatterns turns fuzz input into a pattern list.
func splitPatterns(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func FuzzScopeCovers(f *testing.F) {
	f.Add("fs.*", "fs.read_*,fs.x", "fs.read_file", uint8(0))
	f.Add("fs.read*", "fs.*", "fs.other", uint8(0))
	f.Add("*", "a,b*,c.d", "c.d", uint8(2))
	f.Add("fs.a", "fs.a*", "fs.ab", uint8(0))
	f.Add("file:///data/*", "file:///data/x*,file:///data/", "file:///data/x/y", uint8(1))
	f.Add("", "", "", uint8(0))
	f.Add("x*y", "*", "x*y", uint8(1))
	f.Add("a*b*", "a*", "a*bc", uint8(1))
	f.Add("*.example.com", "api.example.com,*.x.example.com", "a.x.example.com", uint8(3))
	f.Add("api.example.com", "*.example.com", "example.com", uint8(3))
	f.Add("*", "10.0.0.1,::1,*.a", "b.a", uint8(3))
	f.Add("*.0.1", "10.0.0.1", "10.0.0.1", uint8(3))
	f.Add("*.example.com", "*.badexample.com", "x.badexample.com", uint8(3))
	f.Fuzz(func(t *testing.T, parent, child, name string, kind uint8) {
		k := Kind(kind % uint8(lastKind+1))
		var a, b Scope
		switch k {
		case KindTool:
			a.Tools, b.Tools = splitPatterns(parent), splitPatterns(child)
		case KindResource:
			a.Resources, b.Resources = splitPatterns(parent), splitPatterns(child)
		case KindPrompt:
			a.Prompts, b.Prompts = splitPatterns(parent), splitPatterns(child)
		case KindHost:
			a.Hosts, b.Hosts = splitPatterns(parent), splitPatterns(child)
		}
		err := a.Covers(b)
		if err != nil && a.Validate() == nil && b.Validate() == nil && !errors.Is(err, ErrWiden) {
			t.Fatalf("valid scopes, Covers = %v, want nil or ErrWiden", err)
		}
		if a.Validate() == nil && a.Covers(a) != nil {
			t.Fatalf("%v does not cover itself", a)
		}
		// Names to try: the fuzzed one, and each child pattern's literal
		// prefix (a host pattern's suffix), alone and extended.
		names := []string{name}
		for _, p := range b.list(k) {
			if k == KindHost {
				suf := strings.TrimPrefix(strings.TrimPrefix(p, "*"), ".")
				names = append(names, suf, "x."+suf, name+"."+suf)
				continue
			}
			pre := strings.TrimSuffix(p, "*")
			names = append(names, pre, pre+"x", pre+name)
		}
		in := a.Intersect(b)
		for _, n := range names {
			if err == nil && b.Allows(k, n) && !a.Allows(k, n) {
				t.Fatalf("%v covers %v, but only the child allows %q", a, b, n)
			}
			if in.Allows(k, n) != (a.Allows(k, n) && b.Allows(k, n)) {
				t.Fatalf("(%v ∩ %v = %v).Allows(%q) disagrees", a, b, in, n)
			}
		}
	})
}
