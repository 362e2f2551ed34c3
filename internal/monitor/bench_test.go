package monitor

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var benchAgentCounts = []int{1, 100, 10_000}

// benchSetup returns a monitor whose agents have all learned a routine of
// known tools at 60 calls a minute each, the events that repeat it, and
// the step between two events.
func benchSetup(b *testing.B, agents, shards int) (*Monitor, []Event, time.Duration) {
	cfg := DefaultConfig()
	cfg.Learn = 20
	cfg.Categories = map[string][]string{"db.*": {"database"}, "mail.*": {"email"}}
	cfg.Playbooks = []Playbook{{Signals: []string{"*"}, MinSeverity: "low", Actions: []string{ActionAlert}}}
	m, err := newMonitor(cfg, shards)
	if err != nil {
		b.Fatal(err)
	}
	evs := make([]Event, 0, agents*len(routineTools))
	for i := range len(routineTools) {
		for a := range agents {
			evs = append(evs, Event{Agent: fmt.Sprint("agent-", a), Session: fmt.Sprint("session-", a),
				Groups: []string{"swarm", fmt.Sprint("team-", a%10)}, Kind: KindCall, Name: routineTools[i],
				Verb: "read", Decision: DecisionAllow, BytesOut: 200})
			if evs[len(evs)-1].Name == "" {
				evs[len(evs)-1].Kind, evs[len(evs)-1].Name = KindEgress, "api.example.com"
			}
		}
	}
	step := time.Second / time.Duration(agents)
	at := t0
	for i := range 160 * agents { // 2m40s: everyone learns; groups too
		e := evs[i%len(evs)]
		e.Time = at
		at = at.Add(step)
		if sigs, _ := m.Observe(e); len(sigs) > 0 {
			b.Fatalf("warm-up raised %v", sigs)
		}
	}
	return m, evs, step
}

// BenchmarkObserve is the per-call cost of the monitor on the gateway's
// path: an allowed call of a known tool by an agent whose baseline is
// enforced, with 1, 100 and 10,000 agents. Compare with BenchmarkMapAppend.
func BenchmarkObserve(b *testing.B) {
	for _, n := range benchAgentCounts {
		b.Run(fmt.Sprint("agents=", n), func(b *testing.B) {
			m, evs, step := benchSetup(b, n, shardCount)
			at := t0.Add(time.Hour)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e := evs[i%len(evs)]
				e.Time = at
				if sigs, _ := m.Observe(e); sigs != nil {
					b.Fatalf("signals %v", sigs)
				}
				at = at.Add(step)
				i++
			}
		})
	}
}

// BenchmarkMapAppend is the baseline: under one mutex, look the agent up in
// a map and append the event's time to its slice.
func BenchmarkMapAppend(b *testing.B) {
	for _, n := range benchAgentCounts {
		b.Run(fmt.Sprint("agents=", n), func(b *testing.B) {
			var mu sync.Mutex
			m := map[string]*[]int64{}
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprint("agent-", i)
				m[names[i]] = new([]int64)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				mu.Lock()
				s := m[names[i%n]]
				if len(*s) == 1024 {
					*s = (*s)[:0]
				}
				*s = append(*s, int64(i))
				mu.Unlock()
				i++
			}
		})
	}
}

// BenchmarkObserveParallel measures contention: 100 agents observed from
// every core, with one lock for everything (shards=1) and with the
// package's sharding.
func BenchmarkObserveParallel(b *testing.B) {
	for _, shards := range []int{1, shardCount} {
		b.Run(fmt.Sprint("shards=", shards), func(b *testing.B) {
			m, evs, step := benchSetup(b, 100, shards)
			var clock atomic.Int64
			clock.Store(t0.Add(time.Hour).UnixNano())
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					e := evs[i%int64(len(evs))]
					e.Time = time.Unix(0, clock.Add(int64(step)))
					m.Observe(e)
				}
			})
		})
	}
}

// BenchmarkObserveWrite is a state-changing call: the swarm watches of
// the agent's two groups are updated too. 100 sessions write in turn, so
// every call brings a new session into the watch.
func BenchmarkObserveWrite(b *testing.B) {
	m, evs, step := benchSetup(b, 100, shardCount)
	at := t0.Add(time.Hour)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := evs[i%100]                             // db.query
		e.Time, e.Verb, e.Session = at, "write", "" // no session: no sequence; the agent stands for it
		if sigs, _ := m.Observe(e); len(sigs) > 0 && sigs[0].Kind != SignalSwarm {
			b.Fatalf("signals %v", sigs) // the swarm is real: once a window
		}
		at = at.Add(step)
		i++
	}
}
