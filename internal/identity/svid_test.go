package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func makeCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMintX509SVID(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ca := newCA(t, Config{Now: func() time.Time { return now }})
	bundle := parsedBundle(t, ca)
	id := mustSessionID(t, ca, "reporter", "01hx3k")
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]crypto.Signer{"p256": newP256(t), "ed25519": edKey}
	for name, key := range keys {
		t.Run(name, func(t *testing.T) {
			chain, err := ca.MintX509SVID(makeCSR(t, key, nil), id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 1 {
				t.Fatalf("chain of %d certificates, want the leaf alone", len(chain))
			}
			got, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(now))
			if err != nil {
				t.Fatalf("x509svid.Verify: %v", err)
			}
			if got != id {
				t.Fatalf("verified id %s, want %s", got, id)
			}
			if got, err := ca.VerifyX509SVID(chain); err != nil || got != id {
				t.Fatalf("VerifyX509SVID = %s, %v", got, err)
			}
			leaf := chain[0]
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
				t.Error("leaf key is not the CSR key")
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
				t.Errorf("URIs %v", leaf.URIs)
			}
			if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
				t.Errorf("extra SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
			}
			if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA=%v KeyUsage=%b", leaf.IsCA, leaf.KeyUsage)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage %v", leaf.ExtKeyUsage)
			}
			if !leaf.NotBefore.Equal(now.Add(-30*time.Second)) || !leaf.NotAfter.Equal(now.Add(DefaultX509TTL)) {
				t.Errorf("validity %s..%s, now %s", leaf.NotBefore, leaf.NotAfter, now)
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %s", leaf.SerialNumber)
			}
			if err := leaf.CheckSignatureFrom(ca.state().cert); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMintX509SVIDSerialsDiffer(t *testing.T) {
	ca := newCA(t, Config{})
	id := mustSessionID(t, ca, "a", "s")
	csr := makeCSR(t, newP256(t), nil)
	seen := map[string]bool{}
	for range 20 {
		chain, err := ca.MintX509SVID(csr, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := chain[0].SerialNumber.String()
		if seen[s] {
			t.Fatalf("serial %s repeated", s)
		}
		seen[s] = true
	}
}

func TestMintX509SVIDIgnoresRequestedNames(t *testing.T) {
	ca := newCA(t, Config{})
	id := mustSessionID(t, ca, "reporter", "1")
	ward, _ := url.Parse("spiffe://example.org/ward/server")
	other, _ := url.Parse("spiffe://evil.org/agent/x")
	csr := makeCSR(t, newP256(t), &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"root"}},
		DNSNames:       []string{"ward.example.org", "localhost"},
		IPAddresses:    []net.IP{net.ParseIP("127.0.0.1")},
		EmailAddresses: []string{"admin@example.org"},
		URIs:           []*url.URL{ward, other},
	})
	chain, err := ca.MintX509SVID(csr, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
		t.Errorf("URIs %v, want only %s", leaf.URIs, id)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("requested SANs were issued: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if leaf.Subject.CommonName != "" || slices.Contains(leaf.Subject.Organization, "root") {
		t.Errorf("requested subject was issued: %v", leaf.Subject)
	}
	if got, err := ca.VerifyX509SVID(chain); err != nil || got != id {
		t.Fatalf("VerifyX509SVID = %s, %v", got, err)
	}
}

func TestMintX509SVIDRejects(t *testing.T) {
	ca := newCA(t, Config{})
	id := mustSessionID(t, ca, "a", "s")
	good := makeCSR(t, newP256(t), nil)

	badSig := slices.Clone(good)
	badSig[len(badSig)-3] ^= 0x01 // inside the signature BIT STRING
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	names := make([]string, 400)
	for i := range names {
		names[i] = fmt.Sprintf("host-%03d.example.org", i)
	}
	oversize := makeCSR(t, newP256(t), &x509.CertificateRequest{DNSNames: names})
	if len(oversize) <= maxCSRSize {
		t.Fatalf("oversize CSR is only %d bytes", len(oversize))
	}
	if _, err := x509.ParseCertificateRequest(oversize); err != nil {
		t.Fatal("oversize CSR should be otherwise valid")
	}

	wrongTD := spiffeid.RequireFromString("spiffe://other.org/agent/a/session/s")
	tests := []struct {
		name string
		csr  []byte
		id   spiffeid.ID
		ttl  time.Duration
		want string
	}{
		{"bad signature", badSig, id, 0, "signature"},
		{"rsa key", makeCSR(t, rsaKey, nil), id, 0, "want ECDSA P-256 or Ed25519"},
		{"p384 key", makeCSR(t, p384, nil), id, 0, "P-384"},
		{"oversize", oversize, id, 0, "larger than"},
		{"garbage", []byte("this is not DER"), id, 0, "malformed"},
		{"empty", nil, id, 0, "empty"},
		{"trailing data", append(slices.Clone(good), 0), id, 0, "malformed"},
		{"certificate instead of csr", ca.state().cert.Raw, id, 0, "malformed"},
		{"zero id", good, spiffeid.ID{}, 0, "empty spiffe id"},
		{"other trust domain", good, wrongTD, 0, "not in trust domain"},
		{"trust domain id", good, ca.TrustDomain().ID(), 0, "no path"},
		{"reserved ward id", good, spiffeid.RequireFromPath(ca.TrustDomain(), "/ward/server"), 0, "reserved"},
		{"negative ttl", good, id, -time.Second, "negative"},
		{"ttl too long", good, id, MaxSVIDTTL + time.Second, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := ca.MintX509SVID(tt.csr, tt.id, tt.ttl)
			if err == nil || chain != nil {
				t.Fatalf("MintX509SVID issued %v", chain)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMintX509SVIDTTL(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	ca := newCA(t, Config{Dir: dir, Now: clock})
	id := mustSessionID(t, ca, "a", "s")
	csr := makeCSR(t, newP256(t), nil)
	for _, tt := range []struct{ ttl, want time.Duration }{
		{0, DefaultX509TTL},
		{time.Second, time.Second},
		{time.Hour, time.Hour},
		{MaxSVIDTTL, MaxSVIDTTL},
	} {
		chain, err := ca.MintX509SVID(csr, id, tt.ttl)
		if err != nil {
			t.Fatal(err)
		}
		if got := chain[0].NotAfter.Sub(now); got != tt.want {
			t.Errorf("ttl %s: lifetime %s, want %s", tt.ttl, got, tt.want)
		}
	}
	// Near the CA's end of life the leaf is cut short at the CA's NotAfter.
	now = ca.state().cert.NotAfter.Add(-time.Minute)
	late := newCA(t, Config{Dir: dir, Now: clock})
	chain, err := late.MintX509SVID(csr, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !chain[0].NotAfter.Equal(ca.state().cert.NotAfter) {
		t.Fatalf("leaf NotAfter %s, CA NotAfter %s", chain[0].NotAfter, ca.state().cert.NotAfter)
	}
}

func TestVerifyX509SVIDRejects(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ca := newCA(t, Config{Now: clock})
	other := newCA(t, Config{})                           // same trust domain name, different keys
	otherTD := newCA(t, Config{TrustDomain: "other.org"}) // another trust domain
	id := mustSessionID(t, ca, "a", "s")
	csr := makeCSR(t, newP256(t), nil)

	foreign, err := other.MintX509SVID(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	foreignTD, err := otherTD.MintX509SVID(csr, mustSessionID(t, otherTD, "a", "s"), 0)
	if err != nil {
		t.Fatal(err)
	}
	own, err := ca.MintX509SVID(csr, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		chain []*x509.Certificate
	}{
		{"empty chain", nil},
		{"nil certificate", []*x509.Certificate{nil}},
		{"signed by another CA", foreign},
		{"another trust domain", foreignTD},
		{"the root itself", []*x509.Certificate{ca.state().cert}},
		{"too long", []*x509.Certificate{own[0], ca.state().cert, ca.state().cert, ca.state().cert, ca.state().cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ca.VerifyX509SVID(tt.chain); err == nil {
				t.Fatalf("VerifyX509SVID accepted it as %s", got)
			}
		})
	}
	t.Run("remembered chains are only the ones verified", func(t *testing.T) {
		if _, err := ca.VerifyX509SVID(own); err != nil {
			t.Fatalf("fresh SVID refused: %v", err)
		}
		for _, c := range [][]*x509.Certificate{foreign, foreignTD, {own[0], ca.state().cert, ca.state().cert, ca.state().cert, ca.state().cert}} {
			if got, err := ca.VerifyX509SVID(c); err == nil {
				t.Fatalf("after a good chain was remembered, a bad one was accepted as %s", got)
			}
		}
	})
	t.Run("expired", func(t *testing.T) {
		if _, err := ca.VerifyX509SVID(own); err != nil {
			t.Fatalf("fresh SVID refused: %v", err)
		}
		now = now.Add(2 * time.Minute)
		if got, err := ca.VerifyX509SVID(own); err == nil {
			t.Fatalf("expired SVID accepted as %s", got)
		}
	})
}

func TestMintJWTSVID(t *testing.T) {
	ca := newCA(t, Config{})
	bundle := parsedBundle(t, ca)
	id := mustSessionID(t, ca, "reporter", "01hx3k")
	aud := []string{"spiffe://example.org/ward/server", "mcp-files"}
	before := time.Now().Truncate(time.Second)
	token, exp, err := ca.MintJWTSVID(id, aud, 0)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if exp.Before(before.Add(DefaultJWTTTL)) || exp.After(after.Add(DefaultJWTTTL)) {
		t.Fatalf("expiresAt %s not now+%s", exp, DefaultJWTTTL)
	}
	svid, err := jwtsvid.ParseAndValidate(token, bundle, []string{"mcp-files"})
	if err != nil {
		t.Fatalf("jwtsvid.ParseAndValidate: %v", err)
	}
	if svid.ID != id || !slices.Equal(svid.Audience, aud) || !svid.Expiry.Equal(exp) {
		t.Fatalf("svid %+v", svid)
	}
	if got, err := ca.VerifyJWTSVID(token, []string{"mcp-files"}); err != nil || got != id {
		t.Fatalf("VerifyJWTSVID = %s, %v", got, err)
	}

	// Header: alg ES256, kid = thumbprint, typ JWT, nothing else.
	hdr, payload := decodeJWT(t, token)
	if len(hdr) != 3 || hdr["alg"] != "ES256" || hdr["typ"] != "JWT" || hdr["kid"] != ca.state().kid {
		t.Fatalf("header %v", hdr)
	}
	if tp, _ := Thumbprint(&ca.state().jwtKey.PublicKey); hdr["kid"] != tp {
		t.Fatalf("kid %v is not the thumbprint %s", hdr["kid"], tp)
	}
	keys := make([]string, 0, len(payload))
	for k := range payload {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"aud", "exp", "iat", "sub"}) {
		t.Fatalf("claims %v", keys)
	}

	// Single audience, custom ttl.
	token, exp, err = ca.MintJWTSVID(id, []string{"x"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if svid, err := jwtsvid.ParseAndValidate(token, bundle, []string{"x"}); err != nil || !svid.Expiry.Equal(exp) {
		t.Fatalf("single audience: %v", err)
	}
}

func decodeJWT(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

func TestMintJWTSVIDRejects(t *testing.T) {
	ca := newCA(t, Config{})
	id := mustSessionID(t, ca, "a", "s")
	tests := []struct {
		name string
		id   spiffeid.ID
		aud  []string
		ttl  time.Duration
	}{
		{"no audience", id, nil, 0},
		{"empty audience entry", id, []string{"a", ""}, 0},
		{"too many audiences", id, make([]string, maxAudiences+1), 0},
		{"zero id", spiffeid.ID{}, []string{"a"}, 0},
		{"other trust domain", spiffeid.RequireFromString("spiffe://other.org/agent/a"), []string{"a"}, 0},
		{"trust domain id", ca.TrustDomain().ID(), []string{"a"}, 0},
		{"reserved", spiffeid.RequireFromPath(ca.TrustDomain(), "/ward"), []string{"a"}, 0},
		{"negative ttl", id, []string{"a"}, -1},
		{"ttl too long", id, []string{"a"}, MaxSVIDTTL + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, _, err := ca.MintJWTSVID(tt.id, tt.aud, tt.ttl); err == nil || tok != "" {
				t.Fatalf("MintJWTSVID issued %q", tok)
			}
		})
	}
}

// signRaw signs claims with key under an arbitrary header, as an attacker
// holding some key could.
func signRaw(t *testing.T, key *ecdsa.PrivateKey, header, claims string) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	digest := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64) // JWS ES256: raw R||S
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	return in + "." + base64.RawURLEncoding.EncodeToString(raw)
}

func TestJWTSVIDRejects(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	ca := newCA(t, Config{Dir: dir, Now: func() time.Time { return now }})
	bundle := parsedBundle(t, ca)
	id := mustSessionID(t, ca, "a", "s")
	aud := []string{"ward"}

	good, _, err := ca.MintJWTSVID(id, aud, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.VerifyJWTSVID(good, aud); err != nil {
		t.Fatalf("good token refused: %v", err)
	}

	// Minted in the past with Config.Now: expired for everyone.
	past := newCA(t, Config{Dir: dir, Now: func() time.Time { return now.Add(-time.Hour) }})
	expired, _, err := past.MintJWTSVID(id, aud, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by another CA of the same trust domain name.
	other := newCA(t, Config{})
	foreign, _, err := other.MintJWTSVID(id, aud, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Valid signature with the real key, but a header ward never writes.
	claims := fmt.Sprintf(`{"sub":%q,"aud":"ward","exp":%d,"iat":%d}`, id, now.Add(time.Minute).Unix(), now.Unix())
	kid := ca.state().kid
	extraHdr := signRaw(t, ca.state().jwtKey, `{"alg":"ES256","kid":"`+kid+`","typ":"JWT","jku":"https://evil"}`, claims)
	dupHdr := signRaw(t, ca.state().jwtKey, `{"alg":"ES256","kid":"`+kid+`","typ":"JWT","alg":"ES256"}`, claims)
	noTyp := signRaw(t, ca.state().jwtKey, `{"alg":"ES256","kid":"`+kid+`"}`, claims)
	noIat := signRaw(t, ca.state().jwtKey, `{"alg":"ES256","kid":"`+kid+`","typ":"JWT"}`,
		fmt.Sprintf(`{"sub":%q,"aud":"ward","exp":%d}`, id, now.Add(time.Minute).Unix()))
	longLived := signRaw(t, ca.state().jwtKey, `{"alg":"ES256","kid":"`+kid+`","typ":"JWT"}`,
		fmt.Sprintf(`{"sub":%q,"aud":"ward","exp":%d,"iat":%d}`, id, now.Add(48*time.Hour).Unix(), now.Unix()))
	wellFormed := signRaw(t, ca.state().jwtKey, `{"alg":"ES256","kid":"`+kid+`","typ":"JWT"}`, claims)
	if got, err := ca.VerifyJWTSVID(wellFormed, aud); err != nil || got != id {
		t.Fatalf("control token refused: %v", err)
	}

	parts := strings.Split(good, ".")
	tamperedClaims := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(claims, `/s"`, `/t"`, 1)))
	tampered := parts[0] + "." + tamperedClaims + "." + parts[2]
	noneHdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + kid + `","typ":"JWT"}`))
	algNone := noneHdr + "." + parts[1] + "."
	hsHdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + kid + `","typ":"JWT"}`))
	algHS := hsHdr + "." + parts[1] + "." + parts[2]

	tests := []struct {
		name     string
		token    string
		aud      []string
		goSpiffe bool // go-spiffe must refuse it too
	}{
		{"wrong audience", good, []string{"other"}, true},
		{"expired", expired, aud, true},
		{"other CA", foreign, aud, true},
		{"tampered claims", tampered, aud, true},
		{"alg none", algNone, aud, true},
		{"alg HS256", algHS, aud, true},
		{"empty audience to check", good, nil, false},
		{"extra header member", extraHdr, aud, false},
		{"duplicate header member", dupHdr, aud, false},
		{"no typ", noTyp, aud, false},
		{"no iat", noIat, aud, false},
		{"lifetime over max", longLived, aud, false},
		{"oversize", good + strings.Repeat("A", maxJWTSize), aud, true},
		{"garbage", "not.a.jwt", aud, true},
		{"empty", "", aud, true},
		{"two segments", parts[0] + "." + parts[1], aud, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ca.VerifyJWTSVID(tt.token, tt.aud)
			if err == nil {
				t.Fatalf("VerifyJWTSVID accepted it as %s", got)
			}
			t.Logf("refused: %v", err)
			if tt.goSpiffe {
				if svid, err := jwtsvid.ParseAndValidate(tt.token, bundle, tt.aud); err == nil {
					t.Fatalf("jwtsvid.ParseAndValidate accepted it as %s", svid.ID)
				}
			}
		})
	}

	t.Run("expired by Config.Now", func(t *testing.T) {
		now = now.Add(time.Minute) // exactly exp: go-spiffe's leeway would still accept
		if got, err := ca.VerifyJWTSVID(good, aud); err == nil {
			t.Fatalf("VerifyJWTSVID accepted an expired token as %s", got)
		}
	})
}

func TestConcurrentMintAndVerify(t *testing.T) {
	ca := newCA(t, Config{})
	csr := makeCSR(t, newP256(t), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		id := mustSessionID(t, ca, "a", fmt.Sprint(i))
		wg.Go(func() {
			for range 10 {
				tok, _, err := ca.MintJWTSVID(id, []string{"w"}, 0)
				if err == nil {
					var got spiffeid.ID
					if got, err = ca.VerifyJWTSVID(tok, []string{"w"}); err == nil && got != id {
						err = fmt.Errorf("verified as %s, want %s", got, id)
					}
				}
				if err == nil {
					_, err = ca.MintX509SVID(csr, id, 0)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
