package main

import (
	"context"
	"math"
	"path/filepath"
	"time"
)

// crash: agents call tools through a node, which is killed with SIGKILL
// cfg.Kills times under that load, then stopped with SIGTERM, and started
// again each time (the first restart is itself killed a few times while
// it starts). Every call acknowledged to an agent must be in the log,
// every call the upstream ran must have been recorded before it was
// forwarded, and the group budget must hold across the restarts exactly.
//
// The budget is spent in bursts, one before each restart, each cut in its
// middle by the restart (calls of it are in flight); after the last start
// agents spend without bound until the budget refuses them. The calls
// allowed in the log (not refunded) must then be exactly the budget, and
// the upstream must have run no more than it: a node that forgot its
// usage on restart (as ward once did) allows a whole budget more per
// restart.
func crash(ctx context.Context, cfg Config, dir string) (*result, error) {
	r := &result{Scenario: "crash"}
	f, err := setup(ctx, cfg, dir, filepath.Join(dir, "data"), cfg.Budget, cfg.Sessions)
	if err != nil {
		return nil, err
	}
	defer f.close()
	l := newLoad(f.endpoint(), f.creds, spendEvery)
	stop := runLoad(ctx, l)
	defer stop()
	// cfg.Kills kill -9s, then a SIGTERM (an operator's restart, which
	// once reset the budget as well), each between two bursts.
	restarts := cfg.Kills + 1
	burst := int64(max(1, cfg.Budget/(restarts+1)))
	var downtime time.Duration
	var inflight int64
	for k := range restarts {
		// Under load: calls have been acknowledged since the last start.
		before := l.ackCount()
		sleep(ctx, cfg.Interval)
		if !waitAcks(ctx, l, before+1, time.Minute) {
			r.problem("no call was acknowledged for a minute after start %d", f.node.starts)
			return r, nil
		}
		// A burst of the budget, cut once half of it has started.
		l.spendLeft.Store(burst)
		if !waitFor(ctx, func() bool { return l.spendLeft.Load() <= burst/2 }, time.Minute) {
			r.problem("the agents did not spend the budget for a minute after start %d", f.node.starts)
			return r, nil
		}
		inflight += l.inflight.Load()
		t := time.Now()
		how := "kill -9"
		if k < cfg.Kills {
			f.node.kill()
		} else {
			how = "SIGTERM"
			f.node.stop()
		}
		l.spendLeft.Store(0)
		if k == 0 {
			// The first restart is itself killed, more than once, in
			// the middle of starting.
			for _, after := range killedStarts {
				if err := f.node.killDuringStart(after); err != nil {
					return nil, err
				}
			}
		}
		if err := f.node.start(ctx); err != nil {
			r.problem("start after restart %d (%s): %v", k+1, how, err)
			return r, nil
		}
		downtime += time.Since(t)
	}
	before := l.ackCount()
	sleep(ctx, cfg.Interval)
	if !waitAcks(ctx, l, before+1, time.Minute) {
		r.problem("no call was acknowledged for a minute after the last start")
	}
	// Spend what is left, and more.
	l.spendLeft.Store(math.MaxInt64 / 2)
	if !waitFor(ctx, func() bool { return l.refused.Load() > 0 }, time.Minute) {
		r.problem("the budget of %d refused no call for a minute after the last start", cfg.Budget)
	}
	stop()
	r.note("%d agents, %d kill -9s and a SIGTERM, each in a burst of %d budgeted calls, with %d calls in flight in all; the first restart killed %d times while starting (%v after exec); %d calls sent on %d MCP sessions, %d refused by the budget, %d failed (node down); a restart took %v on average",
		len(f.creds), cfg.Kills, burst, inflight, len(killedStarts), killedStarts, l.sent.Load(), l.connects.Load(), l.refused.Load(), l.failed.Load(), (downtime / time.Duration(restarts)).Round(time.Millisecond))
	return r, finish(ctx, r, f, l, cfg.Budget)
}

// killedStarts are how long after its exec each start killed in the crash
// scenario runs: from before it opens anything to about when it serves.
var killedStarts = []time.Duration{20 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond, 250 * time.Millisecond}

// spendEvery: at most every spendEvery-th call of an agent is of the
// budgeted tool.
const spendEvery = 3

// waitFor waits until cond holds, for up to limit; it reports whether it
// did.
func waitFor(ctx context.Context, cond func() bool, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, 5*time.Millisecond)
	}
	return true
}
