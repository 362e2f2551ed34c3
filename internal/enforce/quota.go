package enforce

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/quota"
)

// reservationKey names a reservation: the session whose call made it and
// the audit index of the call's decision. An outcome settles only a
// reservation of its own session.
type reservationKey struct {
	session string
	event   uint64
}

type reservation struct {
	res *quota.Reservation
	at  time.Time
}

// quotaCall is what the limiter counts of op by c.
//
// A sub-agent's call counts against the budgets of the sessions, agents
// and groups it was delegated from too: delegating never widens a budget.
func quotaCall(c *Caller, op *Operation) quota.Call {
	call := quota.Call{Session: c.Session, Lineage: c.Lineage, Agent: c.Agent, Sponsor: c.Sponsor, Groups: c.Groups, Action: string(op.Action), Tool: op.Name}
	for _, d := range c.Delegators {
		call.Delegators = append(call.Delegators, d.Agent)
		call.Groups = append(slices.Clip(call.Groups), d.Groups...)
	}
	return call
}

// reserve applies the quotas to a call that would go ahead. It returns the
// reservation, or a verdict replacing the policy's when a limit is
// exceeded (deny, or escalate with the limit's approvers).
func (p *Pipeline) reserve(c *Caller, op *Operation) (*quota.Reservation, *Verdict) {
	if p.cfg.Quotas == nil || op.Method == "" {
		return nil, nil
	}
	call := quotaCall(c, op)
	call.Costs = numericArguments(op.Arguments)
	res, exceeded, err := p.cfg.Quotas.Reserve(call)
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
		a, ok := p.cfg.Approvers[e.Limit.ID]
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
// costs ("rows", "amount"); a limit with a cost reads it from here. A
// number that is not finite in float64 is left out, so a limit that needs
// it denies the call.
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

// keep holds a reservation until the outcome of its call is observed. A
// reservation whose outcome never comes (an agent-side proxy that went
// away) is kept as spent after ReservationTTL.
func (p *Pipeline) keep(session string, event uint64, res *quota.Reservation) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reservations[reservationKey{session, event}] = reservation{res: res, at: now}
	if len(p.reservations)%1024 == 0 {
		for k, r := range p.reservations {
			if now.Sub(r.at) > p.cfg.ReservationTTL {
				delete(p.reservations, k)
			}
		}
	}
}

// settle takes the reservation of session's call decided as event out of
// those waiting for their outcome (nil if none): the caller refunds it if
// the call did not happen. Another session's reservation is never
// touched.
func (p *Pipeline) settle(session string, event uint64) *quota.Reservation {
	k := reservationKey{session, event}
	p.mu.Lock()
	r, ok := p.reservations[k]
	delete(p.reservations, k)
	p.mu.Unlock()
	if !ok {
		return nil
	}
	return r.res
}

// Reservations returns how many reservations wait for their outcome.
func (p *Pipeline) Reservations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reservations)
}
