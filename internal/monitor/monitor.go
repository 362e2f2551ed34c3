package monitor

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unique"
)

// Event kinds.
const (
	KindCall   = "call"   // a tool call through the gateway; Name is the tool
	KindEgress = "egress" // an HTTP request through the egress proxy; Name is the host
)

// Decisions, as in Event.Decision.
const (
	DecisionAllow    = "allow"
	DecisionDeny     = "deny"
	DecisionEscalate = "escalate"
)

// Event is one tool call or egress request, as the gateway decided it.
// Feed each call exactly once, after the decision and before forwarding,
// so that a "block" action can still stop it.
type Event struct {
	Time                    time.Time // zero: Config.Now()
	Session, Agent, Sponsor string    // Sponsor is informational
	Groups                  []string  // the agent's groups
	Kind                    string    // KindCall or KindEgress; anything else counts as a call
	Name                    string    // tool (SERVER.TOOL) or host
	// Category, if set, is the call's one category or resource kind;
	// empty means Categories(Name, Config.Categories).
	Category string
	Verb     string // from the tool's declaration: read, write, delete, admin, ...
	Decision string // DecisionAllow, DecisionDeny or DecisionEscalate
	// BytesOut is what the agent sends (arguments, request body): data
	// leaving, judged by large_outbound. BytesIn is what it receives (the
	// result), when known; it is informational.
	BytesIn, BytesOut int64
	Drift             bool // outside the session's declared objective; see OutsideObjective
	Risk              int  // content scanning's score; 0 if none
}

// Signal is one anomaly. Agent and Session are those of the event that
// raised it; Group is set for group-level signals (swarm), which concern
// every session that took part.
type Signal struct {
	Kind     string    `json:"kind"`
	Severity Severity  `json:"severity"`
	Agent    string    `json:"agent,omitempty"`
	Session  string    `json:"session,omitempty"`
	Group    string    `json:"group,omitempty"`
	Name     string    `json:"name,omitempty"` // the tool or host involved
	Detail   string    `json:"detail"`
	Time     time.Time `json:"time"`
}

// Action is what a playbook asks the caller to do about a signal:
//
//	alert             notify operators of Signal
//	block             deny the call that was observed
//	require_approval  escalate every further call of Session
//	quarantine        deny everything Agent does, revoke its grants, end its sessions
//	preserve          export a forensic bundle of Session
//
// Agent, Session and Group are the signal's; Group widens nothing, it only
// records that the signal was group-level.
type Action struct {
	Kind     string `json:"kind"`
	Agent    string `json:"agent,omitempty"`
	Session  string `json:"session,omitempty"`
	Group    string `json:"group,omitempty"`
	Playbook string `json:"playbook,omitempty"` // the playbook's name
	Signal   Signal `json:"signal"`
}

// Severity ranks signals: Info < Low < Medium < High < Critical. Its text
// form is the lowercase name.
type Severity int

// Severities.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// String returns the severity's name.
func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses a severity's name.
func ParseSeverity(s string) (Severity, error) {
	if i := slices.Index(severityNames[:], s); i >= 0 {
		return Severity(i), nil
	}
	return 0, fmt.Errorf("unknown severity %q (want info, low, medium, high or critical)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) {
	if s < Info || s > Critical {
		return nil, fmt.Errorf("unknown severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// Internal sizes. See "Memory" in the package documentation.
const (
	slotWidth  = int64(5 * time.Second) // resolution of the sliding minute
	slots      = 12                     // slots in the sliding minute
	sampleCap  = 64                     // per-minute samples kept while learning
	shardCount = 64                     // lock shards of each table
	noTime     = math.MinInt64
)

// name is an interned tool, host or category name: cheap to hash and
// compare, and it does not pin the caller's buffers.
type name = unique.Handle[string]

// Monitor learns baselines, detects anomalies, keeps trust scores and maps
// signals to actions. Its methods are safe for concurrent use.
type Monitor struct {
	cfg      Config
	cats     categoryIndex
	severity map[string]Severity
	plays    []playbook

	// per-shard capacity of each table
	maxAgents, maxSessions, maxGroups, maxSwarms int

	agents   []shard[string, agentState]
	sessions []shard[string, sessionState]
	groups   []shard[string, groupState]
	swarms   []shard[swarmKey, swarmState]
}

// shard is one lock and the part of a table it guards.
type shard[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*V
	_  [48]byte // one cache line per shard
}

type playbook struct {
	name    string
	all     bool
	kinds   []string
	min     Severity
	actions []int // indexes into actionKinds
}

// New validates cfg and returns a monitor with nothing learned.
func New(cfg Config) (*Monitor, error) {
	return newMonitor(cfg, shardCount)
}

func newMonitor(cfg Config, shards int) (*Monitor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Swarm.Verbs = slices.Clone(cfg.Swarm.Verbs)
	m := &Monitor{
		cfg:         cfg,
		cats:        compileCategories(cfg.Categories),
		severity:    map[string]Severity{},
		maxAgents:   perShard(cfg.Limits.Agents, shards),
		maxSessions: perShard(cfg.Limits.Sessions, shards),
		maxGroups:   perShard(cfg.Limits.Groups, shards),
		maxSwarms:   perShard(cfg.Limits.Swarms, shards),
		agents:      make([]shard[string, agentState], shards),
		sessions:    make([]shard[string, sessionState], shards),
		groups:      make([]shard[string, groupState], shards),
		swarms:      make([]shard[swarmKey, swarmState], shards),
	}
	for _, k := range signalKinds {
		m.severity[k.name] = k.severity
	}
	for k, s := range cfg.Severities {
		m.severity[k], _ = ParseSeverity(s)
	}
	for _, p := range cfg.Playbooks {
		pb := playbook{name: p.Name, all: slices.Contains(p.Signals, "*"), kinds: slices.Clone(p.Signals)}
		if p.MinSeverity != "" {
			pb.min, _ = ParseSeverity(p.MinSeverity)
		}
		for _, a := range p.Actions {
			pb.actions = append(pb.actions, slices.Index(actionKinds[:], a))
		}
		m.plays = append(m.plays, pb)
	}
	m.reset()
	return m, nil
}

// reset empties every table. The caller holds no locks and nobody else
// uses m, or holds every shard lock.
func (m *Monitor) reset() {
	for i := range m.agents {
		m.agents[i].m = map[string]*agentState{}
		m.sessions[i].m = map[string]*sessionState{}
		m.groups[i].m = map[string]*groupState{}
		m.swarms[i].m = map[swarmKey]*swarmState{}
	}
}

func perShard(limit, shards int) int { return max(1, (limit+shards-1)/shards) }

// shardOf hashes s (FNV-1a) to one of n shards. It is deterministic, so a
// restored monitor shards, and so evicts, exactly as the original.
func shardOf(n int, parts ...string) int {
	h := uint32(2166136261)
	for _, s := range parts {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint32(s[i])) * 16777619
		}
		h = (h ^ 0xff) * 16777619
	}
	return int(h % uint32(n))
}

// Observe records one event and returns the signals it raised, most severe
// first, and, in enforce mode, the playbooks' actions for them: at most one
// alert per signal and at most one action of every other kind per event,
// taken from the most severe signal that asks for it. Both are nil when
// the event is unremarkable. Observe is total: it never fails.
func (m *Monitor) Observe(e Event) (signals []Signal, actions []Action) {
	at := e.Time
	if at.IsZero() {
		at = m.cfg.Now()
	}
	ts := at.UnixNano()
	cur := unique.Make(e.Name)
	var prev [2]name
	if e.Kind != KindEgress && e.Session != "" {
		prev = m.step(e.Session, cur, ts)
	}
	var sigs []Signal
	if slices.Contains(m.cfg.Swarm.Verbs, e.Verb) {
		sigs = m.swarm(e, ts, sigs)
	}
	sigs = m.observeAgent(e, ts, cur, prev, sigs)
	if len(sigs) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(sigs, func(a, b Signal) int { return cmp.Compare(b.Severity, a.Severity) })
	return sigs, m.actions(sigs)
}

// actions applies the playbooks to signals sorted most severe first.
func (m *Monitor) actions(sigs []Signal) []Action {
	if m.cfg.Mode != ModeEnforce {
		return nil
	}
	var acts []Action
	var done [len(actionKinds)]bool
	for _, s := range sigs {
		alerted := false
		for _, p := range m.plays {
			if s.Severity < p.min || !(p.all || slices.Contains(p.kinds, s.Kind)) {
				continue
			}
			for _, k := range p.actions {
				if actionKinds[k] == ActionAlert {
					if alerted {
						continue
					}
					alerted = true
				} else if done[k] {
					continue
				}
				done[k] = true
				acts = append(acts, Action{Kind: actionKinds[k], Agent: s.Agent, Session: s.Session,
					Group: s.Group, Playbook: p.name, Signal: s})
			}
		}
	}
	return acts
}

// Relearn puts an agent back into learning, after an operator accepted a
// change in its behaviour: what it learned is kept and extended, and its
// baseline is enforced again once a new learning period is complete.
func (m *Monitor) Relearn(agent string) {
	sh := &m.agents[shardOf(len(m.agents), agent)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a := sh.m[agent]; a != nil {
		a.base.learned, a.base.events, a.base.first = false, 0, noTime
	}
}

// EndSession forgets an ended session's sequence.
func (m *Monitor) EndSession(id string) {
	sh := &m.sessions[shardOf(len(m.sessions), id)]
	sh.mu.Lock()
	delete(sh.m, id)
	sh.mu.Unlock()
}

// sessionState is what the monitor holds per session, guarded by its shard.
type sessionState struct {
	prev [2]name // the session's last two tools, latest first
	last int64
}

// step advances a session's sequence to cur and returns the two tools
// before it.
func (m *Monitor) step(id string, cur name, ts int64) [2]name {
	sh := &m.sessions[shardOf(len(m.sessions), id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[id]
	if s == nil {
		if len(sh.m) >= m.maxSessions {
			delete(sh.m, oldest(sh.m, func(s *sessionState) int64 { return s.last }))
		}
		s = &sessionState{last: ts}
		sh.m[strings.Clone(id)] = s
	}
	prev := s.prev
	s.prev = [2]name{cur, prev[0]}
	s.last = max(s.last, ts)
	return prev
}

// oldest returns the key of the least recently active entry, ties broken
// by the smaller key, so that eviction is deterministic.
func oldest[K cmp.Ordered, V any](m map[K]*V, last func(*V) int64) K {
	var key K
	t, first := int64(0), true
	for k, v := range m {
		if l := last(v); first || l < t || (l == t && k < key) {
			key, t, first = k, l, false
		}
	}
	return key
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}
