package monitor

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unique"
)

// agentState is what the monitor holds per agent, guarded by its shard.
type agentState struct {
	name   string
	last   int64 // latest event time; the agent's clock never goes back
	window window
	// the current calendar minute, sampled into baselines when it ends
	// unless partial: begun before the agent's first event
	minute, minCalls, minOut int64
	partial                  bool
	denials                  []int64 // ring of the latest denial times
	denialNext               int
	base                     baseline
	trust                    trust
	penalized                [len(signalKinds)]int64 // when each kind last cost trust
	// cached group states for groupNames; nil entries are untracked
	groupNames []string
	groupRefs  []*groupState
}

// window is the sliding minute: slots of slotWidth, indexed by epoch
// (time / slotWidth) modulo slots.
type window [slots]slot

type slot struct{ epoch, calls, out int64 }

type trust struct {
	score float64
	at    int64 // time score was last brought up to date
	clean int   // consecutive clean calls toward the next point
	below bool  // the score is below AlertBelow
}

// observeAgent runs the per-agent detectors, learns, and updates trust.
func (m *Monitor) observeAgent(e Event, ts int64, cur name, prev [2]name, sigs []Signal) []Signal {
	sh := &m.agents[shardOf(len(m.agents), e.Agent)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := m.agent(sh, e.Agent, ts)
	ts = max(ts, a.last)
	a.last = ts
	out := max(e.BytesOut, 0)
	m.resolveGroups(a, e.Groups)
	m.sampleMinute(a, ts, out)
	calls, sent := a.window.add(ts, out)

	var catBuf [1]name
	cats := m.cats.lookup(e.Name)
	if e.Category != "" {
		catBuf[0] = unique.Make(e.Category)
		cats = catBuf[:]
	}
	egress := e.Kind == KindEgress

	// The baselines this event is judged by: the agent's own once learned,
	// else those of its groups that are.
	var buf [4]*baseline
	bases := buf[:0]
	if a.base.learned {
		bases = append(bases, &a.base)
	} else {
		for _, g := range a.groupRefs {
			if g != nil && g.frozen.Load() {
				bases = append(bases, &g.base)
			}
		}
	}
	signal := func(kind string, raised bool, format string, args ...any) {
		sev := m.severity[kind]
		if raised {
			sev = min(sev+1, Critical)
		}
		sigs = append(sigs, Signal{Kind: kind, Severity: sev, Agent: e.Agent, Session: e.Session,
			Name: e.Name, Time: time.Unix(0, ts).UTC(), Detail: fmt.Sprintf(format, args...)})
	}
	whose := func() string {
		if a.base.learned {
			return "agent " + e.Agent
		}
		var gs []string
		for _, g := range a.groupRefs {
			if g != nil && g.frozen.Load() {
				gs = append(gs, g.name)
			}
		}
		return "group " + strings.Join(gs, ", ")
	}

	rate := m.cfg.Rate
	if rate.Cap > 0 && calls > rate.Cap {
		signal(SignalRateSpike, true, "%d calls in the last minute, above the cap of %d", calls, rate.Cap)
	} else if p, ok := maxOf(bases, func(b *baseline) int64 { return b.rateP95 }); ok {
		if lim := max(rate.Factor*float64(p), float64(rate.Floor)); float64(calls) > lim {
			signal(SignalRateSpike, false, "%d calls in the last minute, above %g × p95 %d of %s", calls, rate.Factor, p, whose())
		}
	}
	known := true
	if len(bases) > 0 {
		if egress && !anyHas(bases, func(b *baseline) bool { return has(b.hosts, cur) }) {
			signal(SignalNewHost, false, "host %s is not in the baseline of %s", e.Name, whose())
		} else if !egress && !anyHas(bases, func(b *baseline) bool { return has(b.tools, cur) }) {
			known = false
			signal(SignalNewTool, false, "tool %s is not in the baseline of %s", e.Name, whose())
		}
		var unseen []string
		for _, c := range cats {
			if !anyHas(bases, func(b *baseline) bool { return has(b.cats, c) }) {
				unseen = append(unseen, c.Value())
			}
		}
		if len(unseen) > 0 {
			signal(SignalNewCategory, false, "%s: category %s is not in the baseline of %s", e.Name, strings.Join(unseen, ", "), whose())
		}
		if seq, ok := m.unusual(bases, egress, known, cur, prev); ok {
			signal(SignalUnusualSequence, false, "%s is not in the baseline of %s", seq, whose())
		}
	}
	if e.Decision == DecisionDeny && m.deny(a, ts) {
		signal(SignalDenialBurst, false, "%d denials within %v", m.cfg.Denials.Count, m.cfg.Denials.Window)
	}
	ob := m.cfg.Outbound
	if ob.Cap > 0 && sent > ob.Cap {
		signal(SignalLargeOutbound, true, "%d bytes sent in the last minute, above the cap of %d", sent, ob.Cap)
	} else if p, ok := maxOf(bases, func(b *baseline) int64 { return b.outP95 }); ok {
		if lim := max(ob.Factor*float64(p), float64(ob.Floor)); float64(sent) > lim {
			signal(SignalLargeOutbound, false, "%d bytes sent in the last minute, above %g × p95 %d of %s", sent, ob.Factor, p, whose())
		}
	}
	if e.Drift {
		signal(SignalDrift, false, "%s is outside the session's declared objective", e.Name)
	}
	if r := m.cfg.Risk; e.Risk >= r.Threshold {
		signal(SignalContentRisk, r.Critical > 0 && e.Risk >= r.Critical, "content risk %d (threshold %d)", e.Risk, r.Threshold)
	}

	m.learn(a, ts, egress, cur, prev, cats)
	if m.updateTrust(a, ts, e.Decision, sigs) {
		signal(SignalLowTrust, false, "trust %d fell below %d", a.trust.value(), m.cfg.Trust.AlertBelow)
	}
	return sigs
}

// agent returns the state of the named agent, creating it (and evicting
// the least recently active agent of a full shard) if needed.
func (m *Monitor) agent(sh *shard[string, agentState], id string, ts int64) *agentState {
	if a := sh.m[id]; a != nil {
		return a
	}
	if len(sh.m) >= m.maxAgents {
		delete(sh.m, oldest(sh.m, func(a *agentState) int64 { return a.last }))
	}
	a := m.newAgent(strings.Clone(id), ts)
	sh.m[a.name] = a
	return a
}

func (m *Monitor) newAgent(id string, ts int64) *agentState {
	init := m.cfg.Trust.Initial
	a := &agentState{name: id, last: ts, minute: floorDiv(ts, int64(time.Minute)), partial: true,
		base:  baseline{first: noTime},
		trust: trust{score: float64(init), at: ts, below: init < m.cfg.Trust.AlertBelow}}
	for i := range a.penalized {
		a.penalized[i] = noTime
	}
	return a
}

// resolveGroups points a.groupRefs at the states of groups, creating them
// while there is room. Most events repeat the last list and cost a compare.
func (m *Monitor) resolveGroups(a *agentState, groups []string) {
	if slices.Equal(a.groupNames, groups) {
		return
	}
	a.groupNames = a.groupNames[:0]
	a.groupRefs = a.groupRefs[:0]
	for _, g := range groups {
		a.groupNames = append(a.groupNames, strings.Clone(g))
		a.groupRefs = append(a.groupRefs, m.group(g))
	}
}

// group returns a group's state, creating it if there is room, or nil.
func (m *Monitor) group(g string) *groupState {
	sh := &m.groups[shardOf(len(m.groups), g)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	gs := sh.m[g]
	if gs == nil && len(sh.m) < m.maxGroups {
		gs = &groupState{name: strings.Clone(g), base: baseline{first: noTime}}
		sh.m[gs.name] = gs
	}
	return gs
}

// add counts a call and out bytes in the sliding minute and returns the
// minute's totals.
func (w *window) add(ts, out int64) (calls, bytes int64) {
	ep := floorDiv(ts, slotWidth)
	s := &w[mod(ep, slots)]
	if s.epoch != ep {
		*s = slot{epoch: ep}
	}
	s.calls++
	s.out = satAdd(s.out, out)
	for i := range w {
		if d := ep - w[i].epoch; d >= 0 && d < slots {
			calls += w[i].calls
			bytes = satAdd(bytes, w[i].out)
		}
	}
	return calls, bytes
}

// unusual reports the first pair, else triple, of calls ending in cur that
// the baselines have not seen. Sequences with an unknown tool are left to
// new_tool, and a saturated baseline judges no sequences.
func (m *Monitor) unusual(bases []*baseline, egress, known bool, cur name, prev [2]name) (string, bool) {
	if egress || !known || prev[0] == (name{}) || anyHas(bases, func(b *baseline) bool { return b.saturated }) {
		return "", false
	}
	for _, p := range prev {
		if p != (name{}) && !anyHas(bases, func(b *baseline) bool { return has(b.tools, p) }) {
			return "", false
		}
	}
	pair := [3]name{{}, prev[0], cur}
	if !anyHas(bases, func(b *baseline) bool { return has(b.seqs, pair) }) {
		return fmt.Sprintf("sequence %s → %s", prev[0].Value(), cur.Value()), true
	}
	if prev[1] == (name{}) {
		return "", false
	}
	triple := [3]name{prev[1], prev[0], cur}
	if !anyHas(bases, func(b *baseline) bool { return has(b.seqs, triple) }) {
		return fmt.Sprintf("sequence %s → %s → %s", prev[1].Value(), prev[0].Value(), cur.Value()), true
	}
	return "", false
}

// deny records a denial and reports whether the agent's latest
// Denials.Count denials fall within Denials.Window.
func (m *Monitor) deny(a *agentState, ts int64) bool {
	n := m.cfg.Denials.Count
	if len(a.denials) < n {
		a.denials = append(a.denials, ts)
		a.denialNext = len(a.denials) % n
		return len(a.denials) == n && ts-a.denials[0] < int64(m.cfg.Denials.Window)
	}
	a.denials[a.denialNext] = ts
	a.denialNext = (a.denialNext + 1) % n
	return ts-a.denials[a.denialNext] < int64(m.cfg.Denials.Window)
}

func has[K comparable](set map[K]struct{}, k K) bool {
	_, ok := set[k]
	return ok
}

func anyHas(bases []*baseline, f func(*baseline) bool) bool {
	return slices.ContainsFunc(bases, f)
}

func maxOf(bases []*baseline, f func(*baseline) int64) (int64, bool) {
	if len(bases) == 0 {
		return 0, false
	}
	v := f(bases[0])
	for _, b := range bases[1:] {
		v = max(v, f(b))
	}
	return v, true
}
