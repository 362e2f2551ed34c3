package quota

import (
	"math"
	"slices"
	"sort"
	"sync"
)

// noTime marks "no time yet" in the int64 nanosecond clocks.
const noTime = math.MinInt64

// exactLimit is the largest sum of integers float64 holds exactly.
const exactLimit = 1 << 53

// bucketKey names the usage log of one limit for one key.
type bucketKey struct {
	limit string
	scope Scope
	key   string
}

func compareKeys(a, b bucketKey) int {
	switch {
	case a.limit != b.limit:
		return cmpString(a.limit, b.limit)
	case a.scope != b.scope:
		return cmpString(string(a.scope), string(b.scope))
	default:
		return cmpString(a.key, b.key)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// entry is usage recorded at one instant: the sum v of n events whose times
// lie after the previous entry's t and at most t.
type entry struct {
	t int64
	v float64
	n int
}

// bucket is the sliding-window log of one (limit, key). All fields are
// guarded by mu.
//
// Invariants: entries are sorted by strictly increasing t; every t is at most
// clock; every t is after pruned; sum is the sum of the entries' v.
type bucket struct {
	key bucketKey

	mu      sync.Mutex
	dead    bool    // removed from its shard; a fresh bucket may replace it
	clock   int64   // the latest time this bucket has seen; never decreases
	pruned  int64   // t of the latest entry that left the window
	entries []entry // oldest first; a window into buf
	buf     []entry // backing array, len == cap
	sum     float64
	inexact bool // some v is fractional or sum passed 2^53: re-sum on removal
}

func newBucket(k bucketKey, clock int64) *bucket {
	return &bucket{key: k, clock: clock, pruned: noTime}
}

// advance moves the bucket's clock to at least now and drops the entries
// that have left the window (t <= clock-window). It returns the clock.
func (b *bucket) advance(now, window int64) int64 {
	if now > b.clock {
		b.clock = now
	}
	horizon := b.clock - window
	i, gone := 0, 0.0
	for i < len(b.entries) && b.entries[i].t <= horizon {
		gone += b.entries[i].v
		i++
	}
	if i > 0 {
		b.pruned = b.entries[i-1].t
		if i == len(b.entries) {
			b.entries = b.buf[:0]
		} else {
			b.entries = b.entries[i:]
		}
		b.removed(gone)
	}
	return b.clock
}

// removed restores the sum invariant after usage gone was removed: exact
// sums are decremented, inexact ones recomputed from the log.
func (b *bucket) removed(gone float64) {
	switch {
	case len(b.entries) == 0:
		b.sum, b.inexact = 0, false
	case b.inexact:
		s := 0.0
		for _, e := range b.entries {
			s += e.v
		}
		b.sum = s
	default:
		b.sum -= gone
	}
}

// retryAfter returns how long after the clock enough usage leaves the
// window for v more to fit under max; 0 if v > max.
func (b *bucket) retryAfter(v, max float64, window int64) int64 {
	if v > max {
		return 0
	}
	left := b.sum
	for _, e := range b.entries {
		left -= e.v
		if left+v <= max {
			return e.t + window - b.clock
		}
	}
	// Rounding kept the re-sum above max: wait for the newest entry.
	if n := len(b.entries); n > 0 {
		return b.entries[n-1].t + window - b.clock
	}
	return window
}

// add records v at the bucket's clock, merging entries first if the log is
// full (see compact).
func (b *bucket) add(v float64, window int64, maxEntries int) {
	t := b.clock
	if n := len(b.entries); n > 0 && b.entries[n-1].t == t {
		b.entries[n-1].v += v
		b.entries[n-1].n++
	} else {
		if n >= maxEntries {
			b.compact(window, maxEntries)
		}
		if n := len(b.entries); n > 0 && b.entries[n-1].t == t {
			b.entries[n-1].v += v
			b.entries[n-1].n++
		} else {
			b.push(entry{t: t, v: v, n: 1})
		}
	}
	b.sum += v
	if v != math.Trunc(v) || b.sum >= exactLimit {
		b.inexact = true
	}
}

// push appends e, reusing the space that pruning freed at the front of buf
// once it is at least half of buf, so that a log at a steady rate neither
// reallocates nor moves more than amortised O(1) entries per push.
func (b *bucket) push(e entry) {
	if n := len(b.entries); n == cap(b.entries) {
		if len(b.buf) > 0 && n <= len(b.buf)/2 {
			copy(b.buf, b.entries)
			clear(b.buf[n:])
		} else {
			old := b.entries
			b.buf = make([]entry, 2*n+4)
			copy(b.buf, old)
		}
		b.entries = b.buf[:n]
	}
	b.entries = append(b.entries, e)
}

// compact merges entries that fall into the same granule of window/(max/2)
// into the latest of them, which delays their leaving the window by less
// than one granule and never makes usage leave early. Called with all
// entries inside the window, at most max/2+1 granules hold entries, so the
// log drops to at most max/2+1 entries. If it is still full (it cannot be,
// unless the window shrank under restored state), adjacent pairs are merged
// until it is not.
func (b *bucket) compact(window int64, maxEntries int) {
	g := window / int64(maxEntries/2)
	if g < 1 {
		g = 1
	}
	out := b.entries[:0]
	for _, e := range b.entries {
		if n := len(out); n > 0 && floorDiv(out[n-1].t, g) == floorDiv(e.t, g) {
			out[n-1].t = e.t
			out[n-1].v += e.v
			out[n-1].n += e.n
			continue
		}
		out = append(out, e)
	}
	for len(out) >= maxEntries {
		half := out[:0]
		for i := 0; i < len(out); i += 2 {
			if i+1 < len(out) {
				e := out[i+1]
				e.v += out[i].v
				e.n += out[i].n
				half = append(half, e)
			} else {
				half = append(half, out[i])
			}
		}
		out = half
	}
	clear(b.entries[len(out):])
	b.entries = out
	if b.inexact {
		b.removed(0)
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// refund removes an event of v recorded at t, if it has not left the window.
// The event is in the first entry at or after t: entries partition events
// into consecutive time ranges, and merging only moves usage later.
func (b *bucket) refund(t int64, v float64) {
	if t <= b.pruned {
		return
	}
	i := sort.Search(len(b.entries), func(i int) bool { return b.entries[i].t >= t })
	if i == len(b.entries) {
		return
	}
	e := &b.entries[i]
	e.n--
	if e.n <= 0 {
		b.entries = slices.Delete(b.entries, i, i+1)
	} else {
		e.v -= v
		if e.v < 0 {
			e.v = 0
		}
	}
	b.removed(v)
}
