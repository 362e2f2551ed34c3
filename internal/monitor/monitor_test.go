package monitor

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// clock is an injected Config.Now.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func testConfig(c *clock) Config {
	cfg := DefaultConfig()
	cfg.Learn = 100
	cfg.Categories = map[string][]string{"db.*": {"database"}, "mail.*": {"email"}, "api.example.com": {"external"}}
	cfg.Now = c.Now
	return cfg
}

func mustNew(t testing.TB, cfg Config) *Monitor {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// routineTools is the cycle of calls an agent learns, with an egress GET
// to api.example.com after each cycle. Its pairs are QR RQ QM MQ and its
// triples QRQ RQM QMQ MQR, so R→M is an unknown pair and R Q R an unknown
// triple of known pairs.
var routineTools = []string{"db.query", "db.read_row", "db.query", "mail.draft", ""}

// routine returns n events of agent in session: the routine at one event
// every 2 s (30 a minute, 100 bytes each).
func routine(agent, session string, groups []string, start time.Time, n int) []Event {
	var evs []Event
	for i := range n {
		e := Event{Time: start.Add(time.Duration(i) * 2 * time.Second), Agent: agent, Session: session, Groups: groups,
			Kind: KindCall, Name: routineTools[i%len(routineTools)], Verb: "read", Decision: DecisionAllow, BytesOut: 100}
		if e.Name == "" {
			e.Kind, e.Name = KindEgress, "api.example.com"
		}
		evs = append(evs, e)
	}
	return evs
}

// feed observes events and returns all signals and actions.
func feed(m *Monitor, evs []Event) (sigs []Signal, acts []Action) {
	for _, e := range evs {
		s, a := m.Observe(e)
		sigs, acts = append(sigs, s...), append(acts, a...)
	}
	return sigs, acts
}

func kinds(sigs []Signal) []string {
	var ks []string
	for _, s := range sigs {
		if !slices.Contains(ks, s.Kind) {
			ks = append(ks, s.Kind)
		}
	}
	slices.Sort(ks)
	return ks
}

// learned returns a monitor whose agent "a1" has learned the routine in
// session "s0", and the time after it. It fails the test if learning or a
// further clean minute of routine raised anything.
func learned(t *testing.T, cfg Config) (*Monitor, time.Time) {
	t.Helper()
	m := mustNew(t, cfg)
	evs := routine("a1", "s0", nil, t0, cfg.Learn+10)
	if sigs, _ := feed(m, evs); len(sigs) > 0 {
		t.Fatalf("learning raised %v", sigs)
	}
	if st := m.Snapshot(); !st.Agents[0].Baseline.Learned {
		t.Fatalf("agent still learning after %d events", len(evs))
	}
	at := evs[len(evs)-1].Time.Add(2 * time.Second)
	evs = routine("a1", "s0", nil, at, 40)
	if sigs, _ := feed(m, evs); len(sigs) > 0 {
		t.Fatalf("routine after learning raised %v", sigs)
	}
	return m, evs[len(evs)-1].Time.Add(2 * time.Second)
}

func TestDetectors(t *testing.T) {
	call := func(at time.Time, session, tool string) Event {
		return Event{Time: at, Agent: "a1", Session: session, Kind: KindCall, Name: tool, Verb: "read", Decision: DecisionAllow}
	}
	tests := []struct {
		name   string
		config func(*Config)
		probe  func(at time.Time) []Event
		want   []string // signal kinds of the probe, all events together
		sev    Severity // of the last event's first signal
		last   bool     // the signals come from the last event only
	}{{
		name: "rate spike",
		probe: func(at time.Time) []Event {
			evs := routine("a1", "s0", nil, at, 200) // at 10 calls a second
			for i := range evs {
				evs[i].Time = at.Add(time.Duration(i) * 100 * time.Millisecond)
			}
			return evs
		},
		want: []string{SignalRateSpike}, sev: Medium,
	}, {
		name:   "rate above the cap",
		config: func(c *Config) { c.Rate.Cap = 40 },
		probe: func(at time.Time) []Event {
			evs := routine("a1", "s0", nil, at, 15)
			for i := range evs {
				evs[i].Time = at.Add(time.Duration(i) * time.Millisecond)
			}
			return evs
		},
		want: []string{SignalRateSpike}, sev: High,
	}, {
		name:  "new tool",
		probe: func(at time.Time) []Event { return []Event{call(at, "s1", "shell.exec")} },
		want:  []string{SignalNewTool}, sev: Low, last: true,
	}, {
		name: "new host",
		probe: func(at time.Time) []Event {
			return []Event{{Time: at, Agent: "a1", Kind: KindEgress, Name: "evil.example", Verb: "write", Decision: DecisionAllow}}
		},
		want: []string{SignalNewHost}, sev: Medium, last: true,
	}, {
		name: "new category",
		probe: func(at time.Time) []Event {
			e := call(at, "s1", "db.query")
			e.Category = "payments"
			return []Event{e}
		},
		want: []string{SignalNewCategory}, sev: Medium, last: true,
	}, {
		name: "unseen pair",
		probe: func(at time.Time) []Event {
			return []Event{call(at, "s1", "db.read_row"), call(at.Add(time.Second), "s1", "mail.draft")}
		},
		want: []string{SignalUnusualSequence}, sev: Low, last: true,
	}, {
		name: "unseen triple of seen pairs",
		probe: func(at time.Time) []Event {
			return []Event{call(at, "s1", "db.read_row"), call(at.Add(time.Second), "s1", "db.query"),
				call(at.Add(2*time.Second), "s1", "db.read_row")}
		},
		want: []string{SignalUnusualSequence}, sev: Low, last: true,
	}, {
		name: "denial burst",
		probe: func(at time.Time) []Event {
			var evs []Event
			for i := range DefaultDenials {
				e := call(at.Add(time.Duration(i)*5*time.Second), fmt.Sprint("d", i), "db.query")
				e.Decision = DecisionDeny
				evs = append(evs, e)
			}
			return evs
		},
		want: []string{SignalDenialBurst}, sev: High, last: true,
	}, {
		name: "denials spread beyond the window",
		probe: func(at time.Time) []Event {
			var evs []Event
			for i := range DefaultDenials {
				e := call(at.Add(time.Duration(i)*20*time.Second), fmt.Sprint("d", i), "db.query")
				e.Decision = DecisionDeny
				evs = append(evs, e)
			}
			return evs
		},
	}, {
		name: "large outbound",
		probe: func(at time.Time) []Event {
			e := call(at, "s1", "db.query")
			e.BytesOut = 2 << 20
			return []Event{e}
		},
		want: []string{SignalLargeOutbound}, sev: High, last: true,
	}, {
		name:   "outbound above the cap",
		config: func(c *Config) { c.Outbound.Cap = 10_000 },
		probe: func(at time.Time) []Event {
			e := call(at, "s1", "db.query")
			e.BytesOut = 20_000
			return []Event{e}
		},
		want: []string{SignalLargeOutbound}, sev: Critical, last: true,
	}, {
		name: "drift",
		probe: func(at time.Time) []Event {
			e := call(at, "s1", "db.query")
			e.Drift = true
			return []Event{e}
		},
		want: []string{SignalDrift}, sev: Medium, last: true,
	}, {
		name: "risk",
		probe: func(at time.Time) []Event {
			e := call(at, "s1", "db.query")
			e.Risk = DefaultRiskThreshold
			return []Event{e}
		},
		want: []string{SignalContentRisk}, sev: High, last: true,
	}, {
		name: "critical risk",
		probe: func(at time.Time) []Event {
			e := call(at, "s1", "db.query")
			e.Risk = 95
			return []Event{e}
		},
		want: []string{SignalContentRisk}, sev: Critical, last: true,
	}, {
		name: "risk below the threshold",
		probe: func(at time.Time) []Event {
			e := call(at, "s1", "db.query")
			e.Risk = DefaultRiskThreshold - 1
			return []Event{e}
		},
	}, {
		name:   "severity override",
		config: func(c *Config) { c.Severities = map[string]string{SignalNewTool: "high"} },
		probe:  func(at time.Time) []Event { return []Event{call(at, "s1", "shell.exec")} },
		want:   []string{SignalNewTool}, sev: High, last: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: t0}
			cfg := testConfig(c)
			if tt.config != nil {
				tt.config(&cfg)
			}
			m, at := learned(t, cfg)
			evs := tt.probe(at)
			var sigs, last []Signal
			for _, e := range evs {
				last, _ = m.Observe(e)
				sigs = append(sigs, last...)
			}
			if got := kinds(sigs); !slices.Equal(got, tt.want) {
				t.Fatalf("signals %v, want %v: %v", got, tt.want, sigs)
			}
			if len(tt.want) == 0 {
				return
			}
			if tt.last && len(last) != len(sigs) {
				t.Errorf("signals before the last event: %v", sigs[:len(sigs)-len(last)])
			}
			if len(last) == 0 {
				t.Fatalf("the last event raised nothing; all: %v", sigs)
			}
			s := last[0]
			if s.Severity != tt.sev || s.Agent != "a1" || s.Detail == "" || !s.Time.Equal(evs[len(evs)-1].Time) {
				t.Errorf("signal %+v, want severity %v, agent a1, a detail and the event's time", s, tt.sev)
			}
		})
	}
}

func TestLearningPeriod(t *testing.T) {
	odd := func(at time.Time) Event {
		return Event{Time: at, Agent: "a1", Kind: KindCall, Name: "shell.exec", Decision: DecisionAllow}
	}
	t.Run("by events", func(t *testing.T) {
		c := &clock{now: t0}
		m := mustNew(t, testConfig(c))
		evs := routine("a1", "s0", nil, t0, 50)
		evs = append(evs, odd(t0.Add(101*time.Second)))
		if sigs, _ := feed(m, evs); len(sigs) > 0 {
			t.Fatalf("signals while learning: %v", sigs)
		}
	})
	t.Run("by events and duration", func(t *testing.T) {
		c := &clock{now: t0}
		cfg := testConfig(c)
		cfg.Learn, cfg.LearnFor = 10, time.Hour
		m := mustNew(t, cfg)
		evs := routine("a1", "s0", nil, t0, 20) // 20 events in 40 s: not an hour
		if sigs, _ := feed(m, append(evs, odd(t0.Add(time.Minute)))); len(sigs) > 0 {
			t.Fatalf("signals within learn_for: %v", sigs)
		}
		late := routine("a1", "s0", nil, t0.Add(time.Hour), 1)
		if sigs, _ := feed(m, late); len(sigs) > 0 {
			t.Fatalf("routine after learn_for: %v", sigs)
		}
		// shell.exec was learned; a tool never seen is new.
		if sigs, _ := m.Observe(Event{Time: t0.Add(time.Hour + time.Second), Agent: "a1", Name: "fs.delete"}); !slices.Equal(kinds(sigs), []string{SignalNewTool}) {
			t.Fatalf("after learn_for got %v, want new_tool", sigs)
		}
	})
	t.Run("a full minute", func(t *testing.T) {
		c := &clock{now: t0}
		cfg := testConfig(c)
		cfg.Learn = 5
		m := mustNew(t, cfg)
		// 11 events from 0:50 to 1:10: the first minute is partial, the
		// second unfinished, so nothing is learned yet.
		evs := routine("a1", "s0", nil, t0.Add(50*time.Second), 11)
		if sigs, _ := feed(m, append(evs, odd(t0.Add(75*time.Second)))); len(sigs) > 0 {
			t.Fatalf("signals before a full minute: %v", sigs)
		}
		// At 2:01 the second minute is finished and sampled.
		if sigs, _ := feed(m, routine("a1", "s0", nil, t0.Add(121*time.Second), 1)); len(sigs) > 0 {
			t.Fatalf("routine at 2:01: %v", sigs)
		}
		if sigs, _ := m.Observe(Event{Time: t0.Add(122 * time.Second), Agent: "a1", Name: "fs.delete"}); !slices.Equal(kinds(sigs), []string{SignalNewTool}) {
			t.Fatalf("after a full minute got %v, want new_tool", sigs)
		}
	})
	t.Run("absolute signals while learning", func(t *testing.T) {
		c := &clock{now: t0}
		m := mustNew(t, testConfig(c))
		e := odd(t0)
		e.Drift, e.Risk = true, 60
		if sigs, _ := m.Observe(e); !slices.Equal(kinds(sigs), []string{SignalContentRisk, SignalDrift}) {
			t.Fatalf("got %v, want content_risk and drift", sigs)
		}
	})
	t.Run("relearn", func(t *testing.T) {
		c := &clock{now: t0}
		cfg := testConfig(c)
		m, at := learned(t, cfg)
		m.Relearn("a1")
		if sigs, _ := m.Observe(odd(at)); len(sigs) > 0 {
			t.Fatalf("signals after Relearn: %v", sigs)
		}
		evs := routine("a1", "s0", nil, at.Add(time.Second), cfg.Learn)
		if sigs, _ := feed(m, evs); len(sigs) > 0 {
			t.Fatalf("signals while relearning: %v", sigs)
		}
		if sigs, _ := m.Observe(odd(at.Add(time.Hour))); len(sigs) > 0 {
			t.Fatalf("relearned tool raised %v", sigs)
		}
		if sigs, _ := m.Observe(Event{Time: at.Add(time.Hour), Agent: "a1", Name: "fs.delete"}); len(sigs) == 0 {
			t.Fatal("relearned baseline is not enforced")
		}
	})
}

func TestGroupBaselineJudgesNewAgents(t *testing.T) {
	c := &clock{now: t0}
	cfg := testConfig(c)
	m := mustNew(t, cfg)
	group := []string{"reporters"}
	// a1 teaches the group over several minutes.
	evs := routine("a1", "s1", group, t0, 2*cfg.Learn)
	if sigs, _ := feed(m, evs); len(sigs) > 0 {
		t.Fatalf("learning raised %v", sigs)
	}
	at := evs[len(evs)-1].Time.Add(time.Second)
	// a2 is new, still learning: the group's routine is fine...
	if sigs, _ := feed(m, routine("a2", "s2", group, at, 8)); len(sigs) > 0 {
		t.Fatalf("a2's routine raised %v", sigs)
	}
	// ...a tool no reporter uses is not.
	sigs, _ := m.Observe(Event{Time: at.Add(time.Minute), Agent: "a2", Session: "s2", Groups: group, Name: "payments.transfer"})
	if !slices.Equal(kinds(sigs), []string{SignalNewTool}) || !strings.Contains(sigs[0].Detail, "group reporters") {
		t.Fatalf("got %v, want new_tool against group reporters", sigs)
	}
	// An agent in no learned group is judged by nothing while it learns.
	if sigs, _ := m.Observe(Event{Time: at.Add(time.Minute), Agent: "a3", Groups: []string{"other"}, Name: "payments.transfer"}); len(sigs) > 0 {
		t.Fatalf("a3 got %v", sigs)
	}
}

func TestSwarm(t *testing.T) {
	const group = "db-optimizers"
	call := func(i int, at time.Time, verb string, groups ...string) Event {
		return Event{Time: at, Agent: fmt.Sprint("optimizer-", i), Session: fmt.Sprint("s", i), Groups: groups,
			Name: "db.create_index", Verb: verb, Decision: DecisionAllow}
	}
	tests := []struct {
		name  string
		calls func() []Event
		want  int // index of the call that raises the swarm signal; -1 none
	}{{
		name: "five agents within a minute",
		calls: func() []Event {
			var evs []Event
			for i := range 7 {
				evs = append(evs, call(i, t0.Add(time.Duration(i)*10*time.Second), "write", group))
			}
			return evs
		},
		want: 4,
	}, {
		name: "spread over more than the window",
		calls: func() []Event {
			var evs []Event
			for i := range 7 {
				evs = append(evs, call(i, t0.Add(time.Duration(i)*20*time.Second), "write", group))
			}
			return evs
		},
		want: -1,
	}, {
		name: "one session repeating",
		calls: func() []Event {
			var evs []Event
			for i := range 10 {
				evs = append(evs, call(1, t0.Add(time.Duration(i)*time.Second), "write", group))
			}
			return evs
		},
		want: -1,
	}, {
		name: "reads",
		calls: func() []Event {
			var evs []Event
			for i := range 10 {
				evs = append(evs, call(i, t0.Add(time.Duration(i)*time.Second), "read", group))
			}
			return evs
		},
		want: -1,
	}, {
		name: "different groups",
		calls: func() []Event {
			var evs []Event
			for i := range 10 {
				evs = append(evs, call(i, t0.Add(time.Duration(i)*time.Second), "write", fmt.Sprint("g", i%3)))
			}
			return evs
		},
		want: -1,
	}, {
		name: "again after the window",
		calls: func() []Event {
			var evs []Event
			for i := range 16 {
				evs = append(evs, call(i, t0.Add(time.Duration(i)*6*time.Second), "delete", group))
			}
			return evs
		},
		want: 4, // and again one window later, at call 14: checked below
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustNew(t, testConfig(&clock{now: t0}))
			var fired []int
			for i, e := range tt.calls() {
				sigs, _ := m.Observe(e)
				for _, s := range sigs {
					if s.Kind != SignalSwarm {
						t.Fatalf("call %d: unexpected %v", i, s)
					}
					if s.Group != group || s.Name != "db.create_index" || s.Severity != High {
						t.Errorf("call %d: signal %+v", i, s)
					}
					fired = append(fired, i)
				}
			}
			switch {
			case tt.want < 0 && len(fired) > 0:
				t.Fatalf("swarm signals at calls %v, want none", fired)
			case tt.want >= 0 && (len(fired) == 0 || fired[0] != tt.want):
				t.Fatalf("swarm signals at calls %v, want the first at %d", fired, tt.want)
			case tt.name == "again after the window" && !slices.Equal(fired, []int{4, 14}):
				t.Fatalf("swarm signals at calls %v, want 4 and 14", fired)
			case tt.name != "again after the window" && len(fired) > 1:
				t.Fatalf("swarm signals at calls %v, want one", fired)
			}
		})
	}
}

func TestPlaybooks(t *testing.T) {
	playbooks := []Playbook{
		{Name: "notify", Signals: []string{"*"}, MinSeverity: "low", Actions: []string{ActionAlert}},
		{Name: "exfil", Signals: []string{SignalContentRisk, SignalLargeOutbound}, MinSeverity: "high",
			Actions: []string{ActionBlock, ActionPreserve}},
		{Name: "contain", Signals: []string{"*"}, MinSeverity: "critical", Actions: []string{ActionQuarantine, ActionPreserve, ActionAlert}},
		{Name: "drift", Signals: []string{SignalDrift}, Actions: []string{ActionRequireApproval}},
	}
	type act struct{ kind, playbook, signal string }
	tests := []struct {
		name  string
		mode  string
		event Event
		want  []act
	}{{
		name:  "critical quarantines",
		event: Event{Name: "db.query", Risk: 95},
		want: []act{{ActionAlert, "notify", SignalContentRisk}, {ActionBlock, "exfil", SignalContentRisk},
			{ActionPreserve, "exfil", SignalContentRisk}, {ActionQuarantine, "contain", SignalContentRisk}},
	}, {
		name:  "low alerts",
		event: Event{Name: "shell.exec"},
		want:  []act{{ActionAlert, "notify", SignalNewTool}},
	}, {
		name:  "high blocks without quarantine",
		event: Event{Name: "db.query", Risk: 60},
		want: []act{{ActionAlert, "notify", SignalContentRisk}, {ActionBlock, "exfil", SignalContentRisk},
			{ActionPreserve, "exfil", SignalContentRisk}},
	}, {
		name:  "two signals: one alert each, other actions once",
		event: Event{Name: "db.query", Risk: 95, Drift: true},
		want: []act{{ActionAlert, "notify", SignalContentRisk}, {ActionBlock, "exfil", SignalContentRisk},
			{ActionPreserve, "exfil", SignalContentRisk}, {ActionQuarantine, "contain", SignalContentRisk},
			{ActionAlert, "notify", SignalDrift}, {ActionRequireApproval, "drift", SignalDrift}},
	}, {
		name:  "observe mode acts on nothing",
		mode:  ModeObserve,
		event: Event{Name: "db.query", Risk: 95},
	}, {
		name:  "nothing to act on",
		event: Event{Name: "db.query"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: t0}
			cfg := testConfig(c)
			cfg.Playbooks = playbooks
			if tt.mode != "" {
				cfg.Mode = tt.mode
			}
			m, at := learned(t, cfg)
			e := tt.event
			e.Time, e.Agent, e.Session, e.Decision = at, "a1", "s9", DecisionAllow
			sigs, acts := m.Observe(e)
			var got []act
			for _, a := range acts {
				if a.Agent != "a1" || a.Session != "s9" || a.Signal.Agent != "a1" {
					t.Errorf("action %+v: want agent a1, session s9", a)
				}
				got = append(got, act{a.Kind, a.Playbook, a.Signal.Kind})
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("actions %v, want %v (signals %v)", got, tt.want, sigs)
			}
		})
	}
}

func TestSwarmPlaybook(t *testing.T) {
	cfg := testConfig(&clock{now: t0})
	cfg.Playbooks = []Playbook{{Signals: []string{SignalSwarm}, Actions: []string{ActionRequireApproval}}}
	m := mustNew(t, cfg)
	var acts []Action
	for i := range 5 {
		_, a := m.Observe(Event{Time: t0.Add(time.Duration(i) * time.Second), Agent: fmt.Sprint("o", i),
			Session: fmt.Sprint("s", i), Groups: []string{"db-optimizers"}, Name: "db.create_index", Verb: "write"})
		acts = append(acts, a...)
	}
	want := Action{Kind: ActionRequireApproval, Agent: "o4", Session: "s4", Group: "db-optimizers"}
	if len(acts) != 1 || acts[0].Kind != want.Kind || acts[0].Agent != want.Agent || acts[0].Session != want.Session || acts[0].Group != want.Group {
		t.Fatalf("actions %+v, want one %+v", acts, want)
	}
}

func TestLimits(t *testing.T) {
	t.Run("agents evict the least recent", func(t *testing.T) {
		cfg := testConfig(&clock{now: t0})
		cfg.Limits.Agents = 2
		m, err := newMonitor(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range []string{"x", "y", "x", "z"} {
			m.Observe(Event{Time: t0.Add(time.Duration(i) * time.Second), Agent: a, Name: "t"})
		}
		var names []string
		for _, a := range m.Snapshot().Agents {
			names = append(names, a.Name)
		}
		if !slices.Equal(names, []string{"x", "z"}) {
			t.Fatalf("agents %v, want [x z]", names)
		}
	})
	t.Run("sessions evict the least recent", func(t *testing.T) {
		cfg := testConfig(&clock{now: t0})
		cfg.Limits.Sessions = 2
		m, _ := newMonitor(cfg, 1)
		for i, s := range []string{"s1", "s2", "s1", "s3"} {
			m.Observe(Event{Time: t0.Add(time.Duration(i) * time.Second), Agent: "a", Session: s, Name: "t"})
		}
		m.EndSession("s3")
		st := m.Snapshot()
		if len(st.Sessions) != 1 || st.Sessions[0].ID != "s1" {
			t.Fatalf("sessions %+v, want s1 only", st.Sessions)
		}
	})
	t.Run("names and sequences", func(t *testing.T) {
		cfg := testConfig(&clock{now: t0})
		cfg.Limits.Names, cfg.Limits.Sequences = 3, 2
		m := mustNew(t, cfg)
		for i := range 10 {
			m.Observe(Event{Time: t0.Add(time.Duration(i) * time.Second), Agent: "a", Session: "s", Name: fmt.Sprint("t", i)})
		}
		b := m.Snapshot().Agents[0].Baseline
		if len(b.Tools) != 3 || len(b.Sequences) != 2 || !b.Saturated {
			t.Fatalf("baseline %+v, want 3 tools, 2 sequences, saturated", b)
		}
	})
	t.Run("swarm watches", func(t *testing.T) {
		cfg := testConfig(&clock{now: t0})
		cfg.Limits.Swarms = 2
		m, _ := newMonitor(cfg, 1)
		for i := range 5 {
			m.Observe(Event{Time: t0.Add(time.Duration(i) * time.Second), Agent: "a", Groups: []string{"g"}, Name: fmt.Sprint("t", i), Verb: "write"})
		}
		if n := len(m.Snapshot().Swarms); n != 2 {
			t.Fatalf("%d swarm watches, want 2", n)
		}
	})
	t.Run("groups", func(t *testing.T) {
		cfg := testConfig(&clock{now: t0})
		cfg.Limits.Groups = 1
		m, _ := newMonitor(cfg, 1)
		m.Observe(Event{Time: t0, Agent: "a", Groups: []string{"g1", "g2"}, Name: "t"})
		if st := m.Snapshot(); len(st.Groups) != 1 || st.Groups[0].Name != "g1" {
			t.Fatalf("groups %+v, want g1 only", st.Groups)
		}
	})
}

func TestSeverity(t *testing.T) {
	for s := Info; s <= Critical; s++ {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("%v: round trip %v, %v", s, back, err)
		}
	}
	if _, err := ParseSeverity("urgent"); err == nil {
		t.Fatal("ParseSeverity(urgent) succeeded")
	}
	if _, err := Severity(7).MarshalText(); err == nil {
		t.Fatal("MarshalText(7) succeeded")
	}
}
