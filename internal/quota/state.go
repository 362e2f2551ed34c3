package quota

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// State is the window contents of a Limiter, as plain data.
type State struct {
	// Floor is the latest time at which usage was forgotten by a sweep:
	// new keys start their clock there. Zero if none.
	Floor time.Time
	// Keys are the (limit, key) pairs with usage, in canonical order.
	Keys []KeyState
}

// KeyState is the usage log of one limit for one key.
type KeyState struct {
	Limit string // the limit's ID
	Scope Scope
	Key   string
	// Clock is the latest time this key has seen; calls stamped earlier
	// count as happening at Clock.
	Clock time.Time
	// Events are the usage entries in the window, oldest first, with
	// strictly increasing times not after Clock.
	Events []Event
}

// Event is usage recorded at one instant.
type Event struct {
	Time   time.Time
	Amount float64 // sum of the events' costs, finite and >= 0
	Count  int     // number of reservations merged here, >= 1
}

// Snapshot returns the usage in the window ending at Config.Now() of every
// (limit, key). Each key's log is copied atomically; keys are copied one at
// a time, so a snapshot taken while calls are reserved is consistent per key
// but not across keys.
func (l *Limiter) Snapshot() State {
	set := l.limits.Load()
	now := l.now().UnixNano()
	var all []*bucket
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.RLock()
		for _, b := range sh.m {
			all = append(all, b)
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(all, func(a, b *bucket) int { return compareKeys(a.key, b.key) })
	st := State{Floor: fromNanos(l.floor.Load())}
	for _, b := range all {
		lim := set.byID[b.key.limit]
		if !set.owns(b.key) {
			continue
		}
		b.mu.Lock()
		if b.dead {
			b.mu.Unlock()
			continue
		}
		b.advance(now, lim.window)
		ks := KeyState{
			Limit:  b.key.limit,
			Scope:  b.key.scope,
			Key:    b.key.key,
			Clock:  fromNanos(b.clock),
			Events: make([]Event, len(b.entries)),
		}
		for i, e := range b.entries {
			ks.Events[i] = Event{Time: time.Unix(0, e.t), Amount: e.v, Count: e.n}
		}
		b.mu.Unlock()
		if len(ks.Events) > 0 {
			st.Keys = append(st.Keys, ks)
		}
	}
	return st
}

func fromNanos(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func toNanos(t time.Time) (int64, error) {
	if t.IsZero() {
		return noTime, nil
	}
	if y := t.Year(); y < 1700 || y > 2200 {
		return 0, fmt.Errorf("time %v is out of range", t)
	}
	return t.UnixNano(), nil
}

// Restore replaces all usage with s. Keys of limits that are not configured
// (unknown ID, other scope, or another key of a keyed limit) are skipped, as
// Update would drop them. Logs longer than Config.MaxEventsPerKey are merged
// as described in the package documentation. Outstanding Reservations from
// before Restore no longer refund anything. On error nothing changes.
func (l *Limiter) Restore(s State) error {
	l.updateMu.Lock()
	defer l.updateMu.Unlock()
	set := l.limits.Load()
	floor, err := toNanos(s.Floor)
	if err != nil {
		return fmt.Errorf("quota: restore: floor: %w", err)
	}
	fresh := make(map[bucketKey]*bucket, len(s.Keys))
	var errs []error
	for i, ks := range s.Keys {
		k := bucketKey{ks.Limit, ks.Scope, ks.Key}
		b, err := restoreKey(ks, l.maxEventsPerKey, set)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %d (%s %s %q): %w", i, ks.Limit, ks.Scope, ks.Key, err))
			continue
		}
		if b == nil {
			continue
		}
		if _, dup := fresh[k]; dup {
			errs = append(errs, fmt.Errorf("key %d (%s %s %q): duplicate", i, ks.Limit, ks.Scope, ks.Key))
			continue
		}
		fresh[k] = b
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("quota: restore: %w", err)
	}
	if int64(len(fresh)) > l.maxKeys {
		return fmt.Errorf("quota: restore %d keys: %w", len(fresh), ErrTooManyKeys)
	}
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for _, b := range sh.m {
			b.mu.Lock()
			l.drop(sh, b)
			b.mu.Unlock()
		}
		sh.mu.Unlock()
	}
	l.floor.Store(floor)
	for k, b := range fresh {
		sh := l.shardOf(k)
		sh.mu.Lock()
		if old := sh.m[k]; old != nil { // created by a concurrent Reserve
			old.mu.Lock()
			l.drop(sh, old)
			old.mu.Unlock()
		}
		sh.m[k] = b
		l.keys.Add(1)
		sh.mu.Unlock()
	}
	return nil
}

// restoreKey validates ks and builds its bucket; nil if no limit owns it.
func restoreKey(ks KeyState, maxEntries int, set *limitSet) (*bucket, error) {
	k := bucketKey{ks.Limit, ks.Scope, ks.Key}
	if ks.Key == "" {
		return nil, errors.New("empty key")
	}
	if !set.owns(k) {
		return nil, nil
	}
	clock, err := toNanos(ks.Clock)
	if err != nil {
		return nil, fmt.Errorf("clock: %w", err)
	}
	b := newBucket(k, clock)
	for j, ev := range ks.Events {
		t, err := toNanos(ev.Time)
		switch {
		case err != nil || ev.Time.IsZero():
			return nil, fmt.Errorf("event %d: time %v is out of range", j, ev.Time)
		case t > clock:
			return nil, fmt.Errorf("event %d: time %v is after the clock %v", j, ev.Time, ks.Clock)
		case j > 0 && t <= b.entries[len(b.entries)-1].t:
			return nil, fmt.Errorf("event %d: times are not strictly increasing", j)
		case !(ev.Amount >= 0) || math.IsInf(ev.Amount, 0):
			return nil, fmt.Errorf("event %d: amount %v is not a finite number >= 0", j, ev.Amount)
		case ev.Count < 1:
			return nil, fmt.Errorf("event %d: count %d is below 1", j, ev.Count)
		}
		b.push(entry{t: t, v: ev.Amount, n: ev.Count})
		b.sum += ev.Amount
		if ev.Amount != math.Trunc(ev.Amount) || b.sum >= exactLimit {
			b.inexact = true
		}
	}
	window := set.byID[k.limit].window
	b.advance(clock, window)
	if len(b.entries) >= maxEntries {
		b.compact(window, maxEntries)
	}
	return b, nil
}
