package enforce

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/provenance"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/refusal"
	"github.com/ward-dev/ward/internal/strictjson"
)

// Recorder appends audit events durably.
type Recorder interface {
	Append(ctx context.Context, e audit.Event) (uint64, error)
}

// Watcher is shown every decided call before it is recorded and forwarded
// (the behaviour monitor). A non-empty answer denies the call with that
// reason. It records what it observes itself, before acting on it.
type Watcher interface {
	Watch(ctx context.Context, c *Caller, op *Operation, outcome string) (block string)
}

// WatcherFunc adapts a function to Watcher.
type WatcherFunc func(ctx context.Context, c *Caller, op *Operation, outcome string) string

// Watch calls f.
func (f WatcherFunc) Watch(ctx context.Context, c *Caller, op *Operation, outcome string) string {
	return f(ctx, c, op, outcome)
}

// Refusals records refusals without letting a flood fill the log;
// *refusal.Recorder is one.
type Refusals interface {
	Record(ctx context.Context, r refusal.Refusal) error
}

// Config configures a [Pipeline].
type Config struct {
	// Policies returns the current policy snapshot; a nil set denies
	// everything.
	Policies func() *policy.Set
	// Pins keeps tool pins and tool sets; nil: definitions are not checked
	// (replay, whose traces carry none).
	Pins    PinStore
	PinMode PinMode // default PinTrustOnFirstUse
	// Audit records decisions and results; Check and Observe need it.
	Audit Recorder
	// Approvals receives escalated calls; nil denies them.
	Approvals Approvals
	// OnSubmit is told the id of each approval request submitted (to ask
	// reviewer agents); it must not block.
	OnSubmit func(id string)
	// Quotas enforces rate limits and budgets on calls that would go
	// ahead; nil means none. Approvers says, per limit id, who approves
	// calls that exceed a limit whose OnExceed is "escalate".
	Quotas    *quota.Limiter
	Approvers map[string]policy.Approval
	// Tools declares, per exposed tool name, what its calls do.
	Tools map[string]ToolDeclaration
	// Roots are, per server, the directories it serves files from
	// (absolute, symlinks resolved: see CanonicalRoots). A call to such a
	// server has its file arguments resolved as the server will open them
	// and decided and forwarded in that form; one that leaves the roots is
	// denied.
	Roots map[string][]string
	// Record says what of each call is recorded beyond its digests.
	Record Record
	// State is the sessions' taint and provenance; nil: none.
	State State
	// Inspect looks at a tool definition the first time it is pinned and
	// says why it looks poisoned, or "": such a tool is withheld for an
	// operator even under trust on first use.
	Inspect func(def json.RawMessage) string
	// Watch is the behaviour monitor; nil: none.
	Watch Watcher
	// Current, when set, is asked about the caller once more right before
	// an allowed decision is recorded, after everything Check may wait on
	// (the store behind a shared budget, approvals, the monitor): an
	// error (the session ended meanwhile, or the node can no longer
	// confirm it knows the revocations made elsewhere) denies the call
	// with the error as its reason. The session was checked when the
	// request was authenticated, but a call that waited since (on a
	// database cut off, say) must not be allowed on what was true then.
	Current func(c *Caller) error
	// Refusals records what was refused before anything could be decided
	// (an operation with Refused set): aggregated per source and window,
	// so that a flood cannot fill the log. Nil: a recorder with the
	// defaults, on Audit.
	Refusals Refusals
	Now      func() time.Time
	// ReservationTTL bounds how long a reservation waits for the outcome
	// of its call before it is kept as spent; default DefaultReservationTTL.
	ReservationTTL time.Duration
}

// DefaultReservationTTL is the default Config.ReservationTTL: longer than
// any call may take (the gateway's call timeout is 10 minutes).
const DefaultReservationTTL = 15 * time.Minute

// Pipeline decides and records operations. It is safe for concurrent use.
type Pipeline struct {
	cfg Config

	// charges orders reservations against their records: Check holds it
	// (read) from reserving to recording the decision that carries the
	// charges, Observe from recording a refund to making it, and Quiesce
	// (write) runs with none of them half done, so that a snapshot of the
	// limiter and the log's size agree.
	charges sync.RWMutex

	mu           sync.Mutex
	reservations map[reservationKey]reservation
	pins         map[string]pinEntry // server + "\x00" + tool → last pin seen
	// declared caches declaredNames by definition text.
	declaredMu sync.RWMutex
	declared   map[string]map[string]string
	toolSets   map[string]toolSetEntry // server → its tool sets
}

// New validates cfg and returns a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Policies == nil {
		return nil, errors.New("enforce: no policies configured")
	}
	switch cfg.PinMode {
	case "":
		cfg.PinMode = PinTrustOnFirstUse
	case PinTrustOnFirstUse, PinTrustEachOnFirstUse, PinManual:
	default:
		return nil, fmt.Errorf("enforce: unknown tool pinning mode %q (want %q, %q or %q)", cfg.PinMode, PinTrustOnFirstUse, PinTrustEachOnFirstUse, PinManual)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReservationTTL <= 0 {
		cfg.ReservationTTL = DefaultReservationTTL
	}
	if err := cfg.Record.check(); err != nil {
		return nil, err
	}
	if cfg.Refusals == nil && cfg.Audit != nil {
		rc, err := refusal.New(refusal.Config{Audit: cfg.Audit})
		if err != nil {
			return nil, err
		}
		cfg.Refusals = rc
	}
	for server, roots := range cfg.Roots {
		for _, r := range roots {
			if !strings.HasPrefix(r, "/") {
				return nil, fmt.Errorf("enforce: server %s: root %q is not absolute", server, r)
			}
		}
	}
	return &Pipeline{cfg: cfg, reservations: map[reservationKey]reservation{}, pins: map[string]pinEntry{}, toolSets: map[string]toolSetEntry{}}, nil
}

// Evaluation is what the pipeline gathered for one operation and what
// policy decided on it, before any effect.
type Evaluation struct {
	// Request is what policy decided on (zero if the operation was
	// refused before policy was asked).
	Request policy.Request
	// Decision is policy's decision (zero if refused before).
	Decision policy.Decision
	// Verdict is the outcome with its reason: a refusal before policy, or
	// policy's decision explained.
	Verdict Verdict
	// Provenance says where each of Request.TaintedArguments came from
	// (the source, its labels, the audit event of the result), as an
	// approval request shows it to the people deciding.
	Provenance []approval.ArgumentProvenance
}

// refused is an evaluation that never reached policy.
func refused(reason string) Evaluation { return Evaluation{Verdict: Verdict{Reason: reason}} }

// Evaluate gathers what deciding op needs — the grant, the tool's pin and
// declaration, the session's taint, argument provenance and counters — and
// asks policy. It changes nothing but the tool pins it observes and
// op.Arguments, which it leaves in the form decided on (file arguments
// resolved). The gateway, the egress proxy, the runtime and replay all
// decide through it.
func (p *Pipeline) Evaluate(ctx context.Context, c *Caller, op *Operation) Evaluation {
	if op.Refused != "" {
		return refused(op.Refused)
	}
	if !c.Expiry.IsZero() && !p.cfg.Now().Before(c.Expiry) {
		return refused("the session's grant has expired")
	}
	if why := outOfScope(c, op); why != "" {
		if why == errName {
			// A name no grant can hold: say what is wrong with it as
			// policy would.
			if err := p.request(c, op).Validate(); err != nil {
				return refused("denied: " + err.Error())
			}
			why = fmt.Sprintf("%q is not a %s name ward accepts", op.Name, kindOf(op.Action))
		}
		return refused(why)
	}
	pinnable := op.Action == policy.ActionCallTool || op.Action == policy.ActionGetPrompt
	if t, pinned := targetOf(c, kindOf(op.Action), op.Server, op.Reported); pinnable && pinned && p.cfg.Pins != nil {
		ok, pin, err := p.pin(ctx, t, op.Upstream, op.Definition)
		if err != nil {
			return refused(fmt.Sprintf("%s pin check failed: %v", kindOf(op.Action), err))
		}
		if !ok {
			first, _, _ := p.firstSet(ctx, t.set)
			return refused(pinRefusal(kindOf(op.Action), op.Name, t, pin, first, op.Upstream))
		}
	}
	set := p.cfg.Policies()
	if set == nil {
		return refused("no policies are loaded (default deny)")
	}
	if len(op.Arguments) > 0 {
		// Arguments a server could read another way (names that differ
		// only in case, at any depth) are refused wherever they come from.
		if err := strictjson.Walk(op.Arguments, maxArgumentDepth, nil); err != nil {
			return refused("arguments: " + err.Error())
		}
	}
	if err := p.spelledAsDeclared(op); err != nil {
		return refused(err.Error())
	}
	if op.Action == policy.ActionReadResource {
		if err := CheckURI(op.Name); err != nil {
			return refused(err.Error())
		}
		if roots := p.cfg.Roots[op.Server]; len(roots) > 0 {
			if err := checkFileURI(op.Name, roots); err != nil {
				return refused(err.Error())
			}
		}
	}
	req := p.request(c, op)
	if p.cfg.Quotas != nil && op.Method != "" {
		req.Counters = p.cfg.Quotas.Counters(quotaCall(c, op))
	}
	explain := ""
	var found []approval.ArgumentProvenance
	switch op.Action {
	case policy.ActionCallTool:
		decl, declared := p.cfg.Tools[op.Name]
		if roots := p.cfg.Roots[op.Server]; len(roots) > 0 {
			fields := decl.Files
			if fields == nil {
				fields = DefaultFileArguments
			}
			if decl.Path != "" && !slices.Contains(fields, decl.Path) {
				// The declared path (context.path) is a file argument
				// whatever Files lists: decided as text it would let a
				// symlink in an allowed tree through.
				fields = append([]string{decl.Path}, fields...)
			}
			args, err := resolveFiles(op.Arguments, fields, roots)
			if err != nil {
				return refused(fmt.Sprintf("tool %s: %v", op.Name, err))
			}
			op.Arguments, req.Arguments = args, args
		}
		if err := decl.apply(&req); err != nil {
			return refused(fmt.Sprintf("tool %s: %v", op.Name, err))
		}
		if r := op.Recorded; r != nil {
			if r.Verb != "" {
				req.Verb = r.Verb
			}
			if r.Impact != nil {
				req.Impact = r.Impact
			}
			if r.Dataset != "" {
				req.Dataset = r.Dataset
			}
			if r.Path != "" {
				req.Path = r.Path
			}
		}
		req.Sink = Sink(decl, declared, op.Definition)
		unintended := req.Sink && len(decl.Intent) > 0 && !intended(c.Objective, decl.Intent)
		if req.Sink && p.cfg.State != nil {
			paths := provenance.Paths{Consequential: decl.Consequential, Justified: decl.Justify,
				Designate: len(decl.Designate) > 0 && intended(c.Objective, decl.Designate), Choice: len(decl.Intent) > 0}
			if paths.Consequential == nil {
				paths.Consequential = DefaultConsequential
			}
			var err error
			if found, explain, err = p.cfg.State.Provenance(c, op.Arguments, paths); err != nil {
				return refused("could not check where the arguments came from: " + err.Error())
			}
			req.TaintedArguments = argumentsOf(found)
		}
		if unintended {
			req.TaintedArguments = append(req.TaintedArguments, IntentArgument)
			why := fmt.Sprintf("the objective asks for no %s (it names none of: %s)", op.Name, strings.Join(decl.Intent, ", "))
			if explain == "" {
				explain = why
			} else {
				explain += "; " + why
			}
		}
	case policy.ActionHTTPRequest:
		if p.cfg.State != nil {
			// Destination provenance: did text the session read choose
			// this host?
			h := op.HTTP
			dest := map[string]string{"host": h.Host}
			if h.Method != policy.MethodConnect {
				dest["url"] = h.Scheme + "://" + h.Host + h.Path
			}
			args, _ := json.Marshal(dest)
			var err error
			if found, explain, err = p.cfg.State.Provenance(c, args, provenance.Paths{Consequential: []string{"host", "url"}}); err != nil {
				return refused("could not check where the destination came from: " + err.Error())
			}
			req.TaintedArguments = argumentsOf(found)
		}
	}
	d := set.Decide(req)
	reason := d.Explain(req)
	// A sub-agent may do nothing its delegators may not: the call is
	// decided as each of their agents too, and the strictest answer holds.
	for _, a := range c.Delegators {
		if !d.Allow && !d.Escalate {
			break
		}
		as := req
		as.Agent, as.Groups, as.Trust = a.Agent, a.Groups, a.Trust
		da := set.Decide(as)
		switch {
		case !da.Allow && !da.Escalate, da.Escalate && d.Allow:
			d, reason = da, fmt.Sprintf("decided as agent %s, which delegated this session: %s", a.Agent, da.Explain(as))
		case da.Escalate:
			d.Approvals = append(d.Approvals, da.Approvals...)
			d.Reasons = append(d.Reasons, da.Reasons...)
		}
	}
	v := Verdict{Allow: d.Allow, Escalate: d.Escalate, Reason: reason}
	if explain != "" && !d.Allow {
		v.Reason += "; " + explain
	}
	for _, r := range d.Reasons {
		v.Policies = append(v.Policies, r.PolicyID)
	}
	return Evaluation{Request: req, Decision: d, Verdict: v, Provenance: found}
}

// argumentsOf names the arguments found, each once, in order.
func argumentsOf(found []approval.ArgumentProvenance) []string {
	var out []string
	for _, f := range found {
		if !slices.Contains(out, f.Argument) {
			out = append(out, f.Argument)
		}
	}
	return out
}

// request is the policy request of op by c, before what declarations,
// provenance and quotas add.
func (p *Pipeline) request(c *Caller, op *Operation) policy.Request {
	req := policy.Request{
		Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Groups: c.Groups, Depth: c.Depth, Trust: c.Trust, ObjectiveTags: c.Tags,
		Action: op.Action, Server: op.Server, Name: op.Name, Arguments: op.Arguments, HTTP: op.HTTP, Exec: op.Exec,
	}
	if p.cfg.State != nil {
		req.Taint = p.cfg.State.Labels(c.Session)
	}
	if op.Recorded != nil && len(op.Recorded.Taint) > 0 {
		req.Taint = slices.Compact(slices.Sorted(slices.Values(slices.Concat(req.Taint, op.Recorded.Taint))))
	}
	return req
}

// outOfScope says why op is outside the caller's grant, or "".
func outOfScope(c *Caller, op *Operation) string {
	var kind grant.Kind
	var name, what string
	switch op.Action {
	case policy.ActionHTTPRequest:
		if op.HTTP == nil {
			return "invalid request: http_request without a request"
		}
		kind, name, what = grant.KindHost, op.HTTP.Host, "host"
	case policy.ActionExec:
		if op.Exec == nil {
			return "invalid request: exec without a program"
		}
		return "" // programs are not in grants: policy decides them
	default:
		k := kindOf(op.Action)
		kind, name, what = scopeKind(k), op.Name, string(k)
	}
	switch {
	case c.Scope.Allows(kind, name):
		return ""
	case !anyName.Allows(kind, name):
		return errName
	case kind == grant.KindHost:
		return notInGrant(name, c.Scope.Hosts)
	}
	return fmt.Sprintf("the session's grant does not cover %s %q", what, name)
}

// errName is what outOfScope says of a name no grant can cover.
const errName = "malformed name"

// anyName is a scope that covers every well-formed name.
var anyName = grant.Scope{Tools: []string{"*"}, Prompts: []string{"*"}, Resources: []string{"*"}, Hosts: []string{"*"}}

// maxShownHosts bounds how many of a grant's host patterns a refusal
// lists.
const maxShownHosts = 8

// notInGrant is the reason for refusing a host the grant does not list:
// `host evil.example is not in the session's grant (hosts: api.example.com,
// *.cdn.example.com)`.
func notInGrant(host string, hosts []string) string {
	l := "none"
	if len(hosts) > 0 {
		l = strings.Join(hosts[:min(len(hosts), maxShownHosts)], ", ")
		if len(hosts) > maxShownHosts {
			l += fmt.Sprintf(" and %d more", len(hosts)-maxShownHosts)
		}
	}
	return fmt.Sprintf("host %s is not in the session's grant (hosts: %s)", host, l)
}

// Check decides op and applies the effects of the decision, in this order:
//
//  1. Evaluate (gather the inputs, ask policy);
//  2. reserve the collective limits a call that would go ahead falls under
//     (an exceeded limit denies or escalates);
//  3. for an escalation, redeem approvals already granted for this exact
//     call, which allows it;
//  4. show the monitor (which records what it sees and may block);
//  5. record the decision durably: if that fails, the reservation is
//     refunded and the call denied;
//  6. only then submit the approval requests an escalation still needs.
//
// The verdict's Event is the recorded decision. A reservation is kept, by
// session and decision, until the outcome is observed.
func (p *Pipeline) Check(ctx context.Context, c *Caller, op *Operation) (Verdict, error) {
	if p.cfg.Audit == nil {
		return Verdict{Reason: "audit unavailable"}, errors.New("enforce: no audit log configured")
	}
	if op.Refused != "" && p.cfg.Refusals != nil {
		// Refused before anything could be decided: a refusal, counted
		// with the others of its session and kind.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		err := p.cfg.Refusals.Record(actx, refusal.Refusal{Kind: "mcp", Method: op.Method, Path: op.Name, Reason: op.Refused,
			Principal: c.SPIFFEID, Proven: true, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor})
		if err != nil {
			return Verdict{Reason: op.Refused}, fmt.Errorf("record refusal: %w", err)
		}
		return Verdict{Reason: op.Refused}, nil
	}
	ev := p.Evaluate(ctx, c, op)
	v, d := ev.Verdict, ev.Decision
	var res *quota.Reservation
	if p.cfg.Quotas != nil {
		p.charges.RLock()
		defer p.charges.RUnlock()
	}
	if v.Allow || d.Escalate {
		// Collective limits apply to every call that would go ahead;
		// approval does not lift a budget.
		var qv *Verdict
		res, qv = p.reserve(c, op)
		switch {
		case qv == nil:
		case !qv.Escalate:
			v, d = *qv, policy.Decision{}
		case d.Escalate:
			// Both a policy and a quota ask for approval: all of it.
			d.Approvals = append(d.Approvals, qv.approvals...)
			v.Reason += "; " + qv.Reason
			v.Policies = append(v.Policies, qv.Policies...)
		default:
			d = policy.Decision{Escalate: true, Approvals: qv.approvals}
			v = Verdict{Reason: qv.Reason, Policies: qv.Policies}
		}
	}
	var esc escalation
	if d.Escalate {
		esc = p.escalate(ctx, c, op, d, v.Reason, v.Policies)
		v = esc.verdict
	}
	if p.cfg.Watch != nil {
		if block := p.cfg.Watch.Watch(ctx, c, op, v.Outcome()); block != "" {
			v, esc.missing = Verdict{Reason: block, Policies: v.Policies}, nil
		}
	}
	if v.Allow && p.cfg.Current != nil {
		if err := p.cfg.Current(c); err != nil {
			v, esc.missing = Verdict{Reason: err.Error(), Policies: v.Policies}, nil
		}
	}
	if !v.Allow {
		res.Cancel() // nothing will happen: refund
		res = nil
	}
	data := p.decisionData(c, op, v, esc.missing)
	if len(ev.Provenance) > 0 && !v.Allow {
		// Where each tainted argument came from, as the approval
		// request shows it.
		data["provenance"] = ev.Provenance
	}
	if cs := res.Charges(); len(cs) > 0 {
		// What the call counts against, so that usage can be rebuilt from
		// the log after a restart.
		data["charged"] = cs
	}
	// The decision is recorded even if the request was cancelled meanwhile
	// (a revoked session's calls end that way).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	idx, err := p.cfg.Audit.Append(actx, audit.Event{
		Type: "decision", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Data: mustJSON(data),
	})
	if err != nil {
		res.Cancel()
		return Verdict{Reason: "audit unavailable"}, fmt.Errorf("record decision: %w", err)
	}
	v.Event = idx
	if len(esc.missing) > 0 {
		ids, err := p.submit(actx, c, op, v, idx, esc.missing, ev.Provenance)
		if err != nil {
			// Recorded as escalated, but nobody can approve it: deny,
			// and say so in the log.
			reason := "needs approval, but the request could not be queued (denied): " + err.Error()
			_ = p.record(actx, audit.Event{Type: "approval.error", Actor: "ward", Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
				Data: mustJSON(map[string]any{"decision_event": idx, "name": op.Name, "error": err.Error(), "submitted": ids})})
			res.Cancel()
			return Verdict{Reason: reason, Policies: v.Policies, Event: idx}, nil
		}
		v.Approvals = ids
	}
	if res != nil {
		p.keep(c.Session, idx, res)
	}
	return v, nil
}

// Quiesce runs f while no reservation is between being made and being
// recorded, and no refund between being recorded and being made: a
// snapshot of the limiter taken in f, with the audit log's size, is one
// that the log's later events complete exactly.
func (p *Pipeline) Quiesce(f func()) {
	p.charges.Lock()
	defer p.charges.Unlock()
	f()
}

// maxArgumentDepth bounds the nesting of a call's arguments.
const maxArgumentDepth = 64

// recordTimeout bounds recording, independently of the call's own deadline.
const recordTimeout = 10 * time.Second

// decisionData is what the "decision" event of op holds.
func (p *Pipeline) decisionData(c *Caller, op *Operation, v Verdict, missing []approval.Requirement) map[string]any {
	argsDigest := ""
	if len(op.Arguments) > 0 {
		sum := sha256.Sum256(op.Arguments)
		argsDigest = hex.EncodeToString(sum[:])
	}
	data := map[string]any{
		"method": op.Method, "action": op.Action, "server": op.Server, "name": op.Name,
		"decision": v.Outcome(), "reason": v.Reason, "policies": v.Policies,
		"arguments_sha256": argsDigest, "grant": c.GrantID, "approvals": v.Approvals,
	}
	if len(missing) > 0 {
		data["requirements"] = missing
	}
	if p.cfg.Record.Arguments && len(op.Arguments) > 0 {
		p.cfg.Record.doc(data, "arguments", op.Name, op.Arguments)
	}
	return data
}

// Observe records the outcome of an allowed operation and settles its
// reservation: only a call that never left ward is refunded; one that was
// forwarded keeps its quota whatever the upstream answered, and an outcome
// the agent's side reports can never make ward refund anything. What the agent received is then taken
// in by the session's state.
func (p *Pipeline) Observe(ctx context.Context, c *Caller, op *Operation, out Outcome) error {
	if p.cfg.Audit == nil {
		return errors.New("enforce: no audit log configured")
	}
	// Refunded only if the call never left ward: one that was forwarded
	// may have done its work whatever came back, and one the agent's side
	// reports cannot be checked.
	happened := out.Forwarded || out.Reported
	if p.cfg.Quotas != nil {
		p.charges.RLock()
		defer p.charges.RUnlock()
	}
	res := p.settle(c.Session, out.Decision)
	refund := res != nil && !happened
	data := map[string]any{
		"method": op.Method, "server": op.Server, "name": op.Name, "decision_event": out.Decision,
		"error": out.Error, "is_error": out.IsError, "result_sha256": out.ResultDigest,
		"result_bytes": out.ResultBytes, "duration_us": out.Duration.Microseconds(),
	}
	if out.Reported {
		data["reported_by_agent"] = true
	}
	if len(out.Result) > 0 && p.cfg.Record.results(op) {
		p.cfg.Record.doc(data, "result", op.Name, out.Result)
	}
	if refund {
		data["refunded"] = true // recorded before it is made
	}
	if _, err := p.cfg.Audit.Append(ctx, audit.Event{
		Type: "result", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Data: mustJSON(data),
	}); err != nil {
		// Not recorded: the call's usage stays counted.
		return fmt.Errorf("record result: %w", err)
	}
	if refund {
		res.Cancel()
	}
	if (out.Error == "" || out.Answered) && p.cfg.State != nil {
		// For an error, Result is the error object and Error its message:
		// the message is what the model reads.
		r := Received{Source: op.Name, Arguments: op.Arguments, Event: out.Decision, Result: out.Result, Error: out.Error}
		p.cfg.State.Receive(ctx, c, r)
	}
	return nil
}

// Notice records a message a server sends the client through ward — a
// request (sampling, elicitation) or a notification (a log message, a
// progress report, a cancellation's reason) — before it is passed on,
// with params, exactly what is forwarded. Such a message puts text the
// server chose before the agent's side, as a result does: the session
// gets the labels of what that server returns (of a name "SERVER." that
// only the server's wildcard rules match; untrusted unless they say
// otherwise) and the text is indexed for provenance as that server's
// result is (see [Noticed]), so that a value only a log line or a
// sampling prompt carried cannot choose where data goes unseen. The
// record carries the params' digest and size (the params themselves when
// the results of "SERVER." are recorded). A ping carries nothing. The
// server's instructions from its initialize result come as method
// "initialize" with params {"instructions": …}: recorded as
// server.instructions and taken in as a listing is, without labels.
func (p *Pipeline) Notice(ctx context.Context, c *Caller, server, method string, params json.RawMessage) error {
	typ := "server.request"
	switch {
	case method == "initialize":
		typ = "server.instructions"
	case strings.HasPrefix(method, "notifications/"):
		typ = "server.notification"
	}
	data := map[string]any{"server": server, "method": method}
	if len(params) > 0 {
		sum := sha256.Sum256(params)
		data["params_sha256"], data["params_bytes"] = hex.EncodeToString(sum[:]), len(params)
		if name := server + "."; p.cfg.Record.results(&Operation{Action: policy.ActionCallTool, Name: name}) {
			p.cfg.Record.doc(data, "params", name, params)
		}
	}
	seq, err := p.cfg.Audit.Append(ctx, audit.Event{Type: typ, Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Data: mustJSON(data)})
	if err != nil {
		return fmt.Errorf("record %s: %w", typ, err)
	}
	if r, ok := Noticed(server, method, seq, params); ok && p.cfg.State != nil {
		p.cfg.State.Receive(ctx, c, r)
	}
	return nil
}

// Noticed is what a session takes in from a message its server sent the
// client (see [Pipeline.Notice]), recorded as event: the server's labels
// and, if the message carries params, their text as the server's
// untrusted result; for its instructions (method "initialize"), what
// [Listed] takes in. ok is false for a message that carries nothing (a
// ping). Replay takes in a trace's "notice" records through it too.
func Noticed(server, method string, event uint64, params json.RawMessage) (r Received, ok bool) {
	switch method {
	case "ping":
		return Received{}, false
	case "initialize":
		// The server's instructions, shown to every session that
		// connects: a listing's kind of text.
		return Listed(server, event, params), true
	}
	r = Received{Source: server + ".", Event: event}
	if len(params) > 0 {
		r.Result = params
	}
	return r, true
}

// Answer records the client's answer to a server-initiated request
// (sampling, elicitation) before it is passed on: what the agent's side
// sent the server, by digest and size (the answer is the agent's model's
// or user's text; like arguments, it is not kept unless results are).
func (p *Pipeline) Answer(ctx context.Context, c *Caller, server, method string, a ClientAnswer) error {
	return p.record(ctx, audit.Event{Type: "server.request.answer", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
		Data: mustJSON(map[string]any{"server": server, "method": method, "answer_sha256": a.Digest, "answer_bytes": a.Bytes, "is_error": a.IsError})})
}

// Refuse records a request the proxy refused before it could be decided
// (it could not be parsed, or its handler failed), with the reason.
func (p *Pipeline) Refuse(ctx context.Context, c *Caller, method, reason string) error {
	return p.record(ctx, audit.Event{Type: "refusal", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
		Data: mustJSON(map[string]any{"method": method, "reason": reason})})
}

// Filter reports, item by item, whether the caller may see it: in the
// grant, possibly allowed by policy, and for tools and prompts, approved.
// A listing of tools or prompts also records the server's set (see
// PinTrustOnFirstUse) and pins every definition in it, whether or not this
// caller may see it: trust on first use covers the definitions the server
// showed first, not ones it shows later to another caller. A caller whose
// grant covers nothing listed records nothing.
func (p *Pipeline) Filter(ctx context.Context, c *Caller, kind Kind, server string, items []Item) ([]bool, error) {
	return p.filter(ctx, c, kind, server, items, false)
}

// FilterReported is Filter for a listing the agent's side reports (the
// guard API of `ward mcp wrap`): its pins and first set are the reporting
// agent's own, and an agent may report at most MaxWrappedServers servers.
func (p *Pipeline) FilterReported(ctx context.Context, c *Caller, kind Kind, server string, items []Item) ([]bool, error) {
	return p.filter(ctx, c, kind, server, items, true)
}

// MaxWrappedServers bounds the servers one agent may report listings of.
const MaxWrappedServers = 32

func (p *Pipeline) filter(ctx context.Context, c *Caller, kind Kind, server string, items []Item, reported bool) ([]bool, error) {
	set := p.cfg.Policies()
	keep := make([]bool, len(items))
	inScope := make([]bool, len(items))
	covered := false
	for i, it := range items {
		inScope[i] = c.Scope.Allows(scopeKind(kind), it.Name)
		covered = covered || inScope[i]
	}
	if !covered {
		return keep, nil
	}
	t, pinned := targetOf(c, kind, server, reported)
	pinned = pinned && p.cfg.Pins != nil
	approved := make([]bool, len(items))
	if pinned {
		if reported {
			if err := p.checkWrapped(ctx, c, t); err != nil {
				return nil, err
			}
		}
		if _, _, err := p.observeTools(ctx, t, items); err != nil {
			return nil, err
		}
		for i, it := range items {
			ok, _, err := p.pin(ctx, t, it.Upstream, it.Definition)
			if err != nil {
				return nil, err
			}
			approved[i] = ok
		}
	}
	for i, it := range items {
		if !inScope[i] || pinned && !approved[i] {
			continue
		}
		req := p.request(c, &Operation{Action: actionFor(kind), Server: server, Name: it.Name})
		if decl, ok := p.cfg.Tools[it.Name]; ok && kind == KindTool {
			req.Verb = decl.Verb
			if len(decl.Impact) > 0 {
				req.Impact = map[string]int64{} // depends on arguments: unknown when listing
			}
		}
		if set == nil || !set.MayAllow(req) || !p.delegatorsMayAllow(set, c, req) {
			continue
		}
		keep[i] = true
	}
	if err := p.shown(ctx, c, kind, server, items, keep); err != nil {
		return nil, err
	}
	return keep, nil
}

// shown records the definitions a listing shows the caller and takes them
// in as the server's text (see [Listed]): a tool's description, its
// title, its schema's descriptions and defaults are the server's words
// before the model, as its results are, and an address only a
// description carried ("send a copy to audit@…") cannot choose a
// recipient unseen. Definitions a scan withholds (see
// PinTrustOnFirstUse) are not shown, so not taken in.
func (p *Pipeline) shown(ctx context.Context, c *Caller, kind Kind, server string, items []Item, keep []bool) error {
	if p.cfg.State == nil {
		return nil
	}
	var defs []json.RawMessage
	var names []string
	for i, it := range items {
		if keep[i] && len(it.Definition) > 0 {
			defs, names = append(defs, it.Definition), append(names, it.Name)
		}
	}
	if len(defs) == 0 {
		return nil
	}
	doc, err := json.Marshal(defs)
	if err != nil {
		return fmt.Errorf("listing of %s: %w", server, err)
	}
	sum := sha256.Sum256(doc)
	seq, err := p.cfg.Audit.Append(ctx, audit.Event{Type: "listing", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
		Data: mustJSON(map[string]any{"server": server, "kind": string(kind), "names": names, "definitions_sha256": hex.EncodeToString(sum[:]), "definitions_bytes": len(doc)})})
	if err != nil {
		return fmt.Errorf("record listing: %w", err)
	}
	p.cfg.State.Receive(ctx, c, Listed(server, seq, doc))
	return nil
}

// Listed is what a session takes in from definitions of server it was
// shown (a JSON array of them, as the server described them), recorded as
// event: their values, indexed for provenance as that server's untrusted
// result unless the server's results clear (its wildcard rule "SERVER.*"
// labels them trusted or reliable). Unlike a result, a listing gives the
// session no labels: every session lists, and being shown a catalog is
// not reading what a third party wrote into data. Replay takes in a call
// record's definition through it too.
func Listed(server string, event uint64, definitions json.RawMessage) Received {
	return Received{Source: server + ".", Event: event, Result: definitions, Listing: true}
}

// delegatorsMayAllow reports whether every agent c was delegated from may
// be allowed req too: a sub-agent is shown only what its calls could do.
func (p *Pipeline) delegatorsMayAllow(set *policy.Set, c *Caller, req policy.Request) bool {
	for _, a := range c.Delegators {
		as := req
		as.Agent, as.Groups, as.Trust = a.Agent, a.Groups, a.Trust
		if !set.MayAllow(as) {
			return false
		}
	}
	return true
}

// checkWrapped refuses a listing of a server the agent has not reported
// before once it has reported MaxWrappedServers.
func (p *Pipeline) checkWrapped(ctx context.Context, c *Caller, t pinTarget) error {
	if _, known, err := p.firstSet(ctx, t.set); err != nil || known {
		return err
	}
	n, err := p.cfg.Pins.CountToolSets(ctx, "~"+strings.ReplaceAll(c.Agent, ".", "~"))
	if err != nil {
		return err
	}
	if n >= 2*MaxWrappedServers { // a tool set and a prompt set each
		return fmt.Errorf("agent %s has reported the lists of %d wrapped servers, the most ward keeps for one agent", c.Agent, MaxWrappedServers)
	}
	return nil
}

func (p *Pipeline) record(ctx context.Context, e audit.Event) error {
	if _, err := p.cfg.Audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record %s: %w", e.Type, err)
	}
	return nil
}

func scopeKind(k Kind) grant.Kind {
	switch k {
	case KindPrompt:
		return grant.KindPrompt
	case KindResource, KindResourceTemplate:
		return grant.KindResource
	default:
		return grant.KindTool
	}
}

// kindOf is the kind of thing action targets.
func kindOf(action policy.Action) Kind {
	switch action {
	case policy.ActionGetPrompt:
		return KindPrompt
	case policy.ActionReadResource:
		return KindResource
	}
	return KindTool
}

func actionFor(k Kind) policy.Action {
	switch k {
	case KindPrompt:
		return policy.ActionGetPrompt
	case KindResource, KindResourceTemplate:
		return policy.ActionReadResource
	default:
		return policy.ActionCallTool
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{"error":"unencodable event data"}`)
	}
	return b
}

// strictOpen decodes JSON that came from an upstream strictly (one
// reading), ignoring members it does not declare.
func strictOpen(data []byte, v any) error { return strictjson.UnmarshalOpen(data, v) }

// strictDecodeNumber decodes a JSON document strictly into an any whose
// numbers are json.Number, as written.
func strictDecodeNumber(data []byte, v *any) error {
	if err := strictjson.Valid(data); err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	return dec.Decode(v)
}

// spelledAsDeclared refuses a call whose top-level argument names one the
// tool or prompt declares (its input schema's properties, its arguments, a
// file argument of a server with roots) in another case: ward reads names
// exactly, so "Path" is not the file argument "path", while a server that
// matches names without regard to case would open it.
func (p *Pipeline) spelledAsDeclared(op *Operation) error {
	if len(op.Arguments) == 0 || (op.Action != policy.ActionCallTool && op.Action != policy.ActionGetPrompt) {
		return nil
	}
	declared := p.declaredNames(op.Definition) // folded name → name
	var files map[string]string
	if op.Action == policy.ActionCallTool && len(p.cfg.Roots[op.Server]) > 0 {
		decl := p.cfg.Tools[op.Name]
		fields := decl.Files
		if fields == nil {
			fields = DefaultFileArguments
		}
		files = map[string]string{}
		for _, f := range append(slices.Clone(fields), decl.Path) {
			if first, _, _ := strings.Cut(f, "."); first != "" && first != "*" {
				files[strictjson.Fold(first)] = first
			}
		}
	}
	if len(declared) == 0 && len(files) == 0 {
		return nil
	}
	is := func(k string) bool {
		f := strictjson.Fold(k)
		return declared[f] == k || files[f] == k
	}
	for _, k := range topLevelNames(op.Arguments) {
		f := strictjson.Fold(k)
		n, ok := declared[f]
		if !ok {
			n, ok = files[f]
		}
		if ok && !is(k) {
			return fmt.Errorf("argument %q is %q in another case; ward reads names exactly and refuses it rather than guess which one the server reads", k, n)
		}
	}
	return nil
}

// topLevelNames returns the member names of a JSON object (nil for
// anything else), as written.
func topLevelNames(doc []byte) []string {
	dec := jsontext.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil
	}
	var names []string
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return names
		}
		names = append(names, tok.String())
		if err := dec.SkipValue(); err != nil {
			return names
		}
	}
	return names
}

// declaredNames returns the argument names a tool or prompt definition
// declares (its input schema's properties, its arguments) by their folded
// form (strictjson.Fold), parsed once per definition: the same few
// definitions come with every call. Two declared names that fold alike
// keep one of them.
func (p *Pipeline) declaredNames(def json.RawMessage) map[string]string {
	if len(def) == 0 {
		return nil
	}
	p.declaredMu.RLock()
	names, ok := p.declared[string(def)]
	p.declaredMu.RUnlock()
	if ok {
		return names
	}
	var d struct {
		InputSchema struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"inputSchema"`
		Arguments []struct {
			Name string `json:"name"`
		} `json:"arguments"`
	}
	names = map[string]string{}
	if strictOpen(def, &d) == nil {
		for n := range d.InputSchema.Properties {
			names[strictjson.Fold(n)] = n
		}
		for _, a := range d.Arguments {
			names[strictjson.Fold(a.Name)] = a.Name
		}
	}
	p.declaredMu.Lock()
	if p.declared == nil || len(p.declared) >= maxDeclaredCache {
		p.declared = map[string]map[string]string{}
	}
	p.declared[string(def)] = names
	p.declaredMu.Unlock()
	return names
}

// maxDeclaredCache bounds the definitions declaredNames remembers.
const maxDeclaredCache = 4096
