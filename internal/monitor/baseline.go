package monitor

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// baseline is learned behaviour. While learning it grows; once learned it
// never changes (until Relearn).
type baseline struct {
	learned   bool
	events    int64
	first     int64 // time of the first event learned
	rateP95   int64 // calls per minute
	outP95    int64 // bytes out per minute
	tools     map[name]struct{}
	hosts     map[name]struct{}
	cats      map[name]struct{}
	seqs      map[[3]name]struct{} // pairs have a zero first element
	saturated bool                 // seqs reached Limits.Sequences
	// per-minute samples while learning, a ring once full
	rateSamples, outSamples []int64
	sampleNext              int
}

// groupState is a group's baseline: the pooled behaviour of its agents.
// Once frozen is set, base is immutable and read without mu.
type groupState struct {
	name   string
	mu     sync.Mutex
	frozen atomic.Bool
	base   baseline
}

// sampleMinute counts the event in the agent's calendar minute and, when a
// new minute starts, gives the finished one to the baselines still
// learning. The agent's first minute is partial and not sampled: it would
// understate the rate.
func (m *Monitor) sampleMinute(a *agentState, ts, out int64) {
	if mi := floorDiv(ts, int64(time.Minute)); mi != a.minute {
		if a.minCalls > 0 && !a.partial {
			if !a.base.learned {
				a.base.sample(a.minCalls, a.minOut)
			}
			for _, g := range a.groupRefs {
				if g != nil && !g.frozen.Load() {
					g.mu.Lock()
					if !g.frozen.Load() {
						g.base.sample(a.minCalls, a.minOut)
					}
					g.mu.Unlock()
				}
			}
		}
		a.minute, a.minCalls, a.minOut, a.partial = mi, 0, 0, false
	}
	a.minCalls++
	a.minOut = satAdd(a.minOut, out)
}

// learn adds the event to the agent's baseline and its groups' while they
// are learning, and ends learning where the period is complete.
func (m *Monitor) learn(a *agentState, ts int64, egress bool, cur name, prev [2]name, cats []name) {
	l := &m.cfg.Limits
	if !a.base.learned {
		a.base.add(ts, egress, cur, prev, cats, l)
		if m.complete(&a.base, ts) {
			a.base.freeze()
		}
	}
	for _, g := range a.groupRefs {
		if g == nil || g.frozen.Load() {
			continue
		}
		g.mu.Lock()
		if !g.frozen.Load() {
			g.base.add(ts, egress, cur, prev, cats, l)
			if m.complete(&g.base, ts) {
				g.base.freeze()
				g.frozen.Store(true)
			}
		}
		g.mu.Unlock()
	}
}

// complete reports whether a baseline has learned enough: Learn events,
// for LearnFor, and at least one full minute.
func (m *Monitor) complete(b *baseline, ts int64) bool {
	return b.events >= int64(m.cfg.Learn) && ts-b.first >= int64(m.cfg.LearnFor) && len(b.rateSamples) > 0
}

func (b *baseline) add(ts int64, egress bool, cur name, prev [2]name, cats []name, l *Limits) {
	if b.events == 0 {
		b.first = ts
	}
	b.events++
	if egress {
		addCapped(&b.hosts, cur, l.Names)
	} else {
		addCapped(&b.tools, cur, l.Names)
	}
	for _, c := range cats {
		addCapped(&b.cats, c, l.Names)
	}
	if egress || prev[0] == (name{}) {
		return
	}
	b.addSeq([3]name{{}, prev[0], cur}, l.Sequences)
	if prev[1] != (name{}) {
		b.addSeq([3]name{prev[1], prev[0], cur}, l.Sequences)
	}
}

func (b *baseline) addSeq(k [3]name, limit int) {
	if _, ok := b.seqs[k]; ok {
		return
	}
	if len(b.seqs) >= limit {
		b.saturated = true
		return
	}
	if b.seqs == nil {
		b.seqs = map[[3]name]struct{}{}
	}
	b.seqs[k] = struct{}{}
}

func addCapped(set *map[name]struct{}, n name, limit int) {
	if *set == nil {
		*set = map[name]struct{}{}
	}
	if len(*set) < limit {
		(*set)[n] = struct{}{}
	}
}

// sample records one finished minute.
func (b *baseline) sample(calls, out int64) {
	if len(b.rateSamples) < sampleCap {
		b.rateSamples = append(b.rateSamples, calls)
		b.outSamples = append(b.outSamples, out)
		return
	}
	b.rateSamples[b.sampleNext], b.outSamples[b.sampleNext] = calls, out
	b.sampleNext = (b.sampleNext + 1) % sampleCap
}

// freeze ends learning: the 95th percentiles of the samples become the
// baseline.
func (b *baseline) freeze() {
	b.rateP95, b.outP95 = p95(b.rateSamples), p95(b.outSamples)
	b.learned = true
	b.rateSamples, b.outSamples, b.sampleNext = nil, nil, 0
}

// p95 is the nearest-rank 95th percentile, 0 for no values.
func p95(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[(95*len(v)+99)/100-1]
}
