package monitor

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

type swarmKey struct{ group, tool string }

type swarmState struct {
	hits  []swarmHit // latest distinct sessions, oldest first
	fired int64      // time of the last swarm signal, or noTime
	last  int64
}

type swarmHit struct {
	id string
	t  int64
}

// swarm records a state-changing call in each of the agent's groups and
// returns a swarm signal for each group where it completes a swarm.
func (m *Monitor) swarm(e Event, ts int64, sigs []Signal) []Signal {
	id := cmp.Or(e.Session, e.Agent)
	n, window := m.cfg.Swarm.Sessions, int64(m.cfg.Swarm.Window)
	for _, g := range e.Groups {
		k := swarmKey{g, e.Name}
		sh := &m.swarms[shardOf(len(m.swarms), g, e.Name)]
		sh.mu.Lock()
		st := sh.m[k]
		if st == nil {
			if len(sh.m) >= m.maxSwarms {
				m.evictSwarm(sh, ts)
			}
			st = &swarmState{fired: noTime, last: ts}
			sh.m[swarmKey{strings.Clone(g), strings.Clone(e.Name)}] = st
		}
		t := max(ts, st.last)
		st.last = t
		st.hits = slices.DeleteFunc(st.hits, func(h swarmHit) bool { return t-h.t >= window })
		hit := swarmHit{id: id, t: t}
		if i := slices.IndexFunc(st.hits, func(h swarmHit) bool { return h.id == id }); i >= 0 {
			hit.id = st.hits[i].id
			st.hits = slices.Delete(st.hits, i, i+1)
		} else {
			hit.id = strings.Clone(id)
		}
		st.hits = append(st.hits, hit)
		if len(st.hits) > n {
			st.hits = slices.Delete(st.hits, 0, len(st.hits)-n)
		}
		fire := len(st.hits) >= n && (st.fired == noTime || t-st.fired >= window)
		if fire {
			st.fired = t
		}
		sh.mu.Unlock()
		if fire {
			sigs = append(sigs, Signal{Kind: SignalSwarm, Severity: m.severity[SignalSwarm],
				Agent: e.Agent, Session: e.Session, Group: g, Name: e.Name, Time: time.Unix(0, t).UTC(),
				Detail: fmt.Sprintf("%d sessions of group %s called %s (%s) within %v", n, g, e.Name, e.Verb, m.cfg.Swarm.Window)})
		}
	}
	return sigs
}

// evictSwarm makes room in a full swarm shard at time ts: it drops every
// watch whose calls have all left the window, or else the least recent.
func (m *Monitor) evictSwarm(sh *shard[swarmKey, swarmState], ts int64) {
	before := len(sh.m)
	maps.DeleteFunc(sh.m, func(_ swarmKey, st *swarmState) bool { return ts-st.last >= int64(m.cfg.Swarm.Window) })
	if len(sh.m) < before {
		return
	}
	var key swarmKey
	t, first := int64(0), true
	for k, st := range sh.m {
		if first || st.last < t || (st.last == t && (k.group < key.group || (k.group == key.group && k.tool < key.tool))) {
			key, t, first = k, st.last, false
		}
	}
	delete(sh.m, key)
}
