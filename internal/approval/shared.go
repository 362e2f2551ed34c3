package approval

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Queues sharing one store.
//
// Several ward nodes may keep their queues in one store, each node's
// Queue a writer of it. Two things then change:
//
//   - A vote and the redemption of a single-use approval read a request
//     and write it back on the strength of what they read. A Store that
//     implements [Updater] runs that read and write as one step held
//     against every other writer (a row lock in PostgreSQL), so votes cast
//     on different nodes at once are all counted, a quorum is reached
//     once, and a single-use approval is redeemed once. A Store that does
//     not is used, as before, by one Queue only.
//   - A request submitted on one node may be decided on another. The node
//     that learns of a change from elsewhere (its change feed) calls
//     [Queue.Changed]: calls held on the request wake and read it again,
//     and the counts of pending requests are taken from the store afresh.

// Updater is implemented by a Store that several Queues share. Update
// reads request id, calls fn with it and stores what fn returns, as one
// step that no other writer interleaves with; fn may run more than once
// and must have no other effect. An error from fn stores nothing and is
// returned as is; an unknown id wraps ErrNotFound.
type Updater interface {
	Update(ctx context.Context, id string, fn func(Request) (Request, error)) (Request, error)
}

// errGone tells, inside an update, that the request is no longer
// approved: nothing is stored.
var errGone = errors.New("no longer approved")

// Changed tells the queue that request id changed in the store by
// another writer: calls waiting on it read it again, and the pending
// counts are recounted from the store.
func (q *Queue) Changed(ctx context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ch := q.waiters[id]; ch != nil {
		close(ch)
		delete(q.waiters, id)
	}
	pending, err := q.store.List(ctx, Filter{State: StatePending})
	if err != nil {
		return fmt.Errorf("recount pending requests: %w", err)
	}
	q.pending = len(pending)
	clear(q.bySession)
	clear(q.bySponsor)
	for _, r := range pending {
		q.bySession[r.Session]++
		q.bySponsor[r.Sponsor]++
	}
	return nil
}

// ChangedAll is Changed for every request: for a queue that may have
// missed changes made by other writers.
func (q *Queue) ChangedAll(ctx context.Context) error {
	q.mu.Lock()
	for id, ch := range q.waiters {
		close(ch)
		delete(q.waiters, id)
	}
	q.mu.Unlock()
	return q.Changed(ctx, "")
}

// voteShared is Vote on a store that implements Updater. q.mu must be
// held.
func (q *Queue) voteShared(ctx context.Context, u Updater, id string, v Voter, approve bool, reason string, now time.Time) (Request, error) {
	var before string
	r, err := u.Update(ctx, id, func(r Request) (Request, error) {
		before = r.State
		if (r.State == StatePending || r.State == StateApproved) && !now.Before(r.Expires) {
			r.State = StateExpired
			return r, nil
		}
		return q.cast(r, v, approve, reason, now)
	})
	if err != nil {
		return Request{}, fmt.Errorf("vote: %w", err)
	}
	q.effects(before, r)
	if r.State == StateExpired && before != StateExpired {
		return Request{}, fmt.Errorf("vote on %s: request is %s: %w", id, r.State, ErrClosed)
	}
	return r.clone(), nil
}

// cast adds v's vote to r, checking as Vote documents.
func (q *Queue) cast(r Request, v Voter, approve bool, reason string, now time.Time) (Request, error) {
	id := r.ID
	if r.State != StatePending {
		return r, fmt.Errorf("vote on %s: request is %s: %w", id, r.State, ErrClosed)
	}
	kind, groups, err := eligible(&r, v)
	if err != nil {
		return r, fmt.Errorf("vote on %s: %w", id, err)
	}
	if approve && selfApproval(&r, v) {
		return r, fmt.Errorf("vote on %s: voter %q: %w", id, v.Name, ErrSelfApproval)
	}
	for _, x := range r.Votes {
		if x.Voter == v.Name {
			return r, fmt.Errorf("vote on %s: voter %q: %w", id, v.Name, ErrDuplicateVote)
		}
	}
	r.Votes = append(r.Votes, Vote{Voter: v.Name, Groups: groups, Approve: approve, Reason: reason, Time: now, Kind: kind})
	switch {
	case !approve:
		r.State = StateDenied
	case approvals(&r) >= r.Requirement.Quorum:
		r.State = StateApproved
		r.Expires = now.Add(r.Requirement.Timeout)
	}
	return r, nil
}

// useShared marks approved request id used, on a store that implements
// Updater, and reports whether this call did (false: another writer used
// or expired it first). q.mu must be held.
func (q *Queue) useShared(ctx context.Context, u Updater, id string, now time.Time) (Request, bool, error) {
	var before string
	r, err := u.Update(ctx, id, func(r Request) (Request, error) {
		before = r.State
		if r.State != StateApproved {
			return r, errGone
		}
		if !now.Before(r.Expires) {
			r.State = StateExpired
			return r, nil
		}
		r.State = StateUsed
		return r, nil
	})
	if errors.Is(err, errGone) {
		return Request{}, false, nil
	}
	if err != nil {
		return Request{}, false, err
	}
	q.effects(before, r)
	return r, r.State == StateUsed, nil
}

// settleShared resolves request id to expired, on a store that implements
// Updater, only if it is still pending or approved and past its time as
// stored: a vote another writer recorded meanwhile is never overwritten.
// q.mu must be held.
func (q *Queue) settleShared(ctx context.Context, u Updater, id string, now time.Time) (Request, error) {
	var before string
	r, err := u.Update(ctx, id, func(r Request) (Request, error) {
		before = r.State
		if (r.State == StatePending || r.State == StateApproved) && !now.Before(r.Expires) {
			r.State = StateExpired
		}
		return r, nil
	})
	if err != nil {
		return Request{}, fmt.Errorf("expire %s: %w", id, err)
	}
	if r.State != before {
		q.effects(before, r)
	}
	return r, nil
}
