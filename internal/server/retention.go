package server

import (
	"context"
	"errors"
	"time"

	"github.com/ward-dev/ward/internal/approval"
)

// RetentionSweep is how often a node with a Retention prunes the store.
const RetentionSweep = 10 * time.Minute

// Retention says how long the store keeps what is finished; zero keeps it
// for ever (the default: what the store lists is the operator's to drop).
// The audit log keeps everything regardless: it is append-only and
// records every session, approval and call, and receipts are made from it
// on demand (nothing stores them apart, so there are none to prune).
type Retention struct {
	// Approvals: approval requests denied, expired or used, or approved
	// for a session no longer active, are deleted this long after they
	// were made. Pending ones are never deleted.
	Approvals time.Duration
	// Sessions: a delegation tree whose sessions have all ended is
	// deleted, with its taint labels, this long after its last session
	// ended.
	Sessions time.Duration
}

// PruneRetained deletes from the store what Config.Retention lets go as
// of now, and returns how many approvals and sessions it deleted. Every
// node of several may run it: deleting is idempotent.
func (n *Node) PruneRetained(ctx context.Context, now time.Time) (approvals, sessions int64, err error) {
	r := n.cfg.Retention
	var err1, err2 error
	if r.Approvals > 0 {
		approvals, err1 = n.Store.PruneApprovals(ctx, now.Add(-r.Approvals),
			[]string{approval.StateDenied, approval.StateExpired, approval.StateUsed}, []string{approval.StateApproved})
	}
	if r.Sessions > 0 {
		sessions, err2 = n.Store.PruneSessions(ctx, now.Add(-r.Sessions))
	}
	return approvals, sessions, errors.Join(err1, err2)
}

// retain runs PruneRetained every RetentionSweep until ctx ends.
func (n *Node) retain(ctx context.Context) {
	if n.cfg.Retention == (Retention{}) {
		return
	}
	every(ctx, RetentionSweep, func() {
		a, s, err := n.PruneRetained(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			n.cfg.Logger.Warn("pruning finished approvals and sessions", "err", err)
		} else if a+s > 0 {
			n.cfg.Logger.Info("pruned finished approvals and sessions", "approvals", a, "sessions", s)
		}
	})
}
