// Package api is ward's HTTP surface: the JSON API for operators, sponsors and
// agents, the RFC 8693 token exchange endpoint, the public trust bundle, and
// the MCP gateway endpoint (Streamable HTTP).
//
// Authentication, by route:
//
//	/.well-known/spiffe-bundle, /.well-known/jwks.json, /healthz   public
//	/v1/sponsors, /v1/agents, /v1/sessions, /v1/tools, /v1/audit   operator or sponsor: Authorization: Bearer ward_…
//	/mcp, /v1/guard/*, /v1/token, /v1/sessions/{id}/end            agent: mutual TLS with the session's X.509-SVID,
//	                                                               or Authorization: DPoP <grant> plus a DPoP proof
//
// An agent's grant is refused without a proof signed by the session key; a
// proof is bound to the request's method and URL and is accepted once.
// Errors are JSON objects {"error": "..."} with a status that says what kind
// of failure it was (400 bad input, 401 unauthenticated, 403 forbidden,
// 404 not found, 409 conflict); they never echo a credential.
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
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/streamable"
)

// DefaultMaxBody bounds JSON API request bodies.
const DefaultMaxBody = 1 << 20

// maxMCPSessionsPerSession bounds the MCP sessions one ward session may
// hold open at the gateway (each has its own upstream connections).
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
	// Approvals is the escalation queue (nil: none); ApproverGroups maps
	// an approver group to the principals in it.
	Approvals      ApprovalQueue
	ApproverGroups map[string][]string
	// ReceiptKey signs receipts; nil: receipts are not offered.
	ReceiptKey *ecdsa.PrivateKey
	// Index catches the audit query index up before a search; nil: the
	// store's index is searched as it is.
	Index interface{ IndexAudit(context.Context) error }
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
}

// ApprovalQueue is what the API needs of the approval queue.
type ApprovalQueue interface {
	List(ctx context.Context, f approval.Filter) ([]approval.Request, error)
	Get(ctx context.Context, id string) (approval.Request, error)
	Vote(ctx context.Context, id string, v approval.Voter, approve bool, reason string) (approval.Request, error)
}

// Server serves the API.
type Server struct {
	cfg Config
	mcp *streamable.Handler
	mux *http.ServeMux
	// closing is closed by Close: runtimes' liveness channels let go
	// without their sessions being ended.
	closing   chan struct{}
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
	s := &Server{cfg: cfg, mux: http.NewServeMux(), closing: make(chan struct{})}
	s.mcp = streamable.NewHandler(streamable.HandlerConfig{Open: s.openMCP, MaxBodyBytes: cfg.MaxMCPBody})
	s.routes()
	return s, nil
}

// bodyReadTimeout bounds how long a client may take to send a request
// body: a slow sender cannot hold a connection and a goroutine for ever.
const bodyReadTimeout = 30 * time.Second

// Handler returns the root handler.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		s.mux.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the body's read deadline once the body has been read,
// so a streaming response that follows is not cut off.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Close ends every MCP session.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mcp.Close()
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /.well-known/spiffe-bundle", s.bundle)
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.Handle("/mcp", s.sameOrigin(s.mcp))

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
	m.HandleFunc("POST /v1/guard/await", s.ag(s.guardAwait))
	m.HandleFunc("GET /v1/receipts", s.receipts)
	m.HandleFunc("POST /v1/records", s.ag(s.postRecord))
	if s.cfg.Runtime != nil {
		m.HandleFunc("POST /v1/sessions/{id}/exec", s.op(s.decideExec))
		m.HandleFunc("POST /v1/sessions/{id}/runtime", s.op(s.recordRuntime))
		m.HandleFunc("POST /v1/sessions/{id}/runtime/live", s.op(s.runtimeLive))
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
	case errors.Is(err, grant.ErrCapacity):
		return http.StatusServiceUnavailable
	case errors.Is(err, grant.ErrInvalid), errors.Is(err, grant.ErrExpired), errors.Is(err, grant.ErrReplay):
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `DPoP algs="ES256", Bearer`)
	}
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

// decode reads a JSON body strictly: bounded, one object, no unknown fields.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	return s.decodeN(w, r, v, s.cfg.MaxBody)
}

// decodeN is decode with its own size limit.
func (s *Server) decodeN(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &httpError{http.StatusUnsupportedMediaType, "request body must be application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
		}
		return badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("malformed JSON body: trailing data after the object")
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
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return store.Principal{}, fmt.Errorf("%w: send an operator or sponsor credential as Authorization: Bearer ward_…", authority.ErrUnauthenticated)
	}
	return s.cfg.Authority.Authenticate(r.Context(), strings.TrimSpace(token))
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

// agent authenticates an agent session: mutual TLS with its X.509-SVID, or
// its grant with a DPoP proof. claims is nil for mutual TLS.
func (s *Server) agent(r *http.Request) (*gateway.Caller, *grant.Claims, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		id, err := s.cfg.CA.VerifyX509SVID(r.TLS.PeerCertificates)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: client certificate: %v", authority.ErrUnauthenticated, err)
		}
		sess, err := s.cfg.Authority.SessionFromSPIFFEID(id)
		if err != nil {
			return nil, nil, err
		}
		c, err := s.cfg.Authority.Caller(r.Context(), sess)
		if err != nil {
			return nil, nil, err
		}
		if c.SPIFFEID != id.String() {
			return nil, nil, fmt.Errorf("%w: certificate does not belong to session %s", authority.ErrUnauthenticated, sess)
		}
		return c, nil, nil
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "DPoP ")
	if !ok {
		if strings.HasPrefix(auth, "Bearer ") {
			return nil, nil, fmt.Errorf("%w: a grant is not a bearer token: present it as Authorization: DPoP <grant> with a DPoP proof signed by the session key", authority.ErrUnauthenticated)
		}
		return nil, nil, fmt.Errorf("%w: present the session's X.509-SVID (mutual TLS) or Authorization: DPoP <grant> with a DPoP proof", authority.ErrUnauthenticated)
	}
	return s.dpop(r, strings.TrimSpace(token))
}

func (s *Server) dpop(r *http.Request, token string) (*gateway.Caller, *grant.Claims, error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return nil, nil, fmt.Errorf("%w: exactly one DPoP proof header is required", authority.ErrUnauthenticated)
	}
	claims, err := s.cfg.Authority.VerifyGrant(token)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: grant: %v", authority.ErrUnauthenticated, err)
	}
	proof, err := s.cfg.Proofs.VerifyBound(proofs[0], r.Method, s.htu(r), token, claims.JKT)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: DPoP proof: %v", authority.ErrUnauthenticated, err)
	}
	if err := claims.CheckBinding(proof); err != nil {
		return nil, nil, fmt.Errorf("%w: DPoP proof is not signed by the grant's key: %v", authority.ErrUnauthenticated, err)
	}
	c, err := s.cfg.Authority.Caller(r.Context(), claims.Session)
	if err != nil {
		return nil, nil, err
	}
	if c.GrantID != claims.ID {
		return nil, nil, fmt.Errorf("%w: grant has been superseded or revoked", authority.ErrUnauthenticated)
	}
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
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "Origin " + o + " is not allowed to use this MCP endpoint"})
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
}

// mcpAuthError converts an authentication failure for the MCP endpoint:
// what the caller can act on is shown, internal failures are logged and
// reported without detail.
func (s *Server) mcpAuthError(r *http.Request, err error) error {
	switch statusOf(err) {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: %v", streamable.ErrUnauthorized, err)
	case http.StatusInternalServerError, http.StatusServiceUnavailable:
		s.cfg.Logger.Error("authenticating an MCP request failed", "path", r.URL.Path, "err", err)
		return errors.New("ward could not authenticate the request right now; retry later")
	}
	return err
}

func (s *Server) openMCP(r *http.Request, ss *streamable.Session) (streamable.SessionHandler, error) {
	c, _, err := s.agent(r)
	if err != nil {
		return nil, s.mcpAuthError(r, err)
	}
	if n := s.cfg.Gateway.Sessions(c.Session); n >= maxMCPSessionsPerSession {
		return nil, fmt.Errorf("session %s already has %d MCP sessions open (the limit); end one with DELETE first", c.Session, n)
	}
	return &mcpSession{s: s, caller: c, proxy: s.cfg.Gateway.NewSession(c, ss)}, nil
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
func (m *mcpSession) Closed()                                          { m.proxy.Close() }

// certPEM encodes a chain.
func certPEM(chain []*x509.Certificate) string {
	var sb strings.Builder
	for _, c := range chain {
		sb.WriteString(string(pemCert(c.Raw)))
	}
	return sb.String()
}
