package server

// The change feed, as a node follows it.
//
// A quarantine, a revocation (a session ended, by request, cascade,
// quarantine or expiry) and an approval's decision made on any node of a
// system are enforced on every node within FreshnessBound. The store
// numbers each such change in commit order (store/cluster.go); a node:
//
//  1. polls the store's change version every feedPoll, and at once when
//     PostgreSQL notifies a change (LISTEN; the notification only makes
//     the poll sooner, so a lost one costs at most feedPoll);
//  2. applies what it has not seen, in order: an ended session is
//     revoked here (cached lookups forgotten, live MCP sessions and egress
//     tokens closed), a changed agent's cached sessions are forgotten, an
//     approval's held calls are woken to read its state again;
//  3. remembers when the last poll that brought it up to date began.
//
// Every session lookup (every call, egress request, runtime start, token
// exchange) first asks whether that moment lies within FreshnessBound: if
// not, because the store is out of reach or slow, the node cannot tell
// whether a revocation made elsewhere applies, and refuses with 503 and a
// message that says so, until a poll succeeds again. A node that finds
// the feed pruned past what it applied (it was cut off longer than
// changeRetention) forgets every cached session, so each next call reads
// the store.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/store"
)

const (
	// FreshnessBound is how old a node's knowledge of other nodes'
	// revocations may be before it refuses calls that depend on them.
	FreshnessBound = time.Second
	// feedPoll is how often a node polls the change version; it leaves
	// FreshnessBound room for three polls, a missed notification and a
	// slow query.
	feedPoll = 250 * time.Millisecond
	// changeRetention is how long the store keeps applied changes.
	changeRetention = time.Hour
	// feedBatch is how many changes one read applies.
	feedBatch = 1000
	// relisten is how long the node waits before listening again after
	// losing its notification connection.
	relisten = time.Second
)

// feed follows the store's change feed for a node.
type feed struct {
	n       *Node
	applied atomic.Uint64 // the last change applied
	// fresh is when the last up-to-date poll began, as time since base:
	// monotonic, so a wall clock set back cannot make old knowledge
	// look fresh.
	fresh atomic.Int64
	base  time.Time
	kick  chan struct{}
	// keys is kicked when the system's keys changed: followKeys loads
	// them apart from the feed, which a slow load must not hold up.
	keys chan struct{}
	now  func() time.Time
	// deaf ignores notifications, leaving the poll alone to find
	// changes (to measure the bound a lost notification costs); paused
	// stops following the feed (to test a node that fell behind).
	deaf, paused atomic.Bool
	// deposed is why the node no longer holds its id (another process
	// took it: a copy of its data directory): it then refuses every call
	// that needs the store's state, for good.
	deposed atomic.Pointer[error]
}

// openFeed starts following the feed from the store's current version:
// a node that just opened has nothing cached that older changes could
// concern.
func (n *Node) openFeed(ctx context.Context) error {
	f := &feed{n: n, kick: make(chan struct{}, 1), keys: make(chan struct{}, 1), now: time.Now}
	f.base = f.now()
	start := f.now()
	v, err := n.Store.ChangeVersion(ctx)
	if err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	f.applied.Store(v)
	f.fresh.Store(int64(start.Sub(f.base)))
	n.feed = f
	return nil
}

// check is authority.Config.Fresh.
func (f *feed) check() error {
	if err := f.deposed.Load(); err != nil {
		return fmt.Errorf("%w: node %s no longer holds its id (%v): it refuses calls; stop whichever copy of this node's data directory should not run",
			authority.ErrUnavailable, f.n.nodeID, *err)
	}
	age := f.now().Sub(f.base) - time.Duration(f.fresh.Load())
	if age <= FreshnessBound {
		return nil
	}
	return fmt.Errorf("%w: node %s cannot confirm that it knows the revocations made on other nodes (it last reached the store %s ago, the bound is %s): it refuses calls until it reaches the store again; check the database",
		authority.ErrUnavailable, f.n.nodeID, age.Round(time.Millisecond), FreshnessBound)
}

// run follows the feed until ctx ends.
func (f *feed) run(ctx context.Context) {
	go f.listen(ctx)
	go f.followKeys(ctx)
	if f.n.leases != nil {
		go f.n.leases.run(ctx)
	}
	// Slow periodic work runs beside the poll, never in it: a prune or a
	// head publication (which waits for the log's next checkpoint) must
	// not make the node's knowledge of revocations stale.
	go every(ctx, time.Minute, func() { f.prune(ctx) })
	// The node's events go to the query index as they come (each pass
	// keeps what it indexed, a chunk at a time), apart from the head:
	// a backlog of rows must not hold up the head the peers cosign.
	go every(ctx, auditHeadEvery, func() {
		ictx, cancel := context.WithTimeout(ctx, auditHeadEvery)
		defer cancel()
		if err := f.n.IndexAudit(ictx); err != nil && ctx.Err() == nil {
			f.n.cfg.Logger.Warn("indexing this node's audit events in the store", "node", f.n.nodeID, "err", err)
		}
	})
	go every(ctx, auditHeadEvery, func() {
		hctx, cancel := context.WithTimeout(ctx, auditHeadEvery)
		defer cancel()
		if err := f.n.publishAuditHead(hctx); err != nil && ctx.Err() == nil {
			f.n.cfg.Logger.Error("publishing this node's audit head to the store failed (another node with this node's id, or a log behind what it published?)", "node", f.n.nodeID, "err", err)
		}
	})
	t := time.NewTicker(feedPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
		if f.paused.Load() {
			continue
		}
		if err := f.sync(ctx); err != nil && ctx.Err() == nil {
			f.n.cfg.Logger.Warn("following the change feed", "err", err)
		}
	}
}

// listen turns notifications into kicks, reconnecting when the
// connection is lost.
func (f *feed) listen(ctx context.Context) {
	for ctx.Err() == nil {
		l, err := f.n.Store.ListenChanges(ctx)
		if err == nil {
			for {
				seq, err := l.Wait(ctx)
				if err != nil {
					break
				}
				if seq > f.applied.Load() && !f.deaf.Load() {
					select {
					case f.kick <- struct{}{}:
					default:
					}
				}
			}
			l.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(relisten):
		}
	}
}

// sync applies every change up to the store's current version.
func (f *feed) sync(ctx context.Context) error {
	start := f.now()
	ctx, cancel := context.WithTimeout(ctx, FreshnessBound)
	defer cancel()
	if f.deposed.Load() != nil {
		return nil
	}
	if c := f.n.claim; c != nil {
		// Knowledge counts as fresh only while this process still holds
		// the node's id.
		if err := c.Check(ctx); err != nil {
			if errors.Is(err, store.ErrNodeClaimed) {
				f.deposed.Store(&err)
				f.n.cfg.Logger.Error("another process took this node's id: this node refuses calls from now on", "node", f.n.nodeID, "err", err)
			}
			return err
		}
	}
	v, err := f.n.Store.ChangeVersion(ctx)
	if err != nil {
		return err
	}
	for f.applied.Load() < v {
		after := f.applied.Load()
		changes, err := f.n.Store.ChangesSince(ctx, after, feedBatch)
		if err != nil {
			return err
		}
		if len(changes) == 0 || changes[0].Seq != after+1 {
			// Pruned past what this node applied: resync from the
			// store's state by forgetting what is cached.
			f.n.cfg.Logger.Warn("the change feed was pruned past what this node applied; resyncing from the store", "applied", after, "version", v)
			if err := f.resync(ctx); err != nil {
				return err
			}
			f.applied.Store(v)
			break
		}
		f.apply(ctx, changes)
		f.applied.Store(changes[len(changes)-1].Seq)
	}
	f.fresh.Store(int64(start.Sub(f.base)))
	return nil
}

// apply enforces changes here.
func (f *feed) apply(ctx context.Context, changes []store.Change) {
	var ended []string
	for _, c := range changes {
		switch c.Kind {
		case store.ChangeKeys:
			f.keysChanged()
		case store.ChangeSession:
			ended = append(ended, c.Subject)
		case store.ChangeAgent:
			f.n.Auth.AgentChanged(c.Subject)
		case store.ChangeLabel, store.ChangeUnlabel:
			f.n.applyLabel(c)
		case store.ChangeApproval:
			if err := f.n.Approvals.Changed(ctx, c.Subject); err != nil {
				f.n.cfg.Logger.Warn("an approval changed on another node", "approval", c.Subject, "err", err)
			}
		}
	}
	if len(ended) > 0 {
		f.n.Auth.EndedElsewhere(ended)
	}
}

// keysChanged asks followKeys to load the system's keys again.
func (f *feed) keysChanged() {
	select {
	case f.keys <- struct{}{}:
	default: // a load is already due; it will read the newest keys
	}
}

// keysReload bounds one load of the system's keys.
const keysReload = 10 * time.Second

// followKeys loads the system's keys each time they changed, until ctx
// ends. A failed load is tried again at the next change or resync, and
// every sweepKeys drops, on this node's own clock, what has retired.
func (f *feed) followKeys(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.keys:
		}
		rctx, cancel := context.WithTimeout(ctx, keysReload)
		err := f.n.reloadKeys(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			f.n.cfg.Logger.Error("the system's keys changed on another node, and this node could not load them: it keeps signing with the keys it has, which the other nodes trust until they retire", "err", err)
		}
	}
}

// fresh is authority.Config.Fresh: nil on a node alone on its store.
func (n *Node) fresh() error {
	if n.feed == nil {
		return nil
	}
	return n.feed.check()
}

// FeedApplied returns the number of the last change of the store's feed
// this node has applied (0 on a node alone on its store).
func (n *Node) FeedApplied() uint64 {
	if n.feed == nil {
		return 0
	}
	return n.feed.applied.Load()
}

// feedCheck is the store's readiness check on a node of several: not
// ready while it cannot confirm it knows the other nodes' revocations (a
// load balancer then sends calls elsewhere). It is n.fresh, the check
// every call is refused by, so readiness and refusals agree at every
// moment; it reads no store itself (the feed's poll does).
func (n *Node) feedCheck() api.Check {
	return api.Check{Name: "store", Run: func(context.Context) api.Status {
		if err := n.fresh(); err != nil {
			return api.Status{Reason: "the node cannot confirm it knows the other nodes' revocations", Detail: err.Error()}
		}
		return api.Status{OK: true}
	}}
}

// prune deletes what the nodes no longer need: changes older than
// changeRetention, the taint labels of sessions that ended as long ago,
// and budget leases that no longer count.
func (f *feed) prune(ctx context.Context) {
	now := f.now()
	_, err1 := f.n.Store.PruneChanges(ctx, now.Add(-changeRetention))
	_, err2 := f.n.Store.PruneSessionLabels(ctx, now.Add(-changeRetention))
	_, err3 := f.n.Store.PruneLeases(ctx, now)
	if err := errors.Join(err1, err2, err3); err != nil && ctx.Err() == nil {
		f.n.cfg.Logger.Warn("pruning what the nodes share", "err", err)
	}
}

// resync brings a node that missed part of the feed up to the store's
// state: every cached session is forgotten (the next call reads the
// store, which knows what ended), the labels of every active session are
// taken from the store, and calls held on pending approvals read them
// again.
func (f *feed) resync(ctx context.Context) error {
	f.n.Auth.ForgetCached()
	f.keysChanged()
	labels, err := f.n.Store.ActiveSessionLabels(ctx)
	if err != nil {
		return err
	}
	for session, ls := range labels {
		f.n.sessions.Seed(session, ls...)
	}
	return f.n.Approvals.ChangedAll(ctx)
}
