package grant

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestIssueVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	in := rootClaims(t, f.sessionKey)
	tok, err := f.issuer.Issue(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.verifier.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := in
	want.Issuer = issuerID
	want.Subject = rootID
	want.Audience = Audience
	want.IssuedAt, want.NotBefore = t0, t0
	if diff := cmp.Diff(want, *got, cmpopts.IgnoreFields(Claims{}, "ID")); diff != "" {
		t.Errorf("claims differ (-want +got):\n%s", diff)
	}
	if raw, err := b64.DecodeString(got.ID); err != nil || len(raw) != 16 {
		t.Errorf("ID %q is not 128 bits of base64url", got.ID)
	}

	h, _ := parts(t, tok)
	if want := `{"alg":"ES256","typ":"ward-grant+jwt","kid":"` + f.issuer.KeyID() + `"}`; h != want {
		t.Errorf("header = %s, want %s", h, want)
	}
	if kid, _ := Thumbprint(f.issuer.PublicKey()); kid != f.issuer.KeyID() {
		t.Errorf("KeyID %q is not the signing key's thumbprint %q", f.issuer.KeyID(), kid)
	}
}

// TestGoJoseReadsGrant checks with an independent implementation that a
// grant is a standard ES256 JWT and its kid is the RFC 7638 thumbprint.
func TestGoJoseReadsGrant(t *testing.T) {
	f := newFixture(t)
	tok, err := f.issuer.Issue(rootClaims(t, f.sessionKey))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var std josejwt.Claims
	if err := parsed.Claims(f.issuer.PublicKey(), &std); err != nil {
		t.Fatalf("go-jose rejects the signature: %v", err)
	}
	if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: issuerID, Subject: rootID, AnyAudience: josejwt.Audience{Audience}, Time: t0}, 0); err != nil {
		t.Error(err)
	}
	jwk := jose.JSONWebKey{Key: f.issuer.PublicKey()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := b64.EncodeToString(tp); got != f.issuer.KeyID() {
		t.Errorf("kid %q, go-jose thumbprint %q", f.issuer.KeyID(), got)
	}
	if parsed.Headers[0].KeyID != f.issuer.KeyID() {
		t.Errorf("header kid %q", parsed.Headers[0].KeyID)
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	good, err := f.issuer.Issue(rootClaims(t, f.sessionKey))
	if err != nil {
		t.Fatal(err)
	}
	goodHeader, goodPayload := parts(t, good)
	kid := f.issuer.KeyID()
	hdr := func(alg, typ, kid string) string {
		return `{"alg":"` + alg + `","typ":"` + typ + `","kid":"` + kid + `"}`
	}
	withPayload := func(old, new string) string {
		if !strings.Contains(goodPayload, old) {
			t.Fatalf("payload %s has no %s", goodPayload, old)
		}
		return sign(t, f.signKey, goodHeader, strings.Replace(goodPayload, old, new, 1))
	}
	other := newKey(t)

	// Issued by other issuers with the same signing key.
	evil, err := NewIssuer(IssuerConfig{Key: f.signKey, TrustDomain: "evil.org", Now: fixedClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	evilClaims := rootClaims(t, f.sessionKey)
	evilClaims.SPIFFEID = "spiffe://evil.org/agent/report/session/s1"
	wrongIssuer, err := evil.Issue(evilClaims)
	if err != nil {
		t.Fatal(err)
	}
	notYet := rootClaims(t, f.sessionKey)
	notYet.NotBefore = t0.Add(time.Minute)
	notYetTok, err := f.issuer.Issue(notYet)
	if err != nil {
		t.Fatal(err)
	}
	shortLived := rootClaims(t, f.sessionKey)
	shortLived.Expiry = t0.Add(time.Second)
	shortTok, err := f.issuer.Issue(shortLived)
	if err != nil {
		t.Fatal(err)
	}

	// HS256 with the issuer's public key as the HMAC secret: the classic
	// algorithm confusion attack.
	pubDER, err := x509.MarshalPKIXPublicKey(f.issuer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	hsInput := b64.EncodeToString([]byte(hdr("HS256", TokenType, kid))) + "." + b64.EncodeToString([]byte(goodPayload))
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsInput))
	hsTok := hsInput + "." + b64.EncodeToString(mac.Sum(nil))

	// RS256 with a real RSA signature.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsInput := b64.EncodeToString([]byte(hdr("RS256", TokenType, kid))) + "." + b64.EncodeToString([]byte(goodPayload))
	rsSum := sha256.Sum256([]byte(rsInput))
	rsSig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, rsSum[:])
	if err != nil {
		t.Fatal(err)
	}
	rsTok := rsInput + "." + b64.EncodeToString(rsSig)

	noneInput := b64.EncodeToString([]byte(hdr("none", TokenType, kid))) + "." + b64.EncodeToString([]byte(goodPayload))
	flipped := []byte(good)
	if flipped[len(flipped)-5] == 'A' {
		flipped[len(flipped)-5] = 'B'
	} else {
		flipped[len(flipped)-5] = 'A'
	}

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
		why   string // substring of the error
	}{
		{"other key, same kid", sign(t, other, goodHeader, goodPayload), t0, ErrInvalid, "bad signature"},
		{"flipped signature byte", string(flipped), t0, ErrInvalid, "bad signature"},
		{"signature of another payload", strings.Join(append(strings.Split(good, ".")[:2], strings.Split(withPayload(`"sid":"s1"`, `"sid":"s9"`), ".")[2]), "."), t0, ErrInvalid, "bad signature"},
		{"alg none, empty signature", noneInput + ".", t0, ErrInvalid, "empty part"},
		{"alg none, some signature", noneInput + ".AAAA", t0, ErrInvalid, "alg"},
		{"alg none, signed", sign(t, f.signKey, hdr("none", TokenType, kid), goodPayload), t0, ErrInvalid, "alg"},
		{"HS256 with public key as secret", hsTok, t0, ErrInvalid, "alg"},
		{"RS256", rsTok, t0, ErrInvalid, "alg"},
		{"ES384 header", sign(t, f.signKey, hdr("ES384", TokenType, kid), goodPayload), t0, ErrInvalid, "alg"},
		{"lowercase es256", sign(t, f.signKey, hdr("es256", TokenType, kid), goodPayload), t0, ErrInvalid, "alg"},
		{"unknown kid", sign(t, f.signKey, hdr("ES256", TokenType, "nope"), goodPayload), t0, ErrInvalid, "unknown kid"},
		{"no kid", sign(t, f.signKey, `{"alg":"ES256","typ":"ward-grant+jwt"}`, goodPayload), t0, ErrInvalid, "unknown kid"},
		{"typ JWT", sign(t, f.signKey, hdr("ES256", "JWT", kid), goodPayload), t0, ErrInvalid, "typ"},
		{"typ dpop+jwt", sign(t, f.signKey, hdr("ES256", ProofType, kid), goodPayload), t0, ErrInvalid, "typ"},
		{"crit header", sign(t, f.signKey, `{"alg":"ES256","typ":"ward-grant+jwt","kid":"`+kid+`","crit":["exp"]}`, goodPayload), t0, ErrInvalid, "crit"},
		{"jwk header", sign(t, f.signKey, `{"alg":"ES256","typ":"ward-grant+jwt","kid":"`+kid+`","jwk":{}}`, goodPayload), t0, ErrInvalid, "unknown member"},
		{"duplicate alg in header", sign(t, f.signKey, `{"alg":"none","alg":"ES256","typ":"ward-grant+jwt","kid":"`+kid+`"}`, goodPayload), t0, ErrInvalid, "duplicate member"},
		{"case-folded header name", sign(t, f.signKey, `{"ALG":"ES256","alg":"ES256","typ":"ward-grant+jwt","kid":"`+kid+`"}`, goodPayload), t0, ErrInvalid, "unknown member"},
		{"wrong issuer", wrongIssuer, t0, ErrInvalid, "wrong iss"},
		{"iss rewritten", withPayload(`"iss":"spiffe://example.org"`, `"iss":"spiffe://evil.org"`), t0, ErrInvalid, "wrong iss"},
		{"wrong aud", withPayload(`"aud":"ward"`, `"aud":"other"`), t0, ErrInvalid, "wrong aud"},
		{"aud array", withPayload(`"aud":"ward"`, `"aud":["ward"]`), t0, ErrInvalid, "payload: wrong type"},
		{"duplicate sub in payload", withPayload(`{"jti"`, `{"sub":"spiffe://example.org/agent/root","jti"`), t0, ErrInvalid, "duplicate member"},
		{"duplicate scope in payload", withPayload(`"scope":`, `"scope":{"tools":["*"]},"scope":`), t0, ErrInvalid, "duplicate member"},
		{"case-variant claim name", withPayload(`{"jti"`, `{"Scope":{"tools":["*"]},"jti"`), t0, ErrInvalid, "unknown member"},
		{"unknown claim", withPayload(`{"jti"`, `{"admin":true,"jti"`), t0, ErrInvalid, "unknown member"},
		{"unknown scope kind", withPayload(`"scope":{`, `"scope":{"exec":["*"],`), t0, ErrInvalid, "unknown member"},
		{"malformed scope pattern", withPayload(`"fs.*"`, `"fs.*.x"`), t0, ErrInvalid, "scope:"},
		{"malformed host pattern", withPayload(`"api.example.com"`, `"API.example.com"`), t0, ErrInvalid, "scope: host pattern"},
		{"missing cnf", withPayload(`"cnf":{"jkt":"`+jkt(t, f.sessionKey)+`"},`, ``), t0, ErrInvalid, "cnf.jkt"},
		{"missing sid", withPayload(`"sid":"s1",`, ``), t0, ErrInvalid, "sid"},
		{"spiffe_id other than sub at depth 0", withPayload(`"spiffe_id":"`+rootID+`"`, `"spiffe_id":"`+childID+`"`), t0, ErrInvalid, "root grant"},
		{"depth 1 without act or par", withPayload(`"scope"`, `"dep":1,"scope"`), t0, ErrInvalid, "child grant"},
		{"negative depth", withPayload(`"scope"`, `"dep":-1,"scope"`), t0, ErrInvalid, "dep out of range"},
		{"fractional exp", withPayload(`"exp":`, `"exp":0.5,"x":`), t0, ErrInvalid, "wrong type"},
		{"string exp", withPayload(`"sid"`, `"exp":"2000000000","sid"`), t0, ErrInvalid, "wrong type"},
		{"obj not hex", withPayload(`"obj":"`, `"obj":"Z`), t0, ErrInvalid, "obj"},
		{"not yet valid", notYetTok, t0, ErrInvalid, "not valid before"},
		{"expired", good, t0.Add(15*time.Minute + DefaultLeeway), ErrExpired, "expired at"},
		{"expired long ago", shortTok, t0.Add(time.Hour), ErrExpired, "expired at"},
		{"oversize", good + strings.Repeat("A", MaxTokenSize), t0, ErrInvalid, "more than 8192"},
		{"oversize signed", sign(t, f.signKey, goodHeader, strings.Replace(goodPayload, `"summarize"`, `"`+strings.Repeat("a", MaxTokenSize)+`"`, 1)), t0, ErrInvalid, "more than 8192"},
		{"truncated", good[:len(good)-10], t0, ErrInvalid, "signature is not 64 bytes"},
		{"no signature", good[:strings.LastIndexByte(good, '.')], t0, ErrInvalid, "parts"},
		{"trailing dot", good + ".", t0, ErrInvalid, "parts"},
		{"newline inside", good[:20] + "\n" + good[20:], t0, ErrInvalid, "alphabet"},
		{"padding", good + "=", t0, ErrInvalid, "alphabet"},
		{"empty", "", t0, ErrInvalid, "parts"},
		{"garbage", "not a token at all", t0, ErrInvalid, "alphabet"},
		{"dots", "..", t0, ErrInvalid, "empty part"},
		{"json payload not object", sign(t, f.signKey, goodHeader, `[]`), t0, ErrInvalid, "wrong type"},
		{"null payload", sign(t, f.signKey, goodHeader, `null`), t0, ErrInvalid, "jti missing"},
		{"trailing data after payload", sign(t, f.signKey, goodHeader, goodPayload+"{}"), t0, ErrInvalid, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(VerifierConfig{
				Keys:        map[string]*ecdsa.PublicKey{kid: f.issuer.PublicKey()},
				TrustDomain: td,
				Now:         fixedClock(tt.now),
			})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Verify error = %q, want it to say %q", err, tt.why)
			}
			if c != nil {
				t.Error("claims returned with an error")
			}
			if tt.token != "" && len(tt.token) > 8 && strings.Contains(err.Error(), tt.token) {
				t.Error("error quotes the token")
			}
			if errors.Is(err, ErrInvalid) && errors.Is(err, ErrExpired) {
				t.Error("error wraps both sentinels")
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	f := newFixture(t)
	c := rootClaims(t, f.sessionKey)
	c.NotBefore = t0.Add(20 * time.Second)
	tok, err := f.issuer.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		now  time.Time
		want error
	}{
		{t0, nil}, // nbf 20s ahead, inside the 30s leeway
		{t0.Add(-11 * time.Second), ErrInvalid},
		{c.Expiry.Add(DefaultLeeway - time.Second), nil},
		{c.Expiry.Add(DefaultLeeway), ErrExpired},
	} {
		v, err := NewVerifier(VerifierConfig{Keys: map[string]*ecdsa.PublicKey{f.issuer.KeyID(): f.issuer.PublicKey()}, TrustDomain: td, Now: fixedClock(tt.now)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(tok); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("at %s: Verify = %v, want %v", tt.now.Sub(t0), err, tt.want)
		}
	}
}

func TestIssueRefuses(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		mutate func(*Claims)
	}{
		{"no expiry", func(c *Claims) { c.Expiry = time.Time{} }},
		{"expiry now", func(c *Claims) { c.Expiry = t0 }},
		{"expiry past", func(c *Claims) { c.Expiry = t0.Add(-time.Minute) }},
		{"no jkt", func(c *Claims) { c.JKT = "" }},
		{"bad jkt", func(c *Claims) { c.JKT = "not-a-thumbprint" }},
		{"no session", func(c *Claims) { c.Session = "" }},
		{"no spiffe id", func(c *Claims) { c.SPIFFEID = "" }},
		{"spiffe id in other domain", func(c *Claims) { c.SPIFFEID = "spiffe://evil.org/agent/x" }},
		{"other issuer", func(c *Claims) { c.Issuer = "spiffe://evil.org" }},
		{"other audience", func(c *Claims) { c.Audience = "api" }},
		{"bad scope", func(c *Claims) { c.Scope.Tools = []string{"a*b"} }},
		{"bad objective", func(c *Claims) { c.Objective = "report" }},
		{"child without act", func(c *Claims) { c.Depth, c.Parent, c.Subject = 1, "cGFyZW50", rootID }},
		{"root with parent", func(c *Claims) { c.Parent = "cGFyZW50" }},
		{"too big", func(c *Claims) {
			c.Scope.Resources = []string{"file:///" + strings.Repeat("x", 500), "file:///" + strings.Repeat("y", 500), "file:///" + strings.Repeat("z", 500), "a:" + strings.Repeat("w", 500), "b:" + strings.Repeat("v", 500), "c:" + strings.Repeat("u", 500), "d:" + strings.Repeat("t", 500), "e:" + strings.Repeat("s", 500), "f:" + strings.Repeat("r", 500), "g:" + strings.Repeat("q", 500), "h:" + strings.Repeat("p", 500), "i:" + strings.Repeat("o", 500)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rootClaims(t, f.sessionKey)
			tt.mutate(&c)
			if tok, err := f.issuer.Issue(c); err == nil {
				t.Errorf("Issue accepted; token %d bytes", len(tok))
			}
		})
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	k := newKey(t)
	for name, cfg := range map[string]VerifierConfig{
		"no keys":        {TrustDomain: td},
		"nil key":        {Keys: map[string]*ecdsa.PublicKey{"a": nil}, TrustDomain: td},
		"empty kid":      {Keys: map[string]*ecdsa.PublicKey{"": &k.PublicKey}, TrustDomain: td},
		"no domain":      {Keys: map[string]*ecdsa.PublicKey{"a": &k.PublicKey}},
		"negative skew":  {Keys: map[string]*ecdsa.PublicKey{"a": &k.PublicKey}, TrustDomain: td, Leeway: -time.Second},
		"bad trust dom.": {Keys: map[string]*ecdsa.PublicKey{"a": &k.PublicKey}, TrustDomain: "Not A Domain"},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("%s: NewVerifier accepted", name)
		}
	}
	if _, err := NewIssuer(IssuerConfig{TrustDomain: td}); err == nil {
		t.Error("NewIssuer accepted no key")
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	// RFC 7638 has no EC test vector; check against go-jose's independent
	// implementation.
	k := newKey(t)
	got, err := Thumbprint(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	want, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got != b64.EncodeToString(want) {
		t.Errorf("Thumbprint = %s, go-jose %s", got, b64.EncodeToString(want))
	}
	// RFC 8037 appendix A.3: the Ed25519 thumbprint test vector.
	x, _ := b64.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got, err := Thumbprint(ed25519.PublicKey(x)); err != nil || got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("Ed25519 Thumbprint = %q, %v", got, err)
	}
	if _, err := Thumbprint("not a key"); err == nil {
		t.Error("Thumbprint accepted a string")
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := Thumbprint(&rk.PublicKey); err == nil {
		t.Error("Thumbprint accepted RSA")
	}
}

func TestCheckBinding(t *testing.T) {
	c := &Claims{JKT: strings.Repeat("A", 43)}
	if err := c.CheckBinding(&Proof{JKT: strings.Repeat("A", 43)}); err != nil {
		t.Errorf("matching keys: %v", err)
	}
	for name, p := range map[string]*Proof{
		"other key": {JKT: strings.Repeat("B", 43)},
		"prefix":    {JKT: strings.Repeat("A", 42)},
		"empty":     {},
		"nil":       nil,
	} {
		if err := c.CheckBinding(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: CheckBinding = %v, want ErrInvalid", name, err)
		}
	}
	if err := (&Claims{}).CheckBinding(&Proof{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty grant key: CheckBinding = %v", err)
	}
}
