package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/strictjson"
)

//go:embed static
var static embed.FS

// Defaults for Config's zero values.
const (
	// DefaultSessionTTL is how long a console login lasts.
	DefaultSessionTTL = 8 * time.Hour
	// DefaultIdleTimeout ends a console session unused this long.
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultLoginFailures is how many failed logins one user name, or one
	// client address, may have within DefaultLoginWindow before further
	// attempts are refused (429) until the window has passed.
	DefaultLoginFailures = 5
	// DefaultLoginWindow is the window failed logins are counted in.
	DefaultLoginWindow = 15 * time.Minute
	// maxSessions bounds the console sessions held at once; the oldest
	// goes first.
	maxSessions = 1000
	// maxSessionsPerUser bounds one account's sessions (its least
	// recently used goes first), so that one account logging in again and
	// again cannot push the other operators' sessions out.
	maxSessionsPerUser = 16
	// maxFailureKeys bounds the user names and addresses whose failed
	// logins are counted; beyond it (after forgetting those outside the
	// window) new ones are refused until the window frees some: a flood
	// of guessed names cannot grow the table without bound.
	maxFailureKeys = 10000
	// maxBody bounds a console request body.
	maxBody = 64 << 10
	// cookieName names the session cookie. The __Host- prefix (TLS only)
	// pins it to this origin and path /.
	cookieName    = "__Host-ward_console"
	cookieNameTLS = cookieName
	cookiePlain   = "ward_console"
)

// Prover gives an audit event's inclusion proof (audit.Log does).
type Prover interface {
	Prove(index uint64) (*audit.InclusionProof, error)
}

// Config configures a [Console].
type Config struct {
	// Users is the users file (DATA/console/users.json).
	Users string
	// API is the node's API server: its routes serve the console's data.
	API *api.Server
	// Audit proves events; LogKey is the log's note verifier key
	// (DATA/keys/audit.pub), which the browser checks checkpoints with.
	Audit  Prover
	LogKey string
	// Node is the node's id on a node of several ("" alone): GET
	// /v1/audit/events then answers for every node, and the console
	// proves only this node's events.
	Node string
	// Policies returns the policies the node enforces (English rules
	// compiled to Cedar), for the Policies page; nil: none shown.
	Policies func() any
	// Replay decides a recorded trace (JSON lines, see internal/replay)
	// against the policies in force, in shadow mode (nil: no replay).
	Replay func(ctx context.Context, trace io.Reader) (any, error)
	// Limits returns the rate limits and budgets in force, for the
	// budget plot (nil: none).
	Limits func() any
	// Export returns the forensic bundle of a session (nil: no export).
	Export func(ctx context.Context, session string) ([]byte, error)
	// DryRun decides a request against the policies in force without
	// effects (nil: no dry-run).
	DryRun func(ctx context.Context, req json.RawMessage) (any, error)
	// Tail reads the audit log and Appended returns a channel closed at
	// its next append (Signal.Wait): the session page's live stream of
	// calls (nil: the page polls).
	Tail     Tail
	Appended func() <-chan struct{}
	Logger   *slog.Logger
	// OIDC, when set, also lets operators log in with an OpenID Connect
	// provider.
	OIDC *OIDCConfig
	// Principal reports whether name is, up to case, a principal of the
	// node (the bootstrap operator "admin", a sponsor). A console account acts as the
	// principal of its own name, so an account of such a name would be
	// recorded as that principal and share its approver groups: it is
	// refused at login and at every request (nil: no principal is
	// checked). An error refuses too.
	Principal func(ctx context.Context, name string) (bool, error)
	// Now is the clock (nil: time.Now).
	Now           func() time.Time
	SessionTTL    time.Duration
	IdleTimeout   time.Duration
	LoginFailures int
	LoginWindow   time.Duration
}

// Console serves the console under /console/.
type Console struct {
	cfg    Config
	users  *users
	routes *http.ServeMux
	api    http.Handler
	files  http.Handler
	hashes chan struct{} // bounds concurrent password hashing
	oidc   *oidc         // nil without OIDC

	mu         sync.Mutex
	sessions   map[[32]byte]*session // by SHA-256 of the cookie value
	failures   map[string][]time.Time
	streams    map[string]int // live streams by user (stream.go)
	streamsAll int
}

type session struct {
	user    string
	oidc    bool // logged in with the OIDC provider, not a local account
	csrf    string
	created time.Time
	used    time.Time
	gone    chan struct{} // closed when the session ends: its live streams end
}

// removeLocked ends the session named key; c.mu is held.
func (c *Console) removeLocked(key [32]byte) {
	if s := c.sessions[key]; s != nil {
		close(s.gone)
		delete(c.sessions, key)
	}
}

// New returns a Console.
func New(cfg Config) (*Console, error) {
	if cfg.Users == "" || cfg.API == nil {
		return nil, errors.New("console: incomplete configuration")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = DefaultLoginFailures
	}
	if cfg.LoginWindow <= 0 {
		cfg.LoginWindow = DefaultLoginWindow
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, users: &users{path: filepath.Clean(cfg.Users)}, api: cfg.API.Routes(),
		files: http.StripPrefix("/console/", http.FileServerFS(sub)), hashes: make(chan struct{}, 2),
		sessions: map[[32]byte]*session{}, failures: map[string][]time.Time{}, streams: map[string]int{}}
	if cfg.OIDC != nil {
		if c.oidc, err = newOIDC(*cfg.OIDC); err != nil {
			return nil, err
		}
	}
	c.routes = c.allowlist()
	return c, nil
}

// route is one API route the console forwards, and the least role that
// may use it.
type route struct {
	pattern string // method and /v1/… path, as http.ServeMux reads it
	role    Role
}

// forwarded is the console's allowlist of API routes. Nothing else of the
// API is reachable with a console session.
var forwarded = []route{
	{"GET /v1/agents", RoleViewer},
	{"GET /v1/agents/{name}", RoleViewer},
	{"GET /v1/sessions", RoleViewer},
	{"GET /v1/sessions/{id}", RoleViewer},
	{"GET /v1/sessions/{id}/labels", RoleViewer},
	{"GET /v1/approvals", RoleViewer},
	{"GET /v1/approvals/{id}", RoleViewer},
	{"GET /v1/audit/events", RoleViewer},
	{"GET /v1/audit/checkpoint", RoleViewer},
	{"POST /v1/approvals/{id}/approve", RoleApprover},
	{"POST /v1/approvals/{id}/deny", RoleApprover},
	{"POST /v1/agents/{name}/quarantine", RoleAdmin},
	{"POST /v1/agents/{name}/release", RoleAdmin},
	{"POST /v1/sessions/{id}/end", RoleAdmin},
}

// ForwardedRoutes lists the API routes the console forwards ("POST
// /v1/approvals/{id}/approve") with the least role allowed each; nothing
// else of the API is reachable through it.
func ForwardedRoutes() map[string]Role {
	out := make(map[string]Role, len(forwarded))
	for _, r := range forwarded {
		out[r.pattern] = r.role
	}
	return out
}

func (c *Console) allowlist() *http.ServeMux {
	m := http.NewServeMux()
	for _, rt := range forwarded {
		method, path, _ := strings.Cut(rt.pattern, " ")
		m.HandleFunc(method+" /console/api"+path, c.authed(rt.role, c.forward))
	}
	m.HandleFunc("POST /console/api/login", c.login)
	m.HandleFunc("GET /console/api/login-options", c.loginOptions)
	if c.oidc != nil {
		m.HandleFunc("GET /console/api/oidc/login", c.oidcLogin)
		m.HandleFunc("GET /console/api/oidc/callback", c.oidcCallback)
	}
	m.HandleFunc("POST /console/api/logout", c.authed(RoleViewer, c.logout))
	m.HandleFunc("GET /console/api/me", c.authed(RoleViewer, c.me))
	m.HandleFunc("GET /console/api/proof/{index}", c.authed(RoleViewer, c.proof))
	m.HandleFunc("GET /console/api/policies", c.authed(RoleViewer, c.policies))
	m.HandleFunc("GET /console/api/limits", c.authed(RoleViewer, func(w http.ResponseWriter, r *http.Request, u User, s *session) {
		var ls any = []any{}
		if c.cfg.Limits != nil {
			ls = c.cfg.Limits()
		}
		writeJSON(w, http.StatusOK, ls)
	}))
	m.HandleFunc("POST /console/api/dryrun", c.authed(RoleViewer, c.dryRun))
	m.HandleFunc("GET /console/api/export/{session}", c.authed(RoleViewer, c.export))
	m.HandleFunc("POST /console/api/replay", c.authed(RoleViewer, c.replay))
	m.HandleFunc("GET /console/api/stream/sessions/{id}", c.authed(RoleViewer, c.streamSession))
	m.HandleFunc("/console/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such console endpoint: " + r.URL.Path})
	})
	return m
}

// ServeHTTP serves the pages and the console's API.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if strings.HasPrefix(r.URL.Path, "/console/api/") {
		h.Set("Cache-Control", "no-store")
		c.routes.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "the console's pages are read with GET"})
		return
	}
	if r.URL.Path == "/console" {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
		return
	}
	h.Set("Cache-Control", "no-cache")
	c.files.ServeHTTP(w, r)
}

// authed wraps a handler that needs a console session whose user has at
// least role need; a state-changing request also needs the session's CSRF
// token in X-CSRF-Token and, when the browser sends one, a same-origin
// Origin.
func (c *Console) authed(need Role, h func(w http.ResponseWriter, r *http.Request, u User, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, key := c.session(r)
		if s == nil {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "log in to the console first"})
			return
		}
		u, ok, err := c.account(s)
		if err != nil {
			c.cfg.Logger.Error("console users file", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error; see the server log"})
			return
		}
		if !ok {
			c.drop(key)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "this console account no longer exists"})
			return
		}
		if !c.ownName(w, r, u.Name) {
			c.drop(key)
			return
		}
		if !safeMethod(r.Method) {
			if err := c.checkCSRF(r, s); err != nil {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
				return
			}
		}
		if !u.Role.Allows(need) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("the %s role may not do this; it needs %s", u.Role, need)})
			return
		}
		h(w, r, u, s)
	}
}

// ownName reports whether the console account name is no principal's
// name; if it is one, or that cannot be told, it answers the request.
func (c *Console) ownName(w http.ResponseWriter, r *http.Request, name string) bool {
	if c.cfg.Principal == nil {
		return true
	}
	taken, err := c.cfg.Principal(r.Context(), name)
	if err != nil {
		c.cfg.Logger.Error("console: look up principal", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error; see the server log"})
		return false
	}
	if taken {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("console account %q has the name of a ward principal (an operator or sponsor), and would act as it: give the account another name", name)})
		return false
	}
	return true
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// checkCSRF requires the session's CSRF token and refuses another origin.
func (c *Console) checkCSRF(r *http.Request, s *session) error {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return errors.New("cross-origin request refused")
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errors.New("cross-site request refused")
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return errors.New("missing or wrong CSRF token: reload the console")
	}
	return nil
}

// account returns the account a session is for, as it stands now.
func (c *Console) account(s *session) (User, bool, error) {
	if s.oidc {
		if c.oidc == nil {
			return User{}, false, nil
		}
		r, ok := c.oidc.role(s.user)
		return User{Name: s.user, Role: r}, ok, nil
	}
	return c.users.get(s.user)
}

// session returns the live session r's cookie names, or nil.
func (c *Console) session(r *http.Request) (*session, [32]byte) {
	var key [32]byte
	ck, err := r.Cookie(c.cookieName(r))
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil, key
	}
	key = sha256.Sum256([]byte(ck.Value))
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[key]
	if s == nil {
		return nil, key
	}
	if now.Sub(s.created) > c.cfg.SessionTTL || now.Sub(s.used) > c.cfg.IdleTimeout {
		c.removeLocked(key)
		return nil, key
	}
	s.used = now
	return s, key
}

func (c *Console) drop(key [32]byte) {
	c.mu.Lock()
	c.removeLocked(key)
	c.mu.Unlock()
}

func (c *Console) cookieName(r *http.Request) string {
	if r.TLS != nil {
		return cookieNameTLS
	}
	return cookiePlain
}

// clientAddr is the client's IP address, for rate limiting: an IPv6
// address by its /64, which one client (one host, one LAN) usually holds
// whole.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// limited reports whether key has used up its failed logins, and how long
// until the oldest one leaves the window.
func (c *Console) limited(key string, now time.Time) (bool, time.Duration) {
	fs := c.failures[key]
	kept := fs[:0]
	for _, t := range fs {
		if now.Sub(t) < c.cfg.LoginWindow {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		delete(c.failures, key)
		return false, 0
	}
	c.failures[key] = kept
	if len(kept) >= c.cfg.LoginFailures {
		return true, c.cfg.LoginWindow - now.Sub(kept[0])
	}
	return false, 0
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := decode(w, r, &body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || !strings.EqualFold(u.Host, r.Host) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin login refused"})
			return
		}
	}
	now := c.cfg.Now()
	// Failures count per address and per user name; a name no account can
	// have (up to the body's 64 KiB) is not kept as a key of its own.
	keys := []string{"addr:" + clientAddr(r)}
	if userName.MatchString(body.User) {
		keys = append(keys, "user:"+body.User)
	}
	c.mu.Lock()
	if len(c.failures) >= maxFailureKeys {
		for k := range c.failures {
			c.limited(k, now) // forgets keys with no failure in the window
		}
		if len(c.failures) >= maxFailureKeys {
			c.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(int(c.cfg.LoginWindow.Seconds())))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many failed logins; wait and try again"})
			return
		}
	}
	for _, k := range keys {
		if over, wait := c.limited(k, now); over {
			c.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many failed logins; wait and try again"})
			return
		}
	}
	// Counted as failed until it succeeds: attempts sent at once must not
	// all pass the check above before any of them has failed.
	for _, k := range keys {
		c.failures[k] = append(c.failures[k], now)
	}
	c.mu.Unlock()
	u, ok, err := c.users.get(body.User)
	if err != nil {
		c.cfg.Logger.Error("console users file", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error; see the server log"})
		return
	}
	// For a name no account has, u.Hash is a decoy that costs what the
	// accounts' hashes do (decoyHash).
	hash := u.Hash
	select {
	case c.hashes <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	match := CheckPassword(hash, body.Password)
	<-c.hashes
	if !ok || !match {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong user name or password"})
		return
	}
	// The account's failures are forgotten; the address's are not (an
	// insider logging itself in between guesses at other accounts must
	// not reset its count): only this attempt's is taken back.
	c.mu.Lock()
	delete(c.failures, "user:"+body.User)
	addr := c.failures[keys[0]]
	if i := slices.Index(addr, now); i >= 0 {
		c.failures[keys[0]] = slices.Delete(addr, i, i+1)
	}
	c.mu.Unlock()
	if !c.ownName(w, r, u.Name) {
		return
	}
	csrf := c.newSession(w, r, u.Name, false, now)
	writeJSON(w, http.StatusOK, meView{User: u.Name, Role: u.Role, CSRF: csrf})
}

// newSession starts a console session for user and sets its cookie; it
// returns the session's CSRF token.
func (c *Console) newSession(w http.ResponseWriter, r *http.Request, user string, oidc bool, now time.Time) string {
	token, csrf := random(), random()
	s := &session{user: user, oidc: oidc, csrf: csrf, created: now, used: now, gone: make(chan struct{})}
	c.mu.Lock()
	c.forgetOldest(func(x *session) bool { return x.user == user && x.oidc == oidc }, maxSessionsPerUser)
	c.forgetOldest(func(*session) bool { return true }, maxSessions)
	c.sessions[sha256.Sum256([]byte(token))] = s
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(r), Value: token, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.SessionTTL.Seconds())})
	return csrf
}

// forgetOldest ends the least recently used sessions that match until
// fewer than limit match. The caller holds c.mu.
func (c *Console) forgetOldest(match func(*session) bool, limit int) {
	for {
		n, oldest, at := 0, [32]byte{}, time.Time{}
		for k, x := range c.sessions {
			if !match(x) {
				continue
			}
			n++
			if at.IsZero() || x.used.Before(at) {
				oldest, at = k, x.used
			}
		}
		if n < limit {
			return
		}
		c.removeLocked(oldest) // its live streams end too
	}
}

func random() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, u User, s *session) {
	_, key := c.session(r)
	c.drop(key)
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(r), Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]string{"user": u.Name})
}

// meView is who is logged in, and the CSRF token the pages send back.
type meView struct {
	User   string `json:"user"`
	Role   Role   `json:"role"`
	CSRF   string `json:"csrf"`
	LogKey string `json:"log_key,omitempty"`
	// Node is the node's id on a node of several: the audit view
	// proves (in the browser) only this node's events, and shows the
	// others' with their node.
	Node string `json:"node,omitempty"`
}

func (c *Console) me(w http.ResponseWriter, r *http.Request, u User, s *session) {
	writeJSON(w, http.StatusOK, meView{User: u.Name, Role: u.Role, CSRF: s.csrf, LogKey: c.cfg.LogKey, Node: c.cfg.Node})
}

// forward hands the request to the API's route of the same path under
// /v1, acting as the console user. The API's own checks and records
// apply; its refusals are recorded by the handler that took the request.
func (c *Console) forward(w http.ResponseWriter, r *http.Request, u User, s *session) {
	// The route was matched on the path as sent; the API would match the
	// decoded one, where an escaped "/" ("a%2Fquarantine") is a separator.
	// Names and ids never need escaping: refuse rather than re-read.
	if r.URL.RawPath != "" || strings.Contains(r.URL.Path, "/.") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "escaped or dot segments in the path are not accepted"})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/console/api")
	ctx := api.AsOperator(r.Context(), store.Principal{Name: u.Name, Kind: "admin"})
	r2 := r.Clone(ctx)
	r2.URL.Path, r2.URL.RawPath = path, ""
	r2.RequestURI = r2.URL.RequestURI()
	r2.Header.Del("Cookie")
	r2.Header.Del("Authorization")
	r2.Header.Del("X-CSRF-Token")
	c.api.ServeHTTP(w, r2)
}

func (c *Console) proof(w http.ResponseWriter, r *http.Request, u User, s *session) {
	if c.cfg.Audit == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no audit log"})
		return
	}
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "index: want an event number"})
		return
	}
	p, err := c.cfg.Audit.Prove(idx)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	// The entry travels as base64 of the bytes that were hashed: as JSON
	// it could be re-encoded on the way, and the browser must hash
	// exactly what the log did.
	writeJSON(w, http.StatusOK, proofView{Index: p.Index, Size: p.Size, Entry: p.Entry, Hashes: p.Hashes, Checkpoint: p.Checkpoint, LogKey: c.cfg.LogKey})
}

// proofView is an inclusion proof as the browser checks it.
type proofView struct {
	Index      uint64   `json:"index"`
	Size       uint64   `json:"tree_size"`
	Entry      []byte   `json:"entry_b64"`
	Hashes     [][]byte `json:"hashes"`
	Checkpoint string   `json:"checkpoint"`
	LogKey     string   `json:"log_key"`
}

func (c *Console) policies(w http.ResponseWriter, r *http.Request, u User, s *session) {
	var ps any = []any{}
	if c.cfg.Policies != nil {
		ps = c.cfg.Policies()
	}
	writeJSON(w, http.StatusOK, ps)
}

func (c *Console) dryRun(w http.ResponseWriter, r *http.Request, u User, s *session) {
	if c.cfg.DryRun == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "dry-run is not available on this node"})
		return
	}
	var req json.RawMessage
	if err := decode(w, r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	out, err := c.cfg.DryRun(r.Context(), req)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// maxTrace bounds a trace sent to replay.
const maxTrace = 8 << 20

func (c *Console) replay(w http.ResponseWriter, r *http.Request, u User, s *session) {
	if c.cfg.Replay == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "replay is not available on this node"})
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTrace))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("a trace of at most %d bytes, please", maxTrace)})
		return
	}
	out, err := c.cfg.Replay(r.Context(), bytes.NewReader(b))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) export(w http.ResponseWriter, r *http.Request, u User, s *session) {
	if c.cfg.Export == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "export is not available on this node"})
		return
	}
	b, err := c.cfg.Export(r.Context(), r.PathValue("session"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="ward-session-bundle.json"`)
	w.Write(b)
}

// decode reads a strict JSON body of at most maxBody bytes.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errors.New("send application/json")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return fmt.Errorf("request body: %v", err)
	}
	if err := strictjson.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
