package monitor

import (
	"slices"
	"testing"
	"time"
)

func TestTrustDecay(t *testing.T) {
	c := &clock{now: t0}
	m := mustNew(t, testConfig(c))
	for agent, score := range map[string]int{"high": 80, "low": 10} {
		if err := m.SetTrust(agent, score); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	tests := []struct {
		after     time.Duration
		high, low int
	}{
		{0, 80, 10},
		{14 * day, 50, 10}, // two half-lives: 40 + 40/4
		{7 * day, 60, 10},  // reading does not change the score
		{70 * day, 40, 10}, // toward the floor, never below it; below it stays
		{-day, 80, 10},     // a clock before the last event decays nothing
	}
	for _, tt := range tests {
		c.now = t0.Add(tt.after)
		if got := m.Trust("high"); got != tt.high {
			t.Errorf("after %v: trust of high %d, want %d", tt.after, got, tt.high)
		}
		if got := m.Trust("low"); got != tt.low {
			t.Errorf("after %v: trust of low %d, want %d", tt.after, got, tt.low)
		}
	}
	if got := m.Trust("unknown"); got != DefaultTrustInitial {
		t.Errorf("trust of an unknown agent %d, want %d", got, DefaultTrustInitial)
	}
	// An event brings the decay into the score.
	c.now = t0.Add(7 * day)
	m.Observe(Event{Agent: "high", Name: "db.query", Decision: DecisionAllow})
	c.now = t0.Add(14 * day)
	if got := m.Trust("high"); got != 50 {
		t.Errorf("after an event at 7 days, trust at 14 days %d, want 50", got)
	}
}

func TestTrustDropsAndRecovers(t *testing.T) {
	c := &clock{now: t0}
	cfg := testConfig(c)
	cfg.Learn = 1 << 30 // never enforce baselines: only the events below signal
	m := mustNew(t, cfg)
	at := t0
	ev := func(decision string, risk int) Event {
		at = at.Add(time.Second)
		return Event{Time: at, Agent: "a", Name: "db.query", Decision: decision, Risk: risk}
	}
	clean := func(n int) []Event {
		var evs []Event
		for range n {
			evs = append(evs, ev(DecisionAllow, 0))
		}
		return evs
	}
	after := func(d time.Duration) []Event {
		at = at.Add(d)
		return nil
	}
	steps := []struct {
		name    string
		events  func() []Event
		want    int
		signals []string
	}{
		{"a high signal costs 10", func() []Event { return []Event{ev(DecisionAllow, 60)} }, 40, []string{SignalContentRisk}},
		{"the same kind again within a minute costs nothing", func() []Event { return []Event{ev(DecisionAllow, 60)} }, 40, []string{SignalContentRisk}},
		{"a denial costs 2", func() []Event { return []Event{ev(DecisionDeny, 0)} }, 38, nil},
		{"49 clean calls earn nothing", func() []Event { return clean(49) }, 38, nil},
		{"the 50th earns a point", func() []Event { return clean(1) }, 39, nil},
		{"an escalation breaks the run", func() []Event { return append(clean(49), ev(DecisionEscalate, 0)) }, 39, nil},
		{"50 more earn one more", func() []Event { return clean(50) }, 40, nil},
		{"a minute later a critical signal costs 25", func() []Event { return append(after(time.Minute), ev(DecisionAllow, 95)) }, 15, []string{SignalContentRisk, SignalLowTrust}},
		{"falling further does not repeat low_trust", func() []Event { return append(after(time.Minute), ev(DecisionAllow, 95)) }, 0, []string{SignalContentRisk}},
		{"and never below 0", func() []Event { return append(after(time.Minute), ev(DecisionDeny, 95)) }, 0, []string{SignalContentRisk}},
		{"recovery from 0 is slow", func() []Event { return clean(100) }, 2, nil},
	}
	for _, s := range steps {
		var sigs []Signal
		for _, e := range s.events() {
			got, _ := m.Observe(e)
			sigs = append(sigs, got...)
		}
		c.now = at
		if got := m.Trust("a"); got != s.want {
			t.Fatalf("%s: trust %d, want %d", s.name, got, s.want)
		}
		if got := kinds(sigs); !slices.Equal(got, s.signals) {
			t.Fatalf("%s: signals %v, want %v", s.name, got, s.signals)
		}
	}
}

func TestTrustCeiling(t *testing.T) {
	c := &clock{now: t0}
	m := mustNew(t, testConfig(c))
	if err := m.SetTrust("a", 89); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		m.Observe(Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Agent: "a", Name: "db.query", Decision: DecisionAllow})
	}
	if got := m.Trust("a"); got != DefaultTrustCeiling {
		t.Fatalf("trust %d after 200 clean calls from 89, want the ceiling %d", got, DefaultTrustCeiling)
	}
	// An operator may set it above the ceiling; clean calls keep it there.
	if err := m.SetTrust("a", 100); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m.Observe(Event{Time: t0.Add(time.Second + time.Duration(i)*time.Millisecond), Agent: "a", Name: "db.query", Decision: DecisionAllow})
	}
	if got := m.Trust("a"); got != 100 {
		t.Fatalf("trust %d, want 100", got)
	}
	for _, bad := range []int{-1, 101} {
		if err := m.SetTrust("a", bad); err == nil {
			t.Errorf("SetTrust(%d) succeeded", bad)
		}
	}
}
