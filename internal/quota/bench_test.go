package quota

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchLimits are five limits a call matches: session, agent, group (count
// and rows) and sponsor. Max is high enough that nothing is refused, so every
// Reserve records in five logs; with the real clock the logs fill and merge.
func benchLimiter(b *testing.B) *Limiter {
	l, err := New(Config{Limits: []Limit{
		{ID: "session", Scope: ScopeSession, Window: time.Minute, Max: 1e12},
		{ID: "agent", Scope: ScopeAgent, Window: time.Minute, Max: 1e12},
		{ID: "group", Scope: ScopeGroup, Match: Matcher{Tools: []string{"db.*"}}, Window: time.Hour, Max: 1e12},
		{ID: "rows", Scope: ScopeGroup, Cost: "rows", Window: time.Hour, Max: 1e15},
		{ID: "sponsor", Scope: ScopeSponsor, Match: Matcher{Actions: []string{"call_tool"}}, Window: time.Hour, Max: 1e12},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func benchCall(session string) Call {
	return Call{Session: session, Agent: "indexer", Sponsor: "alice", Groups: []string{"swarm"},
		Action: "call_tool", Tool: "db.create_index", Costs: map[string]float64{"rows": 10}}
}

func mustReserve(b *testing.B, l *Limiter, c Call) {
	if _, ex, err := l.Reserve(c); err != nil || ex != nil {
		b.Fatalf("Reserve: %v %v", ex, err)
	}
}

func BenchmarkReserve(b *testing.B) {
	l := benchLimiter(b)
	c := benchCall("s")
	for b.Loop() {
		mustReserve(b, l, c)
	}
}

func BenchmarkReserveParallel(b *testing.B) {
	l := benchLimiter(b)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		c := benchCall(fmt.Sprintf("s%d", n.Add(1)))
		for pb.Next() {
			mustReserve(b, l, c)
		}
	})
}

func BenchmarkReserve1000Sessions(b *testing.B) {
	l := benchLimiter(b)
	calls := make([]Call, 1000)
	for i := range calls {
		calls[i] = benchCall(fmt.Sprintf("s%d", i))
	}
	var n atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mustReserve(b, l, calls[n.Add(1)%1000])
		}
	})
}

// BenchmarkMutexCounter is the baseline: one mutex-protected increment.
func BenchmarkMutexCounter(b *testing.B) {
	var mu sync.Mutex
	var count int
	for b.Loop() {
		mu.Lock()
		count++
		mu.Unlock()
	}
	_ = count
}

// BenchmarkMutexCounterParallel is the baseline under contention.
func BenchmarkMutexCounterParallel(b *testing.B) {
	var mu sync.Mutex
	var count int
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			count++
			mu.Unlock()
		}
	})
	_ = count
}
