package monitor

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stream returns n pseudo-random events of six agents in two groups,
// starting at start: calls and egress, reads and writes, some denials,
// risky results and drift, so that every detector has work.
func stream(seed uint64, start time.Time, n int) []Event {
	r := rand.New(rand.NewPCG(seed, 1))
	tools := []struct{ name, verb string }{
		{"db.query", "read"}, {"db.read_row", "read"}, {"db.create_index", "write"},
		{"mail.send", "write"}, {"fs.delete", "delete"}, {"db.query", "read"},
	}
	groups := [][]string{{"g0"}, {"g0"}, {"g0", "g1"}, {"g1"}, {"g1"}, {"g1"}}
	var evs []Event
	at := start
	for i := range n {
		at = at.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		a := r.IntN(len(groups))
		e := Event{Time: at, Agent: fmt.Sprint("a", a), Session: fmt.Sprintf("a%d-s%d", a, r.IntN(3)), Groups: groups[a],
			Kind: KindCall, Decision: DecisionAllow, BytesOut: r.Int64N(5000), BytesIn: r.Int64N(50000)}
		t := tools[r.IntN(len(tools)-a%2)]
		e.Name, e.Verb = t.name, t.verb
		switch p := r.IntN(100); {
		case p < 10:
			e.Kind, e.Name, e.Verb = KindEgress, fmt.Sprintf("h%d.example.com", r.IntN(3)), "read"
		case p < 20:
			e.Decision = DecisionDeny
		case p < 23:
			e.Decision = DecisionEscalate
		case p < 25:
			e.Risk = 70
		case p < 27:
			e.Drift = true
		case p < 28:
			e.BytesOut = 5 << 20
		case p < 30 && i > n/2:
			e.Name, e.Verb = "admin.rotate_keys", "admin" // a tool nobody learned
		}
		evs = append(evs, e)
	}
	return evs
}

func streamConfig(c *clock) Config {
	cfg := testConfig(c)
	cfg.Learn = 40
	cfg.Swarm.Sessions = 3
	cfg.Denials.Count = 3
	cfg.Playbooks = []Playbook{
		{Name: "all", Signals: []string{"*"}, Actions: []string{ActionAlert}},
		{Name: "contain", Signals: []string{"*"}, MinSeverity: "high", Actions: []string{ActionBlock, ActionQuarantine}},
	}
	return cfg
}

type output struct {
	Signals []Signal
	Actions []Action
}

func run(m *Monitor, evs []Event) []output {
	var out []output
	for _, e := range evs {
		s, a := m.Observe(e)
		out = append(out, output{s, a})
	}
	return out
}

func TestSnapshotRestore(t *testing.T) {
	c := &clock{now: t0}
	cfg := streamConfig(c)
	evs := stream(1, t0, 2000)
	part1, part2 := evs[:1000], evs[1000:]

	orig := mustNew(t, cfg)
	run(orig, part1)
	st := orig.Snapshot()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	restored := mustNew(t, cfg)
	if err := restored.Restore(back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, restored.Snapshot()); diff != "" {
		t.Fatalf("restored snapshot differs (-orig +restored):\n%s", diff)
	}
	want, got := run(orig, part2), run(restored, part2)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("restored monitor diverged (-orig +restored):\n%s", diff)
	}
	if diff := cmp.Diff(orig.Snapshot(), restored.Snapshot()); diff != "" {
		t.Fatalf("final snapshots differ (-orig +restored):\n%s", diff)
	}
	for _, a := range st.Agents {
		c.now = part2[len(part2)-1].Time
		if orig.Trust(a.Name) != restored.Trust(a.Name) {
			t.Errorf("trust of %s: %d and %d", a.Name, orig.Trust(a.Name), restored.Trust(a.Name))
		}
	}
	// The comparison means something only if part 2 is eventful.
	seen := map[string]bool{}
	for _, o := range want {
		for _, s := range o.Signals {
			seen[s.Kind] = true
		}
	}
	for _, k := range []string{SignalNewTool, SignalUnusualSequence, SignalDenialBurst, SignalContentRisk, SignalDrift, SignalSwarm, SignalLargeOutbound} {
		if !seen[k] {
			t.Errorf("part 2 raised no %s; signals seen: %v", k, seen)
		}
	}
	learnedAgents := 0
	for _, a := range st.Agents {
		if a.Baseline.Learned {
			learnedAgents++
		}
	}
	if learnedAgents == 0 || len(st.Groups) != 2 || len(st.Sessions) == 0 || len(st.Swarms) == 0 {
		t.Errorf("snapshot has %d learned agents, %d groups, %d sessions, %d swarms", learnedAgents, len(st.Groups), len(st.Sessions), len(st.Swarms))
	}
}

func TestRestoreErrors(t *testing.T) {
	c := &clock{now: t0}
	cfg := streamConfig(c)
	src := mustNew(t, cfg)
	run(src, stream(2, t0, 300))
	tests := []struct {
		name   string
		mutate func(*State)
	}{
		{"version", func(s *State) { s.Version = 2 }},
		{"duplicate agent", func(s *State) { s.Agents = append(s.Agents, s.Agents[0]) }},
		{"trust above 100", func(s *State) { s.Agents[0].Trust.Score = 101 }},
		{"trust NaN", func(s *State) { s.Agents[0].Trust.Score = math.NaN() }},
		{"sequence of one", func(s *State) { s.Agents[0].Baseline.Sequences = [][]string{{"x"}} }},
		{"samples unequal", func(s *State) { s.Groups[0].Baseline.RateSamples = []int64{1} }},
		{"unknown penalty kind", func(s *State) { s.Agents[0].Penalized = map[string]int64{"boredom": 1} }},
		{"three previous tools", func(s *State) { s.Sessions[0].Prev = []string{"a", "b", "c"} }},
		{"too many names", func(s *State) {
			for i := range DefaultMaxNames + 1 {
				s.Agents[0].Baseline.Tools = append(s.Agents[0].Baseline.Tools, fmt.Sprint("t", i))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := src.Snapshot()
			tt.mutate(&st)
			m := mustNew(t, cfg)
			run(m, stream(3, t0, 50))
			before := m.Snapshot()
			if err := m.Restore(st); err == nil {
				t.Fatal("Restore succeeded")
			}
			if diff := cmp.Diff(before, m.Snapshot()); diff != "" {
				t.Fatalf("a failed Restore changed the monitor:\n%s", diff)
			}
		})
	}
	t.Run("limits", func(t *testing.T) {
		small := cfg
		small.Limits.Agents = 1
		m, err := newMonitor(small, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Restore(src.Snapshot()); err == nil {
			t.Fatal("Restore of 6 agents into limits.agents 1 succeeded")
		}
	})
}

func TestConcurrent(t *testing.T) {
	c := &clock{now: t0}
	cfg := testConfig(c)
	cfg.Learn = 1 << 30 // count every event as learned
	cfg.Playbooks = []Playbook{{Signals: []string{"*"}, Actions: []string{ActionAlert}}}
	m := mustNew(t, cfg)
	const workers, agents, events = 8, 8, 400
	var wg sync.WaitGroup
	var swarms sync.Map
	for w := range workers {
		wg.Go(func() {
			for i := range events {
				a := fmt.Sprintf("w%d-a%d", w, i%agents)
				e := Event{Time: t0.Add(time.Duration(i) * time.Second), Agent: a, Session: a + "-s", Groups: []string{"swarm", fmt.Sprint("w", w)},
					Name: routineTools[i%4], Verb: "read", Decision: DecisionAllow, BytesOut: 10}
				if i%10 == 0 {
					e.Name, e.Verb = "db.create_index", "write"
				}
				sigs, _ := m.Observe(e)
				for _, s := range sigs {
					if s.Kind == SignalSwarm {
						swarms.Store(s.Time, true)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			m.Snapshot()
			m.Trust("w0-a0")
		}
	})
	wg.Wait()
	st := m.Snapshot()
	if len(st.Agents) != workers*agents {
		t.Fatalf("%d agents, want %d", len(st.Agents), workers*agents)
	}
	for _, a := range st.Agents {
		if a.Baseline.Events != events/agents {
			t.Errorf("agent %s learned %d events, want %d", a.Name, a.Baseline.Events, events/agents)
		}
	}
	for _, g := range st.Groups {
		want := int64(events)
		if g.Name == "swarm" {
			want *= workers
		}
		if g.Baseline.Events != want {
			t.Errorf("group %s learned %d events, want %d", g.Name, g.Baseline.Events, want)
		}
	}
	n := 0
	swarms.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Error("no swarm signal from 8 workers writing together")
	}
}
