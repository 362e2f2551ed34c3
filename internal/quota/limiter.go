package quota

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// numShards is the number of independently locked parts of the key map.
	numShards = 64
	// sweepEvery: every sweepEvery-th new key, one shard is swept of keys
	// whose usage has left the window.
	sweepEvery = 1024
	// fullSweepInterval is the least time between two sweeps of all shards
	// when MaxKeys is reached.
	fullSweepInterval = time.Second
)

// Limiter enforces a set of limits. It is safe for concurrent use.
type Limiter struct {
	ledger          Ledger // nil: this limiter's usage is all there is
	now             func() time.Time
	maxKeys         int64
	maxEventsPerKey int

	limits   atomic.Pointer[limitSet]
	updateMu sync.Mutex // serialises Update and Restore

	seed    maphash.Seed
	shards  [numShards]shard
	keys    atomic.Int64 // buckets in all shards
	created atomic.Uint64
	// floor is the latest clock at which a bucket with history was dropped
	// by a sweep; a new bucket's clock starts there so that a late call
	// cannot see a window that forgot usage it should hold.
	floor    atomic.Int64
	lastFull atomic.Int64 // clock of the last sweep of all shards
}

type shard struct {
	mu sync.RWMutex
	m  map[bucketKey]*bucket
}

// New validates cfg and returns a Limiter with no usage recorded. All
// problems of all limits are reported, joined.
func New(cfg Config) (*Limiter, error) {
	var errs []error
	if cfg.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("max keys %d is negative", cfg.MaxKeys))
	}
	if cfg.MaxEventsPerKey != 0 && cfg.MaxEventsPerKey < MinMaxEventsPerKey {
		errs = append(errs, fmt.Errorf("max events per key %d is below %d", cfg.MaxEventsPerKey, MinMaxEventsPerKey))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("quota: invalid config: %w", err)
	}
	set, err := compileLimits(cfg.Limits)
	if err != nil {
		return nil, err
	}
	l := &Limiter{
		ledger:          cfg.Ledger,
		now:             cfg.Now,
		maxKeys:         int64(cfg.MaxKeys),
		maxEventsPerKey: cfg.MaxEventsPerKey,
		seed:            maphash.MakeSeed(),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.maxKeys == 0 {
		l.maxKeys = DefaultMaxKeys
	}
	if l.maxEventsPerKey == 0 {
		l.maxEventsPerKey = DefaultMaxEventsPerKey
	}
	for i := range l.shards {
		l.shards[i].m = make(map[bucketKey]*bucket)
	}
	l.floor.Store(noTime)
	l.lastFull.Store(noTime)
	l.limits.Store(set)
	return l, nil
}

// Limits returns a copy of the current limits, with OnExceed filled in.
func (l *Limiter) Limits() []Limit {
	set := l.limits.Load()
	out := make([]Limit, len(set.list))
	for i, lim := range set.list {
		out[i] = lim.public()
	}
	return out
}

func (lim *limit) public() Limit {
	p := lim.Limit
	p.Match.Tools = slices.Clone(p.Match.Tools)
	p.Match.Actions = slices.Clone(p.Match.Actions)
	return p
}

// Update replaces the limits. Usage history is kept for every limit whose
// ID, Scope and (for keyed limits) Key stay; history of other limits is
// dropped. A changed Window or Max applies to the kept history from now on
// (usage that already left a shorter old window is not brought back). Calls
// reserving concurrently are decided under either the old or the new set.
// On error nothing changes.
func (l *Limiter) Update(limits []Limit) error {
	set, err := compileLimits(limits)
	if err != nil {
		return err
	}
	l.updateMu.Lock()
	defer l.updateMu.Unlock()
	l.limits.Store(set)
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, b := range sh.m {
			if set.owns(k) {
				continue
			}
			b.mu.Lock()
			l.drop(sh, b)
			b.mu.Unlock()
		}
		sh.mu.Unlock()
	}
	return nil
}

// owns reports whether k belongs to a limit of the set.
func (s *limitSet) owns(k bucketKey) bool {
	lim := s.byID[k.limit]
	return lim != nil && lim.Scope == k.scope && (lim.Key == "" || lim.Key == k.key)
}

// drop removes b from sh. Both must be locked.
func (l *Limiter) drop(sh *shard, b *bucket) {
	b.dead = true
	delete(sh.m, b.key)
	l.keys.Add(-1)
}

func (l *Limiter) shardOf(k bucketKey) *shard {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(k.limit)
	h.WriteByte(0)
	h.WriteString(string(k.scope))
	h.WriteByte(0)
	h.WriteString(k.key)
	return &l.shards[h.Sum64()%numShards]
}

// lookup returns the bucket for k, or nil if there is none.
func (l *Limiter) lookup(k bucketKey) *bucket {
	sh := l.shardOf(k)
	sh.mu.RLock()
	b := sh.m[k]
	sh.mu.RUnlock()
	return b
}

// bucket returns the bucket for k, creating it if needed.
func (l *Limiter) bucket(k bucketKey) (*bucket, error) {
	sh := l.shardOf(k)
	sh.mu.RLock()
	b := sh.m[k]
	sh.mu.RUnlock()
	if b != nil {
		return b, nil
	}
	if l.keys.Load() >= l.maxKeys {
		// Full: sweep everything, but at most once per fullSweepInterval
		// so that a flood of new keys cannot make every call scan them all.
		now := l.now().UnixNano()
		if last := l.lastFull.Load(); (last == noTime || now-last >= int64(fullSweepInterval)) && l.lastFull.CompareAndSwap(last, now) {
			l.sweep(-1)
		}
	}
	sh.mu.Lock()
	if b = sh.m[k]; b == nil {
		if l.keys.Add(1) > l.maxKeys {
			l.keys.Add(-1)
			sh.mu.Unlock()
			return nil, ErrTooManyKeys
		}
		b = newBucket(k, l.floor.Load())
		sh.m[k] = b
	}
	sh.mu.Unlock()
	if n := l.created.Add(1); n%sweepEvery == 0 {
		l.sweep(int(n / sweepEvery % numShards))
	}
	return b, nil
}

// sweep drops the buckets of shard i (all shards if i < 0) that hold no
// usage in the window ending now, or that belong to no current limit.
func (l *Limiter) sweep(i int) {
	now := l.now().UnixNano()
	set := l.limits.Load()
	shards := l.shards[:]
	if i >= 0 {
		shards = shards[i : i+1]
	}
	for si := range shards {
		sh := &shards[si]
		sh.mu.Lock()
		for k, b := range sh.m {
			b.mu.Lock()
			if !set.owns(k) {
				l.drop(sh, b)
			} else if clock := b.advance(now, set.byID[k.limit].window); len(b.entries) == 0 {
				raise(&l.floor, clock)
				l.drop(sh, b)
			}
			b.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}

// raise sets a to max(a, v).
func raise(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// use is one (limit, key) a call is counted in.
type use struct {
	lim    *limit
	key    bucketKey
	amount float64
	b      *bucket
}

// Reservation is usage recorded by Reserve, which Cancel refunds.
type Reservation struct {
	items    []item
	canceled atomic.Bool
	ledger   Ledger // given back its share on Cancel
	at       int64  // when the ledger gave it
}

type item struct {
	b      *bucket
	t      int64
	amount float64
	lim    *limit // for the ledger; nil for usage restored from history
}

// Reserve accounts for c. It checks every limit that matches c, for every key
// c falls under (its session, its agent, each of its groups, its sponsor) and,
// only if none would exceed its Max, records c in all of them. Otherwise it
// records nothing and returns the exceeded (limit, key) pairs, in the
// canonical order of limit ID, scope and key.
//
// The check and the record are atomic: concurrent calls never together put
// more than Max into any window of any key. A call that no limit matches
// returns an empty Reservation. An error (a malformed call, a missing cost,
// ErrTooManyKeys) records nothing and means the call must be refused.
func (l *Limiter) Reserve(c Call) (*Reservation, []Exceeded, error) {
	set := l.limits.Load()
	uses, err := collect(set, c)
	if err != nil {
		return nil, nil, err
	}
	t := l.now()
	if !c.Time.IsZero() {
		t = c.Time
	}
	if y := t.Year(); y < 1700 || y > 2200 {
		return nil, nil, fmt.Errorf("quota: call time %v is out of range", t)
	}
	now := t.UnixNano()
	if len(uses) == 0 {
		return &Reservation{}, nil, nil
	}
retry:
	for i := range uses {
		b, err := l.bucket(uses[i].key)
		if err != nil {
			return nil, nil, err
		}
		uses[i].b = b
	}
	for i, u := range uses {
		u.b.mu.Lock()
		if u.b.dead {
			unlockAll(uses[:i+1])
			goto retry
		}
	}
	var exceeded []Exceeded
	for _, u := range uses {
		b := u.b
		b.advance(now, u.lim.window)
		if b.sum+u.amount <= u.lim.Max {
			continue
		}
		exceeded = append(exceeded, Exceeded{
			Limit:      u.lim.public(),
			Key:        u.key.key,
			Used:       b.sum,
			Requested:  u.amount,
			Max:        u.lim.Max,
			RetryAfter: time.Duration(b.retryAfter(u.amount, u.lim.Max, u.lim.window)),
		})
	}
	if exceeded == nil && l.ledger != nil {
		if exceeded, err = l.takeShared(uses, now); err != nil {
			unlockAll(uses)
			return nil, nil, fmt.Errorf("quota: the budgets shared with other nodes: %w", err)
		}
	}
	if exceeded != nil {
		unlockAll(uses)
		return nil, exceeded, nil
	}
	r := &Reservation{items: make([]item, 0, len(uses)), ledger: l.ledger, at: now}
	for _, u := range uses {
		if u.amount == 0 {
			continue
		}
		u.b.add(u.amount, u.lim.window, l.maxEventsPerKey)
		r.items = append(r.items, item{b: u.b, t: u.b.clock, amount: u.amount, lim: u.lim})
	}
	unlockAll(uses)
	return r, nil, nil
}

func unlockAll(uses []use) {
	for _, u := range uses {
		u.b.mu.Unlock()
	}
}

// collect lists the (limit, key) pairs c is counted in, sorted and without
// duplicates.
func collect(set *limitSet, c Call) ([]use, error) {
	uses := make([]use, 0, len(set.list)+len(c.Groups))
	for _, lim := range set.list {
		if !lim.Match.Matches(c) {
			continue
		}
		amount := 1.0
		if lim.Cost != "" {
			v, ok := c.Costs[lim.Cost]
			if !ok {
				return nil, fmt.Errorf("quota: limit %q: call has no cost %q", lim.ID, lim.Cost)
			}
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("quota: limit %q: cost %q is %v, want a finite number >= 0", lim.ID, lim.Cost, v)
			}
			amount = v
		}
		add := func(key string) {
			if lim.Key == "" || lim.Key == key {
				uses = append(uses, use{lim: lim, key: bucketKey{lim.ID, lim.Scope, key}, amount: amount})
			}
		}
		switch lim.Scope {
		case ScopeSession:
			if c.Session == "" {
				return nil, fmt.Errorf("quota: limit %q: call has no session", lim.ID)
			}
			add(c.Session)
			for _, s := range c.Lineage {
				if s != "" {
					add(s)
				}
			}
		case ScopeAgent:
			if c.Agent == "" {
				return nil, fmt.Errorf("quota: limit %q: call has no agent", lim.ID)
			}
			add(c.Agent)
			for _, a := range c.Delegators {
				if a != "" {
					add(a)
				}
			}
		case ScopeGroup:
			for _, g := range c.Groups {
				if g != "" {
					add(g)
				}
			}
		case ScopeSponsor:
			if c.Sponsor != "" {
				add(c.Sponsor)
			}
		}
	}
	slices.SortFunc(uses, func(a, b use) int { return compareKeys(a.key, b.key) })
	return slices.CompactFunc(uses, func(a, b use) bool { return a.key == b.key }), nil
}

// Cancel refunds the reservation: the call never happened. Usage that has
// already left the window, or was dropped by Update or Restore, is not
// refunded twice. Cancel is idempotent and safe on a nil Reservation.
func (r *Reservation) Cancel() {
	if r == nil || !r.canceled.CompareAndSwap(false, true) {
		return
	}
	for _, it := range r.items {
		it.b.mu.Lock()
		if !it.b.dead {
			it.b.refund(it.t, it.amount)
		}
		it.b.mu.Unlock()
		if r.ledger != nil && it.lim != nil {
			r.ledger.Give(it.lim.public(), it.b.key.key, it.amount, time.Unix(0, r.at))
		}
	}
}

// Usage returns the usage of limit limitID for key in the window ending at
// Config.Now(); 0 for an unknown limit or a scope the limit does not have.
func (l *Limiter) Usage(scope Scope, key, limitID string) (used float64) {
	set := l.limits.Load()
	k := bucketKey{limitID, scope, key}
	if !set.owns(k) {
		return 0
	}
	now := l.now().UnixNano()
	for {
		b := l.lookup(k)
		if b == nil {
			return 0
		}
		b.mu.Lock()
		if b.dead { // replaced meanwhile: look again
			b.mu.Unlock()
			continue
		}
		b.advance(now, set.byID[limitID].window)
		used = b.sum
		b.mu.Unlock()
		return used
	}
}
