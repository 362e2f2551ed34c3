// Package api is ward's HTTP surface: the JSON API for operators, sponsors and
// agents, the RFC 8693 token exchange endpoint, the public trust bundle, and
// the MCP gateway endpoint (Streamable HTTP).
//
// Authentication, by route:
//
//	/.well-known/spiffe-bundle, /.well-known/jwks.json             public
//	/livez, /healthz, /readyz                                      public (health.go)
//	/v1/sponsors, /v1/agents, /v1/sessions, /v1/tools, /v1/audit,  operator or sponsor: Authorization: Bearer ward_…
//	/v1/health, /v1/keys (admin; keys.go)
//	/mcp, /v1/guard/*, /v1/token, /v1/sessions/{id}/end            agent: mutual TLS with the session's X.509-SVID,
//	                                                               or Authorization: DPoP <grant> plus a DPoP proof
//
// An agent's grant is refused without a proof signed by the session key; a
// proof is bound to the request's method and URL and is accepted once.
// Errors are JSON objects {"error": "..."} with a status that says what kind
// of failure it was (400 bad input, 401 unauthenticated, 403 forbidden,
// 404 not found, 409 conflict, 500 internal); they never echo a credential.
//
// Every JSON body is read once, strictly (internal/strictjson): member
// names are case-sensitive, a name twice in one object at any depth, a
// member no field is declared for, invalid UTF-8 and data after the value
// are refused with 400 and the member's path. The token endpoint's form
// is as strict (see tokenExchange).
//
// Every refusal (an answer of 400 or more, whoever wrote it) is recorded in
// the audit log by a refusal.Recorder before it is answered, with who sent
// the request (proven, or only claimed), what it was and why; floods are
// aggregated. A panic while handling a request is answered 500, logged
// with its stack and recorded as a refusal of kind "panic"; the node keeps
// serving.
package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/refusal"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/streamable"
	"github.com/ward-dev/ward/internal/strictjson"
)

// DefaultMaxBody bounds JSON API request bodies.
const DefaultMaxBody = 1 << 20

// maxMCPSessionsPerSession bounds the MCP sessions one ward session may
// hold open at the gateway (each has its own upstream connections). At
// the bound, a new MCP session retires the one idle longest (no request
// in flight, no stream open): clients that never send DELETE (most do
// not) are not refused, and no session that is being used is cut.
const maxMCPSessionsPerSession = 16

// Checkpointer gives the latest signed audit checkpoint.
type Checkpointer interface {
	Checkpoint() []byte
	Size() uint64
}

// Config configures a [Server].
type Config struct {
	Authority *authority.Authority
	CA        *identity.CA
	Store     *store.Store
	Gateway   *gateway.Gateway
	Guard     gateway.Guard
	Proofs    *grant.ProofVerifier
	Audit     Checkpointer
	// PublicURL is the scheme and host agents use to reach ward
	// ("https://ward.example.org"); DPoP proofs must name it. Empty: the
	// request's own Host over https.
	PublicURL string
	Logger    *slog.Logger
	MaxBody   int64 // default DefaultMaxBody
	// MaxMCPBody bounds one MCP message; default streamable.DefaultMaxBodyBytes.
	MaxMCPBody int64
	// MCPJSONAnswers: see streamable.HandlerConfig.JSONAnswers.
	MCPJSONAnswers bool
	// Approvals is the escalation queue (nil: none); ApproverGroups maps
	// an approver group to the principals in it.
	Approvals      ApprovalQueue
	ApproverGroups map[string][]string
	// ReceiptKey gives the key that signs receipts now (it changes when
	// the receipt key is rotated); nil: receipts are not offered.
	ReceiptKey func() *ecdsa.PrivateKey
	// Keys, when set, lists, rotates and retires the trust domain's keys:
	// GET /v1/keys, POST /v1/keys/rotate and POST /v1/keys/retire (admins).
	Keys Keys
	// Index catches the audit query index up before a search; nil: the
	// store's index is searched as it is.
	Index interface{ IndexAudit(context.Context) error }
	// SystemSearch, on a node of several, answers GET /v1/audit/events
	// over every node's events, each with its node
	// (server.Node.SearchAuditSystem); nil: this node's events only.
	SystemSearch func(ctx context.Context, q store.AuditQuery) ([]NodeEvent, error)
	// Published, when set, gives the checkpoint GET /v1/audit/checkpoint
	// serves instead of the log's latest: the latest one cosigned as the
	// witness policy requires (nil until there is one).
	Published func() []byte
	// Redactor redacts secrets from agent-posted records; nil records
	// them as posted.
	Redactor *redact.Redactor
	// Labels, when set, shows the taint labels in force and lets an admin
	// clear the labels a playbook or a content scan gave a session.
	Labels Labels
	// EgressToken, when set, issues the calling session's egress proxy
	// credentials: POST /v1/egress/token answers {"proxy_url": …}.
	EgressToken func(ctx context.Context, c *gateway.Caller) (string, error)
	// EgressCA, when set, gives the PEM certificate a runtime must trust
	// for brokered HTTPS, sent with the token as "ca" (nil: none).
	EgressCA func() []byte
	// Runtime, when set, serves the runtime of `ward run`:
	// POST /v1/sessions/{id}/exec, POST /v1/sessions/{id}/runtime and
	// the liveness channel POST /v1/sessions/{id}/runtime/live.
	Runtime Runtime
	// Witness, when set, serves C2SP tlog-witness add-checkpoint at
	// POST /witness/add-checkpoint, for the logs this node witnesses. The
	// protocol authenticates checkpoints by their signatures, not callers.
	Witness http.Handler
	// Ready are the readiness checks of GET /healthz (see health.go);
	// none: always ready.
	Ready []Check
	// Refusals records every refusal. Nil: a recorder with the defaults
	// of package refusal, appending to Audit (which must then implement
	// refusal.Appender). Close closes it either way.
	Refusals *refusal.Recorder
	// Metrics, when set, serves GET /metrics, to loopback clients and
	// admins only (see metrics.go).
	Metrics http.Handler
}

// ApprovalQueue is what the API needs of the approval queue.
type ApprovalQueue interface {
	List(ctx context.Context, f approval.Filter) ([]approval.Request, error)
	Get(ctx context.Context, id string) (approval.Request, error)
	Vote(ctx context.Context, id string, v approval.Voter, approve bool, reason string) (approval.Request, error)
}

// Server serves the API.
type Server struct {
	cfg      Config
	mcp      *streamable.Handler
	mcpMu    sync.Mutex
	mcpOpen  map[string]map[*mcpSession]struct{} // ward session → its MCP sessions
	mux      *http.ServeMux
	refusals *refusal.Recorder
	// closing is closed by Close: runtimes' liveness channels let go
	// without their sessions being ended.
	closing   chan struct{}
	drain     drain
	closeOnce sync.Once
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Authority == nil || cfg.CA == nil || cfg.Store == nil || cfg.Gateway == nil || cfg.Guard == nil || cfg.Proofs == nil || cfg.Audit == nil {
		return nil, errors.New("api: incomplete configuration")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Server{cfg: cfg, mux: http.NewServeMux(), refusals: cfg.Refusals, closing: make(chan struct{})}
	if s.refusals == nil {
		app, ok := cfg.Audit.(refusal.Appender)
		if !ok {
			return nil, errors.New("api: refusals cannot be recorded: give Refusals or an Audit that appends")
		}
		var err error
		s.refusals, err = refusal.New(refusal.Config{Audit: app, OnError: func(err error) {
			cfg.Logger.Error("recording a summary of refusals failed", "err", err)
		}})
		if err != nil {
			return nil, err
		}
	}
	s.mcp = streamable.NewHandler(streamable.HandlerConfig{Open: s.openMCP, MaxBodyBytes: cfg.MaxMCPBody, OnRefuse: s.onMCPRefuse, JSONAnswers: cfg.MCPJSONAnswers})
	s.routes()
	return s, nil
}

// bodyReadTimeout bounds how long a client may take to send a request
// body: a slow sender cannot hold a connection and a goroutine for ever.
const bodyReadTimeout = 30 * time.Second

// Handler returns the root handler: it records refusals, recovers panics
// (see the package documentation) and bounds the time a body may take.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withExchange(r)
		rw := &recordingWriter{ResponseWriter: w, s: s, r: r}
		defer s.recoverPanic(rw, r)
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		if n := headerBytes(r); n > MaxHeaderBytes {
			msg := fmt.Sprintf("request headers of %d bytes, more than the %d accepted", n, MaxHeaderBytes)
			refuse(r, "request", msg)
			writeJSON(rw, http.StatusRequestHeaderFieldsTooLarge, map[string]string{"error": msg})
			return
		}
		for _, name := range singleHeaders {
			if n := len(r.Header.Values(name)); n > 1 {
				msg := fmt.Sprintf("header %s is given %d times: send it once", name, n)
				refuse(r, "request", msg)
				writeJSON(rw, http.StatusBadRequest, map[string]string{"error": msg})
				return
			}
		}
		if err := checkQuery(r.URL.RawQuery); err != nil {
			refuse(r, "request", err.Error())
			writeJSON(rw, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if h, pattern := s.mux.Handler(r); pattern == "" {
			s.noRoute(rw, r, h)
			return
		}
		s.offerNonce(rw, r)
		s.mux.ServeHTTP(rw, r)
	})
}

// MaxHeaderBytes bounds a request's headers. The HTTP server's own limit
// (which answers before any handler runs, leaving no record) is set well
// above it, so that a refusal for oversized headers is recorded here.
const MaxHeaderBytes = 64 << 10

// headerBytes is the size of r's headers as sent, near enough.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// singleHeaders are the headers ward reads one value of: given twice, ward
// and a proxy in front of it could each read another.
var singleHeaders = []string{"Authorization", "DPoP", "Content-Type", "Origin", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-Id"}

// checkQuery refuses a query string that is malformed, not UTF-8, or
// names a parameter twice: r.URL.Query() would silently drop or pick, and
// a proxy in front of ward could pick another.
func checkQuery(raw string) error {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("malformed query string: %v", err)
	}
	for k, v := range q {
		if !utf8.ValidString(k) || slices.ContainsFunc(v, func(x string) bool { return !utf8.ValidString(x) }) {
			return errors.New("the query string is not valid UTF-8")
		}
		if len(v) > 1 {
			return fmt.Errorf("query parameter %s is given %d times: give it once", shownName(k), len(v))
		}
	}
	return nil
}

// noRoute answers, in the API's JSON form, what the router answers for a
// request no route takes: 404, or 405 with the methods allowed.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request, h http.Handler) {
	cw := &statusWriter{header: http.Header{}}
	h.ServeHTTP(cw, r)
	msg := "no such endpoint: " + r.URL.Path
	if allow := cw.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
		msg = fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)
	}
	if cw.status == 0 || cw.status < 400 {
		cw.status = http.StatusNotFound
	}
	refuse(r, "", msg)
	writeJSON(w, cw.status, map[string]string{"error": msg})
}

// statusWriter keeps the status and headers a handler writes, and drops
// its body.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header { return w.header }
func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *statusWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

// deadlineBody lifts the body's read deadline once the body has been read
// to its end, so a streaming response that follows is not cut off. After
// any other error (the deadline passed) it stands: net/http reads what is
// left of a body before it answers, and that read must not wait for a
// slow client for ever.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Close ends every MCP session, lets runtimes' liveness channels go and
// appends the summaries of refusals counted so far.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mcp.Close()
	if err := s.refusals.Close(context.Background()); err != nil {
		s.cfg.Logger.Error("recording a summary of refusals failed", "err", err)
	}
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.healthz)
	m.HandleFunc("GET /v1/health", s.op(s.health))
	m.HandleFunc("GET /.well-known/spiffe-bundle", s.bundle)
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.Handle("/mcp", s.sameOrigin(s.drained(s.mcp)))

	m.HandleFunc("POST /v1/sponsors", s.op(s.createSponsor))
	m.HandleFunc("GET /v1/sponsors", s.op(s.listSponsors))
	m.HandleFunc("POST /v1/sponsors/{name}/credentials", s.op(s.newCredential))
	m.HandleFunc("POST /v1/agents", s.op(s.registerAgent))
	m.HandleFunc("GET /v1/agents", s.op(s.listAgents))
	m.HandleFunc("GET /v1/agents/{name}", s.op(s.showAgent))
	m.HandleFunc("POST /v1/agents/{name}/quarantine", s.op(s.agentStatus("quarantined")))
	m.HandleFunc("POST /v1/agents/{name}/release", s.op(s.agentStatus("active")))
	m.HandleFunc("POST /v1/agents/{name}/trust", s.op(s.agentTrust))
	m.HandleFunc("POST /v1/sessions", s.op(s.startSession))
	m.HandleFunc("GET /v1/sessions", s.op(s.listSessions))
	m.HandleFunc("GET /v1/sessions/{id}", s.op(s.showSession))
	m.HandleFunc("POST /v1/sessions/{id}/end", s.endSession)
	m.HandleFunc("GET /v1/tools", s.op(s.listTools))
	m.HandleFunc("POST /v1/tools/approve", s.op(s.approveTool))
	m.HandleFunc("GET /v1/audit/checkpoint", s.op(s.checkpoint))
	m.HandleFunc("GET /v1/audit/events", s.op(s.searchAudit))
	m.HandleFunc("GET /v1/approvals", s.op(s.listApprovals))
	m.HandleFunc("GET /v1/approvals/{id}", s.op(s.showApproval))
	m.HandleFunc("POST /v1/approvals/{id}/approve", s.op(s.vote(true)))
	m.HandleFunc("POST /v1/approvals/{id}/deny", s.op(s.vote(false)))

	m.HandleFunc("POST /v1/token", s.tokenExchange)
	m.HandleFunc("POST /v1/verify", s.verify)
	m.HandleFunc("POST /v1/guard/filter", s.ag(s.guardFilter))
	m.HandleFunc("POST /v1/guard/check", s.ag(s.guardCheck))
	m.HandleFunc("POST /v1/guard/observe", s.ag(s.guardObserve))
	m.HandleFunc("POST /v1/guard/notice", s.ag(s.guardNotice))
	m.HandleFunc("POST /v1/guard/answer", s.ag(s.guardAnswer))
	m.HandleFunc("POST /v1/guard/await", s.ag(s.guardAwait))
	m.HandleFunc("GET /v1/receipts", s.receipts)
	if s.cfg.Keys != nil {
		m.HandleFunc("GET /v1/keys", s.op(s.listKeys))
		m.HandleFunc("POST /v1/keys/rotate", s.op(s.rotateKey))
		m.HandleFunc("POST /v1/keys/retire", s.op(s.retireKey))
	}
	m.HandleFunc("GET /v1/session", s.ag(s.whoami))
	m.HandleFunc("POST /v1/records", s.ag(s.postRecord))
	if s.cfg.Runtime != nil {
		m.HandleFunc("POST /v1/sessions/{id}/exec", s.op(s.decideExec))
		m.HandleFunc("POST /v1/sessions/{id}/runtime", s.op(s.recordRuntime))
		m.HandleFunc("POST /v1/sessions/{id}/runtime/live", s.op(s.runtimeLive))
	}
	if s.cfg.Metrics != nil {
		m.HandleFunc("GET /metrics", s.metrics)
	}
	if s.cfg.Witness != nil {
		m.Handle("POST /witness/add-checkpoint", s.cfg.Witness)
	}
	if s.cfg.Labels != nil {
		m.HandleFunc("GET /v1/taint", s.op(s.taintConfig))
		m.HandleFunc("GET /v1/sessions/{id}/labels", s.op(s.sessionLabels))
		m.HandleFunc("DELETE /v1/sessions/{id}/labels/{label}", s.op(s.clearLabel))
	}
	if s.cfg.EgressToken != nil {
		m.HandleFunc("POST /v1/egress/token", s.ag(func(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
			u, err := s.cfg.EgressToken(r.Context(), c)
			if err != nil {
				return err
			}
			// The token is a credential just created for the caller.
			out := map[string]string{"proxy_url": u}
			if s.cfg.EgressCA != nil {
				if ca := s.cfg.EgressCA(); len(ca) > 0 {
					out["ca"] = string(ca)
				}
			}
			writeJSON(w, http.StatusCreated, out)
			return nil
		}))
	}
}

// httpError is an error with the status it maps to.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, authority.ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, authority.ErrForbidden), errors.Is(err, grant.ErrWiden), errors.Is(err, grant.ErrDepth):
		return http.StatusForbidden
	case errors.Is(err, authority.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, grant.ErrCapacity), errors.Is(err, authority.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, grant.ErrInvalid), errors.Is(err, grant.ErrExpired), errors.Is(err, grant.ErrReplay):
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	msg := redact.Internals(err.Error())
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `DPoP algs="ES256", Bearer`)
		if errors.Is(err, grant.ErrUseNonce) {
			s.askNonce(w)
		}
	}
	refuse(r, "", msg)
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body strictly (internal/strictjson): bounded, one
// value, valid UTF-8, member names case-sensitive and never twice in one
// object at any depth, no member v declares no field for.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	return s.decodeN(w, r, v, s.cfg.MaxBody)
}

// decodeN is decode with its own size limit.
func (s *Server) decodeN(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, params, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" ||
			(params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
			return &httpError{http.StatusUnsupportedMediaType, "request body must be application/json (UTF-8)"}
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
		}
		return badRequest("request body could not be read: %v", err)
	}
	if err := strictjson.Unmarshal(data, v); err != nil {
		return badRequest("malformed JSON body: %v; send each member once, spelled exactly as documented", err)
	}
	return nil
}

// op wraps a handler that needs an operator or sponsor credential.
func (s *Server) op(h func(w http.ResponseWriter, r *http.Request, p store.Principal) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.operator(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := h(w, r, p); err != nil {
			s.fail(w, r, err)
		}
	}
}

// ag wraps a handler that needs an agent session.
func (s *Server) ag(h func(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _, err := s.agent(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := h(w, r, c); err != nil {
			s.fail(w, r, err)
		}
	}
}

func (s *Server) operator(r *http.Request) (store.Principal, error) {
	if p, ok := operatorOf(r.Context()); ok {
		provenPrincipal(r, p.Name)
		return p, nil
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		if t, isDPoP := strings.CutPrefix(auth, "DPoP "); isDPoP {
			claimGrant(r, strings.TrimSpace(t), "unverified grant sent to the operator API")
		}
		return store.Principal{}, fmt.Errorf("%w: send an operator or sponsor credential as Authorization: Bearer ward_…", authority.ErrUnauthenticated)
	}
	p, err := s.cfg.Authority.Authenticate(r.Context(), strings.TrimSpace(token))
	if err != nil {
		claimGrant(r, strings.TrimSpace(token), "unverified grant sent as an operator credential")
		return p, err
	}
	provenPrincipal(r, p.Name)
	return p, nil
}

// htu is the URL a DPoP proof for r must name.
func (s *Server) htu(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL + r.URL.Path
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + r.URL.Path
}

// agentOf returns the agent a session's SPIFFE ID names
// (spiffe://TD/agent/AGENT/session/ID), or "".
func agentOf(spiffeID string) string {
	_, rest, ok := strings.Cut(spiffeID, "/agent/")
	if !ok {
		return ""
	}
	agent, _, _ := strings.Cut(rest, "/session/")
	return agent
}

// authenticateAgent authenticates an agent session: mutual TLS with its X.509-SVID, or
// its grant with a DPoP proof. claims is nil for mutual TLS.
func (s *Server) authenticateAgent(r *http.Request) (*gateway.Caller, *grant.Claims, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if uris := r.TLS.PeerCertificates[0].URIs; len(uris) > 0 {
			claimed(r, uris[0].String(), "unverified client certificate")
		}
		id, err := s.cfg.CA.VerifyX509SVID(r.TLS.PeerCertificates)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: client certificate: %v", authority.ErrUnauthenticated, err)
		}
		sess, err := s.cfg.Authority.SessionFromSPIFFEID(id)
		if err != nil {
			claimed(r, id.String(), "verified client certificate that names no session")
			return nil, nil, err
		}
		// The certificate verified: its holder is the session, active
		// or not.
		provenInactive(r, id.String(), sess, agentOf(id.String()), "")
		c, err := s.cfg.Authority.Caller(r.Context(), sess)
		if err != nil {
			return nil, nil, err
		}
		if c.SPIFFEID != id.String() {
			return nil, nil, fmt.Errorf("%w: certificate does not belong to session %s", authority.ErrUnauthenticated, sess)
		}
		proven(r, c)
		return c, nil, nil
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "DPoP ")
	if !ok {
		if bearer, isBearer := strings.CutPrefix(auth, "Bearer "); isBearer {
			claimGrant(r, strings.TrimSpace(bearer), "grant presented as a bearer token, without proof of possession")
			return nil, nil, fmt.Errorf("%w: a grant is not a bearer token: present it as Authorization: DPoP <grant> with a DPoP proof signed by the session key", authority.ErrUnauthenticated)
		}
		return nil, nil, fmt.Errorf("%w: present the session's X.509-SVID (mutual TLS) or Authorization: DPoP <grant> with a DPoP proof", authority.ErrUnauthenticated)
	}
	return s.dpop(r, strings.TrimSpace(token))
}

func (s *Server) dpop(r *http.Request, token string) (*gateway.Caller, *grant.Claims, error) {
	claimGrant(r, token, "unverified grant")
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return nil, nil, fmt.Errorf("%w: exactly one DPoP proof header is required", authority.ErrUnauthenticated)
	}
	claims, err := s.cfg.Authority.VerifyGrant(token)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: grant: %v", authority.ErrUnauthenticated, err)
	}
	// The grant is ward's, but until the proof checks out its holder is
	// not shown to be the session.
	claimed(r, claims.SPIFFEID, "valid grant without a valid proof of possession")
	proof, err := s.cfg.Proofs.VerifyBound(proofs[0], r.Method, s.htu(r), token, claims.JKT)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: DPoP proof: %w", authority.ErrUnauthenticated, err)
	}
	if err := claims.CheckBinding(proof); err != nil {
		return nil, nil, fmt.Errorf("%w: DPoP proof is not signed by the grant's key: %v", authority.ErrUnauthenticated, err)
	}
	// ward's grant, and the session key's proof: the holder is the
	// session, active or not.
	provenInactive(r, claims.SPIFFEID, claims.Session, claims.Agent, claims.Sponsor)
	c, err := s.cfg.Authority.Caller(r.Context(), claims.Session)
	if err != nil {
		return nil, nil, err
	}
	if c.GrantID != claims.ID {
		return nil, nil, fmt.Errorf("%w: grant has been superseded or revoked", authority.ErrUnauthenticated)
	}
	proven(r, c)
	return c, claims, nil
}

func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	b, err := s.cfg.CA.BundleJSON()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	b, err := s.cfg.CA.JWKS()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	cp := s.cfg.Audit.Checkpoint()
	if s.cfg.Published != nil {
		if cp = s.cfg.Published(); cp == nil {
			return &httpError{http.StatusServiceUnavailable, "no checkpoint has been cosigned as the witness policy requires yet"}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write(cp)
	return err
}

// sameOrigin refuses browser requests from another origin (DNS rebinding):
// an Origin header, when present, must name the host the request was sent
// to or the public URL's host.
func (s *Server) sameOrigin(next http.Handler) http.Handler {
	public := ""
	if u, err := url.Parse(s.cfg.PublicURL); err == nil {
		public = u.Host
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host == "" || (!strings.EqualFold(u.Host, r.Host) && !strings.EqualFold(u.Host, public)) {
				msg := fmt.Sprintf("Origin %q is not allowed to use this MCP endpoint", o)
				refuse(r, "cross_origin", msg)
				writeJSON(w, http.StatusForbidden, map[string]string{"error": msg})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// mcpSession binds an MCP session to the ward session that opened it.
type mcpSession struct {
	s      *Server
	caller *gateway.Caller
	proxy  *gateway.Session
	ss     *streamable.Session
}

// mcpAuthError converts an authentication failure for the MCP endpoint:
// what the caller can act on is shown, internal failures are logged and
// reported without detail.
func (s *Server) mcpAuthError(r *http.Request, err error) error {
	switch statusOf(err) {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: %v", streamable.ErrUnauthorized, err)
	case http.StatusServiceUnavailable:
		// The node says why (it cannot confirm it knows the revocations
		// made elsewhere): transient, answered 503.
		return fmt.Errorf("%w: %s", streamable.ErrUnavailable, redact.Internals(strings.TrimPrefix(err.Error(), authority.ErrUnavailable.Error()+": ")))
	case http.StatusInternalServerError:
		s.cfg.Logger.Error("authenticating an MCP request failed", "path", r.URL.Path, "err", err)
		return fmt.Errorf("%w: ward could not authenticate the request right now; retry later", streamable.ErrUnavailable)
	}
	return err
}

func (s *Server) openMCP(r *http.Request, ss *streamable.Session) (streamable.SessionHandler, error) {
	c, _, err := s.agent(r)
	if err != nil {
		return nil, s.mcpAuthError(r, err)
	}
	m := &mcpSession{s: s, caller: c, ss: ss}
	retired, err := s.admitMCP(m)
	for _, r := range retired {
		r.ss.Close()
	}
	if err != nil {
		return nil, err
	}
	m.proxy = s.cfg.Gateway.NewSession(c, ss)
	return m, nil
}

// admitMCP counts m against its ward session's MCP sessions, retiring the
// ones idle longest to stay within maxMCPSessionsPerSession. Counting and
// retiring happen under one lock, so concurrent opens cannot overshoot;
// the retired sessions are closed by the caller, outside the lock (their
// Closed takes it).
func (s *Server) admitMCP(m *mcpSession) ([]*mcpSession, error) {
	s.mcpMu.Lock()
	defer s.mcpMu.Unlock()
	if s.mcpOpen == nil {
		s.mcpOpen = map[string]map[*mcpSession]struct{}{}
	}
	set := s.mcpOpen[m.caller.Session]
	if set == nil {
		set = map[*mcpSession]struct{}{}
		s.mcpOpen[m.caller.Session] = set
	}
	var retired []*mcpSession
	for len(set) >= maxMCPSessionsPerSession {
		var oldest *mcpSession
		var oldestSince time.Time
		for o := range set {
			if since, idle := o.ss.Idle(); idle && (oldest == nil || since.Before(oldestSince)) {
				oldest, oldestSince = o, since
			}
		}
		if oldest == nil || !oldest.ss.Retire() {
			if oldest != nil {
				continue // became busy meanwhile: look again
			}
			return retired, fmt.Errorf("session %s has %d MCP sessions open and every one is in use (a request or stream open); end one with DELETE or wait", m.caller.Session, len(set))
		}
		delete(set, oldest)
		retired = append(retired, oldest)
	}
	set[m] = struct{}{}
	return retired, nil
}

// forgetMCP removes m from its ward session's MCP sessions.
func (s *Server) forgetMCP(m *mcpSession) {
	s.mcpMu.Lock()
	defer s.mcpMu.Unlock()
	if set := s.mcpOpen[m.caller.Session]; set != nil {
		delete(set, m)
		if len(set) == 0 {
			delete(s.mcpOpen, m.caller.Session)
		}
	}
}

func (m *mcpSession) Authorize(r *http.Request) error {
	c, _, err := m.s.agent(r)
	if err != nil {
		return m.s.mcpAuthError(r, err)
	}
	if c.Session != m.caller.Session {
		return fmt.Errorf("this MCP session belongs to another ward session")
	}
	// Decisions use the freshest view of the session (trust, groups).
	return m.proxy.Refresh(c)
}

func (m *mcpSession) Receive(ctx context.Context, msg jsonrpc.Message) { m.proxy.Receive(ctx, msg) }
func (m *mcpSession) Closed() {
	m.s.forgetMCP(m)
	if m.proxy != nil {
		m.proxy.Close()
	}
}

// certPEM encodes a chain.
func certPEM(chain []*x509.Certificate) string {
	var sb strings.Builder
	for _, c := range chain {
		sb.WriteString(string(pemCert(c.Raw)))
	}
	return sb.String()
}
