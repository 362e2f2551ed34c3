package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

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

// escalate handles a decision that needs approval: if every requirement
// already has an approved request for this exact call, they are redeemed
// (consumed) and the call is allowed; otherwise the missing ones are
// submitted and the verdict lists their ids.
func (l *Local) escalate(ctx context.Context, c *Caller, op *Operation, d policy.Decision, reason string, policies []string) Verdict {
	if l.cfg.Approvals == nil {
		return Verdict{Reason: reason + "; no approval queue is configured, so the call is denied", Policies: policies}
	}
	args := op.Arguments
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	hash, err := approval.CallHash(op.Method, op.Name, args)
	if err != nil {
		return Verdict{Reason: "cannot escalate: " + err.Error(), Policies: policies}
	}
	reqs := requirements(d.Approvals)
	approved, err := l.cfg.Approvals.List(ctx, approval.Filter{Session: c.Session, CallHash: hash, State: approval.StateApproved})
	if err != nil {
		return Verdict{Reason: "approval queue unavailable: " + err.Error(), Policies: policies}
	}
	var missing []approval.Requirement
	for _, r := range reqs {
		if !slices.ContainsFunc(approved, func(a approval.Request) bool { return sameRequirement(a.Requirement, r) }) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		var ids []string
		for range reqs {
			got, ok, err := l.cfg.Approvals.Redeem(ctx, c.Session, op.Method, op.Name, args)
			if err != nil || !ok {
				return Verdict{Reason: "the approval could not be redeemed; retry the call", Policies: policies}
			}
			ids = append(ids, got.ID)
		}
		return Verdict{Allow: true, Reason: "approved (request " + strings.Join(ids, ", ") + "): " + reason, Policies: policies, Approvals: ids}
	}
	var ids []string
	for _, r := range missing {
		got, err := l.cfg.Approvals.Submit(ctx, approval.Request{
			Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, SPIFFEID: c.SPIFFEID, Objective: c.Objective,
			Server: op.Server, Method: op.Method, Name: op.Name, Arguments: args,
			Reasons: []string{reason}, Policies: policies, Requirement: r,
		})
		if err != nil {
			return Verdict{Reason: "needs approval, but the request could not be queued (denied): " + err.Error(), Policies: policies}
		}
		ids = append(ids, got.ID)
		if l.cfg.OnSubmit != nil && got.State == approval.StatePending && len(got.Votes) == 0 {
			l.cfg.OnSubmit(got.ID)
		}
	}
	return Verdict{Escalate: true, Reason: reason, Policies: policies, Approvals: ids}
}

// Await implements [Guard]: it waits until every listed approval request is
// decided or ctx ends, and reports the state that holds for all of them:
// "approved" only if all are, "denied"/"expired" if any is, else "pending".
func (l *Local) Await(ctx context.Context, c *Caller, ids []string) (string, error) {
	if l.cfg.Approvals == nil {
		return "", errors.New("no approval queue is configured")
	}
	state := approval.StateApproved
	for _, id := range ids {
		r, err := l.cfg.Approvals.Wait(ctx, id)
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
