package policy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/batch"
)

// Entity types of ward's Cedar model.
const (
	typeSession  types.EntityType = "Session"
	typeAgent    types.EntityType = "Agent"
	typeGroup    types.EntityType = "Group"
	typeSponsor  types.EntityType = "Sponsor"
	typeServer   types.EntityType = "Server"
	typeAction   types.EntityType = "Action"
	typeTool     types.EntityType = "Tool"
	typePrompt   types.EntityType = "Prompt"
	typeResource types.EntityType = "Resource"
	typeHost     types.EntityType = "Host"
	typePath     types.EntityType = "Path"
	typeDataset  types.EntityType = "Dataset"
)

// Decide decides req against every policy in the set. It never fails: an
// invalid request, a nil set and an empty set all deny.
func (s *Set) Decide(req Request) Decision {
	if s == nil {
		s = &Set{}
	}
	p, msg := s.cache.get(req)
	if msg != "" {
		return invalid(msg)
	}
	args, err := argumentsValueWith(req.Arguments, s.decoders)
	if err != nil {
		return invalid(err.Error())
	}
	c := s.index.candidates(&p.ents, p.action, p.resource, p.ents.server.UID)
	creq := p.request(&req, args, impactValue(req.Impact))
	dec, diag := cedar.Authorize(&c, &p.ents, creq)
	d := s.decision(dec, diag)
	d = s.escalation(d, &c, &p.ents, creq)
	return s.failClosed(d, diag)
}

// failClosed denies a call that would be allowed or escalated while a
// forbid failed to evaluate. Cedar skips a policy whose condition errors (a
// string where a number was expected, a missing attribute without a has
// guard); for a forbid that would let the call through, so ward treats an
// erroring forbid as applying.
func (s *Set) failClosed(d Decision, diag types.Diagnostic) Decision {
	if (!d.Allow && !d.Escalate) || len(diag.Errors) == 0 {
		return d
	}
	var failed []Reason
	for _, e := range diag.Errors {
		if en := s.byID[e.PolicyID]; en != nil && en.forbid {
			failed = append(failed, Reason{PolicyID: en.info.ID, Effect: en.info.Effect, Position: en.info.Position})
		}
	}
	if len(failed) == 0 {
		return d
	}
	return Decision{Reasons: failed, Errors: d.Errors, FailedForbid: true}
}

// escalation applies @escalate annotations to a decision:
//
//   - a plain forbid that applies denies;
//   - else, if @escalate forbids apply, the call escalates if some permit
//     applies (and is denied by default otherwise);
//   - else, if only @escalate permits apply, the call escalates;
//   - else cedar's decision stands.
func (s *Set) escalation(d Decision, c *candidates, ents *entities, req types.Request) Decision {
	if !s.hasEscalation || len(d.Reasons) == 0 {
		return d
	}
	var approvals []Approval
	for _, r := range d.Reasons {
		e := s.byID[cedar.PolicyID(r.PolicyID)]
		if e == nil || e.escalate == nil {
			return d // a plain policy decided: it stands
		}
		approvals = append(approvals, *e.escalate)
	}
	if d.Allow {
		// Only @escalate permits applied.
		return Decision{Escalate: true, Approvals: approvals, Reasons: d.Reasons, Errors: d.Errors}
	}
	// Only @escalate forbids applied: is the call permitted at all?
	permits := *c
	permits.permitsOnly = true
	pdec, pdiag := cedar.Authorize(&permits, ents, req)
	if pdec != cedar.Allow {
		// Default deny, keeping the escalation forbids as reasons.
		return d
	}
	pd := s.decision(pdec, pdiag)
	plain := false
	var extra []Approval
	for _, r := range pd.Reasons {
		if e := s.byID[cedar.PolicyID(r.PolicyID)]; e != nil && e.escalate != nil {
			extra = append(extra, *e.escalate)
		} else {
			plain = true
		}
	}
	if !plain {
		approvals = append(approvals, extra...)
	}
	return Decision{Escalate: true, Approvals: approvals, Reasons: d.Reasons, Errors: d.Errors}
}

// MayAllow reports whether some arguments could make Decide allow req; it
// ignores req.Arguments (and req.Impact, when not nil). Use it to filter
// tools/list, prompts/list and resources/list; see the package
// documentation for how it approximates. For http_request and exec, which
// have no arguments, it answers for req exactly, escalations counting as
// allowed.
func (s *Set) MayAllow(req Request) bool {
	if s == nil {
		return false
	}
	p, msg := s.cache.get(req)
	if msg != "" {
		return false
	}
	var impact types.Value
	if req.Impact != nil {
		impact = batch.Ignore()
	}
	creq := p.request(&req, batch.Ignore(), impact)
	c := s.index.candidates(&p.ents, p.action, p.resource, p.ents.server.UID)
	allow := false
	err := batch.Authorize(context.Background(), &c, &p.ents, batch.Request{
		Principal: creq.Principal,
		Action:    creq.Action,
		Resource:  creq.Resource,
		Context:   creq.Context,
	}, func(r batch.Result) error {
		allow = allow || r.Decision == cedar.Allow
		return nil
	})
	return err == nil && allow
}

func invalid(msg string) Decision {
	return Decision{Errors: []string{invalidPrefix + msg}}
}

// decision converts cedar-go's answer, ordering reasons and errors by policy
// order so that decisions are deterministic.
func (s *Set) decision(dec types.Decision, diag types.Diagnostic) Decision {
	d := Decision{Allow: dec == cedar.Allow}
	if len(diag.Reasons) > 0 {
		es := make([]*entry, 0, len(diag.Reasons))
		for _, r := range diag.Reasons {
			if e, ok := s.byID[r.PolicyID]; ok {
				es = append(es, e)
			}
		}
		slices.SortFunc(es, func(a, b *entry) int { return a.order - b.order })
		d.Reasons = make([]Reason, len(es))
		for i, e := range es {
			d.Reasons[i] = Reason{PolicyID: e.info.ID, Effect: e.info.Effect, Position: e.info.Position}
		}
	}
	if len(diag.Errors) > 0 {
		errs := slices.Clone(diag.Errors)
		order := func(id cedar.PolicyID) int {
			if e, ok := s.byID[id]; ok {
				return e.order
			}
			return -1
		}
		slices.SortFunc(errs, func(a, b types.DiagnosticError) int { return order(a.PolicyID) - order(b.PolicyID) })
		d.Errors = make([]string, len(errs))
		for i, e := range errs {
			d.Errors[i] = fmt.Sprintf("%s: policy %q: %s", formatPosition(e.Position), e.PolicyID, e.Message)
		}
	}
	return d
}

// Explain returns one line a user can act on: which policies allowed or
// denied req, or why nothing allowed it.
func (d Decision) Explain(req Request) string {
	if d.FailedForbid {
		return fmt.Sprintf("denied: forbid policy %q (%s) could not be evaluated, so it is treated as applying: %s", d.Reasons[0].PolicyID, d.Reasons[0].Position, d.Errors[0])
	}
	if d.Escalate {
		parts := make([]string, len(d.Approvals))
		for i, a := range d.Approvals {
			parts[i] = fmt.Sprintf("%s (policy %q)", a, a.PolicyID)
		}
		return "needs approval by " + strings.Join(parts, " and ")
	}
	if len(d.Reasons) > 0 {
		verb := "denied"
		if d.Allow {
			verb = "allowed"
		}
		var b strings.Builder
		b.WriteString(verb)
		if len(d.Reasons) == 1 {
			b.WriteString(" by policy ")
		} else {
			b.WriteString(" by policies ")
		}
		for i, r := range d.Reasons {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q (%s)", r.PolicyID, r.Position)
		}
		return b.String()
	}
	if d.Allow { // not produced by Decide
		return "allowed"
	}
	if len(d.Errors) == 1 && strings.HasPrefix(d.Errors[0], invalidPrefix) {
		return "denied: " + d.Errors[0]
	}
	line := fmt.Sprintf("no policy permits %s on %s (default deny)", req.Action, resourceUID(req))
	switch len(d.Errors) {
	case 0:
	case 1:
		line += "; 1 policy failed to evaluate: " + d.Errors[0]
	default:
		line += fmt.Sprintf("; %d policies failed to evaluate, first: %s", len(d.Errors), d.Errors[0])
	}
	return line
}

// resourceUID returns the Cedar resource of req, or the zero UID for an
// unknown action or one without its HTTP or Exec.
func resourceUID(req Request) types.EntityUID {
	switch req.Action {
	case ActionCallTool:
		return types.NewEntityUID(typeTool, types.String(req.Name))
	case ActionGetPrompt:
		return types.NewEntityUID(typePrompt, types.String(req.Name))
	case ActionReadResource:
		return types.NewEntityUID(typeResource, types.String(req.Name))
	case ActionHTTPRequest:
		if req.HTTP != nil {
			return types.NewEntityUID(typeHost, types.String(req.HTTP.Host))
		}
	case ActionExec:
		if req.Exec != nil {
			return types.NewEntityUID(typePath, types.String(req.Exec.Command))
		}
	}
	return types.EntityUID{}
}

// entities is the per-request entity store: a handful of entities looked up
// by comparison rather than built into a map. Hosts and paths have no
// server: server is then the zero Entity, whose UID no policy can name.
type entities struct {
	session, agent, sponsor, resource, server types.Entity
	hasSponsor                                bool
	groups                                    []types.EntityUID
}

// Get implements types.EntityGetter.
func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid.Type {
	case typeSession:
		if uid == e.session.UID {
			return e.session, true
		}
	case typeAgent:
		if uid == e.agent.UID {
			return e.agent, true
		}
	case typeGroup:
		if slices.Contains(e.groups, uid) {
			return types.Entity{UID: uid}, true
		}
	case typeSponsor:
		if e.hasSponsor && uid == e.sponsor.UID {
			return e.sponsor, true
		}
	case typeServer:
		if uid == e.server.UID {
			return e.server, true
		}
	default:
		if uid == e.resource.UID {
			return e.resource, true
		}
	}
	return types.Entity{}, false
}

// prepared is the argument-independent part of a request in ward's Cedar
// model: its entities and the parts of the Cedar request they name. It is
// immutable once built, so it can be shared between requests.
type prepared struct {
	ents                        entities
	act                         Action
	principal, action, resource types.EntityUID
	// server and name are context.server and context.name of the MCP
	// actions; name is context.host of http_request, context.command of
	// exec.
	server, name types.String
}

// buildRequest puts req into ward's Cedar model with the given
// context.arguments value. It returns a diagnostic when req does not fit.
func buildRequest(req Request, args types.Value) (*entities, types.Request, string) {
	var uncached *preparedCache
	p, msg := uncached.get(req)
	if msg != "" {
		return nil, types.Request{}, msg
	}
	return &p.ents, p.request(&req, args, impactValue(req.Impact)), ""
}

// request completes p with the context of the call req, which prepare and
// checkCall accepted; args and impact are context.arguments and
// context.impact (nil: absent) of the MCP actions.
func (p *prepared) request(req *Request, args, impact types.Value) types.Request {
	ctx := make(types.RecordMap, 8) // one small map group: room for every context but the fullest tool call
	ctx["objective_tags"] = stringSet(req.ObjectiveTags)
	ctx["counters"] = countersValue(req.Counters)
	ctx["taint"] = stringSet(req.Taint)
	ctx["tainted_arguments"] = stringSet(req.TaintedArguments)
	switch p.act {
	case ActionHTTPRequest:
		h := req.HTTP
		ctx["method"] = types.String(h.Method)
		ctx["scheme"] = types.String(h.Scheme)
		ctx["host"] = p.name
		ctx["port"] = types.Long(h.Port)
		ctx["path"] = types.String(h.Path)
	case ActionExec:
		e := req.Exec
		ctx["command"] = p.name
		ctx["args"] = stringSet(e.Args)
		ctx["cmdline"] = types.String(strings.Join(e.Args, " "))
		ctx["cwd"] = types.String(e.Dir)
	default:
		ctx["arguments"] = args
		ctx["server"] = p.server
		ctx["name"] = p.name
		ctx["sink"] = types.Boolean(req.Sink)
		if req.Verb != "" {
			ctx["verb"] = types.String(req.Verb)
		}
		if impact != nil {
			ctx["impact"] = impact
		}
		if req.Dataset != "" {
			ctx["dataset"] = types.NewEntityUID(typeDataset, types.String(req.Dataset))
		}
		if req.Path != "" {
			ctx["path"] = types.String(req.Path)
		}
	}
	return types.Request{
		Principal: p.principal,
		Action:    p.action,
		Resource:  p.resource,
		Context:   types.NewRecord(ctx),
	}
}

// emptySet is the empty Cedar set, shared: values are immutable.
var emptySet types.Value = types.NewSet()

// stringSet converts strings to a Cedar set of String.
func stringSet(ss []string) types.Value {
	if len(ss) == 0 {
		return emptySet
	}
	vs := make([]types.Value, len(ss))
	for i, s := range ss {
		vs[i] = types.String(s)
	}
	return types.NewSet(vs...)
}

// countersValue converts limit usage to a Cedar record of Long.
func countersValue(m map[string]float64) types.Value {
	r := make(types.RecordMap, len(m))
	for k, v := range m {
		r[types.String(k)] = types.Long(int64(math.Floor(v)))
	}
	return types.NewRecord(r)
}

// impactValue converts a call's impact to a Cedar record (nil for none).
func impactValue(m map[string]int64) types.Value {
	if m == nil {
		return nil
	}
	r := make(types.RecordMap, len(m))
	for k, v := range m {
		r[types.String(k)] = types.Long(v)
	}
	return types.NewRecord(r)
}

// prepare validates the fields of req that preparedKey encodes and builds
// its entities; checkCall validates the rest.
func prepare(req Request) (*prepared, string) {
	switch {
	case req.Session == "":
		return nil, "no session"
	case req.Agent == "":
		return nil, "no agent"
	case req.Depth < 0:
		return nil, fmt.Sprintf("negative delegation depth %d", req.Depth)
	}
	var name string
	mcp := false
	switch req.Action {
	case ActionCallTool, ActionGetPrompt, ActionReadResource:
		mcp = true
		switch {
		case req.Server == "":
			return nil, "no server"
		case req.Name == "":
			return nil, "no resource name"
		}
		name = req.Name
		if req.Action != ActionReadResource {
			n, ok := strings.CutPrefix(req.Name, req.Server+".")
			if !ok || n == "" {
				return nil, fmt.Sprintf("%s name %q is not of the form %q", req.Action, req.Name, req.Server+".NAME")
			}
			name = n
		}
	case ActionHTTPRequest:
		if req.HTTP == nil {
			return nil, "http_request without HTTP"
		}
		if msg := checkHost(req.HTTP.Host); msg != "" {
			return nil, msg
		}
		name = req.HTTP.Host
	case ActionExec:
		if req.Exec == nil {
			return nil, "exec without Exec"
		}
		if msg := checkFilePath("command", req.Exec.Command, false); msg != "" {
			return nil, msg
		}
		name = req.Exec.Command
	default:
		return nil, fmt.Sprintf("unknown action %q", req.Action)
	}
	if !mcp {
		switch {
		case req.Server != "":
			return nil, fmt.Sprintf("%s takes no server, got %q", req.Action, req.Server)
		case req.Name != "" && req.Name != name:
			return nil, fmt.Sprintf("%s name %q is not its resource %q", req.Action, req.Name, name)
		}
	}

	p := &prepared{
		act:       req.Action,
		principal: types.NewEntityUID(typeSession, types.String(req.Session)),
		action:    types.NewEntityUID(typeAction, types.String(req.Action)),
		resource:  resourceUID(req),
		server:    types.String(req.Server),
		name:      types.String(name),
	}
	e := &p.ents
	agentUID := types.NewEntityUID(typeAgent, types.String(req.Agent))
	e.groups = make([]types.EntityUID, len(req.Groups))
	for i, g := range req.Groups {
		e.groups[i] = types.NewEntityUID(typeGroup, types.String(g))
	}
	sessionAttrs := types.RecordMap{
		"agent": agentUID,
		"depth": types.Long(req.Depth),
		"trust": types.Long(req.Trust),
	}
	var agentAttrs types.RecordMap
	if req.Sponsor != "" {
		sponsorUID := types.NewEntityUID(typeSponsor, types.String(req.Sponsor))
		e.hasSponsor = true
		e.sponsor = types.Entity{UID: sponsorUID}
		sessionAttrs["sponsor"] = sponsorUID
		agentAttrs = types.RecordMap{"sponsor": sponsorUID}
	}
	e.session = types.Entity{
		UID:        p.principal,
		Parents:    types.NewEntityUIDSet(agentUID),
		Attributes: types.NewRecord(sessionAttrs),
	}
	e.agent = types.Entity{
		UID:        agentUID,
		Parents:    types.NewEntityUIDSet(e.groups...),
		Attributes: types.NewRecord(agentAttrs),
	}
	e.resource = types.Entity{UID: p.resource}
	if mcp {
		serverUID := types.NewEntityUID(typeServer, types.String(req.Server))
		e.server = types.Entity{UID: serverUID}
		e.resource.Parents = types.NewEntityUIDSet(serverUID)
	}
	return p, ""
}

// preparedCacheSize bounds the prepared requests a Set keeps: one per
// distinct (session, agent, sponsor, groups, depth, action, resource) seen
// recently. When full the cache is emptied and refills.
const preparedCacheSize = 4096

// preparedCache memoizes prepare. Entries are pure functions of their key,
// so the cache changes how fast Decide is, never what it answers.
type preparedCache struct {
	mu sync.RWMutex
	m  map[string]*prepared
}

// get validates req but for its arguments and returns its prepared part,
// or a diagnostic. A nil c caches nothing.
func (c *preparedCache) get(req Request) (*prepared, string) {
	p, msg := c.lookup(req)
	if msg == "" {
		msg = checkCall(&req)
	}
	if msg != "" {
		return nil, msg
	}
	return p, ""
}

// lookup returns prepare(req), from the cache if it can.
func (c *preparedCache) lookup(req Request) (*prepared, string) {
	if c == nil {
		return prepare(req)
	}
	key := preparedKey(req)
	c.mu.RLock()
	p, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return p, ""
	}
	p, msg := prepare(req)
	if msg != "" {
		return nil, msg
	}
	c.mu.Lock()
	if len(c.m) >= preparedCacheSize || c.m == nil {
		c.m = make(map[string]*prepared, preparedCacheSize)
	}
	c.m[key] = p
	c.mu.Unlock()
	return p, ""
}

// preparedKey encodes every field prepare reads, each length-prefixed so
// that distinct requests never share a key.
func preparedKey(req Request) string {
	// target is the host or command, marked so that a nil HTTP or Exec
	// differs from an empty one.
	var target string
	switch {
	case req.HTTP != nil:
		target = "h" + req.HTTP.Host
	case req.Exec != nil:
		target = "x" + req.Exec.Command
	}
	n := 8 + len(req.Session) + len(req.Agent) + len(req.Sponsor) + len(req.Action) + len(req.Server) + len(req.Name) + len(target)
	for _, g := range req.Groups {
		n += 4 + len(g)
	}
	b := make([]byte, 0, n+48)
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	field(req.Session)
	field(req.Agent)
	field(req.Sponsor)
	field(string(req.Action))
	field(req.Server)
	field(req.Name)
	field(target)
	b = strconv.AppendInt(b, int64(req.Depth), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(req.Trust), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(len(req.Groups)), 10)
	for _, g := range req.Groups {
		b = append(b, '/')
		field(g)
	}
	return string(b)
}
