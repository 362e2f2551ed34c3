package enforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/policy"
)

// Approvals is the queue escalated calls go to.
type Approvals interface {
	Submit(ctx context.Context, r approval.Request) (approval.Request, error)
	List(ctx context.Context, f approval.Filter) ([]approval.Request, error)
	Redeem(ctx context.Context, session, method, name string, args json.RawMessage) (approval.Request, bool, error)
	Wait(ctx context.Context, id string) (approval.Request, error)
}

// requirements turns the approvals a decision asks for into queue
// requirements, one per distinct requirement. Approvals are single-use: an
// approval lets exactly one call through.
func requirements(as []policy.Approval) []approval.Requirement {
	var out []approval.Requirement
	for _, a := range as {
		r := approval.Requirement{Quorum: a.Quorum, Groups: slices.Sorted(slices.Values(a.Groups)), Timeout: a.Timeout, SingleUse: true}
		if !slices.ContainsFunc(out, func(x approval.Requirement) bool { return sameRequirement(x, r) }) {
			out = append(out, r)
		}
	}
	return out
}

func sameRequirement(a, b approval.Requirement) bool {
	return a.Quorum == b.Quorum && slices.Equal(slices.Sorted(slices.Values(a.Groups)), slices.Sorted(slices.Values(b.Groups))) &&
		(a.Timeout == b.Timeout || a.Timeout == 0 || b.Timeout == 0)
}

// callArgs are the arguments an approval is bound to: {} for none.
func callArgs(op *Operation) json.RawMessage {
	if len(op.Arguments) == 0 {
		return json.RawMessage(`{}`)
	}
	return op.Arguments
}

// escalation is what an escalated decision turns into before anything is
// recorded: either the call is allowed with approvals already granted for
// it, which are redeemed (claimed) here, or the requirements still missing
// are to be submitted once the decision is recorded.
type escalation struct {
	verdict Verdict
	missing []approval.Requirement
}

// escalate looks for approved requests for this exact call. If every
// requirement has one, they are redeemed and the call is allowed; otherwise
// the verdict escalates and missing lists what to submit. Redeeming is the
// only change it makes: an approval that lets a call through is consumed
// before the decision is recorded, so that two calls cannot both use it.
func (p *Pipeline) escalate(ctx context.Context, c *Caller, op *Operation, d policy.Decision, reason string, policies []string) escalation {
	deny := func(why string) escalation {
		return escalation{verdict: Verdict{Reason: why, Policies: policies}}
	}
	if p.cfg.Approvals == nil {
		return deny(reason + "; no approval queue is configured, so the call is denied")
	}
	args := callArgs(op)
	hash, err := approval.CallHash(op.Method, op.Name, args)
	if err != nil {
		return deny("cannot escalate: " + err.Error())
	}
	// A veto holds for the call, not for one request: the identical
	// retry is denied for as long as an approval would have lasted,
	// rather than put to the approvers again (an agent that asks until
	// someone gives in wears the approvers down).
	denied, err := p.cfg.Approvals.List(ctx, approval.Filter{Session: c.Session, CallHash: hash, State: approval.StateDenied})
	if err != nil {
		return deny("approval queue unavailable: " + err.Error())
	}
	now := p.cfg.Now()
	for _, r := range denied {
		for _, v := range r.Votes {
			if !v.Approve && now.Before(v.Time.Add(r.Requirement.Timeout)) {
				why := "vetoed by " + v.Voter + " (request " + r.ID + ")"
				if v.Reason != "" {
					why += ": " + v.Reason
				}
				return deny(why + "; the same call stays denied until " + v.Time.Add(r.Requirement.Timeout).UTC().Format(time.RFC3339))
			}
		}
	}
	reqs := requirements(d.Approvals)
	approved, err := p.cfg.Approvals.List(ctx, approval.Filter{Session: c.Session, CallHash: hash, State: approval.StateApproved})
	if err != nil {
		return deny("approval queue unavailable: " + err.Error())
	}
	var missing []approval.Requirement
	for _, r := range reqs {
		if !slices.ContainsFunc(approved, func(a approval.Request) bool { return sameRequirement(a.Requirement, r) }) {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return escalation{verdict: Verdict{Escalate: true, Reason: reason, Policies: policies}, missing: missing}
	}
	var ids []string
	for range reqs {
		got, ok, err := p.cfg.Approvals.Redeem(ctx, c.Session, op.Method, op.Name, args)
		if err != nil || !ok {
			return deny("the approval could not be redeemed (another call may have used it); retry the call")
		}
		ids = append(ids, got.ID)
	}
	return escalation{verdict: Verdict{Allow: true, Reason: "approved (request " + strings.Join(ids, ", ") + "): " + reason, Policies: policies, Approvals: ids}}
}

// submit queues the missing requirements of an escalated call whose
// decision is recorded as event, and returns the ids of the requests it
// waits for.
func (p *Pipeline) submit(ctx context.Context, c *Caller, op *Operation, v Verdict, event uint64, missing []approval.Requirement, prov []approval.ArgumentProvenance) ([]string, error) {
	var ids []string
	for _, r := range missing {
		got, err := p.cfg.Approvals.Submit(ctx, approval.Request{
			Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, SPIFFEID: c.SPIFFEID, Objective: c.Objective,
			Server: op.Server, Method: op.Method, Name: op.Name, Arguments: callArgs(op),
			Reasons: []string{v.Reason}, Policies: v.Policies, Provenance: prov, Requirement: r, Decision: event,
		})
		if err != nil {
			return ids, err
		}
		ids = append(ids, got.ID)
		if p.cfg.OnSubmit != nil && got.State == approval.StatePending && len(got.Votes) == 0 {
			p.cfg.OnSubmit(got.ID)
		}
	}
	return ids, nil
}

// Await waits, at most until ctx ends, until every listed approval request
// is decided, and reports the state that holds for all of them: "approved"
// only if all are, "denied"/"expired" if any is, else "pending".
func (p *Pipeline) Await(ctx context.Context, c *Caller, ids []string) (string, error) {
	if p.cfg.Approvals == nil {
		return "", errors.New("no approval queue is configured")
	}
	state := approval.StateApproved
	for _, id := range ids {
		r, err := p.cfg.Approvals.Wait(ctx, id)
		if err != nil && r.State == "" {
			if ctx.Err() != nil {
				return approval.StatePending, nil
			}
			return "", fmt.Errorf("approval %s: %w", id, err)
		}
		if r.Session != c.Session {
			return "", fmt.Errorf("approval %s belongs to another session", id)
		}
		switch r.State {
		case approval.StateApproved:
		case approval.StatePending:
			state = approval.StatePending
		default:
			return r.State, nil
		}
	}
	return state, nil
}
