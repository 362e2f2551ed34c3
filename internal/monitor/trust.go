package monitor

import (
	"fmt"
	"math"
	"time"
)

// Trust returns the agent's trust score, 0-100, as of Config.Now(): an
// agent never seen has trust.initial.
func (m *Monitor) Trust(agent string) int {
	now := m.cfg.Now().UnixNano()
	sh := &m.agents[shardOf(len(m.agents), agent)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.m[agent]
	if a == nil {
		return m.cfg.Trust.Initial
	}
	t := a.trust // decay a copy: reading must not change the state
	t.decay(now, &m.cfg.Trust)
	return t.value()
}

// SetTrust sets an agent's trust score, as an operator does (releasing it
// from quarantine, or seeding a score kept elsewhere). It raises no signal.
func (m *Monitor) SetTrust(agent string, score int) error {
	if score < 0 || score > 100 {
		return fmt.Errorf("monitor: trust %d for agent %s: want 0 to 100", score, agent)
	}
	now := m.cfg.Now().UnixNano()
	sh := &m.agents[shardOf(len(m.agents), agent)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := m.agent(sh, agent, now)
	a.trust = trust{score: float64(score), at: max(now, a.trust.at), below: score < m.cfg.Trust.AlertBelow}
	return nil
}

// decay brings the score up to time ts: a score above the floor halves its
// distance to the floor every half-life. A score below the floor stays:
// idling does not earn trust back.
func (t *trust) decay(ts int64, c *TrustConfig) {
	if ts <= t.at {
		return
	}
	if f := float64(c.Floor); t.score > f && c.HalfLife > 0 {
		t.score = f + (t.score-f)*math.Exp2(-(float64(ts)-float64(t.at))/float64(c.HalfLife))
	}
	t.at = ts
}

// value is the score as an integer point on 0-100.
func (t *trust) value() int {
	return int(math.Round(min(max(t.score, 0), 100)))
}

// penaltyEvery is how often one kind of signal can cost an agent trust: a
// spike of a thousand calls is one anomaly, not a thousand.
const penaltyEvery = int64(time.Minute)

// updateTrust applies one event to a's trust: decay to ts, the denial and
// signal penalties, and recovery after trust.recover_every consecutive
// clean (allowed, signal-free) calls. Each kind of signal costs at most
// once per penaltyEvery; swarm signals concern a whole group and cost the
// one agent that completed the swarm nothing. It reports whether the score
// just fell below trust.alert_below.
func (m *Monitor) updateTrust(a *agentState, ts int64, decision string, sigs []Signal) (fell bool) {
	c, t := &m.cfg.Trust, &a.trust
	t.decay(ts, c)
	if decision == DecisionDeny {
		t.score -= float64(c.Denial)
	}
	for _, s := range sigs {
		k := kindIndex(s.Kind)
		if s.Kind == SignalSwarm || s.Kind == SignalLowTrust || (a.penalized[k] != noTime && ts-a.penalized[k] < penaltyEvery) {
			continue
		}
		a.penalized[k] = ts
		t.score -= float64(c.Penalty.of(s.Severity))
	}
	if decision == DecisionAllow && len(sigs) == 0 {
		t.clean++
		if c.RecoverEvery > 0 && t.clean >= c.RecoverEvery {
			t.clean = 0
			if ceil := float64(c.Ceiling); t.score < ceil {
				t.score = min(t.score+1, ceil)
			}
		}
	} else {
		t.clean = 0
	}
	t.score = min(max(t.score, 0), 100)
	below := t.value() < c.AlertBelow
	fell, t.below = below && !t.below, below
	return fell
}

func (p *Penalties) of(s Severity) int {
	switch s {
	case Low:
		return p.Low
	case Medium:
		return p.Medium
	case High:
		return p.High
	case Critical:
		return p.Critical
	}
	return 0
}
