package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/ward-dev/ward/internal/strictjson"
)

// OIDCConfig lets operators log in with an OpenID Connect provider
// (authorization code flow with PKCE S256, a state bound to the browser
// and a nonce). The ID token is verified here: signature by a key of the
// provider's JWKS (RS256 or ES256 only), iss, aud (and azp), exp, iat and
// the nonce. An operator is named by the token's email, which must be
// verified, and gets the role Roles gives it; an email not in Roles is
// refused.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document is read
	// from Issuer + "/.well-known/openid-configuration" at the first login.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this console's callback as registered with the
	// provider: https://HOST:PORT/console/api/oidc/callback. Empty: made
	// from the host the browser used (the provider still accepts only
	// the URLs registered with it).
	RedirectURL string
	// Roles maps a verified email to its role.
	Roles map[string]Role
	// Client makes the calls to the provider (nil: one with a
	// DefaultOIDCTimeout timeout).
	Client *http.Client
}

// DefaultOIDCTimeout bounds each call to the OIDC provider.
const DefaultOIDCTimeout = 10 * time.Second

// oidcPendingTTL is how long a login may take at the provider.
const oidcPendingTTL = 10 * time.Minute

// maxOIDCPending bounds logins started and not finished; when it is
// reached the oldest is forgotten. maxOIDCPendingPerAddr bounds those of
// one client address, whose oldest is forgotten first: starting logins
// needs no account, so one client must not fill the table and lock
// everyone else out of single sign-on.
const (
	maxOIDCPending        = 1000
	maxOIDCPendingPerAddr = 16
)

// oidcBinding names the cookie that binds a login's state to the browser
// that started it. It is SameSite=Lax: the provider's redirect back is a
// cross-site navigation, on which Strict cookies are not sent.
const oidcBinding = "ward_console_oidc"

// idTokenAlgs are the ID token signature algorithms accepted.
var idTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

type oidc struct {
	cfg OIDCConfig

	mu       sync.Mutex
	disc     *discovery
	keys     *jose.JSONWebKeySet
	keysAt   time.Time
	pending  map[string]*pendingLogin // by state
	lastSeen time.Time
}

type discovery struct {
	Issuer   string `json:"issuer"`
	AuthURL  string `json:"authorization_endpoint"`
	TokenURL string `json:"token_endpoint"`
	JWKSURL  string `json:"jwks_uri"`
}

type pendingLogin struct {
	redirect string
	verifier string
	nonce    string
	binding  [32]byte
	addr     string // the client's address
	created  time.Time
}

func newOIDC(cfg OIDCConfig) (*oidc, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("console oidc: issuer and client_id are required")
	}
	for email, r := range cfg.Roles {
		if r.rank() < 0 {
			return nil, fmt.Errorf("console oidc: %s has role %q: want viewer, approver or admin", email, r)
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: DefaultOIDCTimeout}
	}
	// A redirect to another host is not followed, whoever made the
	// client: Go would send the token request's body (the code, the PKCE
	// verifier and, as oauth2 retries, the client secret) on with it.
	c := *cfg.Client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 || req.URL.Scheme != via[0].URL.Scheme || !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	cfg.Client = &c
	return &oidc{cfg: cfg, pending: map[string]*pendingLogin{}}, nil
}

// getJSON reads a provider document strictly but open to members ward does
// not use (providers add many).
func (o *oidc) getJSON(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultOIDCTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := o.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	return strictjson.UnmarshalOpen(b, v)
}

func (o *oidc) discover(ctx context.Context) (*discovery, error) {
	o.mu.Lock()
	d := o.disc
	o.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d = &discovery{}
	if err := o.getJSON(ctx, strings.TrimRight(o.cfg.Issuer, "/")+"/.well-known/openid-configuration", d); err != nil {
		return nil, fmt.Errorf("oidc discovery: %w", err)
	}
	if d.Issuer != o.cfg.Issuer || d.AuthURL == "" || d.TokenURL == "" || d.JWKSURL == "" {
		return nil, fmt.Errorf("oidc discovery: the document names issuer %q (configured: %q) or lacks an endpoint", d.Issuer, o.cfg.Issuer)
	}
	o.mu.Lock()
	o.disc = d
	o.mu.Unlock()
	return d, nil
}

// key returns the provider's key kid, reading its JWKS again (at most once
// a minute) when the key is not known.
func (o *oidc) key(ctx context.Context, d *discovery, kid string) (*jose.JSONWebKey, error) {
	find := func(ks *jose.JSONWebKeySet) *jose.JSONWebKey {
		if ks == nil {
			return nil
		}
		if kid == "" {
			if len(ks.Keys) == 1 {
				return &ks.Keys[0]
			}
			return nil
		}
		if m := ks.Key(kid); len(m) == 1 {
			return &m[0]
		}
		return nil
	}
	o.mu.Lock()
	k, fresh := find(o.keys), time.Since(o.keysAt) < time.Minute
	o.mu.Unlock()
	if k != nil || fresh {
		if k == nil {
			return nil, fmt.Errorf("no key %q in the provider's JWKS", kid)
		}
		return k, nil
	}
	ks := &jose.JSONWebKeySet{}
	if err := o.getJSON(ctx, d.JWKSURL, ks); err != nil {
		return nil, fmt.Errorf("oidc jwks: %w", err)
	}
	o.mu.Lock()
	o.keys, o.keysAt = ks, time.Now()
	o.mu.Unlock()
	if k = find(ks); k == nil {
		return nil, fmt.Errorf("no key %q in the provider's JWKS", kid)
	}
	return k, nil
}

func (o *oidc) oauth(d *discovery, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: d.AuthURL, TokenURL: d.TokenURL}, Scopes: []string{"openid", "email"}}
}

// start begins a login: it returns the provider URL to send the browser
// to and the binding cookie's value.
func (o *oidc) start(ctx context.Context, redirect, addr string, now time.Time) (string, string, error) {
	d, err := o.discover(ctx)
	if err != nil {
		return "", "", err
	}
	state, nonce, binding, verifier := random(), random(), random(), oauth2.GenerateVerifier()
	o.mu.Lock()
	for s, p := range o.pending {
		if now.Sub(p.created) > oidcPendingTTL {
			delete(o.pending, s)
		}
	}
	o.forgetOldest(func(p *pendingLogin) bool { return p.addr == addr }, maxOIDCPendingPerAddr)
	o.forgetOldest(func(*pendingLogin) bool { return true }, maxOIDCPending)
	o.pending[state] = &pendingLogin{redirect: redirect, verifier: verifier, nonce: nonce, binding: sha256.Sum256([]byte(binding)), addr: addr, created: now}
	o.mu.Unlock()
	u := o.oauth(d, redirect).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))
	return u, binding, nil
}

// forgetOldest forgets the oldest pending logins that match until fewer
// than limit match. The caller holds o.mu.
func (o *oidc) forgetOldest(match func(*pendingLogin) bool, limit int) {
	for {
		n, oldest := 0, ""
		for s, p := range o.pending {
			if !match(p) {
				continue
			}
			n++
			if oldest == "" || p.created.Before(o.pending[oldest].created) {
				oldest = s
			}
		}
		if n < limit {
			return
		}
		delete(o.pending, oldest)
	}
}

// idClaims are the ID token claims ward reads.
type idClaims struct {
	jwt.Claims
	Nonce         string `json:"nonce"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	AZP           string `json:"azp"`
}

// errExchange is a code exchange the provider refused. What its token
// endpoint answered is for the server log, not the browser: it may echo
// the request, the client secret included.
var errExchange = errors.New("the identity provider did not exchange the login code; see the server log")

// finish completes a login from the provider's redirect: it returns the
// operator's verified email.
func (o *oidc) finish(ctx context.Context, r *http.Request, now time.Time) (string, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("the provider refused the login: %s", e)
	}
	state, code := q.Get("state"), q.Get("code")
	o.mu.Lock()
	p := o.pending[state]
	delete(o.pending, state) // one use, whatever follows
	o.mu.Unlock()
	if state == "" || p == nil || now.Sub(p.created) > oidcPendingTTL {
		return "", errors.New("unknown or expired login: start again")
	}
	ck, err := r.Cookie(oidcBinding)
	if err != nil {
		return "", errors.New("this login was started in another browser: start again")
	}
	got := sha256.Sum256([]byte(ck.Value))
	if subtle.ConstantTimeCompare(got[:], p.binding[:]) != 1 {
		return "", errors.New("this login was started in another browser: start again")
	}
	if code == "" {
		return "", errors.New("the provider sent no code")
	}
	d, err := o.discover(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, o.cfg.Client), DefaultOIDCTimeout)
	defer cancel()
	tok, err := o.oauth(d, p.redirect).Exchange(ctx, code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		return "", fmt.Errorf("%w: %v", errExchange, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errors.New("the provider sent no ID token")
	}
	return o.verify(ctx, d, raw, p.nonce, now)
}

// verify checks an ID token and returns its verified email.
func (o *oidc) verify(ctx context.Context, d *discovery, raw, nonce string, now time.Time) (string, error) {
	tok, err := jwt.ParseSigned(raw, idTokenAlgs)
	if err != nil {
		return "", fmt.Errorf("id token: %v", err)
	}
	if len(tok.Headers) != 1 {
		return "", errors.New("id token: want one signature")
	}
	k, err := o.key(ctx, d, tok.Headers[0].KeyID)
	if err != nil {
		return "", fmt.Errorf("id token: %v", err)
	}
	var c idClaims
	if err := tok.Claims(k.Key, &c); err != nil {
		return "", fmt.Errorf("id token: %v", err)
	}
	if c.Expiry == nil || c.IssuedAt == nil {
		return "", errors.New("id token: exp and iat are required")
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: o.cfg.Issuer, AnyAudience: jwt.Audience{o.cfg.ClientID}, Time: now}, time.Minute); err != nil {
		return "", fmt.Errorf("id token: %v", err)
	}
	if len(c.Audience) > 1 && c.AZP != o.cfg.ClientID {
		return "", errors.New("id token: issued to another party (azp)")
	}
	if subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1 {
		return "", errors.New("id token: wrong nonce")
	}
	if c.Email == "" || !c.EmailVerified {
		return "", errors.New("id token: no verified email")
	}
	return c.Email, nil
}

// role returns the role configured for email.
func (o *oidc) role(email string) (Role, bool) {
	r, ok := o.cfg.Roles[email]
	return r, ok && r.rank() >= 0
}

func (c *Console) oidcLogin(w http.ResponseWriter, r *http.Request) {
	redirect := c.oidc.cfg.RedirectURL
	if redirect == "" {
		scheme := "https"
		if r.TLS == nil {
			scheme = "http"
		}
		redirect = scheme + "://" + r.Host + "/console/api/oidc/callback"
	}
	u, binding, err := c.oidc.start(r.Context(), redirect, clientAddr(r), c.cfg.Now())
	if err != nil {
		c.cfg.Logger.Error("console oidc login", "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "the identity provider cannot be reached; see the server log"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcBinding, Value: binding, Path: "/console/api/oidc/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcPendingTTL.Seconds())})
	http.Redirect(w, r, u, http.StatusFound)
}

func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: oidcBinding, Value: "", Path: "/console/api/oidc/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	now := c.cfg.Now()
	email, err := c.oidc.finish(r.Context(), r, now)
	if err != nil {
		if errors.Is(err, errExchange) {
			c.cfg.Logger.Warn("console oidc login", "err", err)
			err = errExchange
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "login failed: " + err.Error()})
		return
	}
	if _, ok := c.oidc.role(email); !ok || !userName.MatchString(email) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("%s has no console role: an admin adds it to the console's OIDC roles", email)})
		return
	}
	if !c.ownName(w, r, email) {
		return
	}
	c.newSession(w, r, email, true, now)
	http.Redirect(w, r, "/console/", http.StatusFound)
}

// oidcEnabled answers whether the login page offers the provider.
func (c *Console) loginOptions(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"oidc": c.oidc != nil}
	if c.oidc != nil {
		if u, err := url.Parse(c.oidc.cfg.Issuer); err == nil {
			out["oidc_provider"] = u.Host
		}
	}
	writeJSON(w, http.StatusOK, out)
}
