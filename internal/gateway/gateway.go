package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/enforce"
)

// Defaults for [Config].
const (
	// DefaultInitTimeout bounds how long the gateway waits for all upstreams to
	// answer initialize.
	DefaultInitTimeout = 30 * time.Second
	// DefaultCallTimeout bounds one forwarded request; on expiry the upstream
	// is sent notifications/cancelled and the client an error.
	DefaultCallTimeout = 10 * time.Minute
	// DefaultMaxInFlight bounds concurrent client requests per session.
	DefaultMaxInFlight = 64
	// DefaultHoldTimeout is how long an escalated call is held waiting for
	// approval before the client gets an "approval pending" error.
	DefaultHoldTimeout = 15 * time.Second
	// maxListPages bounds how many pages of one list the gateway fetches from
	// one upstream before it stops (a misbehaving upstream must not hold a
	// session forever).
	maxListPages = 100
)

// ward's JSON-RPC error codes lie outside the range JSON-RPC reserves
// (-32768 to -32000), where MCP and the SDKs define their own: -32002 is
// MCP's "resource not found", and the official Go SDK reads -32003 and
// -32004 as its connection closing and -32001 as "unknown error" (ward
// used those three until clients took a held call for a dropped
// connection). They echo HTTP's 403, 502 and 202.

// CodeDenied is the JSON-RPC error code of a request ward refused. The error's
// data carries {"decision":"deny","reason":...,"policies":[...]}.
const CodeDenied = -31403

// CodePending is the JSON-RPC error code of a call that waits for approval.
// The error's data carries {"decision":"escalate","approvals":[ids],...}:
// retry the same call (same arguments) once the approvals are granted.
const CodePending = -31202

// CodeUpstream is the JSON-RPC error code for an upstream that failed, timed
// out or is not connected.
const CodeUpstream = -31502

// The pipeline's types, as the proxy sees them.
type (
	Caller    = enforce.Caller
	Kind      = enforce.Kind
	Item      = enforce.Item
	Operation = enforce.Operation
	Verdict   = enforce.Verdict
	Outcome   = enforce.Outcome
	Delegator = enforce.Delegator
	// ClientAnswer describes the client's answer to a server-initiated
	// request.
	ClientAnswer = enforce.ClientAnswer
)

// Kinds of things an upstream offers.
const (
	KindTool             = enforce.KindTool
	KindPrompt           = enforce.KindPrompt
	KindResource         = enforce.KindResource
	KindResourceTemplate = enforce.KindResourceTemplate
)

// Guard decides and records: the enforcement pipeline ([enforce.Pipeline]),
// or, in `ward mcp wrap`, the node reached over its guard API.
// Implementations must be safe for concurrent use. An error from Filter or
// Check denies (fail closed).
type Guard interface {
	// Filter reports, item by item, whether the caller may see it.
	Filter(ctx context.Context, c *Caller, kind Kind, server string, items []Item) ([]bool, error)
	// Check decides one operation and records the decision durably before it
	// returns, or, for an operation allowed with op.Forwarding set, once
	// the decision is written (a crash of the process keeps it; Observe
	// makes it durable). An operation with Refused set is recorded as a
	// denial. Check may rewrite op.Arguments into the form it decided on;
	// the proxy forwards them as they are after Check.
	Check(ctx context.Context, c *Caller, op *Operation) (Verdict, error)
	// Observe records the outcome of an allowed operation durably, and
	// returns only once the operation's decision is durable too; the
	// proxy answers the client after it.
	Observe(ctx context.Context, c *Caller, op *Operation, out Outcome) error
	// Notice records a message a server sends the client (a request:
	// sampling, elicitation; or a notification), with params exactly as
	// passed on, before it is passed on. An error keeps the message from
	// the client.
	Notice(ctx context.Context, c *Caller, server, method string, params json.RawMessage) error
	// Answer records, before it reaches the server, the client's answer to
	// such a request: what the agent's side (its model, its user) sends the
	// server. An error keeps the answer from the server, which is told
	// ward could not record it.
	Answer(ctx context.Context, c *Caller, server, method string, a ClientAnswer) error
	// Await waits, at most until ctx ends, for approval requests of an
	// escalated call and returns "approved", "pending", "denied" or
	// "expired".
	Await(ctx context.Context, c *Caller, ids []string) (string, error)
}

// Downstream is the client side of a session: where the gateway sends
// responses, requests and notifications. related is the id of the client
// request a message belongs to (invalid if none), so transports with several
// streams can deliver it on the right one.
type Downstream interface {
	Send(msg jsonrpc.Message, related jsonrpc.ID) error
}

// Upstream is one configured MCP server.
type Upstream struct {
	// Name is the prefix of the server's tools and prompts: 1-32 chars of
	// [a-z0-9_-].
	Name string
	// Dial opens a fresh connection for one downstream session.
	Dial func(ctx context.Context) (mcp.Connection, error)
	// Roots are the directories the server serves files from, if the
	// operator said so. The server's roots are the operator's to set, not
	// the agent's: the gateway does not offer the client's roots to
	// upstreams, and answers an upstream's roots/list itself, with these
	// (as file URIs) or none.
	Roots []string
	// Names says how the server's tools and prompts are shown to clients
	// (default NamesAuto); see [NameMode].
	Names NameMode
}

// Config configures a [Gateway].
type Config struct {
	Upstreams   []Upstream
	Guard       Guard
	Logger      *slog.Logger
	Version     string        // reported in serverInfo
	InitTimeout time.Duration // default DefaultInitTimeout
	CallTimeout time.Duration // default DefaultCallTimeout
	MaxInFlight int           // default DefaultMaxInFlight
	// HoldTimeout: how long an escalated call waits for approval; default
	// DefaultHoldTimeout, negative means do not hold.
	HoldTimeout time.Duration
	// OnConnect, if set, is told the result of each connection to an
	// upstream (dial and initialize): nil, or why it failed. A connection
	// given up because its session ended is not reported.
	OnConnect func(server string, err error)
}

// Gateway creates proxy sessions and tracks them by ward session so that
// revocation closes them.
type Gateway struct {
	cfg Config

	modes map[string]NameMode // configured server → how its names are shown
	cats  catalogs            // the sessions' catalogs, shared by content

	mu       sync.Mutex
	sessions map[string]map[*Session]struct{} // ward session id → live proxy sessions

	endHolds     chan struct{} // closed by EndHolds
	endHoldsOnce sync.Once

	workers *workers // serve client requests
}

// ValidServerName reports whether name can name an upstream.
func ValidServerName(name string) error {
	if len(name) == 0 || len(name) > 32 {
		return fmt.Errorf("server name %q: must be 1-32 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("server name %q: only a-z, 0-9, '_' and '-' are allowed", name)
		}
	}
	return nil
}

// New validates cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Guard == nil {
		return nil, errors.New("gateway: no guard configured")
	}
	seen := map[string]bool{}
	modes := map[string]NameMode{}
	for _, u := range cfg.Upstreams {
		mode, err := ParseNameMode(string(u.Names))
		if err != nil {
			return nil, fmt.Errorf("gateway: server %q: %w", u.Name, err)
		}
		modes[u.Name] = mode
		if err := ValidServerName(u.Name); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("gateway: server %q configured twice", u.Name)
		}
		if u.Dial == nil {
			return nil, fmt.Errorf("gateway: server %q has no transport", u.Name)
		}
		seen[u.Name] = true
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.HoldTimeout == 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return &Gateway{cfg: cfg, modes: modes, sessions: map[string]map[*Session]struct{}{}, endHolds: make(chan struct{}), workers: newWorkers()}, nil
}

// Servers returns the configured upstream names.
func (g *Gateway) Servers() []string {
	names := make([]string, len(g.cfg.Upstreams))
	for i, u := range g.cfg.Upstreams {
		names[i] = u.Name
	}
	return names
}

// NewSession starts a proxy session for caller, talking to the client through
// down. Upstreams are connected when the client sends initialize.
func (g *Gateway) NewSession(c *Caller, down Downstream) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		g:        g,
		down:     down,
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, g.cfg.MaxInFlight),
		initDone: make(chan struct{}),
		pending:  map[jsonrpc.ID]*pending{},
		calls:    map[jsonrpc.ID]*call{},
		fromUp:   map[string]upRequest{},
		tokens:   map[string]jsonrpc.ID{},
	}
	s.caller.Store(c)
	g.mu.Lock()
	set := g.sessions[c.Session]
	if set == nil {
		set = map[*Session]struct{}{}
		g.sessions[c.Session] = set
	}
	set[s] = struct{}{}
	g.mu.Unlock()
	return s
}

func (g *Gateway) forget(s *Session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if set := g.sessions[s.who().Session]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(g.sessions, s.who().Session)
		}
	}
}

// Sessions returns how many proxy sessions a ward session has open.
func (g *Gateway) Sessions(sessionID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sessions[sessionID])
}

// Open returns how many proxy sessions are open, over all ward sessions.
func (g *Gateway) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, set := range g.sessions {
		n += len(set)
	}
	return n
}

// Revoke closes every proxy session of the given ward sessions: their
// upstream connections are closed and pending requests fail.
func (g *Gateway) Revoke(sessionIDs ...string) {
	var victims []*Session
	g.mu.Lock()
	for _, id := range sessionIDs {
		for s := range g.sessions[id] {
			victims = append(victims, s)
		}
	}
	g.mu.Unlock()
	for _, s := range victims {
		s.shutdown(false)
	}
}

// EndHolds ends every hold of an escalated call, now and later: the call
// is answered as pending (the approval request stays, and an identical
// call after approval is allowed). A node shutting down calls it so that
// held calls are answered rather than cut, without waiting for approvers.
func (g *Gateway) EndHolds() { g.endHoldsOnce.Do(func() { close(g.endHolds) }) }

// Close closes every session.
func (g *Gateway) Close() {
	var all []*Session
	g.mu.Lock()
	for _, set := range g.sessions {
		for s := range set {
			all = append(all, s)
		}
	}
	g.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
	g.workers.close()
}

// splitName splits an exposed "SERVER.NAME" into its parts.
func splitName(exposed string) (server, name string, ok bool) {
	server, name, ok = strings.Cut(exposed, ".")
	if !ok || server == "" || name == "" {
		return "", "", false
	}
	return server, name, true
}
