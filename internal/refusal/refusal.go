// Package refusal records what ward refused, in the audit log, without
// letting a flood of refusals fill the disk.
//
// Every edge of ward that refuses a request (a bad credential, a replayed
// proof, a malformed body, a refused token exchange or vote, a transport
// error of the MCP endpoint, a panic) hands a [Refusal] to a [Recorder]:
// who sent it (the source address and the principal, proven or only
// claimed), what it was (method, path, status) and why (kind and reason).
//
// # Events
//
// A refusal recorded on its own is an audit event of type "refusal":
//
//	{"type": "refusal", "actor": "spiffe://td/agent/a/session/s", "session": "s", "agent": "a", "sponsor": "acme",
//	 "data": {"kind": "authentication", "status": 401, "method": "POST", "path": "/v1/guard/check",
//	          "reason": "unauthenticated: DPoP proof: proof replayed", "source": "192.0.2.7"}}
//
// Actor, session, agent and sponsor are set only for a proven principal
// (the request authenticated as it). A principal the request merely named
// (an unverified or unbound grant, a certificate that did not verify) is
// data.claimed = {"principal": …, "basis": …}, never the actor: a claim is
// what the sender said, and anyone can say anything.
//
// # Floods
//
// Time is cut into windows of [Config.Window], aligned to the Unix epoch.
// Refusals are grouped by key: source, principal (and whether it is
// proven) and kind. In a window, the first [Config.PerKey] refusals of a
// key are recorded one by one, while the window has recorded fewer than
// [Config.MaxIndividual]; the rest are counted. When the window ends, each
// key with counted refusals gets one event of type "refusal.summary":
//
//	{"type": "refusal.summary", "data": {"kind": "authentication", "source": "192.0.2.7",
//	 "window_start": "…", "window_end": "…", "recorded": 5, "count": 99995,
//	 "refusals": [{"method": "POST", "path": "/mcp", "status": 401, "reason": "…", "count": 99995}], "other": 0}}
//
// "refusals" lists at most [MaxSamples] distinct (method, path, status,
// reason) of the counted refusals with their counts; "other" counts the
// rest. At most [Config.MaxKeys] keys are tracked per window: refusals of
// further keys are counted together in one summary whose data has
// "overflow": true.
//
// So one window produces at most MaxIndividual + MaxKeys + 1 events and
// the recorder holds at most MaxKeys keys (each at most about 8 KiB: its
// first refusal and its samples, every text cut to a bound), whatever
// arrives; and, per
// window, the refusals recorded one by one plus the counts of the
// summaries equal the refusals received. A window's summaries are appended
// when the window ends (a timer), when a later refusal arrives, or on
// [Recorder.Flush] and [Recorder.Close].
package refusal

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ward-dev/ward/internal/audit"
)

// Defaults for [Config].
const (
	// DefaultWindow is the aggregation window.
	DefaultWindow = time.Minute
	// DefaultPerKey is how many refusals of one key a window records one
	// by one.
	DefaultPerKey = 5
	// DefaultMaxIndividual is how many refusals a window records one by
	// one over all keys.
	DefaultMaxIndividual = 100
	// DefaultMaxKeys is how many keys a window tracks.
	DefaultMaxKeys = 512
)

// MaxSamples is how many distinct refusals a summary lists with counts.
const MaxSamples = 4

// Bounds on what an event carries of a refusal's text.
const (
	maxField  = 256  // source, principal, basis, method, path, kind
	maxReason = 1024 // reason
)

// Event types.
const (
	TypeRefusal = "refusal"
	TypeSummary = "refusal.summary"
)

// Refusal is one refused request.
type Refusal struct {
	// Kind is the class of refusal, stable across requests
	// ("authentication", "token_exchange", "transport", ...).
	Kind   string
	Status int // the HTTP status answered
	Method string
	Path   string
	// Reason says why, as the caller was told (it must hold no secret).
	Reason string
	// Source is the remote address, without the port.
	Source string
	// Principal is who sent the request, as far as known: a session's
	// SPIFFE ID or a principal's name. Proven says ward authenticated it;
	// otherwise it was only claimed, and Basis says what claimed it
	// ("unverified grant", ...).
	Principal string
	Proven    bool
	Basis     string
	// Session, Agent and Sponsor are those of a proven session.
	Session, Agent, Sponsor string
}

// Appender appends audit events; *audit.Log is one.
type Appender interface {
	Append(ctx context.Context, e audit.Event) (uint64, error)
}

var _ Appender = (*audit.Log)(nil)

// Config configures a [Recorder].
type Config struct {
	// Audit receives the events. Required.
	Audit         Appender
	Window        time.Duration // default DefaultWindow
	PerKey        int           // default DefaultPerKey
	MaxIndividual int           // default DefaultMaxIndividual
	MaxKeys       int           // default DefaultMaxKeys
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnError is told when a summary appended from the window timer could
	// not be appended (nil: it is dropped). Errors of Record, Flush and
	// Close are returned to their caller.
	OnError func(error)
	// OnRefuse, if set, is told the kind of every refusal recorded (for
	// metrics), flood or not. It must not block.
	OnRefuse func(kind string)
}

// Recorder records refusals; see the package documentation. Its methods
// are safe for concurrent use.
type Recorder struct {
	cfg Config

	mu     sync.Mutex
	win    time.Time // start of the current window
	keys   map[key]*counter
	over   counter // refusals of keys beyond MaxKeys
	solo   int     // refusals recorded one by one in this window
	timer  *time.Timer
	closed bool
}

type key struct {
	source, principal string
	proven            bool
	kind              string
}

type sample struct {
	method, path string
	status       int
	reason       string
}

// counter is what a window knows of one key.
type counter struct {
	first    Refusal // the first refusal of the key, for its who
	recorded int     // recorded one by one
	counted  int     // counted for the summary
	samples  []sampleCount
	other    int
}

type sampleCount struct {
	sample
	n int
}

func (c *counter) count(s sample) {
	c.counted++
	for i := range c.samples {
		if c.samples[i].sample == s {
			c.samples[i].n++
			return
		}
	}
	if len(c.samples) < MaxSamples {
		c.samples = append(c.samples, sampleCount{s, 1})
		return
	}
	c.other++
}

// New returns a Recorder.
func New(cfg Config) (*Recorder, error) {
	if cfg.Audit == nil {
		return nil, errors.New("refusal recorder: Audit is required")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.PerKey <= 0 {
		cfg.PerKey = DefaultPerKey
	}
	if cfg.MaxIndividual <= 0 {
		cfg.MaxIndividual = DefaultMaxIndividual
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Recorder{cfg: cfg, keys: map[key]*counter{}}, nil
}

// window is what ended: the summaries to append for it.
type window struct {
	start, end time.Time
	keys       map[key]*counter
	over       counter
}

// Record records r: appended as an event now, or counted for its window's
// summary. The append is not cancelled with ctx (a refused client that
// hangs up must not erase its refusal); ctx only carries values.
func (rc *Recorder) Record(ctx context.Context, r Refusal) error {
	r = bound(r)
	if rc.cfg.OnRefuse != nil {
		rc.cfg.OnRefuse(r.Kind)
	}
	now := rc.cfg.Now()
	k := key{r.Source, r.Principal, r.Proven, r.Kind}
	s := sample{r.Method, r.Path, r.Status, r.Reason}

	rc.mu.Lock()
	ended := rc.advance(now)
	c, ok := rc.keys[k]
	solo := false
	switch {
	case !ok && len(rc.keys) >= rc.cfg.MaxKeys:
		rc.over.count(s)
		rc.arm(now)
	case !ok:
		c = &counter{first: r}
		rc.keys[k] = c
		fallthrough
	default:
		if c.recorded < rc.cfg.PerKey && rc.solo < rc.cfg.MaxIndividual {
			c.recorded++
			rc.solo++
			solo = true
		} else {
			c.count(s)
			rc.arm(now)
		}
	}
	rc.mu.Unlock()

	ctx = context.WithoutCancel(ctx)
	var errs []error
	if ended != nil {
		errs = append(errs, rc.emit(ctx, ended))
	}
	if solo {
		_, err := rc.cfg.Audit.Append(ctx, event(r))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Flush appends the summaries of a window that has ended.
func (rc *Recorder) Flush(ctx context.Context) error {
	rc.mu.Lock()
	ended := rc.advance(rc.cfg.Now())
	rc.mu.Unlock()
	if ended == nil {
		return nil
	}
	return rc.emit(context.WithoutCancel(ctx), ended)
}

// Close appends the summaries of the current window, cut short, and stops
// the window timer. The recorder still records afterwards, but only a
// later Flush or Close appends what it counts.
func (rc *Recorder) Close(ctx context.Context) error {
	rc.mu.Lock()
	rc.closed = true
	if rc.timer != nil {
		rc.timer.Stop()
		rc.timer = nil
	}
	w := rc.take(rc.cfg.Now())
	rc.mu.Unlock()
	return rc.emit(context.WithoutCancel(ctx), w)
}

// advance starts a new window if now is past the current one, and returns
// the one that ended (nil if none, or it had nothing to summarise).
// rc.mu is held.
func (rc *Recorder) advance(now time.Time) *window {
	start := now.Truncate(rc.cfg.Window)
	if !start.After(rc.win) {
		return nil // the same window (or a clock that went back)
	}
	end := rc.win.Add(rc.cfg.Window)
	w := rc.take(end)
	rc.win = start
	return w
}

// take empties the current window and returns what it counted, ending at
// end. rc.mu is held.
func (rc *Recorder) take(end time.Time) *window {
	w := &window{start: rc.win, end: end, keys: rc.keys, over: rc.over}
	rc.keys, rc.over, rc.solo = map[key]*counter{}, counter{}, 0
	return w
}

// arm makes sure a timer flushes the current window once it ends. rc.mu
// is held.
func (rc *Recorder) arm(now time.Time) {
	if rc.timer != nil || rc.closed {
		return
	}
	d := rc.win.Add(rc.cfg.Window).Sub(now)
	if d < 0 {
		d = 0
	}
	rc.timer = time.AfterFunc(d+time.Millisecond, func() {
		rc.mu.Lock()
		rc.timer = nil
		rc.mu.Unlock()
		if err := rc.Flush(context.Background()); err != nil && rc.cfg.OnError != nil {
			rc.cfg.OnError(err)
		}
		// Refusals counted meanwhile in a new window need a timer of
		// their own.
		rc.mu.Lock()
		pending := rc.over.counted > 0
		for _, c := range rc.keys {
			pending = pending || c.counted > 0
		}
		if pending {
			rc.arm(rc.cfg.Now())
		}
		rc.mu.Unlock()
	})
}

// emit appends w's summaries.
func (rc *Recorder) emit(ctx context.Context, w *window) error {
	if w == nil {
		return nil
	}
	var errs []error
	for _, c := range w.keys {
		if c.counted == 0 {
			continue
		}
		_, err := rc.cfg.Audit.Append(ctx, summary(w, c, false))
		errs = append(errs, err)
	}
	if w.over.counted > 0 {
		_, err := rc.cfg.Audit.Append(ctx, summary(w, &w.over, true))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type claim struct {
	Principal string `json:"principal"`
	Basis     string `json:"basis,omitempty"`
}

type refusalData struct {
	Kind    string `json:"kind"`
	Status  int    `json:"status"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Reason  string `json:"reason"`
	Source  string `json:"source,omitempty"`
	Claimed *claim `json:"claimed,omitempty"`
}

func claimOf(r Refusal) *claim {
	if r.Proven || r.Principal == "" {
		return nil
	}
	return &claim{Principal: r.Principal, Basis: r.Basis}
}

// who fills the attribution fields of e for a proven principal.
func who(e *audit.Event, r Refusal) {
	if !r.Proven {
		return
	}
	e.Actor, e.Session, e.Agent, e.Sponsor = r.Principal, r.Session, r.Agent, r.Sponsor
}

func event(r Refusal) audit.Event {
	data, _ := json.Marshal(refusalData{Kind: r.Kind, Status: r.Status, Method: r.Method, Path: r.Path, Reason: r.Reason,
		Source: r.Source, Claimed: claimOf(r)})
	e := audit.Event{Type: TypeRefusal, Data: data}
	who(&e, r)
	return e
}

type summaryData struct {
	Kind        string          `json:"kind,omitempty"`
	Source      string          `json:"source,omitempty"`
	Claimed     *claim          `json:"claimed,omitempty"`
	Overflow    bool            `json:"overflow,omitempty"`
	WindowStart time.Time       `json:"window_start"`
	WindowEnd   time.Time       `json:"window_end"`
	Recorded    int             `json:"recorded"`
	Count       int             `json:"count"`
	Refusals    []summarySample `json:"refusals"`
	Other       int             `json:"other"`
}

type summarySample struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

func summary(w *window, c *counter, overflow bool) audit.Event {
	d := summaryData{WindowStart: w.start.UTC(), WindowEnd: w.end.UTC(), Recorded: c.recorded, Count: c.counted, Other: c.other, Overflow: overflow}
	for _, s := range c.samples {
		d.Refusals = append(d.Refusals, summarySample{s.method, s.path, s.status, s.reason, s.n})
	}
	e := audit.Event{Type: TypeSummary}
	if !overflow {
		d.Kind, d.Source, d.Claimed = c.first.Kind, c.first.Source, claimOf(c.first)
		who(&e, c.first)
	}
	e.Data, _ = json.Marshal(d)
	return e
}

// bound cuts every text field of r to its limit and to valid UTF-8: a
// refusal's text is partly chosen by whoever was refused.
func bound(r Refusal) Refusal {
	r.Kind = clip(r.Kind, maxField)
	r.Method = clip(r.Method, maxField)
	r.Path = clip(r.Path, maxField)
	r.Reason = clip(r.Reason, maxReason)
	r.Source = clip(r.Source, maxField)
	r.Principal = clip(r.Principal, maxField)
	r.Basis = clip(r.Basis, maxField)
	r.Session = clip(r.Session, maxField)
	r.Agent = clip(r.Agent, maxField)
	r.Sponsor = clip(r.Sponsor, maxField)
	return r
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
