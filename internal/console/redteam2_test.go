package console_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/argon2"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamConsoleNameOfPrincipal: a console account acts as the
// principal of its own name. One named like the bootstrap operator
// ("admin") or a sponsor ("acme") would be recorded as that principal and
// inherit its approver groups: it gets no session, and a session whose
// name becomes a sponsor's later stops working.
func TestRedteamConsoleNameOfPrincipal(t *testing.T) {
	n := startNode(t, server.Config{ApproverGroups: map[string][]string{"dba": {"admin", "acme"}}})
	n.setupAgent("clerk")
	for _, name := range []string{"admin", "acme", "Admin", "ACME"} {
		pw := n.addUser(name, console.RoleApprover)
		c := n.client()
		if status, b := n.do(c, "POST", "/console/api/login", map[string]string{"user": name, "password": pw}, nil); status != http.StatusForbidden {
			t.Errorf("login as console account %q: %d %s", name, status, b)
		}
		if status, _ := n.do(c, "GET", "/console/api/me", nil, nil); status != http.StatusUnauthorized {
			t.Errorf("console account %q has a session: %d", name, status)
		}
	}
	// An account that logged in before a sponsor of its name was created.
	pw := n.addUser("dana", console.RoleApprover)
	c := n.client()
	login(t, n, c, "dana", pw)
	n.admin("POST", "/v1/sponsors", map[string]any{"name": "dana", "kind": "platform", "ceiling": map[string][]string{"tools": {"*"}}}, nil)
	if status, b := n.do(c, "GET", "/console/api/v1/approvals", nil, nil); status != http.StatusForbidden {
		t.Errorf("session of console account dana after sponsor dana was created: %d %s", status, b)
	}
	if status, _ := n.do(c, "GET", "/console/api/me", nil, nil); status != http.StatusUnauthorized {
		t.Errorf("the session was not ended: %d", status)
	}
}

// TestRedteamConsolePathTricks: an approver (not an admin) cannot reach an
// admin route by spelling its path another way, overriding the method, or
// with a GET; no spelling changes the agent.
func TestRedteamConsolePathTricks(t *testing.T) {
	n := startNode(t, server.Config{})
	n.setupAgent("clerk")
	pw := n.addUser("apu", console.RoleApprover)
	c := n.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	csrf := login(t, n, c, "apu", pw)
	hdr := map[string]string{"X-CSRF-Token": csrf}
	for _, p := range []string{
		"/console/api/v1/agents/clerk/quarantine",
		"/console/api/v1/agents/clerk/quarantine/",
		"//console/api/v1/agents/clerk/quarantine",
		"/console/api/v1//agents/clerk/quarantine",
		"/console/api/v1/agents/clerk/./quarantine",
		"/console/api/v1/agents/clerk/release/../quarantine",
		"/console/api/v1/approvals/../agents/clerk/quarantine",
		"/console/api/v1/approvals/x/approve/../../../agents/clerk/quarantine",
		"/console/api/v1/agents/clerk/quar%61ntine",
		"/console/api/v1/agents/clerk%2fquarantine",
		"/console/api/v1/agents/clerk/QUARANTINE",
		"/console/API/v1/agents/clerk/quarantine",
		"/Console/api/v1/agents/clerk/quarantine",
		"/console/api/v1/approvals/x%2F..%2F..%2Fagents%2Fclerk%2Fquarantine/approve",
		"/console/api/v1/approvals/..%2F..%2Fagents%2Fclerk%2Fquarantine/approve",
	} {
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			status, b := n.do(c, m, p, map[string]string{}, hdr)
			if status < 300 {
				t.Errorf("approver %s %s: %d %s", m, p, status, b)
			}
		}
		for _, ov := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
			if status, b := n.do(c, "GET", p, nil, map[string]string{ov: "POST", "X-CSRF-Token": csrf}); status < 300 && strings.Contains(string(b), "quarantined") {
				t.Errorf("approver GET %s with %s: %d %s", p, ov, status, b)
			}
		}
	}
	var agent struct{ Status string }
	n.admin("GET", "/v1/agents/clerk", nil, &agent)
	if agent.Status != "active" {
		t.Fatalf("an approver quarantined the agent through a path trick: %s", agent.Status)
	}
	// CSRF header variants: a duplicate or differently cased header with
	// the wrong token first, an empty Origin, a null Origin.
	for name, h := range map[string]map[string]string{
		"null origin":       {"X-CSRF-Token": csrf, "Origin": "null"},
		"same-site":         {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-site"},
		"cross-site":        {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"},
		"origin other port": {"X-CSRF-Token": csrf, "Origin": strings.Replace(n.url, "127.0.0.1:", "127.0.0.1:1", 1)},
		"origin other host": {"X-CSRF-Token": csrf, "Origin": strings.Replace(n.url, "127.0.0.1", "localhost", 1)},
		"token lower case":  {"X-CSRF-Token": strings.ToLower(csrf)},
		"token in a cookie": {"Cookie": "csrf=" + csrf},
	} {
		if status, b := n.do(c, "POST", "/console/api/v1/approvals/x/approve", map[string]string{}, h); status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
	// A form post (what a cross-site page can send without a preflight)
	// is refused at login.
	req, _ := http.NewRequest("POST", n.url+"/console/api/login", strings.NewReader("user=apu&password="+pw))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := n.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("form login accepted")
	}
}

// TestRedteamOIDCPendingFlood: starting logins costs nothing and needs no
// account; one client starting a thousand of them and never coming back
// must not lock everyone else out of single sign-on for the next ten
// minutes.
func TestRedteamOIDCPendingFlood(t *testing.T) {
	p := newProvider(t)
	n := startNode(t, server.Config{ConsoleOIDC: &console.OIDCConfig{Issuer: p.srv.URL, ClientID: p.client, ClientSecret: p.secret,
		Roles: map[string]console.Role{"olga@example.org": console.RoleAdmin}, Client: p.srv.Client()}})
	flood := n.client()
	flood.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for i := 0; i < 1100; i++ {
		resp, err := flood.Get(n.url + "/console/api/oidc/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	pool := n.pool.Clone()
	pool.AddCert(p.srv.Certificate())
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(n.url + "/console/api/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, b := n.do(c, "GET", "/console/api/me", nil, nil); status != http.StatusOK {
		t.Fatalf("OIDC login after a flood of started logins: %d %s", status, b)
	}
}

// phc makes an argon2id hash of pw with the given parameters, spelled
// params, as another tool may have written it.
func phc(pw, params string, m, tm uint32, p uint8) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, tm, m, p, 32)
	b64 := base64.RawStdEncoding
	return "$argon2id$v=19$" + params + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
}

// TestRedteamPasswordHashBounds: a stored hash chooses its own cost. One
// that asks for more work than a login may spend (memory times passes,
// lanes), or whose parameters are not written exactly, never matches, even
// with the right password; hashes of the usual recommendations do.
func TestRedteamPasswordHashBounds(t *testing.T) {
	for name, c := range map[string]struct {
		hash string
		ok   bool
	}{
		"OWASP 7 MiB, 5 passes":     {phc("pw", "m=7168,t=5,p=1", 7168, 5, 1), true},
		"RFC 9106 64 MiB, 3 passes": {phc("pw", "m=65536,t=3,p=4", 65536, 3, 4), true},
		"32 MiB, 10 passes":         {phc("pw", "m=32768,t=10,p=1", 32768, 10, 1), false},
		"64 lanes":                  {phc("pw", "m=1024,t=1,p=64", 1024, 1, 64), false},
		"trailing text":             {phc("pw", "m=64,t=1,p=1x", 64, 1, 1), false},
		"leading zeros":             {phc("pw", "m=0064,t=1,p=1", 64, 1, 1), false},
		"plus sign":                 {phc("pw", "m=+64,t=1,p=1", 64, 1, 1), false},
		"spaces":                    {phc("pw", "m=64, t=1, p=1", 64, 1, 1), false},
	} {
		if got := console.CheckPassword(c.hash, "pw"); got != c.ok {
			t.Errorf("%s: matched %v, want %v", name, got, c.ok)
		}
	}
}

// TestRedteamOIDCForgedIDTokens: ID tokens with the right claims but alg
// none, HS256 keyed with the provider's public key, an unknown kid, or
// an ES256 signature over other claims get no session.
func TestRedteamOIDCForgedIDTokens(t *testing.T) {
	p := newProvider(t)
	n := startNode(t, server.Config{ConsoleOIDC: &console.OIDCConfig{Issuer: p.srv.URL, ClientID: p.client, ClientSecret: p.secret,
		Roles: map[string]console.Role{"olga@example.org": console.RoleAdmin}, Client: p.srv.Client()}})
	pool := n.pool.Clone()
	pool.AddCert(p.srv.Certificate())
	b64 := base64.RawURLEncoding
	pubJSON, _ := json.Marshal(jose.JSONWebKey{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"})
	sign := func(alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := jwt.Signed(sig).Claims(claims).Serialize()
		return tok
	}
	for name, forge := range map[string]func(map[string]any) string{
		"alg none": func(c map[string]any) string {
			body, _ := json.Marshal(c)
			return b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + b64.EncodeToString(body) + "."
		},
		"HS256 with the public key": func(c map[string]any) string { return sign(jose.HS256, pubJSON, "k1", c) },
		"unknown kid":               func(c map[string]any) string { return sign(jose.ES256, p.key, "k9", c) },
		"claims swapped": func(c map[string]any) string {
			good := strings.Split(sign(jose.ES256, p.key, "k1", c), ".")
			c["email"] = "olga@example.org"
			c["sub"] = "someone-else"
			body, _ := json.Marshal(c)
			return good[0] + "." + b64.EncodeToString(body) + "." + good[2]
		},
	} {
		p.mu.Lock()
		p.forge = forge
		p.mu.Unlock()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get(n.url + "/console/api/oidc/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if status, b := n.do(c, "GET", "/console/api/me", nil, nil); status != http.StatusUnauthorized {
			t.Errorf("%s: a session was made: %d %s", name, status, b)
		}
	}
	// The genuine token still works (the forgeries failed for their
	// forgery).
	p.mu.Lock()
	p.forge = nil
	p.mu.Unlock()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(n.url + "/console/api/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, b := n.do(c, "GET", "/console/api/me", nil, nil); status != http.StatusOK {
		t.Fatalf("genuine login: %d %s", status, b)
	}
}

// TestRedteamConsoleHeadersEverywhere: every answer under /console, the
// refusals and redirects included, carries the CSP and framing headers,
// and the API's answers are not cached.
func TestRedteamConsoleHeadersEverywhere(t *testing.T) {
	n := startNode(t, server.Config{})
	n.setupAgent("clerk")
	pw := n.addUser("vic", console.RoleViewer)
	c := n.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	csrf := login(t, n, c, "vic", pw)
	anon := n.client()
	anon.CheckRedirect = c.CheckRedirect
	for _, rq := range []struct {
		c            *http.Client
		method, path string
		hdr          map[string]string
	}{
		{anon, "GET", "/console", nil},
		{anon, "GET", "/console/", nil},
		{anon, "GET", "/console/app.js", nil},
		{anon, "GET", "/console/nosuch", nil},
		{anon, "POST", "/console/", nil},
		{anon, "GET", "/console/api/v1/agents", nil},
		{anon, "GET", "/console/api/nosuch", nil},
		{anon, "POST", "/console/api/login", nil},
		{anon, "GET", "/console/api/login-options", nil},
		{c, "GET", "/console/api/me", nil},
		{c, "GET", "/console/api/v1/agents/clerk", nil},
		{c, "GET", "/console/api/v1/agents/clerk%2fx", nil},
		{c, "POST", "/console/api/v1/agents/clerk/quarantine", map[string]string{"X-CSRF-Token": csrf}},
		{c, "POST", "/console/api/v1/agents/clerk/quarantine", nil},
		{c, "GET", "/console/api/proof/999999", nil},
	} {
		req, _ := http.NewRequest(rq.method, n.url+rq.path, nil)
		for k, v := range rq.hdr {
			req.Header.Set(k, v)
		}
		resp, err := rq.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s (%d): headers %v", rq.method, rq.path, resp.StatusCode, h)
		}
		if strings.HasPrefix(rq.path, "/console/api/") && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s (%d): Cache-Control %q", rq.method, rq.path, resp.StatusCode, h.Get("Cache-Control"))
		}
	}
}

// TestRedteamOIDCProviderErrorNotShown: when the provider refuses the code
// exchange, what its token endpoint answered (which may echo the request,
// the client secret included) is logged, not shown to the browser.
func TestRedteamOIDCProviderErrorNotShown(t *testing.T) {
	p := newProvider(t)
	p.secret = "the-real-secret"
	n := startNode(t, server.Config{ConsoleOIDC: &console.OIDCConfig{Issuer: p.srv.URL, ClientID: p.client, ClientSecret: "wrong-secret-echoed",
		Roles: map[string]console.Role{"olga@example.org": console.RoleAdmin}, Client: p.srv.Client()}})
	pool := n.pool.Clone()
	pool.AddCert(p.srv.Certificate())
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(n.url + "/console/api/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "invalid_client") {
		t.Fatalf("callback answer: %d %s", resp.StatusCode, b)
	}
}

// TestRedteamOIDCNoRedirectToOtherHost: a token endpoint that redirects
// to another host does not get the code, the PKCE verifier or the client
// secret sent on there.
func TestRedteamOIDCNoRedirectToOtherHost(t *testing.T) {
	p := newProvider(t)
	var leaked atomic.Int32
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "code") || r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
	}))
	defer evil.Close()
	var front *httptest.Server
	front = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": front.URL, "authorization_endpoint": p.srv.URL + "/authorize",
				"token_endpoint": front.URL + "/token", "jwks_uri": p.srv.URL + "/jwks"})
		case "/token":
			http.Redirect(w, r, evil.URL+"/token", http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	defer front.Close()
	pool := x509.NewCertPool()
	for _, s := range []*httptest.Server{p.srv, evil, front} {
		pool.AddCert(s.Certificate())
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	n := startNode(t, server.Config{ConsoleOIDC: &console.OIDCConfig{Issuer: front.URL, ClientID: p.client, ClientSecret: p.secret,
		Roles: map[string]console.Role{"olga@example.org": console.RoleAdmin}, Client: client}})
	bpool := n.pool.Clone()
	bpool.AddCert(p.srv.Certificate())
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: bpool}}}
	resp, err := c.Get(n.url + "/console/api/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if leaked.Load() != 0 {
		t.Fatalf("the token request was sent on to another host %d times", leaked.Load())
	}
}
