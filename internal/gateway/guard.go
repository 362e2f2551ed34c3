package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	pathpkg "path"
	"strings"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/store"
)

// PinMode says what happens the first time a tool definition is seen.
type PinMode string

const (
	// PinTrustOnFirstUse approves a tool's definition the first time it is
	// seen; any later change withholds the tool until an operator approves
	// it again. The default.
	PinTrustOnFirstUse PinMode = "tofu"
	// PinManual withholds every tool until an operator approves it.
	PinManual PinMode = "manual"
)

// PinStore keeps tool pins. ObservePin must be atomic and must never
// change an existing approval.
type PinStore interface {
	ObservePin(ctx context.Context, server, tool, hash string, def json.RawMessage, approveFirstBy string) (p store.ToolPin, created, changed bool, err error)
}

// Recorder appends audit events durably.
type Recorder interface {
	Append(ctx context.Context, e audit.Event) (uint64, error)
}

// LocalConfig configures a [Local] guard.
type LocalConfig struct {
	Policies func() *policy.Set // the current policy snapshot; nil set denies everything
	Pins     PinStore
	Audit    Recorder
	PinMode  PinMode // default PinTrustOnFirstUse
	// Approvals receives escalated calls; nil denies them.
	Approvals Approvals
	// Quotas enforces rate limits and budgets on allowed calls; nil means
	// none. Approvers says, per limit id, who approves calls that exceed a
	// limit whose OnExceed is "escalate".
	Quotas    *quota.Limiter
	Approvers map[string]policy.Approval
	// OnSubmit is told the id of each approval request the guard submits
	// (to ask reviewer agents); it must not block.
	OnSubmit func(id string)
	// Tools declares, per exposed tool name, what its calls do: the verb
	// policies see as context.verb and how to read its impact from the
	// arguments (context.impact).
	Tools map[string]ToolDeclaration
	// Record says what of each call is recorded beyond its digests; the
	// zero value records digests only.
	Record Record
	// Taint returns a session's taint labels (context.taint); nil: none.
	Taint func(session string) []string
	// OnResult is told of every call whose result reached the agent (to
	// label the session with what the result carries, index its values,
	// scan it), with its outcome. It must not block.
	OnResult func(ctx context.Context, c *Caller, op *Operation, out Outcome)
	// Provenance checks the consequential arguments (paths) of a call to
	// a sink: it returns those whose values came from untrusted results
	// and not the objective, with an explanation naming argument and
	// result, for context.tainted_arguments. An error denies the call.
	Provenance func(ctx context.Context, c *Caller, op *Operation, paths []string) (tainted []string, explain string, err error)
	// Inspect looks at a tool definition the first time it is pinned and
	// says why it looks poisoned, or "": such a tool is withheld for an
	// operator's approval even under trust on first use.
	Inspect func(def json.RawMessage) string
	// Watch is shown every decided call before it is recorded and
	// forwarded (the behaviour monitor); a non-empty answer denies the
	// call with that reason.
	Watch func(ctx context.Context, c *Caller, op *Operation, decision string) (block string)
	Now   func() time.Time
}

// DefaultRecordMaxBytes is the default Record.MaxBytes.
const DefaultRecordMaxBytes = 64 << 10

// Record says what the audit log keeps of calls beyond their SHA-256
// digests, which it always keeps. What it keeps is redacted first, so
// recording anything needs a Redactor: NewLocal refuses a Record that
// records without one.
//
// The "decision" event of a call with arguments gets "arguments" (the
// redacted JSON) and "redacted" (the redacted paths, if any) when Arguments
// is set. The "result" event gets "result" and "redacted" when the call's
// name matches one of Results. Names are matched as the client sees them:
// "SERVER.TOOL" for tools and prompts, the URI for resources, and the
// Redactor's rules are chosen by the same name; the arguments of prompts/get
// and completion/complete are recorded like a tool's, and resources/read has
// none (its URI is recorded anyway). A document larger than MaxBytes, or one
// the Redactor refuses (not JSON, too deep), is recorded by digest only,
// with "arguments_omitted" or "result_omitted" saying why.
type Record struct {
	// Arguments records every call's arguments.
	Arguments bool
	// Results are name patterns (an exact name, or a prefix and a trailing
	// '*') of the calls whose results are recorded.
	Results []string
	// Redactor redacts what is recorded.
	Redactor *redact.Redactor
	// MaxBytes bounds a recorded document, before and after redaction
	// (which may lengthen it); default DefaultRecordMaxBytes. Keep it well
	// under the audit log's event size limit: an event the log refuses
	// denies the call.
	MaxBytes int
}

// ToolDeclaration says what a tool's calls do.
//
//	db.delete_rows: {verb: delete, impact: {rows: count}, dataset: table}
//	fs.write_file:  {verb: write, path: path}
//
// Impact maps an impact name to a dotted path into the call's arguments; the
// value there must be an integer (or absent). Path and Dataset are dotted
// paths to string arguments: the file the call touches (context.path; it
// must be absolute and is cleaned) and the dataset (context.dataset, the
// entity Dataset::"<name>"). A declared argument of the wrong type denies
// the call rather than letting it escape a policy.
type ToolDeclaration struct {
	// Sink says whether data can leave, or state change, through the
	// tool (context.sink). Unset: it is a sink. The server's readOnlyHint
	// annotation is not trusted for this.
	Sink *bool `json:"sink,omitempty" yaml:"sink"`
	// Consequential are the argument paths ("to", "recipients.*") whose
	// values choose where data or money goes, checked for provenance when
	// the tool is a sink; unset: DefaultConsequential.
	Consequential []string          `json:"consequential,omitempty" yaml:"consequential"`
	Verb          string            `json:"verb,omitempty" yaml:"verb"`
	Impact        map[string]string `json:"impact,omitempty" yaml:"impact"`
	Path          string            `json:"path,omitempty" yaml:"path"`
	Dataset       string            `json:"dataset,omitempty" yaml:"dataset"`
}

// apply fills req's verb, impact, path and dataset from the declaration
// and the call's arguments.
func (d ToolDeclaration) apply(req *policy.Request) error {
	req.Verb = d.Verb
	if len(d.Impact) == 0 && d.Path == "" && d.Dataset == "" {
		return nil
	}
	var root any
	if len(req.Arguments) > 0 {
		dec := json.NewDecoder(bytes.NewReader(req.Arguments))
		dec.UseNumber()
		if err := dec.Decode(&root); err != nil {
			return fmt.Errorf("arguments: %v", err)
		}
	}
	for name, path := range d.Impact {
		v := lookup(root, path)
		if v == nil {
			continue
		}
		num, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("impact %q: argument %s must be an integer", name, path)
		}
		n, err := num.Int64()
		if err != nil {
			return fmt.Errorf("impact %q: argument %s must be an integer, not %s", name, path, num)
		}
		if req.Impact == nil {
			req.Impact = map[string]int64{}
		}
		req.Impact[name] = n
	}
	if d.Path != "" {
		switch v := lookup(root, d.Path).(type) {
		case nil:
		case string:
			if !strings.HasPrefix(v, "/") {
				return fmt.Errorf("path: argument %s must be an absolute path", d.Path)
			}
			req.Path = pathpkg.Clean(v)
		default:
			return fmt.Errorf("path: argument %s must be a string", d.Path)
		}
	}
	if d.Dataset != "" {
		switch v := lookup(root, d.Dataset).(type) {
		case nil:
		case string:
			req.Dataset = v
		default:
			return fmt.Errorf("dataset: argument %s must be a string", d.Dataset)
		}
	}
	return nil
}

// DefaultConsequential are the arguments checked for provenance on a sink
// whose declaration names none: where messages, requests, money and files
// go.
var DefaultConsequential = []string{"to", "to.*", "cc", "cc.*", "bcc", "bcc.*", "recipient", "recipients", "recipients.*",
	"email", "address", "url", "uri", "host", "endpoint", "webhook", "destination", "account", "iban", "amount",
	"path", "command"}

// sink says whether a call of the tool is a sink: as declared, else yes.
// The server's own readOnlyHint is not trusted: a malicious server would
// mark its send_email read-only.
func (d ToolDeclaration) sink() bool {
	return d.Sink == nil || *d.Sink
}

// lookup follows a dotted path through decoded JSON objects; nil if absent.
func lookup(v any, path string) any {
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// Local is the in-process [Guard]: grant scope, Cedar policy and tool pins,
// every decision audited.
type Local struct {
	cfg LocalConfig

	mu           sync.Mutex
	reservations map[uint64]*quota.Reservation // by decision event, until the outcome is observed
	pins         map[string]pinEntry           // server + "\x00" + tool → last pin seen
}

// pinEntry caches a pin so the hot path does not read the store on every
// call: a definition whose raw bytes match the cached ones reuses the
// verdict for pinCacheTTL. Approvals made elsewhere (the API writes the
// store) are therefore visible within pinCacheTTL; a changed definition is
// seen at once, since its bytes differ.
type pinEntry struct {
	raw      [32]byte // SHA-256 of the definition's bytes as listed
	hash     string
	approved string
	at       time.Time
}

// pinCacheTTL bounds how long a cached pin verdict is trusted.
const pinCacheTTL = time.Second

// ForgetPin drops the cached pin of server/tool, so that an approval just
// written to the store takes effect at once on this node.
func (l *Local) ForgetPin(server, tool string) {
	l.mu.Lock()
	delete(l.pins, server+"\x00"+tool)
	l.mu.Unlock()
}

var _ Guard = (*Local)(nil)

// NewLocal returns a Local guard.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Policies == nil || cfg.Pins == nil || cfg.Audit == nil {
		return nil, errors.New("gateway: local guard needs policies, pins and audit")
	}
	switch cfg.PinMode {
	case "":
		cfg.PinMode = PinTrustOnFirstUse
	case PinTrustOnFirstUse, PinManual:
	default:
		return nil, fmt.Errorf("gateway: unknown tool pinning mode %q (want %q or %q)", cfg.PinMode, PinTrustOnFirstUse, PinManual)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rec := &cfg.Record
	if (rec.Arguments || len(rec.Results) > 0) && rec.Redactor == nil {
		return nil, errors.New("gateway: recording arguments or results needs a redactor")
	}
	for _, p := range rec.Results {
		if (grant.Scope{Resources: []string{p}}).Validate() != nil {
			return nil, fmt.Errorf("gateway: recorded results: pattern %q: want a name, or a prefix and a trailing '*'", p)
		}
	}
	switch {
	case rec.MaxBytes < 0:
		return nil, fmt.Errorf("gateway: negative record size limit %d", rec.MaxBytes)
	case rec.MaxBytes == 0:
		rec.MaxBytes = DefaultRecordMaxBytes
	}
	return &Local{cfg: cfg, reservations: map[uint64]*quota.Reservation{}, pins: map[string]pinEntry{}}, nil
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

func (l *Local) policyRequest(c *Caller, action policy.Action, server, name string, args json.RawMessage) policy.Request {
	req := policy.Request{
		Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Groups: c.Groups, Depth: c.Depth, Trust: c.Trust, ObjectiveTags: c.Tags,
		Action: action, Server: server, Name: name, Arguments: args,
	}
	if l.cfg.Taint != nil {
		req.Taint = l.cfg.Taint(c.Session)
	}
	return req
}

// Filter implements [Guard].
func (l *Local) Filter(ctx context.Context, c *Caller, kind Kind, server string, items []Item) ([]bool, error) {
	set := l.cfg.Policies()
	keep := make([]bool, len(items))
	for i, it := range items {
		if !c.Scope.Allows(scopeKind(kind), it.Name) {
			continue
		}
		req := l.policyRequest(c, actionFor(kind), server, it.Name, nil)
		if decl, ok := l.cfg.Tools[it.Name]; ok && kind == KindTool {
			req.Verb = decl.Verb
			if len(decl.Impact) > 0 {
				req.Impact = map[string]int64{} // depends on arguments: unknown when listing
			}
		}
		if set == nil || !set.MayAllow(req) {
			continue
		}
		if kind == KindTool {
			ok, _, err := l.pin(ctx, server, it.Upstream, it.Definition)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		keep[i] = true
	}
	return keep, nil
}

// DefinitionHash is the pin of a tool definition: "sha256:" and the hex
// SHA-256 of its canonical JSON (object keys sorted, numbers as written).
func DefinitionHash(def json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(def))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("tool definition is not JSON: %v", err)
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// pin records the definition it sees and reports whether it is approved.
func (l *Local) pin(ctx context.Context, server, tool string, def json.RawMessage) (approved bool, p store.ToolPin, err error) {
	key := server + "\x00" + tool
	raw := sha256.Sum256(def)
	now := l.cfg.Now()
	l.mu.Lock()
	e, ok := l.pins[key]
	l.mu.Unlock()
	if ok && e.raw == raw && now.Sub(e.at) < pinCacheTTL {
		return e.approved == e.hash, store.ToolPin{Server: server, Tool: tool, Hash: e.hash, ApprovedHash: e.approved}, nil
	}
	h, err := DefinitionHash(def)
	if err != nil {
		return false, p, err
	}
	defer func() {
		if err == nil {
			l.mu.Lock()
			l.pins[key] = pinEntry{raw: raw, hash: p.Hash, approved: p.ApprovedHash, at: now}
			l.mu.Unlock()
		}
	}()
	firstUse, suspicion := "", ""
	if l.cfg.Inspect != nil {
		suspicion = l.cfg.Inspect(def)
	}
	if l.cfg.PinMode == PinTrustOnFirstUse && suspicion == "" {
		// A definition that looks poisoned is never approved on first
		// use: an operator must review it.
		firstUse = "first-use"
	}
	p, created, changed, err := l.cfg.Pins.ObservePin(ctx, server, tool, h, def, firstUse)
	if err != nil {
		return false, p, fmt.Errorf("pin %s.%s: %w", server, tool, err)
	}
	switch {
	case created:
		event := "tool.pin"
		if p.ApprovedHash != h {
			event = "tool.pending"
		}
		err = l.record(ctx, audit.Event{Type: event, Data: mustJSON(map[string]any{"server": server, "tool": tool, "hash": h, "approved": p.ApprovedHash == h, "suspicion": suspicion})})
	case changed:
		err = l.record(ctx, audit.Event{Type: "tool.changed", Data: mustJSON(map[string]any{"server": server, "tool": tool, "hash": h, "approved_hash": p.ApprovedHash})})
	}
	if err != nil {
		return false, p, err
	}
	return p.ApprovedHash == h, p, nil
}

// Check implements [Guard].
func (l *Local) Check(ctx context.Context, c *Caller, op *Operation) (Verdict, error) {
	v, d := l.decide(ctx, c, op)
	var res *quota.Reservation
	if v.Allow || d.Escalate {
		// Collective limits apply to every call that would go ahead;
		// approval does not lift a budget.
		var qv *Verdict
		res, qv = l.reserve(c, op)
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
	if d.Escalate {
		v = l.escalate(ctx, c, op, d, v.Reason, v.Policies)
	}
	if l.cfg.Watch != nil {
		if block := l.cfg.Watch(ctx, c, op, outcome(v)); block != "" {
			v = Verdict{Reason: block, Policies: v.Policies}
		}
	}
	if !v.Allow {
		res.Cancel() // nothing will happen: refund
		res = nil
	}
	argsDigest := ""
	if len(op.Arguments) > 0 {
		sum := sha256.Sum256(op.Arguments)
		argsDigest = hex.EncodeToString(sum[:])
	}
	decision := outcome(v)
	data := map[string]any{
		"method": op.Method, "action": op.Action, "server": op.Server, "name": op.Name,
		"decision": decision, "reason": v.Reason, "policies": v.Policies,
		"arguments_sha256": argsDigest, "grant": c.GrantID, "approvals": v.Approvals,
	}
	if l.cfg.Record.Arguments && len(op.Arguments) > 0 {
		l.recordDoc(data, "arguments", op.Name, op.Arguments)
	}
	// The decision is recorded even if the request was cancelled meanwhile
	// (a revoked session's calls end that way).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), observeTimeout)
	defer cancel()
	idx, err := l.cfg.Audit.Append(actx, audit.Event{
		Type: "decision", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
		Data: mustJSON(data),
	})
	if err != nil {
		return Verdict{Reason: "audit unavailable"}, fmt.Errorf("record decision: %w", err)
	}
	v.Event = idx
	if res != nil {
		l.mu.Lock()
		l.reservations[idx] = res
		l.mu.Unlock()
	}
	return v, nil
}

// outcome names a verdict: allow, escalate or deny.
func outcome(v Verdict) string {
	switch {
	case v.Allow:
		return "allow"
	case v.Escalate:
		return "escalate"
	}
	return "deny"
}

// reserve applies the quotas to a call that would go ahead. It returns the
// reservation, or a verdict replacing the policy's when a limit is
// exceeded (deny, or escalate with the limit's approvers).
func (l *Local) reserve(c *Caller, op *Operation) (*quota.Reservation, *Verdict) {
	if l.cfg.Quotas == nil {
		return nil, nil
	}
	call := quota.Call{Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Groups: c.Groups, Action: string(op.Action), Tool: op.Name, Costs: numericArguments(op.Arguments)}
	res, exceeded, err := l.cfg.Quotas.Reserve(call)
	if err != nil {
		return nil, &Verdict{Reason: "quota check failed (denied): " + err.Error()}
	}
	if len(exceeded) == 0 {
		return res, nil
	}
	var parts, ids []string
	escalate := true
	var approvals []policy.Approval
	for _, e := range exceeded {
		scope := string(e.Limit.Scope) + " " + e.Key
		part := fmt.Sprintf("limit %q for %s is used up (%g of %g in %s", e.Limit.ID, scope, e.Used, e.Max, e.Limit.Window)
		if e.Impossible() {
			part += "; this call alone exceeds it)"
		} else {
			part += fmt.Sprintf("; retry in %s)", e.RetryAfter.Round(time.Second))
		}
		parts = append(parts, part)
		ids = append(ids, "quota:"+e.Limit.ID)
		a, ok := l.cfg.Approvers[e.Limit.ID]
		if e.Limit.OnExceed != quota.OnExceedEscalate || !ok {
			escalate = false
		} else {
			a.PolicyID = "quota:" + e.Limit.ID
			approvals = append(approvals, a)
		}
	}
	v := &Verdict{Reason: strings.Join(parts, "; "), Policies: ids}
	if escalate {
		v.Escalate, v.approvals = true, approvals
	}
	return nil, v
}

// numericArguments exposes a call's top-level numeric arguments as quota
// costs ("rows", "amount"); a limit with a cost reads it from here.
func numericArguments(args json.RawMessage) map[string]float64 {
	var m map[string]json.RawMessage
	if len(args) == 0 || json.Unmarshal(args, &m) != nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range m {
		var f float64
		if json.Unmarshal(v, &f) == nil {
			out[k] = f
		}
	}
	return out
}

// settle refunds the quota of a call that did not happen (the upstream
// failed or the client cancelled before it was forwarded).
func (l *Local) settle(decision uint64, happened bool) {
	l.mu.Lock()
	res := l.reservations[decision]
	delete(l.reservations, decision)
	l.mu.Unlock()
	if !happened {
		res.Cancel()
	}
}

func (l *Local) decide(ctx context.Context, c *Caller, op *Operation) (Verdict, policy.Decision) {
	if op.Refused != "" {
		return Verdict{Reason: op.Refused}, policy.Decision{}
	}
	if !c.Expiry.IsZero() && !l.cfg.Now().Before(c.Expiry) {
		return Verdict{Reason: "the session's grant has expired"}, policy.Decision{}
	}
	kind := kindOf(op.Action)
	if !c.Scope.Allows(scopeKind(kind), op.Name) {
		return Verdict{Reason: fmt.Sprintf("the session's grant does not cover %s %q", kind, op.Name)}, policy.Decision{}
	}
	if op.Action == policy.ActionCallTool {
		ok, p, err := l.pin(ctx, op.Server, op.Upstream, op.Definition)
		if err != nil {
			return Verdict{Reason: "tool pin check failed: " + err.Error()}, policy.Decision{}
		}
		if !ok {
			if p.ApprovedHash == "" {
				return Verdict{Reason: fmt.Sprintf("tool %q is awaiting operator approval (ward tools approve %s --hash %s)", op.Name, op.Name, p.Hash)}, policy.Decision{}
			}
			return Verdict{Reason: fmt.Sprintf("tool %q changed its definition since it was approved (approved %s, now %s); it is withheld until an operator reviews and re-approves it (ward tools approve %s --hash %s)", op.Name, short(p.ApprovedHash), short(p.Hash), op.Name, p.Hash)}, policy.Decision{}
		}
	}
	set := l.cfg.Policies()
	if set == nil {
		return Verdict{Reason: "no policies are loaded (default deny)"}, policy.Decision{}
	}
	req := l.policyRequest(c, op.Action, op.Server, op.Name, op.Arguments)
	if l.cfg.Quotas != nil {
		req.Counters = l.cfg.Quotas.Counters(quota.Call{Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Groups: c.Groups, Action: string(op.Action), Tool: op.Name})
	}
	explain := ""
	if op.Action == policy.ActionCallTool {
		decl := l.cfg.Tools[op.Name]
		if err := decl.apply(&req); err != nil {
			return Verdict{Reason: fmt.Sprintf("tool %s: %v", op.Name, err)}, policy.Decision{}
		}
		req.Sink = decl.sink()
		if req.Sink && l.cfg.Provenance != nil {
			paths := decl.Consequential
			if paths == nil {
				paths = DefaultConsequential
			}
			var err error
			if req.TaintedArguments, explain, err = l.cfg.Provenance(ctx, c, op, paths); err != nil {
				return Verdict{Reason: "could not check where the arguments came from: " + err.Error()}, policy.Decision{}
			}
		}
	}
	d := set.Decide(req)
	v := Verdict{Allow: d.Allow, Reason: d.Explain(req)}
	if explain != "" && !d.Allow {
		v.Reason += "; " + explain
	}
	for _, r := range d.Reasons {
		v.Policies = append(v.Policies, r.PolicyID)
	}
	return v, d
}

func short(h string) string {
	if len(h) > 19 {
		return h[:19]
	}
	return h
}

// Observe implements [Guard].
func (l *Local) Observe(ctx context.Context, c *Caller, op *Operation, out Outcome) error {
	// A call the upstream refused or never received did not use its quota.
	l.settle(out.Decision, out.Error == "" || out.IsError)
	data := map[string]any{
		"method": op.Method, "server": op.Server, "name": op.Name, "decision_event": out.Decision,
		"error": out.Error, "is_error": out.IsError, "result_sha256": out.ResultDigest,
		"result_bytes": out.ResultBytes, "duration_us": out.Duration.Microseconds(),
	}
	if len(out.Result) > 0 && l.recordsResult(op) {
		l.recordDoc(data, "result", op.Name, out.Result)
	}
	_, err := l.cfg.Audit.Append(ctx, audit.Event{
		Type: "result", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
		Data: mustJSON(data),
	})
	if err != nil {
		return fmt.Errorf("record result: %w", err)
	}
	if (out.Error == "" || out.Answered) && l.cfg.OnResult != nil {
		l.cfg.OnResult(ctx, c, op, out)
	}
	return nil
}

// recordsResult reports whether op's result is recorded.
func (l *Local) recordsResult(op *Operation) bool {
	r := l.cfg.Record.Results
	return len(r) > 0 && grant.Scope{Tools: r, Prompts: r, Resources: r}.Allows(scopeKind(kindOf(op.Action)), op.Name)
}

// recordDoc adds doc, redacted by the rules for name, to an event's data as
// field, with the redacted paths; or, if it cannot be recorded, field +
// "_omitted" saying why.
func (l *Local) recordDoc(data map[string]any, field, name string, doc []byte) {
	limit := l.cfg.Record.MaxBytes
	if len(doc) > limit {
		data[field+"_omitted"] = fmt.Sprintf("%d bytes, more than the %d recorded", len(doc), limit)
		return
	}
	out, paths, err := l.cfg.Record.Redactor.JSON(name, doc)
	switch {
	case err != nil:
		data[field+"_omitted"] = "not redactable: " + err.Error()
		return
	case len(out) > limit:
		data[field+"_omitted"] = fmt.Sprintf("%d bytes once redacted, more than the %d recorded", len(out), limit)
		return
	}
	data[field] = json.RawMessage(out)
	if len(paths) > 0 {
		data["redacted"] = paths
	}
}

// Notice implements [Guard].
func (l *Local) Notice(ctx context.Context, c *Caller, server, method string) error {
	return l.record(ctx, audit.Event{Type: "server.request", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
		Data: mustJSON(map[string]any{"server": server, "method": method})})
}

func (l *Local) record(ctx context.Context, e audit.Event) error {
	if _, err := l.cfg.Audit.Append(ctx, e); err != nil {
		return fmt.Errorf("record %s: %w", e.Type, err)
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{"error":"unencodable event data"}`)
	}
	return b
}
