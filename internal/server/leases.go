package server

// Budgets across nodes.
//
// On a node of several, every limit (quota.Limit) is also a budget
// shared with the other nodes, kept exact by leases (store/leases.go):
// the node's limiter asks leaseLedger for each call's cost (quota.Ledger),
// which spends it from the lease the node holds for that (limit, key),
// and only when the lease is spent or expired takes a new one from the
// store, in one transaction. So the database round trip is off the
// per-call path except once per lease. A lease is about a tenth of the
// limit (never more than half of what is left, at least the call's
// cost) and lasts leaseTTL; what a node did not spend goes back when the
// lease expires (swept every leaseSweep), when it takes the next one, and
// when the node stops. A call that finds the budget used up across nodes
// is refused as exceeding the limit; a node that cannot reach the store
// for a lease refuses the call (fails closed).
//
// The cost of exactness: units leased by one node and not yet spent are
// unavailable to the others until that lease is spent, expires or is
// returned, so near the end of a budget a call may be refused on one node
// while another still holds a few units (at most leaseTTL).

import (
	"context"
	"sync"
	"time"

	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/store"
)

const (
	// leaseTTL is how long a budget lease may be spent.
	leaseTTL = 5 * time.Second
	// leaseShare is the part of a limit one lease asks for (1/leaseShare).
	leaseShare = 10
	// leaseSweep is how often expired leases are given back.
	leaseSweep = time.Second
)

type leaseKey struct{ limit, scope, key string }

// leaseLedger is quota.Ledger over the store's budget leases.
type leaseLedger struct {
	st   *store.Store
	node string
	mu   sync.Mutex
	keys map[leaseKey]*leaseState
}

// leaseState is the lease a node holds for one budget key.
type leaseState struct {
	mu      sync.Mutex
	id      string
	amount  float64
	spent   float64
	granted time.Time
	expires time.Time
}

var _ quota.Ledger = (*leaseLedger)(nil)

func newLeaseLedger(st *store.Store, node string) *leaseLedger {
	return &leaseLedger{st: st, node: node, keys: map[leaseKey]*leaseState{}}
}

func (l *leaseLedger) state(lim quota.Limit, key string) *leaseState {
	k := leaseKey{lim.ID, string(lim.Scope), key}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.keys[k]
	if s == nil {
		s = &leaseState{}
		l.keys[k] = s
	}
	return s
}

// Take implements quota.Ledger.
func (l *leaseLedger) Take(lim quota.Limit, key string, amount float64, now time.Time) (bool, time.Duration, error) {
	s := l.state(lim, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" && now.Before(s.expires) && s.amount-s.spent >= amount {
		s.spent += amount
		return true, 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), FreshnessBound)
	defer cancel()
	if s.id != "" {
		// Spent or expired: give back what is left before asking again.
		if err := l.st.ReturnLease(ctx, s.id, s.spent); err != nil {
			return false, 0, err
		}
		s.id = ""
	}
	lease, err := l.st.TakeLease(ctx, store.LeaseRequest{Limit: lim.ID, Scope: string(lim.Scope), Key: key, Node: l.node,
		Max: lim.Max, Window: lim.Window, Want: max(amount, lim.Max/leaseShare), Need: amount, TTL: leaseTTL, Now: now})
	if err != nil {
		return false, 0, err
	}
	if lease.Amount == 0 {
		return false, lease.RetryAfter, nil
	}
	s.id, s.amount, s.spent, s.granted, s.expires = lease.ID, lease.Amount, amount, now, lease.Expires
	return true, 0, nil
}

// Give implements quota.Ledger: a refund goes back to the lease it was
// spent from, if that is still the one held (else that lease was
// returned counting it as spent, which only errs towards refusing).
func (l *leaseLedger) Give(lim quota.Limit, key string, amount float64, at time.Time) {
	s := l.state(lim, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" && !at.Before(s.granted) && s.spent >= amount {
		s.spent -= amount
	}
}

// run gives back expired leases until ctx ends.
func (l *leaseLedger) run(ctx context.Context) {
	every(ctx, leaseSweep, func() { l.returnAll(ctx, false) })
}

// returnAll gives back the unspent part of every expired lease, or of
// every lease if all.
func (l *leaseLedger) returnAll(ctx context.Context, all bool) error {
	l.mu.Lock()
	states := make([]*leaseState, 0, len(l.keys))
	for _, s := range l.keys {
		states = append(states, s)
	}
	l.mu.Unlock()
	var firstErr error
	now := time.Now()
	for _, s := range states {
		s.mu.Lock()
		if s.id != "" && (all || !now.Before(s.expires)) {
			if err := l.st.ReturnLease(ctx, s.id, s.spent); err != nil && firstErr == nil {
				firstErr = err
			}
			s.id = ""
		}
		s.mu.Unlock()
	}
	return firstErr
}

// close gives back every lease the node holds, as it stops.
func (l *leaseLedger) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.returnAll(ctx, true)
}

// quotaLedger is the limiter's ledger: nil on a node alone on its store.
func (n *Node) quotaLedger() quota.Ledger {
	if n.leases == nil {
		return nil
	}
	return n.leases
}
