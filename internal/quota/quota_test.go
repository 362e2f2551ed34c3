package quota

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clock is a fake clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(t testing.TB, clk *clock, limits ...Limit) *Limiter {
	t.Helper()
	l, err := New(Config{Limits: limits, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// reserve reserves c and fails the test on error.
func reserve(t testing.TB, l *Limiter, c Call) (*Reservation, []Exceeded) {
	t.Helper()
	r, ex, err := l.Reserve(c)
	if err != nil {
		t.Fatalf("Reserve(%+v): %v", c, err)
	}
	if (r == nil) == (ex == nil) {
		t.Fatalf("Reserve(%+v) = %v, %v: want exactly one of reservation and exceeded", c, r, ex)
	}
	return r, ex
}

func mustAllow(t testing.TB, l *Limiter, c Call) *Reservation {
	t.Helper()
	r, ex := reserve(t, l, c)
	if ex != nil {
		t.Fatalf("Reserve(%+v) exceeded %+v, want allowed", c, ex)
	}
	return r
}

func mustExceed(t testing.TB, l *Limiter, c Call) []Exceeded {
	t.Helper()
	_, ex := reserve(t, l, c)
	if ex == nil {
		t.Fatalf("Reserve(%+v) allowed, want exceeded", c)
	}
	return ex
}

func call(session, agent string, groups ...string) Call {
	return Call{Session: session, Agent: agent, Sponsor: "alice", Groups: groups, Action: "call_tool", Tool: "db.create_index"}
}

func TestMatcher(t *testing.T) {
	tests := []struct {
		name string
		m    Matcher
		c    Call
		want bool
	}{
		{"zero matches all", Matcher{}, Call{Action: "get_prompt", Tool: "x"}, true},
		{"exact tool", Matcher{Tools: []string{"db.query"}}, Call{Tool: "db.query"}, true},
		{"exact tool is not a prefix", Matcher{Tools: []string{"db.query"}}, Call{Tool: "db.query2"}, false},
		{"prefix", Matcher{Tools: []string{"db.*"}}, Call{Tool: "db.create_index"}, true},
		{"prefix includes the bare dot", Matcher{Tools: []string{"db.*"}}, Call{Tool: "db."}, true},
		{"prefix needs the dot", Matcher{Tools: []string{"db.*"}}, Call{Tool: "dbx.query"}, false},
		{"star matches all tools", Matcher{Tools: []string{"*"}}, Call{Tool: "fs.read"}, true},
		{"one of several", Matcher{Tools: []string{"fs.*", "db.alter_*"}}, Call{Tool: "db.alter_table"}, true},
		{"none of several", Matcher{Tools: []string{"fs.*", "db.alter_*"}}, Call{Tool: "db.query"}, false},
		{"action", Matcher{Actions: []string{"call_tool"}}, Call{Action: "call_tool", Tool: "x"}, true},
		{"other action", Matcher{Actions: []string{"call_tool"}}, Call{Action: "read_resource", Tool: "x"}, false},
		{"tool and action both needed", Matcher{Tools: []string{"db.*"}, Actions: []string{"call_tool"}}, Call{Action: "get_prompt", Tool: "db.x"}, false},
		{"tool and action", Matcher{Tools: []string{"db.*"}, Actions: []string{"get_prompt", "call_tool"}}, Call{Action: "call_tool", Tool: "db.x"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Matches(tt.c); got != tt.want {
				t.Errorf("%+v.Matches(%+v) = %v, want %v", tt.m, tt.c, got, tt.want)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	c := Call{Session: "s1", Agent: "indexer", Sponsor: "alice", Groups: []string{"shards", "db", "shards"}, Action: "call_tool", Tool: "db.create_index"}
	tests := []struct {
		name  string
		limit Limit
		want  map[string]float64 // key → usage after one call; others 0
	}{
		{"session", Limit{Scope: ScopeSession}, map[string]float64{"s1": 1}},
		{"agent", Limit{Scope: ScopeAgent}, map[string]float64{"indexer": 1}},
		{"each group once", Limit{Scope: ScopeGroup}, map[string]float64{"shards": 1, "db": 1}},
		{"sponsor", Limit{Scope: ScopeSponsor}, map[string]float64{"alice": 1}},
		{"keyed group", Limit{Scope: ScopeGroup, Key: "db"}, map[string]float64{"db": 1}},
		{"keyed group not ours", Limit{Scope: ScopeGroup, Key: "web"}, nil},
		{"keyed session", Limit{Scope: ScopeSession, Key: "s1"}, map[string]float64{"s1": 1}},
		{"keyed agent not ours", Limit{Scope: ScopeAgent, Key: "other"}, nil},
		{"tool not matched", Limit{Scope: ScopeSession, Match: Matcher{Tools: []string{"fs.*"}}}, nil},
		{"action not matched", Limit{Scope: ScopeSession, Match: Matcher{Actions: []string{"read_resource"}}}, nil},
		{"matched", Limit{Scope: ScopeGroup, Match: Matcher{Tools: []string{"db.create_*"}, Actions: []string{"call_tool"}}}, map[string]float64{"shards": 1, "db": 1}},
	}
	keys := []string{"s1", "indexer", "alice", "shards", "db", "web", "other"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.limit
			lim.ID, lim.Window, lim.Max = "l", time.Minute, 10
			l := newLimiter(t, newClock(), lim)
			r := mustAllow(t, l, c)
			for _, k := range keys {
				if got := l.Usage(lim.Scope, k, "l"); got != tt.want[k] {
					t.Errorf("Usage(%s, %q) = %v, want %v", lim.Scope, k, got, tt.want[k])
				}
			}
			if tt.want == nil && len(r.items) != 0 {
				t.Errorf("reservation records %d items, want none", len(r.items))
			}
		})
	}
}

func TestNoSponsorNoGroups(t *testing.T) {
	l := newLimiter(t, newClock(),
		Limit{ID: "sponsor", Scope: ScopeSponsor, Window: time.Minute, Max: 1},
		Limit{ID: "group", Scope: ScopeGroup, Window: time.Minute, Max: 1},
	)
	c := Call{Session: "s", Agent: "a", Groups: []string{""}}
	for range 3 {
		mustAllow(t, l, c) // neither limit applies
	}
	if got := l.Usage(ScopeSponsor, "", "sponsor"); got != 0 {
		t.Errorf("usage of empty sponsor = %v, want 0", got)
	}
}

func TestGroupLimitAcrossSessionsAndAgents(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk,
		Limit{ID: "schema-changes", Scope: ScopeGroup, Match: Matcher{Tools: []string{"db.create_index", "db.alter_*"}}, Window: time.Hour, Max: 3, OnExceed: OnExceedEscalate},
		Limit{ID: "per-session", Scope: ScopeSession, Window: time.Hour, Max: 10},
	)
	mustAllow(t, l, call("s1", "indexer-a", "shards"))
	clk.Advance(time.Minute)
	mustAllow(t, l, call("s2", "indexer-b", "shards"))
	clk.Advance(time.Minute)
	alter := call("s3", "migrator", "shards", "ops")
	alter.Tool = "db.alter_table"
	mustAllow(t, l, alter)
	// Another group is unaffected.
	mustAllow(t, l, call("s4", "indexer-c", "other"))
	// Queries do not count.
	q := call("s5", "indexer-a", "shards")
	q.Tool = "db.query"
	mustAllow(t, l, q)

	ex := mustExceed(t, l, call("s6", "indexer-d", "shards"))
	want := []Exceeded{{
		Limit:      l.Limits()[0],
		Key:        "shards",
		Used:       3,
		Requested:  1,
		Max:        3,
		RetryAfter: time.Hour - 2*time.Minute,
	}}
	if diff := cmp.Diff(want, ex); diff != "" {
		t.Errorf("exceeded (-want +got):\n%s", diff)
	}
	if ex[0].Limit.OnExceed != OnExceedEscalate {
		t.Errorf("OnExceed = %q, want escalate", ex[0].Limit.OnExceed)
	}
	if got := l.Usage(ScopeGroup, "ops", "schema-changes"); got != 1 {
		t.Errorf("ops usage = %v, want 1", got)
	}
	// The first change leaves the window exactly one hour after it.
	clk.Advance(time.Hour - 2*time.Minute - time.Nanosecond)
	mustExceed(t, l, call("s6", "indexer-d", "shards"))
	clk.Advance(time.Nanosecond)
	mustAllow(t, l, call("s6", "indexer-d", "shards"))
}

func TestWeightedCost(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk,
		Limit{ID: "rows", Scope: ScopeAgent, Cost: "rows", Window: time.Minute, Max: 1000},
		Limit{ID: "calls", Scope: ScopeAgent, Window: time.Minute, Max: 100},
	)
	c := func(rows float64) Call {
		c := call("s", "reporter")
		c.Costs = map[string]float64{"rows": rows}
		return c
	}
	mustAllow(t, l, c(600))
	clk.Advance(10 * time.Second)
	mustAllow(t, l, c(0))
	mustAllow(t, l, c(400)) // exactly at Max
	if got := l.Usage(ScopeAgent, "reporter", "rows"); got != 1000 {
		t.Fatalf("rows = %v, want 1000", got)
	}
	if got := l.Usage(ScopeAgent, "reporter", "calls"); got != 3 {
		t.Fatalf("calls = %v, want 3", got)
	}
	ex := mustExceed(t, l, c(1))
	if ex[0].Used != 1000 || ex[0].Requested != 1 || ex[0].RetryAfter != 50*time.Second {
		t.Errorf("exceeded = %+v, want used 1000, requested 1, retry after 50s", ex[0])
	}
	// 500 rows fit once the 600 leave, not the 400: RetryAfter 50s.
	ex = mustExceed(t, l, c(500))
	if ex[0].RetryAfter != 50*time.Second {
		t.Errorf("retry after %v, want 50s", ex[0].RetryAfter)
	}
	// 700 rows need both to leave: 60s.
	ex = mustExceed(t, l, c(700))
	if ex[0].RetryAfter != time.Minute {
		t.Errorf("retry after %v, want 1m", ex[0].RetryAfter)
	}
	// More than Max never fits.
	ex = mustExceed(t, l, c(1001))
	if !ex[0].Impossible() || ex[0].RetryAfter != 0 {
		t.Errorf("exceeded = %+v, want impossible with RetryAfter 0", ex[0])
	}
	clk.Advance(50 * time.Second)
	mustAllow(t, l, c(600))
	if got := l.Usage(ScopeAgent, "reporter", "rows"); got != 1000 {
		t.Errorf("rows = %v, want 1000", got)
	}
}

func TestSlidingWindowEdges(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk, Limit{ID: "l", Scope: ScopeSession, Window: time.Minute, Max: 2})
	c := call("s", "a")
	t0 := clk.Now()
	mustAllow(t, l, c)
	clk.Advance(30 * time.Second)
	mustAllow(t, l, c)
	ex := mustExceed(t, l, c)
	if ex[0].RetryAfter != 30*time.Second {
		t.Errorf("retry after %v, want 30s", ex[0].RetryAfter)
	}
	tests := []struct {
		at   time.Duration // since t0
		used float64
	}{
		{time.Minute - time.Nanosecond, 2},
		{time.Minute, 1}, // the first call leaves exactly at t0+window
		{90*time.Second - time.Nanosecond, 1},
		{90 * time.Second, 0},
	}
	for _, tt := range tests {
		clk.t = t0.Add(tt.at)
		if got := l.Usage(ScopeSession, "s", "l"); got != tt.used {
			t.Errorf("usage at t0+%v = %v, want %v", tt.at, got, tt.used)
		}
	}

	// The same edges seen by Reserve, via Call.Time on a fresh limiter.
	l = newLimiter(t, clk, Limit{ID: "l", Scope: ScopeSession, Window: time.Minute, Max: 1})
	at := func(d time.Duration) Call { c := call("s", "a"); c.Time = t0.Add(d); return c }
	mustAllow(t, l, at(0))
	ex = mustExceed(t, l, at(time.Minute-time.Nanosecond))
	if ex[0].RetryAfter != time.Nanosecond {
		t.Errorf("retry after %v, want 1ns", ex[0].RetryAfter)
	}
	mustAllow(t, l, at(time.Minute))
	// A call stamped earlier than one already seen counts as happening at
	// the latest time seen: it cannot sneak into an old window.
	mustExceed(t, l, at(0))
	mustExceed(t, l, at(2*time.Minute-time.Nanosecond))
	mustAllow(t, l, at(2*time.Minute))
}

func TestAllOrNothing(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk,
		Limit{ID: "session", Scope: ScopeSession, Window: time.Minute, Max: 10},
		Limit{ID: "agent", Scope: ScopeAgent, Window: time.Minute, Max: 10},
		Limit{ID: "group", Scope: ScopeGroup, Window: time.Minute, Max: 2},
		Limit{ID: "sponsor", Scope: ScopeSponsor, Window: time.Minute, Max: 10},
	)
	mustAllow(t, l, call("s1", "a", "g1", "g2"))
	mustAllow(t, l, call("s2", "b", "g2"))
	// g2 is full; g1, the session, agent and sponsor are not.
	ex := mustExceed(t, l, call("s1", "a", "g1", "g2"))
	if len(ex) != 1 || ex[0].Key != "g2" || ex[0].Limit.ID != "group" {
		t.Fatalf("exceeded = %+v, want only group g2", ex)
	}
	for _, u := range []struct {
		scope    Scope
		key, lim string
		want     float64
	}{
		{ScopeSession, "s1", "session", 1},
		{ScopeAgent, "a", "agent", 1},
		{ScopeGroup, "g1", "group", 1},
		{ScopeGroup, "g2", "group", 2},
		{ScopeSponsor, "alice", "sponsor", 2},
	} {
		if got := l.Usage(u.scope, u.key, u.lim); got != u.want {
			t.Errorf("Usage(%s %s %s) = %v, want %v (nothing recorded for the refused call)", u.scope, u.key, u.lim, got, u.want)
		}
	}
	// Several exceeded limits are all reported, in canonical order.
	l2 := newLimiter(t, clk,
		Limit{ID: "b", Scope: ScopeSession, Window: time.Minute, Max: 1},
		Limit{ID: "a", Scope: ScopeGroup, Window: time.Minute, Max: 1},
	)
	mustAllow(t, l2, call("s", "x", "g2", "g1"))
	ex = mustExceed(t, l2, call("s", "x", "g2", "g1"))
	var got []string
	for _, e := range ex {
		got = append(got, e.Limit.ID+"/"+e.Key)
	}
	if diff := cmp.Diff([]string{"a/g1", "a/g2", "b/s"}, got); diff != "" {
		t.Errorf("exceeded (-want +got):\n%s", diff)
	}
}

func TestCancel(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk,
		Limit{ID: "group", Scope: ScopeGroup, Window: time.Minute, Max: 2},
		Limit{ID: "rows", Scope: ScopeSession, Cost: "rows", Window: time.Minute, Max: 100},
	)
	c := call("s", "a", "g")
	c.Costs = map[string]float64{"rows": 40}
	r1 := mustAllow(t, l, c)
	clk.Advance(time.Second)
	r2 := mustAllow(t, l, c)
	mustExceed(t, l, c)

	r1.Cancel()
	if got := l.Usage(ScopeGroup, "g", "group"); got != 1 {
		t.Errorf("group usage after cancel = %v, want 1", got)
	}
	if got := l.Usage(ScopeSession, "s", "rows"); got != 40 {
		t.Errorf("rows after cancel = %v, want 40", got)
	}
	r1.Cancel() // idempotent
	if got := l.Usage(ScopeGroup, "g", "group"); got != 1 {
		t.Errorf("group usage after second cancel = %v, want 1", got)
	}
	clk.Advance(time.Second)
	r3 := mustAllow(t, l, c) // at t0+2s
	mustExceed(t, l, c)

	// A reservation whose usage already left the window refunds nothing
	// from newer usage.
	clk.Advance(time.Minute - time.Second)
	r4 := mustAllow(t, l, c) // at t0+61s: r2 (t0+1s) left; r3 and r4 are in
	r2.Cancel()
	if got := l.Usage(ScopeGroup, "g", "group"); got != 2 {
		t.Errorf("group usage after cancelling expired r2 = %v, want 2", got)
	}
	r3.Cancel()
	r4.Cancel()
	if got := l.Usage(ScopeSession, "s", "rows"); got != 0 {
		t.Errorf("rows after cancelling all = %v, want 0", got)
	}
	var nilR *Reservation
	nilR.Cancel()
}

func TestCancelMergedEntries(t *testing.T) {
	clk := newClock()
	l, err := New(Config{
		Limits:          []Limit{{ID: "l", Scope: ScopeSession, Window: 16 * time.Second, Max: 1000}},
		Now:             clk.Now,
		MaxEventsPerKey: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	var rs []*Reservation
	for range 20 {
		rs = append(rs, mustAllow(t, l, call("s", "a")))
		clk.Advance(100 * time.Millisecond)
	}
	st := l.Snapshot()
	if n := len(st.Keys[0].Events); n > 8 {
		t.Fatalf("log has %d entries, want at most 8", n)
	}
	for i, r := range rs {
		r.Cancel()
		if got, want := l.Usage(ScopeSession, "s", "l"), float64(len(rs)-i-1); got != want {
			t.Fatalf("usage after %d cancels = %v, want %v", i+1, got, want)
		}
	}
}

func TestUpdateKeepsHistory(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk,
		Limit{ID: "keep", Scope: ScopeGroup, Window: time.Minute, Max: 5},
		Limit{ID: "drop", Scope: ScopeGroup, Window: time.Minute, Max: 5},
		Limit{ID: "rescope", Scope: ScopeGroup, Window: time.Minute, Max: 5},
	)
	r := mustAllow(t, l, call("s1", "a", "g"))
	mustAllow(t, l, call("s2", "b", "g"))
	err := l.Update([]Limit{
		{ID: "keep", Scope: ScopeGroup, Window: time.Minute, Max: 2}, // lowered Max
		{ID: "rescope", Scope: ScopeAgent, Window: time.Minute, Max: 5},
		{ID: "new", Scope: ScopeGroup, Window: time.Minute, Max: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Usage(ScopeGroup, "g", "keep"); got != 2 {
		t.Errorf("kept usage = %v, want 2", got)
	}
	if got := l.Usage(ScopeGroup, "g", "rescope"); got != 0 {
		t.Errorf("re-scoped limit still has group usage %v", got)
	}
	ex := mustExceed(t, l, call("s3", "c", "g"))
	if len(ex) != 1 || ex[0].Limit.ID != "keep" || ex[0].Max != 2 {
		t.Errorf("exceeded = %+v, want keep with the new Max 2", ex)
	}
	// Cancelling a reservation from before the update still refunds kept
	// limits.
	r.Cancel()
	if got := l.Usage(ScopeGroup, "g", "keep"); got != 1 {
		t.Errorf("kept usage after cancel = %v, want 1", got)
	}
	// A dropped limit that comes back starts afresh.
	if err := l.Update([]Limit{{ID: "drop", Scope: ScopeGroup, Window: time.Minute, Max: 5}}); err != nil {
		t.Fatal(err)
	}
	if got := l.Usage(ScopeGroup, "g", "drop"); got != 0 {
		t.Errorf("re-added limit usage = %v, want 0", got)
	}
	// An invalid update changes nothing.
	if err := l.Update([]Limit{{ID: "x"}}); err == nil {
		t.Error("invalid update accepted")
	}
	if got := l.Limits(); len(got) != 1 || got[0].ID != "drop" {
		t.Errorf("limits after failed update = %+v", got)
	}
}

func TestConcurrentGroupLimit(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk,
		Limit{ID: "group", Scope: ScopeGroup, Window: time.Hour, Max: 100},
		Limit{ID: "session", Scope: ScopeSession, Window: time.Hour, Max: 5},
		Limit{ID: "agent", Scope: ScopeAgent, Window: time.Hour, Max: 1e6},
	)
	for round := range 5 {
		var ok, exceeded atomic.Int64
		var rs sync.Map
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range 1000 {
			done.Go(func() {
				start.Wait()
				c := call(fmt.Sprintf("r%d-s%d", round, i), fmt.Sprintf("agent-%d", i%50), "swarm")
				r, ex, err := l.Reserve(c)
				switch {
				case err != nil:
					t.Error(err)
				case ex != nil:
					exceeded.Add(1)
				default:
					ok.Add(1)
					rs.Store(i, r)
				}
			})
		}
		start.Done()
		done.Wait()
		if ok.Load() != 100 || exceeded.Load() != 900 {
			t.Fatalf("round %d: %d allowed, %d exceeded; want 100 and 900", round, ok.Load(), exceeded.Load())
		}
		if got := l.Usage(ScopeGroup, "swarm", "group"); got != 100 {
			t.Fatalf("round %d: group usage %v, want 100", round, got)
		}
		// Cancel them all concurrently; the next round starts from zero.
		rs.Range(func(_, r any) bool {
			done.Go(r.(*Reservation).Cancel)
			return true
		})
		done.Wait()
		if got := l.Usage(ScopeGroup, "swarm", "group"); got != 0 {
			t.Fatalf("round %d: group usage after cancel %v, want 0", round, got)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	ok := Limit{ID: "ok", Scope: ScopeSession, Window: time.Minute, Max: 1}
	with := func(f func(*Limit)) []Limit { l := ok; f(&l); return []Limit{l} }
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty id", Config{Limits: with(func(l *Limit) { l.ID = "" })}, []string{"limit 0: id is empty"}},
		{"duplicate id", Config{Limits: []Limit{ok, ok}}, []string{`limit "ok": duplicate id`}},
		{"unknown scope", Config{Limits: with(func(l *Limit) { l.Scope = "team" })}, []string{`unknown scope "team"`}},
		{"empty scope", Config{Limits: with(func(l *Limit) { l.Scope = "" })}, []string{`unknown scope ""`}},
		{"zero window", Config{Limits: with(func(l *Limit) { l.Window = 0 })}, []string{"window 0s is not in"}},
		{"negative window", Config{Limits: with(func(l *Limit) { l.Window = -time.Second })}, []string{"window -1s is not in"}},
		{"huge window", Config{Limits: with(func(l *Limit) { l.Window = 400 * 24 * time.Hour })}, []string{"window 9600h0m0s is not in"}},
		{"zero max", Config{Limits: with(func(l *Limit) { l.Max = 0 })}, []string{"max 0 is not a positive finite number"}},
		{"negative max", Config{Limits: with(func(l *Limit) { l.Max = -1 })}, []string{"max -1 is not"}},
		{"inf max", Config{Limits: with(func(l *Limit) { l.Max = inf() })}, []string{"max +Inf is not"}},
		{"nan max", Config{Limits: with(func(l *Limit) { l.Max = nan() })}, []string{"max NaN is not"}},
		{"unknown on-exceed", Config{Limits: with(func(l *Limit) { l.OnExceed = "block" })}, []string{`unknown on-exceed "block"`}},
		{"star inside tool", Config{Limits: with(func(l *Limit) { l.Match.Tools = []string{"db.*.x"} })}, []string{`tool pattern "db.*.x": '*' is allowed only at the end`}},
		{"empty tool", Config{Limits: with(func(l *Limit) { l.Match.Tools = []string{""} })}, []string{`tool pattern "": empty`}},
		{"star action", Config{Limits: with(func(l *Limit) { l.Match.Actions = []string{"*"} })}, []string{`action "*": actions are exact names`}},
		{"control char id", Config{Limits: with(func(l *Limit) { l.ID = "a\nb" })}, []string{"id: contains a control character"}},
		{"bad cost name", Config{Limits: with(func(l *Limit) { l.Cost = "\xff" })}, []string{"cost name: not valid UTF-8"}},
		{"several problems reported together", Config{Limits: with(func(l *Limit) { l.Window, l.Max = 0, 0 })}, []string{"window 0s", "max 0"}},
		{"negative max keys", Config{MaxKeys: -1}, []string{"max keys -1 is negative"}},
		{"tiny event log", Config{MaxEventsPerKey: 2}, []string{"max events per key 2 is below 8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			if !strings.HasPrefix(err.Error(), "quota: invalid ") {
				t.Errorf("error %q lacks the quota: invalid prefix", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// OnExceed defaults to deny.
	l, err := New(Config{Limits: []Limit{ok}})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Limits()[0].OnExceed; got != OnExceedDeny {
		t.Errorf("default OnExceed = %q, want deny", got)
	}
}

func TestReserveErrors(t *testing.T) {
	l := newLimiter(t, newClock(),
		Limit{ID: "rows", Scope: ScopeGroup, Cost: "rows", Match: Matcher{Tools: []string{"db.*"}}, Window: time.Minute, Max: 10},
		Limit{ID: "session", Scope: ScopeSession, Match: Matcher{Tools: []string{"fs.*"}}, Window: time.Minute, Max: 10},
		Limit{ID: "agent", Scope: ScopeAgent, Match: Matcher{Tools: []string{"net.*"}}, Window: time.Minute, Max: 10},
	)
	tests := []struct {
		name string
		c    Call
		want string
	}{
		{"missing cost", Call{Session: "s", Agent: "a", Groups: []string{"g"}, Tool: "db.q"}, `quota: limit "rows": call has no cost "rows"`},
		{"negative cost", Call{Session: "s", Agent: "a", Groups: []string{"g"}, Tool: "db.q", Costs: map[string]float64{"rows": -1}}, `cost "rows" is -1`},
		{"nan cost", Call{Session: "s", Agent: "a", Groups: []string{"g"}, Tool: "db.q", Costs: map[string]float64{"rows": nan()}}, `cost "rows" is NaN`},
		{"inf cost", Call{Session: "s", Agent: "a", Groups: []string{"g"}, Tool: "db.q", Costs: map[string]float64{"rows": inf()}}, `cost "rows" is +Inf`},
		{"no session", Call{Agent: "a", Tool: "fs.read"}, `quota: limit "session": call has no session`},
		{"no agent", Call{Session: "s", Tool: "net.get"}, `quota: limit "agent": call has no agent`},
		{"time out of range", Call{Session: "s", Agent: "a", Tool: "fs.read", Time: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)}, "call time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ex, err := l.Reserve(tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reserve = %v, %v, %v; want error containing %q", r, ex, err, tt.want)
			}
			if r != nil || ex != nil {
				t.Errorf("Reserve returned a reservation or exceeded with an error")
			}
		})
	}
	// A missing cost is only an error for limits that match.
	mustAllow(t, l, Call{Session: "s", Agent: "a", Tool: "fs.read"})
	if got := l.Usage(ScopeSession, "s", "session"); got != 1 {
		t.Errorf("usage = %v, want 1 (errors recorded nothing)", got)
	}
}

func TestMaxKeys(t *testing.T) {
	clk := newClock()
	l, err := New(Config{
		Limits:  []Limit{{ID: "l", Scope: ScopeSession, Window: time.Minute, Max: 1}},
		Now:     clk.Now,
		MaxKeys: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	mustAllow(t, l, call("s1", "a"))
	mustAllow(t, l, call("s2", "a"))
	if _, _, err := l.Reserve(call("s3", "a")); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("third key: err = %v, want ErrTooManyKeys", err)
	}
	mustExceed(t, l, call("s1", "a")) // existing keys still work
	clk.Advance(time.Minute)
	mustAllow(t, l, call("s3", "a")) // expired keys were swept
	mustAllow(t, l, call("s1", "a"))
	if _, _, err := l.Reserve(call("s4", "a")); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("err = %v, want ErrTooManyKeys", err)
	}
}

// TestSweptKeyKeepsClock: a key dropped by a sweep must not let a late call
// see a window that forgot usage.
func TestSweptKeyKeepsClock(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	l, err := New(Config{
		Limits:  []Limit{{ID: "l", Scope: ScopeSession, Window: time.Minute, Max: 1}},
		Now:     clk.Now,
		MaxKeys: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string, d time.Duration) Call { c := call(s, "a"); c.Time = t0.Add(d); return c }
	mustAllow(t, l, at("s1", 0))
	clk.Advance(2 * time.Minute)
	mustAllow(t, l, at("s2", 2*time.Minute)) // sweeps s1
	clk.Advance(time.Minute)
	mustAllow(t, l, at("s1", 3*time.Minute)) // sweeps s2 at t0+3m
	// s1 comes back with a call stamped t0+30s: it counts at t0+3m.
	mustExceed(t, l, at("s1", 30*time.Second))
}

func TestCompactionNeverOverAdmits(t *testing.T) {
	clk := newClock()
	const window = 64 * time.Second
	l, err := New(Config{
		Limits:          []Limit{{ID: "l", Scope: ScopeSession, Cost: "c", Window: window, Max: 200}},
		Now:             clk.Now,
		MaxEventsPerKey: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		t time.Time
		v float64
	}
	var log []ev
	for i := range 2000 {
		c := call("s", "a")
		c.Costs = map[string]float64{"c": float64(i%7 + 1)}
		r, _, err := l.Reserve(c)
		if err != nil {
			t.Fatal(err)
		}
		now := clk.Now()
		exact := 0.0
		for _, e := range log {
			if e.t.After(now.Add(-window)) {
				exact += e.v
			}
		}
		if r != nil {
			log = append(log, ev{now, c.Costs["c"]})
			exact += c.Costs["c"]
		}
		if exact > 200 {
			t.Fatalf("call %d: window holds %v > max", i, exact)
		}
		if got := l.Usage(ScopeSession, "s", "l"); got < exact {
			t.Fatalf("call %d: usage %v below exact %v", i, got, exact)
		}
		if n := len(l.Snapshot().Keys[0].Events); n > 8 {
			t.Fatalf("call %d: %d entries, want at most 8", i, n)
		}
		clk.Advance(time.Duration(i%5+1) * 130 * time.Millisecond)
	}
}

func TestCountLimitUpToMaxEventsIsExact(t *testing.T) {
	clk := newClock()
	l, err := New(Config{
		Limits:          []Limit{{ID: "l", Scope: ScopeSession, Window: time.Second, Max: 8}},
		Now:             clk.Now,
		MaxEventsPerKey: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for i := range 1000 {
		now := clk.Now()
		inWindow := 0
		for _, t0 := range times {
			if t0.After(now.Add(-time.Second)) {
				inWindow++
			}
		}
		_, ex := reserve(t, l, call("s", "a"))
		if (ex == nil) != (inWindow < 8) {
			t.Fatalf("call %d: allowed=%v with %d in window", i, ex == nil, inWindow)
		}
		if ex == nil {
			times = append(times, now)
		}
		clk.Advance(time.Duration(i%13+1) * 17 * time.Millisecond)
	}
}

func TestSnapshotRestore(t *testing.T) {
	clk := newClock()
	limits := []Limit{
		{ID: "group", Scope: ScopeGroup, Window: time.Minute, Max: 3},
		{ID: "rows", Scope: ScopeAgent, Cost: "rows", Window: time.Minute, Max: 100},
	}
	l := newLimiter(t, clk, limits...)
	c := call("s", "a", "g")
	c.Costs = map[string]float64{"rows": 30}
	mustAllow(t, l, c)
	clk.Advance(10 * time.Second)
	mustAllow(t, l, c)
	mustAllow(t, l, c)
	st := l.Snapshot()

	l2 := newLimiter(t, clk, limits...)
	if err := l2.Restore(st); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, l2.Snapshot()); diff != "" {
		t.Errorf("snapshot after restore (-want +got):\n%s", diff)
	}
	ex := mustExceed(t, l2, c)
	if len(ex) != 2 || ex[0].RetryAfter != 50*time.Second {
		t.Errorf("exceeded after restore = %+v", ex)
	}
	clk.Advance(50 * time.Second)
	mustAllow(t, l2, c)

	// Keys of unknown limits are skipped; malformed states are rejected
	// whole.
	st.Keys = append(st.Keys, KeyState{Limit: "gone", Scope: ScopeGroup, Key: "g", Clock: clk.Now(), Events: []Event{{Time: clk.Now(), Amount: 1, Count: 1}}})
	if err := l2.Restore(st); err != nil {
		t.Errorf("restore with an unknown limit: %v", err)
	}
	good := l2.Snapshot()
	bad := []struct {
		name string
		ks   KeyState
		want string
	}{
		{"unsorted", KeyState{Limit: "group", Scope: ScopeGroup, Key: "h", Clock: clk.Now(), Events: []Event{{Time: clk.Now(), Amount: 1, Count: 1}, {Time: clk.Now(), Amount: 1, Count: 1}}}, "not strictly increasing"},
		{"after clock", KeyState{Limit: "group", Scope: ScopeGroup, Key: "h", Clock: clk.Now(), Events: []Event{{Time: clk.Now().Add(1), Amount: 1, Count: 1}}}, "after the clock"},
		{"negative amount", KeyState{Limit: "group", Scope: ScopeGroup, Key: "h", Clock: clk.Now(), Events: []Event{{Time: clk.Now(), Amount: -1, Count: 1}}}, "amount -1"},
		{"zero count", KeyState{Limit: "group", Scope: ScopeGroup, Key: "h", Clock: clk.Now(), Events: []Event{{Time: clk.Now(), Amount: 1}}}, "count 0"},
		{"duplicate", good.Keys[0], "duplicate"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			s := State{Keys: append(append([]KeyState(nil), good.Keys...), tt.ks)}
			err := l2.Restore(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore = %v, want error containing %q", err, tt.want)
			}
			if diff := cmp.Diff(good, l2.Snapshot()); diff != "" {
				t.Errorf("failed restore changed state (-want +got):\n%s", diff)
			}
		})
	}
}

func inf() float64 { z := 0.0; return 1 / z }
func nan() float64 { z := 0.0; return z / z }

// TestConcurrentMixed runs reservations, cancels, sweeps (a small MaxKeys),
// snapshots, usage reads and no-op updates at once, for the race detector,
// and then checks the group holds exactly the non-cancelled reservations.
func TestConcurrentMixed(t *testing.T) {
	clk := newClock()
	limits := []Limit{
		{ID: "group", Scope: ScopeGroup, Window: time.Hour, Max: 300},
		{ID: "session", Scope: ScopeSession, Window: time.Hour, Max: 3},
	}
	l, err := New(Config{Limits: limits, Now: clk.Now, MaxKeys: 400})
	if err != nil {
		t.Fatal(err)
	}
	var kept atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				r, ex, err := l.Reserve(call(fmt.Sprintf("w%d-s%d", w, i%50), "a", "g"))
				if errors.Is(err, ErrTooManyKeys) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if ex != nil {
					continue
				}
				if i%3 == 0 {
					r.Cancel()
				} else {
					kept.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			l.Snapshot()
			l.Usage(ScopeGroup, "g", "group")
			if err := l.Update(limits); err != nil {
				t.Error(err)
			}
			l.sweep(-1)
		}
	})
	wg.Wait()
	if got := l.Usage(ScopeGroup, "g", "group"); got != float64(kept.Load()) || got > 300 {
		t.Errorf("group usage %v, want %d (at most 300)", got, kept.Load())
	}
}

func TestCounters(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l, err := New(Config{Now: func() time.Time { return now }, Limits: []Limit{
		{ID: "grp", Scope: ScopeGroup, Match: Matcher{Tools: []string{"db.*"}}, Window: time.Hour, Max: 10},
		{ID: "mine", Scope: ScopeSession, Match: Matcher{Tools: []string{"db.*"}}, Window: time.Hour, Max: 10},
		{ID: "other", Scope: ScopeGroup, Key: "ops", Match: Matcher{Tools: []string{"db.*"}}, Window: time.Hour, Max: 10},
		{ID: "mail", Scope: ScopeAgent, Match: Matcher{Tools: []string{"mail.*"}}, Window: time.Hour, Max: 10},
	}})
	if err != nil {
		t.Fatal(err)
	}
	call := func(session string, groups ...string) Call {
		return Call{Session: session, Agent: "a", Groups: groups, Action: "call_tool", Tool: "db.query"}
	}
	for i := 0; i < 3; i++ {
		if _, ex, err := l.Reserve(call("s1", "g1")); err != nil || len(ex) > 0 {
			t.Fatal(err, ex)
		}
	}
	l.Reserve(call("s2", "g2"))
	got := l.Counters(call("s2", "g1", "g2"))
	if got["grp"] != 3 || got["mine"] != 1 || len(got) != 2 {
		t.Fatalf("counters %v, want grp 3 (the busiest group), mine 1, and no other limits", got)
	}
	if c := l.Counters(Call{Session: "s9", Agent: "a", Action: "call_tool", Tool: "fs.read"}); len(c) != 0 {
		t.Fatalf("non-matching call has counters %v", c)
	}
}
