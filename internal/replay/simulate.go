package replay

import (
	"slices"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/provenance"
	"github.com/ward-dev/ward/internal/scan"
	"github.com/ward-dev/ward/internal/taint"
)

// Content scanning as the node does it (internal/server): a result whose
// scan.Score reaches SuspiciousScore gives the session SuspiciousLabel.
const (
	SuspiciousScore = 3
	SuspiciousLabel = "suspicious"
)

// simulator does, around each decision, what the live node does besides
// policy: taint labels, argument provenance and content scanning.
type simulator struct {
	opt     Options
	tracker *taint.Tracker
}

// state is the session being replayed.
type state struct {
	req policy.Request // the template: who is calling
	ix  *provenance.Index
	sum *Session
}

// start opens the session of a session record.
func (s *simulator) start(rec *record, line int) *state {
	ix := provenance.New(provenance.Config{})
	ix.AddTrusted(rec.objective)
	return &state{
		req: policy.Request{Session: rec.session, Agent: rec.agent, Sponsor: rec.sponsor, Groups: rec.groups,
			Depth: rec.depth, Trust: rec.trust},
		ix:  ix,
		sum: &Session{Line: line, ID: rec.session, Label: rec.label},
	}
}

// decide decides one call, http or exec record of session st, as the
// gateway's decide does, then takes in its result if ward would have let
// the call through.
func (s *simulator) decide(set *policy.Set, st *state, rec *record, line int) Call {
	req := st.req
	req.Taint = labels(rec.taint, s.tracker.Labels(req.Session))
	c := Call{Line: line, Session: req.Session, Method: rec.method, Taint: req.Taint, Harmful: rec.harmful, Approved: rec.approved}
	var decl gateway.ToolDeclaration
	switch rec.typ {
	case "http":
		h := &policy.HTTPRequest{Method: rec.method, Scheme: rec.scheme, Host: rec.host, Port: rec.port, Path: rec.path}
		req.Action, req.HTTP = policy.ActionHTTPRequest, h
		c.Method, c.Name, c.HTTP = "http", rec.host, h
	case "exec":
		e := &policy.ExecRequest{Command: rec.command, Args: rec.args, Dir: rec.cwd}
		req.Action, req.Exec = policy.ActionExec, e
		c.Method, c.Name, c.Exec = "exec", rec.command, e
	default:
		req.Action = methods[rec.method]
		req.Server, req.Name = rec.server, rec.name
		req.Arguments, req.Verb, req.Impact = rec.arguments, rec.verb, rec.impact
		req.Dataset, req.Path = rec.dataset, rec.path
		c.Server, c.Name, c.Arguments, c.Dataset, c.Path = rec.server, rec.name, rec.arguments, rec.dataset, rec.path
		if req.Action == policy.ActionCallTool {
			decl = s.opt.Tools[rec.name]
			req.Sink = !rec.readOnly
			if decl.Sink != nil {
				req.Sink = *decl.Sink
			}
		}
	}
	explain := ""
	if req.Sink {
		paths := decl.Consequential
		if paths == nil {
			paths = gateway.DefaultConsequential
		}
		var err error
		if req.TaintedArguments, explain, err = check(st.ix, req.Arguments, paths); err != nil {
			c.Sink, c.Outcome, c.Reason = true, "deny", "could not check where the arguments came from: "+err.Error()
			return c
		}
	}
	c.Sink, c.TaintedArguments = req.Sink, req.TaintedArguments
	d := set.Decide(req)
	c.Outcome, c.Reason = d.Outcome(), d.Explain(req)
	if explain != "" && !d.Allow {
		c.Reason += "; " + explain
	}
	for _, r := range d.Reasons {
		c.Policies = append(c.Policies, r.PolicyID)
	}
	for _, a := range d.Approvals {
		c.Approvals = append(c.Approvals, a.String())
	}
	if d.Allow || d.Escalate && rec.approved {
		s.take(st, rec, line)
	}
	return c
}

// take gives the session what the result of a call it made carries, as the
// node's onResult (tools) and egress OnResponse (hosts) do. A record
// without a result, or with an error, returned nothing to take.
func (s *simulator) take(st *state, rec *record, line int) {
	if rec.result == nil || rec.failed {
		return
	}
	session := st.req.Session
	switch rec.typ {
	case "http":
		s.tracker.Add(session, s.opt.Labels.Host(rec.host)...)
		return
	case "exec":
		return
	}
	ls := s.opt.Labels.Tool(rec.name)
	s.tracker.Add(session, ls...)
	switch {
	case slices.Contains(ls, taint.Untrusted):
		st.ix.AddUntrusted(rec.name, uint64(line), rec.result)
	case slices.Equal(ls, []string{taint.Trusted}):
		st.ix.AddTrustedResult(rec.result)
	}
	var hits []scan.Hit
	for _, t := range scan.Texts(rec.result, 0) {
		hits = append(hits, scan.Result(t)...)
	}
	if scan.Score(hits) >= SuspiciousScore {
		s.tracker.Add(session, SuspiciousLabel)
	}
}

// check is the node's provenance check: the tainted consequential
// arguments of a sink call, and why, in the node's words. The event of a
// finding is the trace line of the result.
func check(ix *provenance.Index, args []byte, paths []string) ([]string, string, error) {
	findings, err := ix.Check(args, paths)
	if err != nil {
		return nil, "", err
	}
	tainted, why := provenance.Explain(findings, "line")
	return tainted, why, nil
}

// labels is the sorted union of the labels recorded with a call and those
// the replay gave its session; nil if none.
func labels(recorded, simulated []string) []string {
	if len(recorded) == 0 && len(simulated) == 0 {
		return nil
	}
	out := slices.Concat(recorded, simulated)
	slices.Sort(out)
	return slices.Compact(out)
}
