package monitor

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"unique"
)

// StateVersion is the version of [State] this package writes and reads.
const StateVersion = 1

// State is everything a monitor holds: baselines, trust scores, sliding
// windows, session sequences and swarm watches. It marshals to JSON; times
// are Unix nanoseconds, with math.MinInt64 for "never". Lists are sorted,
// so equal monitors have equal states.
type State struct {
	Version  int            `json:"version"`
	Agents   []AgentState   `json:"agents,omitempty"`
	Groups   []GroupState   `json:"groups,omitempty"`
	Sessions []SessionState `json:"sessions,omitempty"`
	Swarms   []SwarmState   `json:"swarms,omitempty"`
}

// AgentState is one agent's part of a [State].
type AgentState struct {
	Name     string     `json:"name"`
	Last     int64      `json:"last"`
	Trust    TrustState `json:"trust"`
	Baseline Baseline   `json:"baseline"`
	// Window holds the sliding minute's non-empty slots.
	Window []Slot `json:"window,omitempty"`
	// Minute is the current calendar minute (Unix time / 1m) and its
	// counts; a partial minute began before the agent's first event.
	Minute        int64 `json:"minute"`
	MinuteCalls   int64 `json:"minute_calls,omitempty"`
	MinuteOut     int64 `json:"minute_out,omitempty"`
	MinutePartial bool  `json:"minute_partial,omitempty"`
	// Denials are the latest denial times, oldest first.
	Denials []int64 `json:"denials,omitempty"`
	// Penalized is when each kind of signal last cost trust.
	Penalized map[string]int64 `json:"penalized,omitempty"`
}

// TrustState is an agent's trust score as of At.
type TrustState struct {
	Score float64 `json:"score"`
	At    int64   `json:"at"`
	Clean int     `json:"clean,omitempty"`
	Below bool    `json:"below,omitempty"`
}

// Slot is one slot of the sliding minute: Epoch is time / 5s.
type Slot struct {
	Epoch int64 `json:"epoch"`
	Calls int64 `json:"calls"`
	Out   int64 `json:"out,omitempty"`
}

// Baseline is learned behaviour. Sequences are pairs and triples of tool
// names. The samples (calls and bytes out of finished minutes, oldest
// first) are kept only while learning.
type Baseline struct {
	Learned     bool       `json:"learned"`
	Events      int64      `json:"events"`
	First       int64      `json:"first"`
	RateP95     int64      `json:"rate_p95,omitempty"`
	OutP95      int64      `json:"out_p95,omitempty"`
	Tools       []string   `json:"tools,omitempty"`
	Hosts       []string   `json:"hosts,omitempty"`
	Categories  []string   `json:"categories,omitempty"`
	Sequences   [][]string `json:"sequences,omitempty"`
	Saturated   bool       `json:"saturated,omitempty"`
	RateSamples []int64    `json:"rate_samples,omitempty"`
	OutSamples  []int64    `json:"out_samples,omitempty"`
}

// GroupState is one group's baseline.
type GroupState struct {
	Name     string   `json:"name"`
	Baseline Baseline `json:"baseline"`
}

// SessionState is a session's latest tools, latest first.
type SessionState struct {
	ID   string   `json:"id"`
	Prev []string `json:"prev,omitempty"`
	Last int64    `json:"last"`
}

// SwarmState is the watch on one group and tool.
type SwarmState struct {
	Group string     `json:"group"`
	Tool  string     `json:"tool"`
	Hits  []SwarmHit `json:"hits,omitempty"`
	Fired int64      `json:"fired"`
	Last  int64      `json:"last"`
}

// SwarmHit is a session's latest call of a swarm's tool.
type SwarmHit struct {
	ID   string `json:"id"`
	Time int64  `json:"time"`
}

// Snapshot returns the monitor's state, for [Monitor.Restore]. Each agent,
// group, session and swarm is copied consistently; take it while no events
// are observed for an exact copy of the whole.
func (m *Monitor) Snapshot() State {
	st := State{Version: StateVersion}
	for i := range m.agents {
		sh := &m.agents[i]
		sh.mu.Lock()
		for _, a := range sh.m {
			st.Agents = append(st.Agents, a.state())
		}
		sh.mu.Unlock()
	}
	for i := range m.groups {
		sh := &m.groups[i]
		sh.mu.Lock()
		gs := slices.Collect(maps.Values(sh.m))
		sh.mu.Unlock()
		for _, g := range gs {
			g.mu.Lock()
			st.Groups = append(st.Groups, GroupState{Name: g.name, Baseline: g.base.state()})
			g.mu.Unlock()
		}
	}
	for i := range m.sessions {
		sh := &m.sessions[i]
		sh.mu.Lock()
		for id, s := range sh.m {
			ss := SessionState{ID: id, Last: s.last}
			for _, p := range s.prev {
				if p != (name{}) {
					ss.Prev = append(ss.Prev, p.Value())
				}
			}
			st.Sessions = append(st.Sessions, ss)
		}
		sh.mu.Unlock()
	}
	for i := range m.swarms {
		sh := &m.swarms[i]
		sh.mu.Lock()
		for k, s := range sh.m {
			sw := SwarmState{Group: k.group, Tool: k.tool, Fired: s.fired, Last: s.last}
			for _, h := range s.hits {
				sw.Hits = append(sw.Hits, SwarmHit{ID: h.id, Time: h.t})
			}
			st.Swarms = append(st.Swarms, sw)
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(st.Agents, func(a, b AgentState) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Groups, func(a, b GroupState) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Sessions, func(a, b SessionState) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Swarms, func(a, b SwarmState) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Tool, b.Tool))
	})
	return st
}

func (a *agentState) state() AgentState {
	s := AgentState{Name: a.name, Last: a.last, Baseline: a.base.state(),
		Trust:  TrustState{Score: a.trust.score, At: a.trust.at, Clean: a.trust.clean, Below: a.trust.below},
		Minute: a.minute, MinuteCalls: a.minCalls, MinuteOut: a.minOut, MinutePartial: a.partial,
		Denials: chronological(a.denials, a.denialNext)}
	for i, t := range a.penalized {
		if t != noTime {
			if s.Penalized == nil {
				s.Penalized = map[string]int64{}
			}
			s.Penalized[signalKinds[i].name] = t
		}
	}
	for _, sl := range a.window {
		if sl.calls > 0 || sl.out > 0 {
			s.Window = append(s.Window, Slot{Epoch: sl.epoch, Calls: sl.calls, Out: sl.out})
		}
	}
	slices.SortFunc(s.Window, func(a, b Slot) int { return cmp.Compare(a.Epoch, b.Epoch) })
	return s
}

func (b *baseline) state() Baseline {
	s := Baseline{Learned: b.learned, Events: b.events, First: b.first, RateP95: b.rateP95, OutP95: b.outP95,
		Tools: values(b.tools), Hosts: values(b.hosts), Categories: values(b.cats), Saturated: b.saturated,
		RateSamples: chronological(b.rateSamples, b.sampleNext), OutSamples: chronological(b.outSamples, b.sampleNext)}
	for k := range b.seqs {
		var seq []string
		for _, n := range k {
			if n != (name{}) {
				seq = append(seq, n.Value())
			}
		}
		s.Sequences = append(s.Sequences, seq)
	}
	slices.SortFunc(s.Sequences, slices.Compare)
	return s
}

// chronological returns a ring's values oldest first; next is the oldest
// once the ring is full.
func chronological(ring []int64, next int) []int64 {
	if len(ring) == 0 {
		return nil
	}
	return append(slices.Clone(ring[next:]), ring[:next]...)
}

func values(set map[name]struct{}) []string {
	var out []string
	for n := range set {
		out = append(out, n.Value())
	}
	slices.Sort(out)
	return out
}

// Restore replaces everything the monitor holds with st, which must come
// from [Monitor.Snapshot] of this version and fit this monitor's limits.
// Denials and swarm sessions beyond this configuration's counts are
// dropped, oldest first. On error the monitor is unchanged.
func (m *Monitor) Restore(st State) error {
	if st.Version != StateVersion {
		return fmt.Errorf("monitor: restore: state version %d, want %d", st.Version, StateVersion)
	}
	fresh, err := newMonitor(m.cfg, len(m.agents))
	if err != nil {
		return err
	}
	if err := fresh.load(st); err != nil {
		return fmt.Errorf("monitor: restore: %w", err)
	}
	m.lockAll(true)
	defer m.lockAll(false)
	for i := range m.agents {
		m.agents[i].m, m.groups[i].m = fresh.agents[i].m, fresh.groups[i].m
		m.sessions[i].m, m.swarms[i].m = fresh.sessions[i].m, fresh.swarms[i].m
	}
	return nil
}

// lockAll locks (or unlocks) every shard, agents before groups as Observe
// takes them, so that Restore cannot deadlock with it.
func (m *Monitor) lockAll(lock bool) {
	var mus []*sync.Mutex
	for i := range m.agents {
		mus = append(mus, &m.agents[i].mu)
	}
	for i := range m.groups {
		mus = append(mus, &m.groups[i].mu, &m.sessions[i].mu, &m.swarms[i].mu)
	}
	for _, mu := range mus {
		if lock {
			mu.Lock()
		} else {
			mu.Unlock()
		}
	}
}

var errFull = errors.New("more than the limits allow")

// load fills an empty monitor nobody else uses yet.
func (m *Monitor) load(st State) error {
	for _, g := range st.Groups {
		sh := &m.groups[shardOf(len(m.groups), g.Name)]
		if sh.m[g.Name] != nil {
			return fmt.Errorf("group %q twice", g.Name)
		}
		if len(sh.m) >= m.maxGroups {
			return fmt.Errorf("groups: %w (limits.groups %d)", errFull, m.cfg.Limits.Groups)
		}
		gs := &groupState{name: g.Name}
		if err := m.loadBaseline(&gs.base, g.Baseline); err != nil {
			return fmt.Errorf("group %q: %w", g.Name, err)
		}
		gs.frozen.Store(gs.base.learned)
		sh.m[g.Name] = gs
	}
	for _, as := range st.Agents {
		sh := &m.agents[shardOf(len(m.agents), as.Name)]
		if sh.m[as.Name] != nil {
			return fmt.Errorf("agent %q twice", as.Name)
		}
		if len(sh.m) >= m.maxAgents {
			return fmt.Errorf("agents: %w (limits.agents %d)", errFull, m.cfg.Limits.Agents)
		}
		a, err := m.loadAgent(as)
		if err != nil {
			return fmt.Errorf("agent %q: %w", as.Name, err)
		}
		sh.m[as.Name] = a
	}
	for _, ss := range st.Sessions {
		sh := &m.sessions[shardOf(len(m.sessions), ss.ID)]
		if sh.m[ss.ID] != nil {
			return fmt.Errorf("session %q twice", ss.ID)
		}
		if len(sh.m) >= m.maxSessions {
			return fmt.Errorf("sessions: %w (limits.sessions %d)", errFull, m.cfg.Limits.Sessions)
		}
		if len(ss.Prev) > 2 {
			return fmt.Errorf("session %q: %d previous tools, want at most 2", ss.ID, len(ss.Prev))
		}
		s := &sessionState{last: ss.Last}
		for i, p := range ss.Prev {
			s.prev[i] = unique.Make(p)
		}
		sh.m[ss.ID] = s
	}
	for _, sw := range st.Swarms {
		k := swarmKey{sw.Group, sw.Tool}
		sh := &m.swarms[shardOf(len(m.swarms), sw.Group, sw.Tool)]
		if sh.m[k] != nil {
			return fmt.Errorf("swarm %q %q twice", sw.Group, sw.Tool)
		}
		if len(sh.m) >= m.maxSwarms {
			return fmt.Errorf("swarms: %w (limits.swarms %d)", errFull, m.cfg.Limits.Swarms)
		}
		s := &swarmState{fired: sw.Fired, last: sw.Last}
		hits := sw.Hits[max(0, len(sw.Hits)-m.cfg.Swarm.Sessions):]
		for _, h := range hits {
			if slices.ContainsFunc(s.hits, func(x swarmHit) bool { return x.id == h.ID }) {
				return fmt.Errorf("swarm %q %q: session %q twice", sw.Group, sw.Tool, h.ID)
			}
			s.hits = append(s.hits, swarmHit{id: h.ID, t: h.Time})
		}
		sh.m[k] = s
	}
	return nil
}

func (m *Monitor) loadAgent(as AgentState) (*agentState, error) {
	t := as.Trust
	if math.IsNaN(t.Score) || t.Score < 0 || t.Score > 100 || t.Clean < 0 {
		return nil, fmt.Errorf("trust %v (clean %d): want a score of 0 to 100", t.Score, t.Clean)
	}
	if as.MinuteCalls < 0 || as.MinuteOut < 0 {
		return nil, errors.New("negative minute counts")
	}
	a := m.newAgent(as.Name, as.Last)
	a.minute, a.minCalls, a.minOut, a.partial = as.Minute, as.MinuteCalls, as.MinuteOut, as.MinutePartial
	a.trust = trust{score: t.Score, at: t.At, clean: t.Clean, below: t.Below}
	for kind, at := range as.Penalized {
		k := kindIndex(kind)
		if k < 0 {
			return nil, fmt.Errorf("penalized: unknown signal kind %q", kind)
		}
		a.penalized[k] = at
	}
	for _, sl := range as.Window {
		s := &a.window[mod(sl.Epoch, slots)]
		if sl.Calls < 0 || sl.Out < 0 || s.calls > 0 || s.out > 0 {
			return nil, fmt.Errorf("window slot %d: negative or repeated", sl.Epoch)
		}
		*s = slot{epoch: sl.Epoch, calls: sl.Calls, out: sl.Out}
	}
	n := m.cfg.Denials.Count
	a.denials = slices.Clone(as.Denials[max(0, len(as.Denials)-n):])
	a.denialNext = len(a.denials) % n
	if err := m.loadBaseline(&a.base, as.Baseline); err != nil {
		return nil, err
	}
	return a, nil
}

func (m *Monitor) loadBaseline(b *baseline, s Baseline) error {
	l := m.cfg.Limits
	switch {
	case s.Events < 0 || s.RateP95 < 0 || s.OutP95 < 0:
		return errors.New("baseline: negative count")
	case len(s.RateSamples) != len(s.OutSamples) || len(s.RateSamples) > sampleCap:
		return fmt.Errorf("baseline: %d rate and %d outbound samples, want equal and at most %d",
			len(s.RateSamples), len(s.OutSamples), sampleCap)
	case slices.ContainsFunc(s.RateSamples, negative) || slices.ContainsFunc(s.OutSamples, negative):
		return errors.New("baseline: negative sample")
	case len(s.Tools) > l.Names || len(s.Hosts) > l.Names || len(s.Categories) > l.Names:
		return fmt.Errorf("baseline: %w (limits.names %d)", errFull, l.Names)
	case len(s.Sequences) > l.Sequences:
		return fmt.Errorf("baseline: %w (limits.sequences %d)", errFull, l.Sequences)
	}
	*b = baseline{learned: s.Learned, events: s.Events, first: s.First, rateP95: s.RateP95, outP95: s.OutP95,
		tools: set(s.Tools), hosts: set(s.Hosts), cats: set(s.Categories), saturated: s.Saturated,
		rateSamples: slices.Clone(s.RateSamples), outSamples: slices.Clone(s.OutSamples)}
	for _, seq := range s.Sequences {
		var k [3]name
		switch len(seq) {
		case 2:
			k = [3]name{{}, unique.Make(seq[0]), unique.Make(seq[1])}
		case 3:
			k = [3]name{unique.Make(seq[0]), unique.Make(seq[1]), unique.Make(seq[2])}
		default:
			return fmt.Errorf("baseline: sequence of %d tools, want 2 or 3", len(seq))
		}
		if b.seqs == nil {
			b.seqs = map[[3]name]struct{}{}
		}
		b.seqs[k] = struct{}{}
	}
	return nil
}

func negative(v int64) bool { return v < 0 }

func set(names []string) map[name]struct{} {
	if len(names) == 0 {
		return nil
	}
	s := make(map[name]struct{}, len(names))
	for _, n := range names {
		s[unique.Make(n)] = struct{}{}
	}
	return s
}
