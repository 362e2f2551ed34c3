package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/store"
)

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// SponsorRequest creates a sponsor.
type SponsorRequest struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Ceiling grant.Scope `json:"ceiling"`
}

// PrincipalView is a principal as the API shows it.
type PrincipalView struct {
	Name       string          `json:"name"`
	Kind       string          `json:"kind"`
	Ceiling    json.RawMessage `json:"ceiling,omitempty"`
	Created    time.Time       `json:"created"`
	Credential string          `json:"credential,omitempty"` // only when just created
}

func (s *Server) createSponsor(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	var req SponsorRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	cred, err := s.cfg.Authority.CreateSponsor(r.Context(), p, req.Name, req.Kind, req.Ceiling)
	if err != nil {
		return err
	}
	ceiling, _ := json.Marshal(req.Ceiling)
	writeJSON(w, http.StatusCreated, PrincipalView{Name: req.Name, Kind: req.Kind, Ceiling: ceiling, Created: time.Now().UTC(), Credential: cred})
	return nil
}

func (s *Server) listSponsors(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return fmt.Errorf("%w: only an admin may list sponsors", authority.ErrForbidden)
	}
	ps, err := s.cfg.Store.ListPrincipals(r.Context())
	if err != nil {
		return err
	}
	out := make([]PrincipalView, 0, len(ps))
	for _, x := range ps {
		out = append(out, PrincipalView{Name: x.Name, Kind: x.Kind, Ceiling: x.Ceiling, Created: x.Created})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) newCredential(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	name := r.PathValue("name")
	if p.Kind != "admin" && p.Name != name {
		return fmt.Errorf("%w: %s may not create credentials for %s", authority.ErrForbidden, p.Name, name)
	}
	cred, err := s.cfg.Authority.NewCredential(r.Context(), name, p.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"principal": name, "credential": cred})
	return nil
}

// AgentRequest registers an agent.
type AgentRequest struct {
	Name       string      `json:"name"`
	Sponsor    string      `json:"sponsor"`
	Groups     []string    `json:"groups,omitempty"`
	Ceiling    grant.Scope `json:"ceiling"`
	CodeDigest string      `json:"code_digest,omitempty"`
}

// AgentView is an agent as the API shows it.
type AgentView struct {
	Name       string          `json:"name"`
	Sponsor    string          `json:"sponsor"`
	Groups     []string        `json:"groups"`
	Ceiling    json.RawMessage `json:"ceiling"`
	CodeDigest string          `json:"code_digest,omitempty"`
	Status     string          `json:"status"`
	Trust      int             `json:"trust"`
	SPIFFEID   string          `json:"spiffe_id"`
	Created    time.Time       `json:"created"`
}

func (s *Server) agentView(a store.Agent) AgentView {
	groups := a.Groups
	if groups == nil {
		groups = []string{}
	}
	return AgentView{Name: a.Name, Sponsor: a.Sponsor, Groups: groups, Ceiling: a.Ceiling, CodeDigest: a.CodeDigest,
		Status: a.Status, Trust: a.Trust, SPIFFEID: "spiffe://" + s.cfg.CA.TrustDomain().Name() + "/agent/" + a.Name, Created: a.Created}
}

func (s *Server) registerAgent(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	var req AgentRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Sponsor == "" && p.Kind != "admin" {
		req.Sponsor = p.Name
	}
	a := store.Agent{Name: req.Name, Sponsor: req.Sponsor, Groups: req.Groups, CodeDigest: req.CodeDigest}
	if err := s.cfg.Authority.RegisterAgent(r.Context(), p, a, req.Ceiling); err != nil {
		return err
	}
	got, err := s.cfg.Store.GetAgent(r.Context(), req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.agentView(got))
	return nil
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	sponsor := r.URL.Query().Get("sponsor")
	if p.Kind != "admin" {
		sponsor = p.Name
	}
	as, err := s.cfg.Store.ListAgents(r.Context(), sponsor)
	if err != nil {
		return err
	}
	out := make([]AgentView, 0, len(as))
	for _, a := range as {
		out = append(out, s.agentView(a))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) showAgent(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	a, err := s.cfg.Store.GetAgent(r.Context(), r.PathValue("name"))
	if err != nil {
		return fmt.Errorf("agent %q: %w", r.PathValue("name"), err)
	}
	if p.Kind != "admin" && p.Name != a.Sponsor {
		return fmt.Errorf("agent %q: %w", a.Name, store.ErrNotFound)
	}
	writeJSON(w, http.StatusOK, s.agentView(a))
	return nil
}

func (s *Server) agentStatus(status string) func(http.ResponseWriter, *http.Request, store.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p store.Principal) error {
		ended, err := s.cfg.Authority.SetAgentStatus(r.Context(), p, r.PathValue("name"), status)
		if err != nil {
			return err
		}
		if ended == nil {
			ended = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"agent": r.PathValue("name"), "status": status, "ended_sessions": ended})
		return nil
	}
}

// SessionRequest starts a session. CSR is the base64 (standard or URL
// alphabet) DER of a PKCS#10 request signed by the session key.
type SessionRequest struct {
	Agent        string       `json:"agent"`
	Objective    string       `json:"objective"`
	Tags         []string     `json:"objective_tags,omitempty"`
	Model        string       `json:"model,omitempty"`
	AgentVersion string       `json:"agent_version,omitempty"`
	Scope        *grant.Scope `json:"scope,omitempty"`
	TTL          string       `json:"ttl,omitempty"` // Go duration, e.g. "10m"
	CSR          string       `json:"csr"`
	JWTAudience  []string     `json:"jwt_audience,omitempty"`
}

// IssuedView is what a new session (or a sub-agent after token exchange)
// receives. The private key is not in it: it never left the agent.
type IssuedView struct {
	Session     string          `json:"session"`
	SPIFFEID    string          `json:"spiffe_id"`
	Agent       string          `json:"agent"`
	Sponsor     string          `json:"sponsor"`
	Parent      string          `json:"parent,omitempty"`
	Depth       int             `json:"depth"`
	Scope       json.RawMessage `json:"scope"`
	Expires     time.Time       `json:"expires"`
	X509SVID    string          `json:"x509_svid"`
	Bundle      string          `json:"bundle"`
	JWTSVID     string          `json:"jwt_svid"`
	Grant       string          `json:"grant"`
	GrantID     string          `json:"grant_id"`
	Act         *grant.Actor    `json:"act,omitempty"`
	ObjectiveID string          `json:"objective_sha256"`
}

func (s *Server) issuedView(is *authority.Issued) IssuedView {
	return IssuedView{
		Session: is.Session.ID, SPIFFEID: is.Session.SPIFFEID, Agent: is.Session.Agent, Sponsor: is.Session.Sponsor,
		Parent: is.Session.ParentID, Depth: is.Session.Depth, Scope: is.Session.Scope, Expires: is.Session.Expires,
		X509SVID: certPEM(is.X509SVID), Bundle: string(s.cfg.CA.BundlePEM()), JWTSVID: is.JWTSVID,
		Grant: is.Grant, GrantID: is.Claims.ID, Act: is.Claims.Act, ObjectiveID: is.Session.ObjectiveHash,
	}
}

func decodeB64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// parseTTL reads a duration ("10m") or a number of seconds; "" is 0 (the
// default). A negative duration, or seconds beyond a Duration, are refused.
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, err2 := strconv.ParseInt(s, 10, 64)
		if err2 != nil || n < 0 || n > math.MaxInt64/int64(time.Second) {
			return 0, badRequest("ttl %q: want a duration such as 10m", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, badRequest("ttl %q: want a positive duration such as 10m", s)
	}
	return d, nil
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	var req SessionRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	csr, err := decodeB64(req.CSR)
	if err != nil {
		return badRequest("csr: %v", err)
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	is, err := s.cfg.Authority.StartSession(r.Context(), p, authority.StartRequest{
		Agent: req.Agent, Objective: req.Objective, Tags: req.Tags, Model: req.Model, AgentVersion: req.AgentVersion,
		Scope: req.Scope, TTL: ttl, CSR: csr, JWTAudience: req.JWTAudience,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.issuedView(is))
	return nil
}

// SessionView is a session as the API shows it.
type SessionView struct {
	ID            string          `json:"id"`
	SPIFFEID      string          `json:"spiffe_id"`
	Agent         string          `json:"agent"`
	Sponsor       string          `json:"sponsor"`
	Parent        string          `json:"parent,omitempty"`
	Root          string          `json:"root"`
	Depth         int             `json:"depth"`
	Objective     string          `json:"objective"`
	ObjectiveHash string          `json:"objective_sha256"`
	Tags          []string        `json:"objective_tags,omitempty"`
	Scope         json.RawMessage `json:"scope"`
	Status        string          `json:"status"`
	EndReason     string          `json:"end_reason,omitempty"`
	Created       time.Time       `json:"created"`
	Expires       time.Time       `json:"expires"`
	Ended         *time.Time      `json:"ended,omitempty"`
}

func sessionView(x store.Session) SessionView {
	v := SessionView{ID: x.ID, SPIFFEID: x.SPIFFEID, Agent: x.Agent, Sponsor: x.Sponsor, Parent: x.ParentID, Root: x.RootID,
		Depth: x.Depth, Objective: x.Objective, ObjectiveHash: x.ObjectiveHash, Tags: x.Tags, Scope: x.Scope, Status: x.Status,
		EndReason: x.EndReason, Created: x.Created, Expires: x.Expires}
	if !x.Ended.IsZero() {
		e := x.Ended
		v.Ended = &e
	}
	return v
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	q := r.URL.Query()
	f := store.SessionFilter{Agent: q.Get("agent"), Sponsor: q.Get("sponsor"), Status: q.Get("status"), Limit: 1000}
	if p.Kind != "admin" {
		f.Sponsor = p.Name
	}
	ss, err := s.cfg.Store.ListSessions(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]SessionView, 0, len(ss))
	for _, x := range ss {
		out = append(out, sessionView(x))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) showSession(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	x, err := s.sponsored(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionView(x))
	return nil
}

// endSession is open to operators (bearer credential) and to the session
// itself (agent authentication).
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	var by store.Principal
	if _, console := operatorOf(r.Context()); console || strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		p, err := s.operator(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		by = p
	} else {
		c, _, err := s.agent(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		by = store.Principal{Name: c.SPIFFEID, Kind: "session"}
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := s.decode(w, r, &body); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if body.Reason == "" {
		body.Reason = "ended by " + by.Name
	}
	ended, err := s.cfg.Authority.EndSession(r.Context(), by, r.PathValue("id"), body.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ended == nil {
		ended = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ended": ended})
}

// PinView is a tool pin as the API shows it.
type PinView struct {
	Name         string          `json:"name"`
	Server       string          `json:"server"`
	Tool         string          `json:"tool"`
	Hash         string          `json:"hash"`
	ApprovedHash string          `json:"approved_hash"`
	ApprovedBy   string          `json:"approved_by,omitempty"`
	Status       string          `json:"status"` // approved | changed | pending
	Definition   json.RawMessage `json:"definition,omitempty"`
	Updated      time.Time       `json:"updated"`
}

func pinView(p store.ToolPin) PinView {
	st := "approved"
	switch {
	case p.ApprovedHash == "":
		st = "pending"
	case p.ApprovedHash != p.Hash:
		st = "changed"
	}
	return PinView{Name: p.Server + "." + p.Tool, Server: p.Server, Tool: p.Tool, Hash: p.Hash, ApprovedHash: p.ApprovedHash,
		ApprovedBy: p.ApprovedBy, Status: st, Definition: p.Definition, Updated: p.Updated}
}

func (s *Server) listTools(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return fmt.Errorf("%w: only an admin may list tool pins", authority.ErrForbidden)
	}
	pins, err := s.cfg.Store.ListPins(r.Context(), r.URL.Query().Get("server"))
	if err != nil {
		return err
	}
	out := make([]PinView, 0, len(pins))
	for _, x := range pins {
		out = append(out, pinView(x))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) approveTool(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return fmt.Errorf("%w: only an admin may approve tools", authority.ErrForbidden)
	}
	var req struct {
		Name string `json:"name"`
		Hash string `json:"hash,omitempty"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	server, tool, ok := strings.Cut(req.Name, ".")
	if !ok {
		return badRequest("tool name %q: want SERVER.TOOL", req.Name)
	}
	pin, err := s.cfg.Store.GetPin(r.Context(), server, tool)
	if err != nil {
		return fmt.Errorf("tool %q has never been listed by an upstream: %w", req.Name, err)
	}
	if req.Hash == "" {
		// Approving "whatever is current" would approve a definition the
		// operator never saw if it changed in between.
		return badRequest("name the definition you reviewed: hash %s is the one currently observed (see ward tools list -o json)", pin.Hash)
	}
	if err := s.cfg.Authority.ApprovePin(r.Context(), p, server, tool, req.Hash); err != nil {
		return err
	}
	if f, ok := s.cfg.Guard.(interface{ ForgetPin(server, tool string) }); ok {
		f.ForgetPin(server, tool)
	}
	pin, err = s.cfg.Store.GetPin(r.Context(), server, tool)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pinView(pin))
	return nil
}

// Guard endpoints: `ward mcp wrap` runs the proxy next to the MCP client and
// asks ward to decide and record, as the session it authenticates as.

type guardFilterRequest struct {
	Kind   gateway.Kind   `json:"kind"`
	Server string         `json:"server"`
	Items  []gateway.Item `json:"items"`
}

type guardOpRequest struct {
	Operation gateway.Operation `json:"operation"`
	Outcome   gateway.Outcome   `json:"outcome"`
}

// maxFilterBody bounds a guard filter request: a whole tool list with its
// schemas.
const maxFilterBody = 8 << 20

// checkWrapped checks the server name of a wrapped (agent-side) upstream. A
// name the node's own gateway serves is refused, so an agent can never write
// the pins of the node's upstreams.
func (s *Server) checkWrapped(name string) error {
	if err := gateway.ValidServerName(name); err != nil {
		return badRequest("%v", err)
	}
	for _, n := range s.cfg.Gateway.Servers() {
		if n == name {
			return badRequest("server %q is served by ward's gateway; give the wrapped server another name", name)
		}
	}
	return nil
}

// checkNames checks that an exposed name is SERVER.UPSTREAM (tools and
// prompts) or the URI itself (resources).
func checkNames(kind gateway.Kind, server, name, upstream string) error {
	switch kind {
	case gateway.KindTool, gateway.KindPrompt:
		if name != server+"."+upstream || upstream == "" {
			return badRequest("%s %q: name must be %s.<upstream name> (upstream %q)", kind, name, server, upstream)
		}
	default:
		if name != upstream || name == "" {
			return badRequest("%s %q: name and upstream must be the same URI", kind, name)
		}
	}
	return nil
}

// methodAction is what a guarded MCP method may be decided as.
var methodAction = map[string][]policy.Action{
	"tools/call":            {policy.ActionCallTool},
	"prompts/get":           {policy.ActionGetPrompt},
	"resources/read":        {policy.ActionReadResource},
	"resources/subscribe":   {policy.ActionReadResource},
	"resources/unsubscribe": {policy.ActionReadResource},
	"completion/complete":   {policy.ActionGetPrompt, policy.ActionReadResource},
}

func checkOperation(op *gateway.Operation) error {
	ok := false
	for _, a := range methodAction[op.Method] {
		ok = ok || a == op.Action
	}
	if !ok {
		return badRequest("method %q cannot be decided as action %q", op.Method, op.Action)
	}
	kind := gateway.KindResource
	switch op.Action {
	case policy.ActionCallTool:
		kind = gateway.KindTool
	case policy.ActionGetPrompt:
		kind = gateway.KindPrompt
	}
	return checkNames(kind, op.Server, op.Name, op.Upstream)
}

// reportedGuard is a guard that keeps what an agent's side reports apart
// (enforce.Pipeline).
type reportedGuard interface {
	FilterReported(ctx context.Context, c *gateway.Caller, kind gateway.Kind, server string, items []gateway.Item) ([]bool, error)
}

// maxReportedItems bounds a reported listing, and maxReportedName the
// names in it.
const (
	maxReportedItems = 2048
	maxReportedName  = 256
)

func (s *Server) guardFilter(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	var req guardFilterRequest
	if err := s.decodeN(w, r, &req, maxFilterBody); err != nil {
		return err
	}
	if err := s.checkWrapped(req.Server); err != nil {
		return err
	}
	switch req.Kind {
	case gateway.KindTool, gateway.KindPrompt, gateway.KindResource, gateway.KindResourceTemplate:
	default:
		return badRequest("unknown kind %q", req.Kind)
	}
	if len(req.Items) > maxReportedItems {
		return badRequest("a listing of at most %d items", maxReportedItems)
	}
	for _, it := range req.Items {
		if len(it.Upstream) > maxReportedName {
			return badRequest("%s name longer than %d bytes", req.Kind, maxReportedName)
		}
		if err := checkNames(req.Kind, req.Server, it.Name, it.Upstream); err != nil {
			return err
		}
	}
	// The listing is the agent's side's report: where the guard can keep
	// what it pins apart for the reporting agent, it does.
	filter := s.cfg.Guard.Filter
	if rg, ok := s.cfg.Guard.(reportedGuard); ok {
		filter = rg.FilterReported
	}
	keep, err := filter(r.Context(), c, req.Kind, req.Server, req.Items)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"keep": keep})
	return nil
}

func (s *Server) guardCheck(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	var req guardOpRequest
	if err := s.decodeN(w, r, &req, maxFilterBody); err != nil {
		return err
	}
	if req.Operation.Refused != "" {
		// Only a denial is recorded; nothing is decided or pinned.
		req.Operation.Server, req.Operation.Upstream, req.Operation.Definition = "", "", nil
	} else {
		if err := s.checkWrapped(req.Operation.Server); err != nil {
			return err
		}
		if err := checkOperation(&req.Operation); err != nil {
			return err
		}
	}
	req.Operation.Reported = true // the definition it names is the agent's side's report
	v, err := s.cfg.Guard.Check(r.Context(), c, &req.Operation)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) guardObserve(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	var req guardOpRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := s.checkWrapped(req.Operation.Server); err != nil {
		return err
	}
	if err := checkOperation(&req.Operation); err != nil {
		return err
	}
	// The agent's side reports this outcome: it is recorded as reported
	// and never refunds a reservation.
	req.Outcome.Reported = true
	if err := s.cfg.Guard.Observe(r.Context(), c, &req.Operation, req.Outcome); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"recorded": true})
	return nil
}

// whoami answers a session about itself: GET /v1/session, authenticated
// as the session (X.509-SVID, or grant + DPoP). A session the node no
// longer honours (ended, expired, its agent quarantined) is answered 401
// saying why, so that a client (ward mcp serve) can tell before it relies
// on the session.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	writeJSON(w, http.StatusOK, map[string]any{"session": c.Session, "spiffe_id": c.SPIFFEID, "agent": c.Agent, "expires": c.Expiry})
	return nil
}

func (s *Server) guardNotice(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	var req struct {
		Server string          `json:"server"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := s.checkWrapped(req.Server); err != nil {
		return err
	}
	if err := checkNoticed(req.Method, req.Params); err != nil {
		return err
	}
	if err := s.cfg.Guard.Notice(r.Context(), c, req.Server, req.Method, req.Params); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"recorded": true})
	return nil
}

func (s *Server) guardAnswer(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	var req struct {
		Server string               `json:"server"`
		Method string               `json:"method"`
		Answer gateway.ClientAnswer `json:"answer"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := s.checkWrapped(req.Server); err != nil {
		return err
	}
	if err := checkAnswer(req.Method, req.Answer); err != nil {
		return err
	}
	if err := s.cfg.Guard.Answer(r.Context(), c, req.Server, req.Method, req.Answer); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"recorded": true})
	return nil
}

// checkAnswer refuses a reported answer that could not describe one: a
// method name that cannot be one, a digest that is not SHA-256 in hex.
func checkAnswer(method string, a gateway.ClientAnswer) error {
	if err := checkServerMethod(method); err != nil {
		return err
	}
	if len(a.Digest) != 64 || strings.Trim(a.Digest, "0123456789abcdef") != "" {
		return badRequest("answer.sha256: 64 lowercase hex digits")
	}
	if a.Bytes < 0 {
		return badRequest("answer.bytes: not negative")
	}
	return nil
}

// checkServerMethod checks the method of a message a wrapped server sent.
func checkServerMethod(method string) error {
	if method == "" || len(method) > 128 || strings.IndexFunc(method, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return badRequest("method: the MCP method the server sent (for example sampling/createMessage): 1-128 printable ASCII characters")
	}
	return nil
}

// checkNoticed checks a reported server message: its method, and its
// params, if any, a JSON object as MCP's are (the request body is
// already strict JSON).
func checkNoticed(method string, params json.RawMessage) error {
	if err := checkServerMethod(method); err != nil {
		return err
	}
	if len(params) > 0 && params[0] != '{' {
		return badRequest("params: the message's params as the server sent them, a JSON object, or absent")
	}
	return nil
}

// maxAwait bounds how long one await request may wait.
const maxAwait = time.Minute

func (s *Server) guardAwait(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	var req struct {
		Approvals []string `json:"approvals"`
		Wait      string   `json:"wait"`
	}
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Approvals) == 0 || len(req.Approvals) > 16 {
		return badRequest("approvals: give 1 to 16 approval request ids")
	}
	wait, err := parseTTL(req.Wait)
	if err != nil {
		return err
	}
	if wait <= 0 || wait > maxAwait {
		wait = maxAwait
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	state, err := s.cfg.Guard.Await(ctx, c, req.Approvals)
	if err != nil {
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"state": state})
	return nil
}

// approverGroups returns the approver groups a principal belongs to.
func (s *Server) approverGroups(name string) []string {
	var gs []string
	for g, members := range s.cfg.ApproverGroups {
		if slices.Contains(members, name) {
			gs = append(gs, g)
		}
	}
	slices.Sort(gs)
	return gs
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if s.cfg.Approvals == nil {
		return &httpError{http.StatusNotFound, "no approval queue is configured"}
	}
	f := approval.Filter{State: r.URL.Query().Get("state"), Session: r.URL.Query().Get("session")}
	if p.Kind != "admin" && len(s.approverGroups(p.Name)) == 0 {
		f.Sponsor = p.Name // sponsors see their own agents' requests
	}
	rs, err := s.cfg.Approvals.List(r.Context(), f)
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []approval.Request{}
	}
	writeJSON(w, http.StatusOK, rs)
	return nil
}

func (s *Server) showApproval(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if s.cfg.Approvals == nil {
		return &httpError{http.StatusNotFound, "no approval queue is configured"}
	}
	ar, err := s.cfg.Approvals.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return approvalErr(err)
	}
	if p.Kind != "admin" && ar.Sponsor != p.Name && len(s.approverGroups(p.Name)) == 0 {
		return &httpError{http.StatusNotFound, "no such approval request"}
	}
	writeJSON(w, http.StatusOK, ar)
	return nil
}

func (s *Server) vote(approve bool) func(http.ResponseWriter, *http.Request, store.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p store.Principal) error {
		// Whatever refuses this vote, it is recorded as a refused vote.
		refuse(r, "approval_vote", "")
		if s.cfg.Approvals == nil {
			return &httpError{http.StatusNotFound, "no approval queue is configured"}
		}
		var body struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 {
			if err := s.decode(w, r, &body); err != nil {
				return err
			}
		}
		v := approval.Voter{Name: p.Name, Groups: s.approverGroups(p.Name), Kind: approval.KindHuman}
		if p.Kind != "admin" {
			v.Sponsors = []string{p.Name}
		}
		ar, err := s.cfg.Approvals.Vote(r.Context(), r.PathValue("id"), v, approve, body.Reason)
		if err != nil {
			return approvalErr(err)
		}
		writeJSON(w, http.StatusOK, ar)
		return nil
	}
}

// approvalErr maps approval queue errors to statuses.
func approvalErr(err error) error {
	switch {
	case errors.Is(err, approval.ErrNotFound):
		return &httpError{http.StatusNotFound, err.Error()}
	case errors.Is(err, approval.ErrClosed), errors.Is(err, approval.ErrDuplicateVote):
		return &httpError{http.StatusConflict, err.Error()}
	case errors.Is(err, approval.ErrNotEligible), errors.Is(err, approval.ErrSelfApproval):
		return &httpError{http.StatusForbidden, err.Error()}
	case errors.Is(err, approval.ErrInvalid):
		return &httpError{http.StatusBadRequest, err.Error()}
	case errors.Is(err, approval.ErrFull):
		return &httpError{http.StatusServiceUnavailable, err.Error()}
	}
	return err
}

func (s *Server) agentTrust(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	var body struct {
		Trust *int `json:"trust"`
	}
	if err := s.decode(w, r, &body); err != nil {
		return err
	}
	if body.Trust == nil {
		return badRequest("trust: a score from 0 to 100 is required")
	}
	if err := s.cfg.Authority.SetAgentTrust(r.Context(), p, r.PathValue("name"), *body.Trust); err != nil {
		return err
	}
	a, err := s.cfg.Store.GetAgent(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.agentView(a))
	return nil
}
