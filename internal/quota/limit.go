package quota

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Scope says which calls a limit counts together.
type Scope string

// The scopes of ward's principal model (Session in Agent in Group; Sponsor).
const (
	ScopeSession Scope = "session" // each session separately
	ScopeAgent   Scope = "agent"   // all sessions of an agent
	ScopeGroup   Scope = "group"   // all sessions of all agents in a group
	ScopeSponsor Scope = "sponsor" // all sessions a sponsor is accountable for
)

// What the caller should do with a call that would exceed a limit.
const (
	OnExceedDeny     = "deny"
	OnExceedEscalate = "escalate"
)

const (
	// DefaultMaxKeys bounds the number of (limit, key) pairs tracked at once
	// when Config.MaxKeys is 0: about 1 Mi keys of a few hundred bytes each.
	DefaultMaxKeys = 1 << 20

	// DefaultMaxEventsPerKey bounds the log entries kept per (limit, key)
	// when Config.MaxEventsPerKey is 0: 256 entries of 24 bytes, 6 KiB.
	DefaultMaxEventsPerKey = 256

	// MinMaxEventsPerKey is the smallest Config.MaxEventsPerKey accepted.
	MinMaxEventsPerKey = 8

	// MaxWindow is the longest window a limit may have.
	MaxWindow = 366 * 24 * time.Hour

	// maxName bounds ids, keys, cost names and patterns in bytes.
	maxName = 256
)

// ErrTooManyKeys is returned by Reserve when recording a call would track
// more than Config.MaxKeys keys even after sweeping expired ones. The call
// must be refused (fail closed); an HTTP server should answer 503.
var ErrTooManyKeys = errors.New("quota: too many tracked keys")

// Matcher selects the calls a limit counts. Its zero value matches every call.
type Matcher struct {
	// Tools are tool name patterns: an exact name ("db.query") or a prefix
	// ending in "*" ("db.*", or "*" for all). "*" is allowed only at the end.
	// Empty matches every tool.
	Tools []string
	// Actions are exact action names ("call_tool", "read_resource",
	// "get_prompt"). Empty matches every action.
	Actions []string
}

// Matches reports whether c is selected: its tool matches one of Tools and
// its action is one of Actions (an empty list matches anything).
func (m Matcher) Matches(c Call) bool {
	if len(m.Actions) > 0 && !slices.Contains(m.Actions, c.Action) {
		return false
	}
	if len(m.Tools) == 0 {
		return true
	}
	for _, p := range m.Tools {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(c.Tool, prefix) {
				return true
			}
		} else if c.Tool == p {
			return true
		}
	}
	return false
}

func (m Matcher) validate() error {
	var errs []error
	for _, p := range m.Tools {
		if err := checkName(p); err != nil {
			errs = append(errs, fmt.Errorf("tool pattern %q: %w", p, err))
		} else if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
			errs = append(errs, fmt.Errorf("tool pattern %q: '*' is allowed only at the end", p))
		}
	}
	for _, a := range m.Actions {
		if err := checkName(a); err != nil {
			errs = append(errs, fmt.Errorf("action %q: %w", a, err))
		} else if strings.Contains(a, "*") {
			errs = append(errs, fmt.Errorf("action %q: actions are exact names, '*' is not allowed", a))
		}
	}
	return errors.Join(errs...)
}

// Limit is one rate limit or budget.
type Limit struct {
	// ID names the limit; unique within a Limiter. Usage history follows the
	// ID across Update.
	ID string
	// Scope is what is counted together.
	Scope Scope
	// Key, if set, restricts the limit to this one session, agent, group or
	// sponsor (per Scope). Empty applies it to each one separately.
	Key string
	// Match selects the calls counted.
	Match Matcher
	// Window is the sliding window length, in (0, MaxWindow].
	Window time.Duration
	// Max is the most count or cost that any window may hold; positive.
	Max float64
	// Cost is "" to count each call as 1, or the name of a cost in
	// Call.Costs to add up (for example "rows"). A matched call that lacks
	// the cost is refused with an error.
	Cost string
	// OnExceed is OnExceedDeny or OnExceedEscalate, carried through in
	// Exceeded for the caller; "" means OnExceedDeny.
	OnExceed string
}

// Call is one tool call to account for.
type Call struct {
	Session string
	// Lineage are the sessions Session was delegated from: session
	// limits count the call against each of them too, so that a
	// delegation tree shares its root's budget.
	Lineage []string
	Agent   string
	// Delegators are the agents of those sessions, when other than
	// Agent: agent limits count the call against each of them too.
	Delegators []string
	Sponsor    string   // "" if none: no sponsor limit applies
	Groups     []string // duplicates count once
	Action     string   // e.g. "call_tool"
	Tool       string   // e.g. "db.create_index"
	// Costs holds the named costs limits with a Cost add up. Each must be
	// finite and not negative.
	Costs map[string]float64
	// Time is when the call happens; zero means Config.Now(). Times should
	// come from the same clock as Config.Now.
	Time time.Time
}

// Config configures a Limiter.
type Config struct {
	Limits []Limit
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxKeys bounds the number of (limit, key) pairs tracked; 0 means
	// DefaultMaxKeys. Beyond it Reserve fails closed with ErrTooManyKeys.
	MaxKeys int
	// MaxEventsPerKey bounds the log entries kept per (limit, key); 0 means
	// DefaultMaxEventsPerKey, otherwise at least MinMaxEventsPerKey. See the
	// package documentation for what happens when a log is full.
	MaxEventsPerKey int
	// Ledger, when set, is usage shared with the limiters of other nodes
	// (ledger.go): a call also needs its cost from it.
	Ledger Ledger
}

// limit is a validated Limit with its window in nanoseconds. Its slices are
// private copies, so it is immutable.
type limit struct {
	Limit
	window int64
}

// limitSet is an immutable, validated set of limits.
type limitSet struct {
	list []*limit
	byID map[string]*limit
}

func compileLimits(limits []Limit) (*limitSet, error) {
	set := &limitSet{byID: make(map[string]*limit, len(limits))}
	var errs []error
	for i, in := range limits {
		lim := in
		lim.Match.Tools = slices.Clone(in.Match.Tools)
		lim.Match.Actions = slices.Clone(in.Match.Actions)
		if lim.OnExceed == "" {
			lim.OnExceed = OnExceedDeny
		}
		name := fmt.Sprintf("limit %q", lim.ID)
		if lim.ID == "" {
			name = fmt.Sprintf("limit %d", i)
		}
		if err := lim.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if _, dup := set.byID[lim.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate id", name))
			continue
		}
		l := &limit{Limit: lim, window: int64(lim.Window)}
		set.byID[lim.ID] = l
		set.list = append(set.list, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("quota: invalid limits: %w", err)
	}
	return set, nil
}

func (l *Limit) validate() error {
	var errs []error
	if l.ID == "" {
		errs = append(errs, errors.New("id is empty"))
	} else if err := checkName(l.ID); err != nil {
		errs = append(errs, fmt.Errorf("id: %w", err))
	}
	switch l.Scope {
	case ScopeSession, ScopeAgent, ScopeGroup, ScopeSponsor:
	default:
		errs = append(errs, fmt.Errorf("unknown scope %q (want session, agent, group or sponsor)", l.Scope))
	}
	if l.Key != "" {
		if err := checkName(l.Key); err != nil {
			errs = append(errs, fmt.Errorf("key: %w", err))
		}
	}
	if err := l.Match.validate(); err != nil {
		errs = append(errs, err)
	}
	if l.Window <= 0 || l.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("window %v is not in (0, %v]", l.Window, MaxWindow))
	}
	if !(l.Max > 0) || math.IsInf(l.Max, 0) {
		errs = append(errs, fmt.Errorf("max %v is not a positive finite number", l.Max))
	}
	if l.Cost != "" {
		if err := checkName(l.Cost); err != nil {
			errs = append(errs, fmt.Errorf("cost name: %w", err))
		}
	}
	switch l.OnExceed {
	case OnExceedDeny, OnExceedEscalate:
	default:
		errs = append(errs, fmt.Errorf("unknown on-exceed %q (want deny or escalate)", l.OnExceed))
	}
	return errors.Join(errs...)
}

// checkName accepts non-empty valid UTF-8 of at most maxName bytes without
// control characters.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxName:
		return fmt.Errorf("longer than %d bytes", maxName)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("contains a control character")
	}
	return nil
}

// Exceeded describes one (limit, key) a call would take over its Max.
type Exceeded struct {
	Limit     Limit
	Key       string  // the session, agent, group or sponsor
	Used      float64 // usage in the window ending at the call
	Requested float64 // the call's count or cost
	Max       float64
	// RetryAfter is how long until enough usage has left the window for
	// the call to fit, if nothing else is recorded meanwhile (possibly
	// overstated for keys whose log was full). It is 0 only when
	// Requested > Max: no wait helps.
	RetryAfter time.Duration
}

// Impossible reports whether the call can never fit: Requested > Max.
func (e Exceeded) Impossible() bool { return e.Requested > e.Max }
