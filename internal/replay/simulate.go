package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
)

// Content scanning as the node does it: a result whose scan.Score reaches
// SuspiciousScore gives the session SuspiciousLabel.
const (
	SuspiciousScore = enforce.SuspiciousScore
	SuspiciousLabel = enforce.SuspiciousLabel
)

// simulator decides each record through the node's own enforcement
// pipeline (enforce.Pipeline.Evaluate), with the node's per-session state
// (enforce.Sessions): what replay reports is what a node would decide.
// What a node has and a trace does not is left out: grants (a replayed
// session may call anything), tool pins (a trace carries no approvals),
// quotas, the monitor and approvals (a recorded "approved" stands for
// one).
type simulator struct {
	pipeline *enforce.Pipeline
	sessions *enforce.Sessions
	callers  map[string]*enforce.Caller // by session, for sub-agents' parents
}

// everything is the scope of a replayed session: traces record no grant.
var everything = grant.Scope{Tools: []string{"*"}, Prompts: []string{"*"}, Resources: []string{"*"}, Hosts: []string{"*"}}

func newSimulator(set *policy.Set, opt Options) (*simulator, error) {
	sessions := enforce.NewSessions(enforce.SessionsConfig{Labeler: opt.Labels, EventName: "line", ScanResults: opt.ScanResults})
	p, err := enforce.New(enforce.Config{Policies: func() *policy.Set { return set }, Tools: opt.Tools, Roots: opt.Roots, State: sessions})
	if err != nil {
		return nil, err
	}
	return &simulator{pipeline: p, sessions: sessions, callers: map[string]*enforce.Caller{}}, nil
}

// state is the session being replayed.
type state struct {
	caller *enforce.Caller
	sum    *Session
	// firstStop is the line of the first call denied or escalated,
	// approved or not.
	firstStop int
}

// start opens the session of a session record.
//
// A session with a parent is a sub-agent's, as the node has it: it gets
// its parent's labels and shares its delegation tree (enforce.Sessions.
// Delegated), its lineage is its parent's and its delegators, unless the
// record names them, are its parent's agent (if another) and the parent's
// delegators.
func (s *simulator) start(rec *record, line int) (*state, error) {
	c := &enforce.Caller{Session: rec.session, Agent: rec.agent, Sponsor: rec.sponsor, Groups: rec.groups,
		Depth: rec.depth, Trust: rec.trust, Objective: rec.objective, Scope: everything, Delegators: rec.delegators}
	if rec.parent != "" {
		pc := s.callers[rec.parent]
		if pc == nil {
			return nil, fmt.Errorf("parent session %q is not a session of the trace before this one", rec.parent)
		}
		c.Lineage = append([]string{pc.Session}, pc.Lineage...)
		if rec.delegators == nil {
			seen := map[string]bool{c.Agent: true}
			for _, d := range append([]enforce.Delegator{{Agent: pc.Agent, Groups: pc.Groups, Trust: pc.Trust}}, pc.Delegators...) {
				if !seen[d.Agent] {
					seen[d.Agent] = true
					c.Delegators = append(c.Delegators, d)
				}
			}
		}
		s.sessions.Delegated(pc.Session, c.Session)
	}
	s.callers[c.Session] = c
	return &state{
		caller: c,
		sum: &Session{Line: line, ID: rec.session, Label: rec.label, Domain: rec.domain, TaskSucceeded: rec.taskSucceeded,
			Followed: rec.label == LabelAttack && (rec.followed == nil || *rec.followed)},
	}, nil
}

// readOnlyDefinition stands for the definition of a tool recorded only as
// read_only: annotated readOnlyHint, and nothing else.
var readOnlyDefinition = json.RawMessage(`{"annotations":{"readOnlyHint":true}}`)

// operation is what a node would be asked to decide for rec.
func operation(rec *record) *enforce.Operation {
	recorded := &enforce.Recorded{Taint: rec.taint}
	switch rec.typ {
	case "http":
		return &enforce.Operation{Action: policy.ActionHTTPRequest, Name: rec.host, Recorded: recorded,
			HTTP: &policy.HTTPRequest{Method: rec.method, Scheme: rec.scheme, Host: rec.host, Port: rec.port, Path: rec.path}}
	case "exec":
		return &enforce.Operation{Action: policy.ActionExec, Name: rec.command, Recorded: recorded,
			Exec: &policy.ExecRequest{Command: rec.command, Args: rec.args, Dir: rec.cwd}}
	}
	recorded.Verb, recorded.Impact, recorded.Dataset, recorded.Path = rec.verb, rec.impact, rec.dataset, rec.path
	op := &enforce.Operation{Action: methods[rec.method], Method: rec.method, Server: rec.server, Name: rec.name,
		Upstream: rec.name, Arguments: rec.arguments, Definition: rec.definition, Recorded: recorded}
	if rec.method == "tools/call" || rec.method == "prompts/get" {
		op.Upstream = strings.TrimPrefix(rec.name, rec.server+".")
	}
	if op.Definition == nil && rec.readOnly {
		op.Definition = readOnlyDefinition
	}
	return op
}

// decide decides one call, http or exec record of session st as the node
// would, then takes in its result if ward would have let the call through.
func (s *simulator) decide(st *state, rec *record, line int) Call {
	ctx := context.Background()
	op := operation(rec)
	if rec.definition != nil {
		// The agent was shown the tool's definition before it called
		// it: taken in as a node takes in a listing.
		s.sessions.Receive(ctx, st.caller, enforce.Listed(rec.server, uint64(line), json.RawMessage("["+string(rec.definition)+"]")))
	}
	ev := s.pipeline.Evaluate(ctx, st.caller, op)
	req := ev.Request
	taint := slices.Compact(slices.Sorted(slices.Values(slices.Concat(rec.taint, s.sessions.Labels(st.caller.Session)))))
	if len(taint) == 0 {
		taint = nil
	}
	c := Call{Line: line, Session: st.caller.Session, Method: rec.method, Taint: taint,
		Harmful: rec.harmful, Approved: rec.approved, Sink: req.Sink, TaintedArguments: req.TaintedArguments,
		Outcome: ev.Verdict.Outcome(), Reason: ev.Verdict.Reason, Policies: ev.Verdict.Policies}
	switch rec.typ {
	case "http":
		c.Method, c.Name, c.HTTP = "http", rec.host, op.HTTP
	case "exec":
		c.Method, c.Name, c.Exec = "exec", rec.command, op.Exec
	default:
		c.Server, c.Name, c.Arguments, c.Dataset, c.Path = rec.server, rec.name, rec.arguments, rec.dataset, rec.path
	}
	for _, a := range ev.Decision.Approvals {
		c.Approvals = append(c.Approvals, a.String())
	}
	if ev.Verdict.Allow || ev.Verdict.Escalate && rec.approved {
		s.take(ctx, st, rec, line)
	}
	return c
}

// take gives the session what the answer to a call it made carries, as a
// node does with what the agent receives: the result, or the error (an
// upstream's error message is its words too). A record with neither
// returned nothing to take; a program's output is not taken in, as live.
func (s *simulator) take(ctx context.Context, st *state, rec *record, line int) {
	answer, message := rec.result, ""
	if rec.failed {
		answer, message = rec.errValue, errorMessage(rec.errValue)
	}
	if answer == nil {
		return
	}
	switch rec.typ {
	case "http":
		s.sessions.Receive(ctx, st.caller, enforce.Received{Host: rec.host, Event: uint64(line), Body: answer})
	case "exec":
	default:
		s.sessions.Receive(ctx, st.caller, enforce.Received{Source: rec.name, Arguments: rec.arguments, Event: uint64(line), Result: answer, Error: message})
	}
}

// notice takes in a message a server sent the client (a "notice"
// record) as a node does before passing it on.
func (s *simulator) notice(st *state, rec *record, line int) {
	if r, ok := enforce.Noticed(rec.server, rec.method, uint64(line), rec.params); ok {
		s.sessions.Receive(context.Background(), st.caller, r)
	}
}

// errorMessage is what a recorded error says, as a node reads a JSON-RPC
// error: its "message" if it is an object with one, the string if it is
// a string, else the JSON text.
func errorMessage(v json.RawMessage) string {
	var obj struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(v, &obj) == nil && obj.Message != nil {
		return *obj.Message
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}
