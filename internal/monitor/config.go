package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Modes.
const (
	// ModeObserve is a dry run: baselines learn and signals are reported,
	// but Observe never returns actions.
	ModeObserve = "observe"
	// ModeEnforce runs the playbooks on every signal.
	ModeEnforce = "enforce"
)

// Signal kinds.
const (
	SignalRateSpike       = "rate_spike"       // calls per minute above the baseline or the cap
	SignalNewTool         = "new_tool"         // a tool the baseline never saw
	SignalNewHost         = "new_host"         // an egress host the baseline never saw
	SignalNewCategory     = "new_category"     // a tool category or resource kind the baseline never saw
	SignalUnusualSequence = "unusual_sequence" // a pair or triple of calls the baseline never saw
	SignalDenialBurst     = "denial_burst"     // many denials in a short window
	SignalLargeOutbound   = "large_outbound"   // bytes sent per minute above the baseline or the cap
	SignalDrift           = "drift"            // a call outside the session's declared objective
	SignalContentRisk     = "content_risk"     // content scanning scored the call as risky
	SignalSwarm           = "swarm"            // many sessions of a group made the same change at once
	SignalLowTrust        = "low_trust"        // the agent's trust fell below trust.alert_below
)

// Action kinds.
const (
	ActionAlert           = "alert"            // notify operators (webhook, log, console)
	ActionBlock           = "block"            // deny the call that raised the signal
	ActionRequireApproval = "require_approval" // escalate the rest of the session
	ActionQuarantine      = "quarantine"       // deny everything the agent does, revoke its grants, end its sessions
	ActionPreserve        = "preserve"         // export a forensic bundle of the session
)

// signalKinds lists every signal kind with its default severity.
var signalKinds = [...]struct {
	name     string
	severity Severity
}{
	{SignalRateSpike, Medium},
	{SignalNewTool, Low},
	{SignalNewHost, Medium},
	{SignalNewCategory, Medium},
	{SignalUnusualSequence, Low},
	{SignalDenialBurst, High},
	{SignalLargeOutbound, High},
	{SignalDrift, Medium},
	{SignalContentRisk, High},
	{SignalSwarm, High},
	{SignalLowTrust, Critical},
}

// kindIndex returns the index of a signal kind in signalKinds, or -1.
func kindIndex(kind string) int {
	for i, k := range signalKinds {
		if k.name == kind {
			return i
		}
	}
	return -1
}

var actionKinds = [...]string{ActionAlert, ActionBlock, ActionRequireApproval, ActionQuarantine, ActionPreserve}

// Defaults, as set by [DefaultConfig].
const (
	DefaultLearn         = 200                // events before an agent's or group's baseline is enforced
	DefaultRateFactor    = 3                  // a spike is this many times the baseline's p95 calls per minute
	DefaultRateFloor     = 30                 // and at least this many calls per minute
	DefaultOutFactor     = 5                  // large outbound: this many times the p95 bytes per minute
	DefaultOutFloor      = 1 << 20            // and at least 1 MiB per minute
	DefaultDenials       = 5                  // denials that make a burst
	DefaultDenialWindow  = time.Minute        // within this window
	DefaultRiskThreshold = 50                 // Event.Risk that raises content_risk
	DefaultRiskCritical  = 90                 // Event.Risk that makes it critical
	DefaultSwarmSessions = 5                  // distinct sessions that make a swarm
	DefaultSwarmWindow   = time.Minute        // within this window
	DefaultTrustInitial  = 50                 // trust of an agent never seen
	DefaultTrustFloor    = 40                 // inactivity decays trust toward this
	DefaultTrustHalfLife = 7 * 24 * time.Hour // of the decay toward the floor
	DefaultTrustCeiling  = 90                 // clean history recovers trust up to this
	DefaultRecoverEvery  = 50                 // clean calls per point of recovery
	DefaultDenialPenalty = 2                  // points lost per denied call
	DefaultTrustAlert    = 20                 // low_trust when trust falls below this
	DefaultMaxAgents     = 100_000
	DefaultMaxSessions   = 100_000
	DefaultMaxGroups     = 10_000
	DefaultMaxSwarms     = 10_000 // (group, tool) pairs watched for swarms
	DefaultMaxNames      = 1_024  // tools, hosts and categories per baseline, each
	DefaultMaxSequences  = 4_096  // pairs and triples per baseline
)

// Default trust penalties by severity, and bounds of the configuration.
const (
	defaultPenaltyLow      = 1
	defaultPenaltyMedium   = 3
	defaultPenaltyHigh     = 10
	defaultPenaltyCritical = 25
	maxDenials             = 64    // upper bound of denials.count (a ring per agent)
	maxSwarmSessions       = 1_000 // upper bound of swarm.sessions (a list per group and tool)
)

// Config configures a [Monitor]. Start from [DefaultConfig]: [New] rejects
// the zero values of thresholds rather than guessing. The YAML form is in
// the package documentation.
type Config struct {
	// Mode is ModeEnforce or ModeObserve.
	Mode string `yaml:"mode"`
	// Learn is the number of events an agent (or group) is observed before
	// its baseline is enforced, and LearnFor how long at least since its
	// first event; both must be reached, and at least one must be set.
	Learn    int           `yaml:"learn"`
	LearnFor time.Duration `yaml:"learn_for"`

	Rate     VolumeConfig `yaml:"rate"`     // calls per minute
	Outbound VolumeConfig `yaml:"outbound"` // bytes sent per minute
	Denials  DenialConfig `yaml:"denials"`
	Risk     RiskConfig   `yaml:"risk"`
	Swarm    SwarmConfig  `yaml:"swarm"`
	Trust    TrustConfig  `yaml:"trust"`

	// Severities overrides the default severity of signal kinds.
	Severities map[string]string `yaml:"severities"`
	// Playbooks map signals to actions; see [Playbook].
	Playbooks []Playbook `yaml:"playbooks"`
	// Categories maps tool (or host) name patterns to categories; see
	// [Categories]. An Event with an explicit Category uses that instead.
	Categories map[string][]string `yaml:"categories"`
	// Limits bound the monitor's memory.
	Limits Limits `yaml:"limits"`

	// Now is the clock for events without a Time and for [Monitor.Trust];
	// nil means time.Now.
	Now func() time.Time `yaml:"-"`
}

// VolumeConfig sets when a per-minute volume is anomalous: above Factor
// times the baseline's 95th percentile and above Floor (relative, once a
// baseline is enforced), or above Cap (absolute, at any time; 0 is no cap).
// Crossing the cap raises the signal one severity level.
type VolumeConfig struct {
	Factor float64 `yaml:"factor"`
	Floor  int64   `yaml:"floor"`
	Cap    int64   `yaml:"cap"`
}

// DenialConfig sets a denial burst: Count denied calls of one agent within
// Window.
type DenialConfig struct {
	Count  int           `yaml:"count"`
	Window time.Duration `yaml:"window"`
}

// RiskConfig sets when content scanning's Event.Risk raises content_risk,
// and from what score it is one severity level higher (0: never).
type RiskConfig struct {
	Threshold int `yaml:"threshold"`
	Critical  int `yaml:"critical"`
}

// SwarmConfig sets collective detection: Sessions distinct sessions of one
// group calling the same tool (or host) with one of Verbs within Window.
type SwarmConfig struct {
	Sessions int           `yaml:"sessions"`
	Window   time.Duration `yaml:"window"`
	Verbs    []string      `yaml:"verbs"`
}

// TrustConfig sets the trust score; see the package documentation.
// Scores are points on 0-100.
type TrustConfig struct {
	Initial      int           `yaml:"initial"`       // score of an agent never seen
	Floor        int           `yaml:"floor"`         // inactivity decays scores above it toward it
	HalfLife     time.Duration `yaml:"half_life"`     // of that decay; 0 is no decay
	Ceiling      int           `yaml:"ceiling"`       // clean history recovers the score up to it
	RecoverEvery int           `yaml:"recover_every"` // consecutive clean calls per point; 0 never recovers
	Denial       int           `yaml:"denial"`        // points lost per denied call
	Penalty      Penalties     `yaml:"penalty"`       // points lost per signal, by severity
	AlertBelow   int           `yaml:"alert_below"`   // low_trust when the score falls below; 0 never
}

// Penalties are the trust points a signal costs, by severity. Info costs
// nothing.
type Penalties struct {
	Low      int `yaml:"low"`
	Medium   int `yaml:"medium"`
	High     int `yaml:"high"`
	Critical int `yaml:"critical"`
}

// Limits bound what the monitor keeps; see "Memory" in the package
// documentation.
type Limits struct {
	Agents    int `yaml:"agents"`
	Sessions  int `yaml:"sessions"`
	Groups    int `yaml:"groups"`
	Swarms    int `yaml:"swarms"`
	Names     int `yaml:"names"`
	Sequences int `yaml:"sequences"`
}

// Playbook maps signals to actions: every signal whose kind is in Signals
// ("*" for all) and whose severity is at least MinSeverity (default info)
// yields Actions.
type Playbook struct {
	Name        string   `yaml:"name"`
	Signals     []string `yaml:"signals"`
	MinSeverity string   `yaml:"min_severity"`
	Actions     []string `yaml:"actions"`
}

// DefaultConfig returns the defaults: enforce, learn for 200 events, the
// thresholds named by the Default constants, and no playbooks.
func DefaultConfig() Config {
	return Config{
		Mode:     ModeEnforce,
		Learn:    DefaultLearn,
		Rate:     VolumeConfig{Factor: DefaultRateFactor, Floor: DefaultRateFloor},
		Outbound: VolumeConfig{Factor: DefaultOutFactor, Floor: DefaultOutFloor},
		Denials:  DenialConfig{Count: DefaultDenials, Window: DefaultDenialWindow},
		Risk:     RiskConfig{Threshold: DefaultRiskThreshold, Critical: DefaultRiskCritical},
		Swarm: SwarmConfig{Sessions: DefaultSwarmSessions, Window: DefaultSwarmWindow,
			Verbs: []string{"write", "delete", "admin"}},
		Trust: TrustConfig{
			Initial: DefaultTrustInitial, Floor: DefaultTrustFloor, HalfLife: DefaultTrustHalfLife,
			Ceiling: DefaultTrustCeiling, RecoverEvery: DefaultRecoverEvery, Denial: DefaultDenialPenalty,
			Penalty: Penalties{Low: defaultPenaltyLow, Medium: defaultPenaltyMedium,
				High: defaultPenaltyHigh, Critical: defaultPenaltyCritical},
			AlertBelow: DefaultTrustAlert,
		},
		Limits: Limits{Agents: DefaultMaxAgents, Sessions: DefaultMaxSessions, Groups: DefaultMaxGroups,
			Swarms: DefaultMaxSwarms, Names: DefaultMaxNames, Sequences: DefaultMaxSequences},
	}
}

// ParseConfig parses a YAML monitor configuration: [DefaultConfig]
// overridden by the document's keys. Unknown keys, a second document and
// invalid values are errors.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("monitor: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("monitor: more than one YAML document")
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// validate checks every field; errors name the field in its YAML form.
func (c *Config) validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("monitor: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Mode != ModeObserve && c.Mode != ModeEnforce {
		bad("mode", "%q: want observe or enforce", c.Mode)
	}
	switch {
	case c.Learn < 0:
		bad("learn", "%d: must not be negative", c.Learn)
	case c.LearnFor < 0:
		bad("learn_for", "%v: must not be negative", c.LearnFor)
	case c.Learn == 0 && c.LearnFor == 0:
		bad("learn", "learn or learn_for must be set: a baseline needs a learning period")
	}
	for _, vc := range []struct {
		name string
		v    VolumeConfig
	}{{"rate", c.Rate}, {"outbound", c.Outbound}} {
		name, v := vc.name, vc.v
		if !(v.Factor >= 1) || math.IsInf(v.Factor, 1) {
			bad(name+".factor", "%v: want a finite number of at least 1", v.Factor)
		}
		if v.Floor < 0 {
			bad(name+".floor", "%d: must not be negative", v.Floor)
		}
		if v.Cap < 0 {
			bad(name+".cap", "%d: must not be negative (0 is no cap)", v.Cap)
		}
	}
	if c.Denials.Count < 1 || c.Denials.Count > maxDenials {
		bad("denials.count", "%d: want 1 to %d", c.Denials.Count, maxDenials)
	}
	if c.Denials.Window <= 0 {
		bad("denials.window", "%v: must be positive", c.Denials.Window)
	}
	if c.Risk.Threshold < 1 {
		bad("risk.threshold", "%d: must be positive", c.Risk.Threshold)
	}
	if c.Risk.Critical != 0 && c.Risk.Critical < c.Risk.Threshold {
		bad("risk.critical", "%d: below risk.threshold %d (0 disables it)", c.Risk.Critical, c.Risk.Threshold)
	}
	if c.Swarm.Sessions < 2 || c.Swarm.Sessions > maxSwarmSessions {
		bad("swarm.sessions", "%d: want 2 to %d", c.Swarm.Sessions, maxSwarmSessions)
	}
	if c.Swarm.Window <= 0 {
		bad("swarm.window", "%v: must be positive", c.Swarm.Window)
	}
	if len(c.Swarm.Verbs) == 0 {
		bad("swarm.verbs", "empty: name the verbs that change state, e.g. [write, delete, admin]")
	}
	for i, v := range c.Swarm.Verbs {
		if v == "" {
			bad(fmt.Sprintf("swarm.verbs[%d]", i), "empty verb")
		}
	}
	t := c.Trust
	for _, f := range []struct {
		name string
		v    int
	}{{"trust.initial", t.Initial}, {"trust.floor", t.Floor}, {"trust.ceiling", t.Ceiling}, {"trust.alert_below", t.AlertBelow}} {
		if f.v < 0 || f.v > 100 {
			bad(f.name, "%d: want 0 to 100", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"trust.recover_every", t.RecoverEvery}, {"trust.denial", t.Denial}, {"trust.penalty.low", t.Penalty.Low},
		{"trust.penalty.medium", t.Penalty.Medium}, {"trust.penalty.high", t.Penalty.High}, {"trust.penalty.critical", t.Penalty.Critical}} {
		if f.v < 0 || f.v > 100 {
			bad(f.name, "%d: want 0 to 100", f.v)
		}
	}
	if t.HalfLife < 0 {
		bad("trust.half_life", "%v: must not be negative (0 is no decay)", t.HalfLife)
	}
	for _, kind := range sortedKeys(c.Severities) {
		if kindIndex(kind) < 0 {
			bad("severities", "unknown signal kind %q (want %s)", kind, kindList())
		}
		if _, err := ParseSeverity(c.Severities[kind]); err != nil {
			bad("severities."+kind, "%v", err)
		}
	}
	for i, p := range c.Playbooks {
		field := fmt.Sprintf("playbooks[%d]", i)
		if len(p.Signals) == 0 {
			bad(field+".signals", `empty: name signal kinds or "*"`)
		}
		for j, s := range p.Signals {
			if kindIndex(s) < 0 && s != "*" {
				bad(fmt.Sprintf("%s.signals[%d]", field, j), `unknown signal kind %q (want "*", %s)`, s, kindList())
			}
		}
		if p.MinSeverity != "" {
			if _, err := ParseSeverity(p.MinSeverity); err != nil {
				bad(field+".min_severity", "%v", err)
			}
		}
		if len(p.Actions) == 0 {
			bad(field+".actions", "empty: name one of %s", strings.Join(actionKinds[:], ", "))
		}
		for j, a := range p.Actions {
			if !slices.Contains(actionKinds[:], a) {
				bad(fmt.Sprintf("%s.actions[%d]", field, j), "unknown action %q (want %s)", a, strings.Join(actionKinds[:], ", "))
			}
		}
	}
	for _, pat := range sortedKeys(c.Categories) {
		if i := strings.IndexByte(pat, '*'); pat == "" || (i >= 0 && i != len(pat)-1) {
			bad("categories", "pattern %q: want a name, optionally ending in *", pat)
		}
		if len(c.Categories[pat]) == 0 {
			bad(fmt.Sprintf("categories[%q]", pat), "no categories")
		}
		for _, cat := range c.Categories[pat] {
			if cat == "" {
				bad(fmt.Sprintf("categories[%q]", pat), "empty category")
			}
		}
	}
	l := c.Limits
	for _, f := range []struct {
		name string
		v    int
	}{{"limits.agents", l.Agents}, {"limits.sessions", l.Sessions}, {"limits.groups", l.Groups},
		{"limits.swarms", l.Swarms}, {"limits.names", l.Names}, {"limits.sequences", l.Sequences}} {
		if f.v < 1 {
			bad(f.name, "%d: must be positive", f.v)
		}
	}
	return errors.Join(errs...)
}

func kindList() string {
	var names []string
	for _, k := range signalKinds {
		names = append(names, k.name)
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
