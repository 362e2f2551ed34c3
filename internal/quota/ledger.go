package quota

import (
	"time"
)

// Limits shared by several limiters.
//
// Several ward nodes enforce one set of limits together: a group's
// budget holds for the group's calls on every node. Each node's Limiter
// keeps its own sliding windows, which bound what that node admits; a
// [Ledger] (Config.Ledger) bounds what all of them admit together. After
// a call fits every local window, Reserve takes its cost from the ledger
// for every (limit, key) it is counted in, while holding those keys'
// locks; if the ledger has not enough left for one of them, the call is
// refused as exceeding that limit (with Used at Max: the budget is used
// up across nodes), and what was taken for the others is given back.
// [Reservation.Cancel] gives a refunded call's cost back to the ledger
// too. Usage restored from a snapshot or the audit log (Restore,
// ApplyCharges, RefundCharges) is this node's own history and does not
// touch the ledger, which keeps its own.
//
// A ledger error refuses the call (Reserve returns it): a node that
// cannot tell what the other nodes spent fails closed.

// Ledger is usage of limits shared with other limiters.
type Ledger interface {
	// Take takes amount of lim's usage for key at time now. ok false
	// means less than amount is left; retry says when to try again, if
	// known (0 otherwise).
	Take(lim Limit, key string, amount float64, now time.Time) (ok bool, retry time.Duration, err error)
	// Give gives back amount taken for lim and key at time at (a
	// refunded call).
	Give(lim Limit, key string, amount float64, at time.Time)
}

// takeShared takes every use's amount from the ledger, or nothing: on
// refusal it gives back what it took and returns the exceeded limit.
func (l *Limiter) takeShared(uses []use, now int64) ([]Exceeded, error) {
	t := time.Unix(0, now)
	for i, u := range uses {
		if u.amount == 0 {
			continue
		}
		ok, retry, err := l.ledger.Take(u.lim.public(), u.key.key, u.amount, t)
		if err == nil && ok {
			continue
		}
		for _, back := range uses[:i] {
			if back.amount != 0 {
				l.ledger.Give(back.lim.public(), back.key.key, back.amount, t)
			}
		}
		if err != nil {
			return nil, err
		}
		if retry <= 0 {
			retry = time.Duration(u.lim.window)
		}
		return []Exceeded{{Limit: u.lim.public(), Key: u.key.key, Used: u.lim.Max, Requested: u.amount, Max: u.lim.Max, RetryAfter: retry}}, nil
	}
	return nil, nil
}
