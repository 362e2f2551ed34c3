package console_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/server"
)

// provider is an OpenID Connect provider for tests. It runs the
// authorization code flow as the specifications say a provider must:
// it refuses an authorization request without an S256 PKCE challenge or
// with another redirect URI, and a token request whose code_verifier
// does not hash to the challenge, whose client secret is wrong, or whose
// code was used before. It signs ID tokens with its ES256 key; mutate
// may change their claims (or the key) to test the console's checks.
type provider struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	client string
	secret string

	// consent makes the authorization endpoint answer a page with a
	// link back instead of redirecting at once.
	consent bool

	mu     sync.Mutex
	codes  map[string]grantReq
	email  string
	mutate func(claims map[string]any) *ecdsa.PrivateKey
	// forge, when set, makes the ID token itself from the claims.
	forge func(claims map[string]any) string
}

type grantReq struct {
	challenge, nonce, redirect string
}

func newProvider(t *testing.T) *provider {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := &provider{key: k, client: "ward-console", secret: "s3cret", codes: map[string]grantReq{}, email: "olga@example.org"}
	mux := http.NewServeMux()
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/jwks", "response_types_supported": []string{"code"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != p.client || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("nonce") == "" || !strings.Contains(q.Get("scope"), "openid") ||
			!strings.HasSuffix(q.Get("redirect_uri"), "/console/api/oidc/callback") {
			http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		code := base64.RawURLEncoding.EncodeToString(randBytes(16))
		p.mu.Lock()
		p.codes[code] = grantReq{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
		p.mu.Unlock()
		back := q.Get("redirect_uri") + "?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
		if p.consent {
			// As a real provider does: the user consents on its page, so
			// the navigation back to the console starts on another site.
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><title>consent</title><a id="consent" href="%s">Allow ward console</a>`, html.EscapeString(back))
			return
		}
		http.Redirect(w, r, back, http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != p.client || subtle.ConstantTimeCompare([]byte(secret), []byte(p.secret)) != 1 {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		g, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("redirect_uri") != g.redirect ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		now := time.Now()
		claims := map[string]any{"iss": p.srv.URL, "sub": "u-1", "aud": p.client, "exp": now.Add(5 * time.Minute).Unix(),
			"iat": now.Unix(), "nonce": g.nonce, "email": p.email, "email_verified": true}
		key := p.key
		p.mu.Lock()
		if p.mutate != nil {
			if k := p.mutate(claims); k != nil {
				key = k
			}
		}
		p.mu.Unlock()
		sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
		tok, _ := jwt.Signed(sig).Claims(claims).Serialize()
		p.mu.Lock()
		if p.forge != nil {
			tok = p.forge(claims)
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": tok})
	})
	return p
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestConsoleOIDC: an operator logs in through the provider (code flow,
// PKCE, state bound to the browser, nonce) and gets the role configured
// for its verified email; ID tokens with the wrong audience, issuer,
// nonce, signature, expiry or an unverified or unknown email are
// refused, and so are a replayed callback and a callback in a browser
// that did not start the login.
func TestConsoleOIDC(t *testing.T) {
	p := newProvider(t)
	n := startNode(t, server.Config{ConsoleOIDC: &console.OIDCConfig{Issuer: p.srv.URL, ClientID: p.client, ClientSecret: p.secret,
		Roles: map[string]console.Role{"olga@example.org": console.RoleAdmin, "vic@example.org": console.RoleViewer}, Client: p.srv.Client()}})

	pool := n.pool.Clone()
	pool.AddCert(p.srv.Certificate())
	browserClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	login := func(c *http.Client) (int, string) {
		resp, err := c.Get(n.url + "/console/api/oidc/login")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		k, _ := resp.Body.Read(buf)
		b.Write(buf[:k])
		return resp.StatusCode, b.String()
	}

	c := browserClient()
	if status, body := login(c); status != http.StatusOK || !strings.Contains(body, "<title>ward console</title>") {
		t.Fatalf("OIDC login: %d %s", status, body)
	}
	status, b := n.do(c, "GET", "/console/api/me", nil, nil)
	var me struct{ User, Role, CSRF string }
	json.Unmarshal(b, &me)
	if status != http.StatusOK || me.User != "olga@example.org" || me.Role != "admin" {
		t.Fatalf("after OIDC login: %d %s", status, b)
	}
	if status, _ := n.do(c, "GET", "/console/api/v1/agents", nil, nil); status != http.StatusOK {
		t.Fatalf("OIDC operator reads agents: %d", status)
	}

	for name, m := range map[string]func(map[string]any) *ecdsa.PrivateKey{
		"other audience":   func(c map[string]any) *ecdsa.PrivateKey { c["aud"] = "someone-else"; return nil },
		"other issuer":     func(c map[string]any) *ecdsa.PrivateKey { c["iss"] = "https://evil.example"; return nil },
		"wrong nonce":      func(c map[string]any) *ecdsa.PrivateKey { c["nonce"] = "n0"; return nil },
		"expired":          func(c map[string]any) *ecdsa.PrivateKey { c["exp"] = time.Now().Add(-time.Hour).Unix(); return nil },
		"no expiry":        func(c map[string]any) *ecdsa.PrivateKey { delete(c, "exp"); return nil },
		"unverified email": func(c map[string]any) *ecdsa.PrivateKey { c["email_verified"] = false; return nil },
		"unknown email":    func(c map[string]any) *ecdsa.PrivateKey { c["email"] = "mallory@example.org"; return nil },
		"other key": func(c map[string]any) *ecdsa.PrivateKey {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return k
		},
		"azp of another party": func(c map[string]any) *ecdsa.PrivateKey {
			c["aud"] = []string{p.client, "other"}
			c["azp"] = "other"
			return nil
		},
	} {
		p.mu.Lock()
		p.mutate = m
		p.mu.Unlock()
		c := browserClient()
		if status, body := login(c); status < 400 {
			t.Errorf("%s: login accepted: %d %s", name, status, body)
		}
		if status, _ := n.do(c, "GET", "/console/api/me", nil, nil); status != http.StatusUnauthorized {
			t.Errorf("%s: a session was made: %d", name, status)
		}
	}
	p.mu.Lock()
	p.mutate = nil
	p.mu.Unlock()

	// The callback is taken once, and only by the browser that started
	// the login.
	c = browserClient()
	var callback string
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), n.url+"/console/api/oidc/callback") {
			callback = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	login(c)
	if callback == "" {
		t.Fatal("no callback")
	}
	other := browserClient()
	if status, _ := n.do(other, "GET", strings.TrimPrefix(callback, n.url), nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("callback in another browser: %d", status)
	}
	// The state was spent by that attempt: the right browser cannot
	// use it either.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if status, _ := n.do(c, "GET", strings.TrimPrefix(callback, n.url), nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("replayed callback: %d", status)
	}
}
