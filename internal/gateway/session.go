package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/redact"
)

// Session is one downstream MCP session: the client on one side, one
// connection per upstream on the other. Its code is split by concern:
// this file is the mux (what arrives from the client and the session's
// life), conn.go the upstream connections and the messages they send,
// catalog.go the lists and routing, calls.go the decided operations.
type Session struct {
	g      *Gateway
	caller atomic.Pointer[Caller]
	down   Downstream
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	sem    chan struct{}

	initOnce    sync.Once
	initStarted atomic.Bool
	initDone    chan struct{}
	initErr     error
	initialized atomic.Bool // notifications/initialized was passed on
	ups         []*upstream // fixed once initDone is closed
	byName      map[string]*upstream
	failed      map[string]string // server → why it could not be connected; fixed once initDone is closed

	mu      sync.Mutex
	nextID  int64
	closed  bool
	pending map[jsonrpc.ID]*pending // by upstream-side id (unique per session)
	calls   map[jsonrpc.ID]*call    // client requests being served, by client id
	fromUp  map[string]upRequest    // server→client requests, by the id we gave the client
	// answering counts the client's answers to them being recorded
	// (Guard.Answer): they count toward maxServerRequests until sent.
	answering int
	tokens    map[string]jsonrpc.ID // upstream name + "\x00" + progress token (JSON text) → client request id

	catMu sync.Mutex
	// cats are the catalogs of tools and prompts (namedIndex): shared
	// with the sessions whose upstreams listed the same (snapshot.go),
	// replaced, never modified. nil: nothing listed yet.
	cats      [2]*catalog
	resources map[string]string // URI → server
	templates []template
}

// call is a client request being served.
type call struct {
	stop chan struct{} // closed when the client cancels
	once sync.Once
	p    *pending // set while forwarded; guarded by Session.mu
}

func (c *call) cancel() { c.once.Do(func() { close(c.stop) }) }

var errCancelled = errors.New("cancelled by the client")

// Caller returns the ward session this proxy session acts for.
func (s *Session) Caller() *Caller { return s.who() }

func (s *Session) who() *Caller { return s.caller.Load() }

// Refresh replaces the caller's attributes (trust, groups, expiry) with a
// fresher view of the same ward session; a different session is refused.
func (s *Session) Refresh(c *Caller) error {
	if c.Session != s.who().Session {
		return errors.New("caller belongs to another session")
	}
	s.caller.Store(c)
	return nil
}

// Receive handles one message from the client. It does not block for long:
// requests are served on goroutines of their own (the gateway's workers).
// A request whose params the gateway cannot read in exactly one way is
// refused, and the refusal recorded, before anything else happens; nothing
// a client sends can stop the process (a failure while serving one request
// answers that request with an internal error and is recorded).
func (s *Session) Receive(ctx context.Context, msg jsonrpc.Message) {
	defer s.recover("receive", jsonrpc.ID{})
	switch m := msg.(type) {
	case *jsonrpc.Request:
		if !m.IsCall() {
			s.clientNotification(m)
			return
		}
		p, err := parseParams(m.Params)
		if err == nil {
			err = p.spelled(decidedMembers[m.Method]...)
		}
		if err != nil {
			s.refuseUnread(m, err.Error())
			return
		}
		if m.Method == "initialize" {
			if v, ok, err := p.str("protocolVersion"); err != nil || !ok || v == "" {
				s.replyErr(m.ID, jsonrpc.CodeInvalidParams, "initialize: params must be an object carrying protocolVersion", nil)
				return
			}
			started := false
			s.initOnce.Do(func() {
				started = true
				s.initStarted.Store(true)
				go func() {
					defer s.recover("initialize", m.ID)
					s.initialize(m, p)
				}()
			})
			if !started {
				s.refuseRequest(m, jsonrpc.CodeInvalidRequest, "session is already initialized")
			}
			return
		}
		select {
		case s.sem <- struct{}{}:
		default:
			// Recorded like every refusal; the wait for the record holds
			// back a client that floods the session.
			s.refuseRequest(m, jsonrpc.CodeInternalError, fmt.Sprintf("too many requests in flight (limit %d); retry later", cap(s.sem)))
			return
		}
		s.g.workers.run(func() {
			defer func() { <-s.sem }()
			defer s.recover(m.Method, m.ID)
			s.handle(ctx, m, p)
		})
	case *jsonrpc.Response:
		s.clientResponse(m)
	}
}

// recover turns a panic while serving the client into an internal error
// for the request it served (if any) and a record, so that one request
// cannot stop the process for every agent. The panic's value and stack go
// to the log, never to the client.
func (s *Session) recover(what string, id jsonrpc.ID) {
	r := recover()
	if r == nil {
		return
	}
	s.g.cfg.Logger.Error("gateway: recovered from a failure while serving a request", "session", s.who().Session, "what", what,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	ctx, cancel := context.WithTimeout(context.Background(), observeTimeout)
	defer cancel()
	_, _ = s.g.cfg.Guard.Check(ctx, s.who(), &Operation{Method: what, Refused: "ward failed while serving this request (internal error)"})
	if id.IsValid() {
		s.replyErr(id, jsonrpc.CodeInternalError, "internal error: ward failed while serving this request; it was recorded", nil)
	}
}

// refuseUnread refuses a request whose params cannot be read in one way,
// recording the refusal.
func (s *Session) refuseUnread(m *jsonrpc.Request, reason string) {
	s.refuseRequest(m, jsonrpc.CodeInvalidParams, m.Method+": "+reason)
}

// refuseRequest answers a request the gateway refuses before deciding
// anything (unreadable, unknown method, out of order) with code and
// reason, and records the refusal.
func (s *Session) refuseRequest(m *jsonrpc.Request, code int64, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), observeTimeout)
	defer cancel()
	if _, err := s.g.cfg.Guard.Check(ctx, s.who(), &Operation{Method: m.Method, Refused: reason}); err != nil {
		reason += " (and the refusal could not be recorded: " + err.Error() + ")"
	}
	// Sent as is: a refused request was never registered, so its answer
	// must not end a call in flight under the same id (send would).
	s.sendAs(&jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: code, Message: reason}}, m.ID)
}

// Close ends the session: requests in flight fail at once and upstream
// connections are closed before it returns.
func (s *Session) Close() { s.shutdown(true) }

// shutdown stops the session. Without wait, upstream connections (a stdio
// server may take seconds to exit) are closed in the background, so that
// revoking many sessions is quick.
func (s *Session) shutdown(wait bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.initOnce.Do(func() {
		s.initErr = errors.New("session closed")
		close(s.initDone)
	})
	s.g.forget(s)
	closeAll := func() {
		<-s.initDone
		var wg sync.WaitGroup
		for _, u := range s.ups {
			wg.Add(1)
			go func() { defer wg.Done(); u.conn.Close() }()
		}
		wg.Wait()
	}
	if wait {
		closeAll()
	} else {
		go closeAll()
	}
}

func (s *Session) waitInit() error {
	select {
	case <-s.initDone:
		return s.initErr
	case <-s.ctx.Done():
		return errors.New("session closed")
	case <-time.After(s.g.cfg.InitTimeout):
		return errors.New("session is not initialized: send initialize first")
	}
}

// initialize connects every upstream, forwards the client's initialize (the
// params as read) and answers with the merged result.
func (s *Session) initialize(req *jsonrpc.Request, p params) {
	proto, _, _ := p.str("protocolVersion")
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.InitTimeout)
	defer cancel()

	type result struct {
		up   *upstream
		init initResult
		err  error
	}
	// The client's roots are not the upstreams' business: a server such as
	// the filesystem server would take them for the directories it may
	// serve, letting the agent move the operator's boundary.
	// Only the members initialize has go up: others would reach every
	// upstream undecided.
	known := params{}
	for _, k := range []string{"protocolVersion", "capabilities", "clientInfo"} {
		if v, ok := p[k]; ok {
			known[k] = v
		}
	}
	fwd := known.encode()
	if caps, err := p.object("capabilities"); err == nil && caps != nil {
		if _, ok := caps["roots"]; ok {
			fwd = known.with("capabilities", caps.with("roots", nil)).encode()
		}
	}
	results := make([]result, len(s.g.cfg.Upstreams))
	var wg sync.WaitGroup
	for i, cfg := range s.g.cfg.Upstreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			up, init, err := s.connect(ctx, cfg, fwd)
			results[i] = result{up, init, err}
		}()
	}
	wg.Wait()

	var failures []string
	var inits []initResult
	s.byName = map[string]*upstream{}
	s.failed = map[string]string{}
	for i, r := range results {
		if r.err != nil {
			failures = append(failures, r.err.Error())
			s.failed[s.g.cfg.Upstreams[i].Name] = r.err.Error()
			s.g.cfg.Logger.Warn("upstream unavailable", "session", s.who().Session, "err", r.err)
			continue
		}
		s.ups = append(s.ups, r.up)
		s.byName[r.up.name] = r.up
		if r.init.Instructions != "" {
			// The server's instructions reach the model (often its system
			// prompt): recorded and taken in as its text first, or not
			// passed on.
			doc, _ := json.Marshal(map[string]string{"instructions": r.init.Instructions})
			if err := s.g.cfg.Guard.Notice(ctx, s.who(), r.up.name, "initialize", doc); err != nil {
				s.g.cfg.Logger.Warn("server instructions not passed on: they could not be recorded", "session", s.who().Session, "server", r.up.name, "err", err)
				r.init.Instructions = ""
			}
		}
		inits = append(inits, r.init)
	}
	if len(s.g.cfg.Upstreams) > 0 && len(s.ups) == 0 {
		s.initErr = fmt.Errorf("no upstream MCP server could be reached: %s", strings.Join(failures, "; "))
		close(s.initDone)
		s.replyErr(req.ID, CodeUpstream, s.initErr.Error(), nil)
		return
	}
	close(s.initDone)
	s.reply(req.ID, mergeInit(proto, s.g.cfg.Version, inits))
}

// initResult is what the gateway reads of an upstream's initialize result.
type initResult struct {
	Server          string          `json:"-"`
	ProtocolVersion string          `json:"protocolVersion"`
	Capabilities    json.RawMessage `json:"capabilities"`
	Instructions    string          `json:"instructions,omitempty"`
	caps            capabilities
}

type capabilities struct {
	Tools     json.RawMessage `json:"tools,omitempty"`
	Resources *struct {
		Subscribe   bool `json:"subscribe,omitempty"`
		ListChanged bool `json:"listChanged,omitempty"`
	} `json:"resources,omitempty"`
	Prompts     json.RawMessage `json:"prompts,omitempty"`
	Logging     json.RawMessage `json:"logging,omitempty"`
	Completions json.RawMessage `json:"completions,omitempty"`
}

// mergeInit builds the gateway's initialize result from the upstreams'.
func mergeInit(requested, version string, inits []initResult) map[string]any {
	proto := requested
	caps := map[string]any{}
	var hasPrompts, hasResources, subscribe, hasLogging, hasCompletions bool
	var instructions []string
	for _, in := range inits {
		if in.ProtocolVersion != "" && in.ProtocolVersion < proto {
			proto = in.ProtocolVersion
		}
		c := in.caps
		hasPrompts = hasPrompts || c.Prompts != nil
		if c.Resources != nil {
			hasResources = true
			subscribe = subscribe || c.Resources.Subscribe
		}
		hasLogging = hasLogging || c.Logging != nil
		hasCompletions = hasCompletions || c.Completions != nil
		if in.Instructions != "" {
			instructions = append(instructions, fmt.Sprintf("[%s] %s", in.Server, in.Instructions))
		}
	}
	caps["tools"] = map[string]any{"listChanged": true}
	if hasPrompts {
		caps["prompts"] = map[string]any{"listChanged": true}
	}
	if hasResources {
		caps["resources"] = map[string]any{"listChanged": true, "subscribe": subscribe}
	}
	if hasLogging {
		caps["logging"] = map[string]any{}
	}
	if hasCompletions {
		caps["completions"] = map[string]any{}
	}
	out := map[string]any{
		"protocolVersion": proto,
		"capabilities":    caps,
		"serverInfo":      map[string]any{"name": "ward", "title": "ward MCP gateway", "version": version},
	}
	if len(instructions) > 0 {
		out["instructions"] = strings.Join(instructions, "\n")
	}
	return out
}

// decidedMembers are, per method, the params members the gateway reads:
// a variant of one of them in another case is refused. (Nested objects
// the gateway reads are checked where they are read.)
var decidedMembers = map[string][]string{
	"initialize":            {"protocolVersion", "capabilities", "clientInfo"},
	"tools/call":            {"name", "arguments", "_meta"},
	"prompts/get":           {"name", "arguments", "_meta"},
	"resources/read":        {"uri", "_meta"},
	"resources/subscribe":   {"uri", "_meta"},
	"resources/unsubscribe": {"uri", "_meta"},
	"completion/complete":   {"ref", "argument", "context", "_meta"},
	"logging/setLevel":      {"level", "_meta"},
}

// knownMethods are the client requests the gateway serves.
var knownMethods = map[string]bool{
	"ping": true, "tools/list": true, "tools/call": true, "prompts/list": true, "prompts/get": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true, "completion/complete": true, "logging/setLevel": true,
}

// handle serves one client request, whose params p were read by Receive.
func (s *Session) handle(rctx context.Context, req *jsonrpc.Request, p params) {
	if req.Method == "server/discover" {
		// The stateless probe of protocol 2026-07-28 clients, which fall
		// back to initialize on an error: not a refusal to record.
		s.replyErr(req.ID, jsonrpc.CodeMethodNotFound, "server/discover is not supported: send initialize", nil)
		return
	}
	if !knownMethods[req.Method] {
		s.refuseRequest(req, jsonrpc.CodeMethodNotFound, fmt.Sprintf("ward's gateway does not forward method %q", req.Method))
		return
	}
	if !s.initStarted.Load() {
		if req.Method == "ping" {
			s.reply(req.ID, map[string]any{})
			return
		}
		s.refuseRequest(req, jsonrpc.CodeInvalidRequest, "session is not initialized: send initialize first")
		return
	}
	if err := s.waitInit(); err != nil {
		s.refuseRequest(req, jsonrpc.CodeInvalidRequest, err.Error())
		return
	}
	c := &call{stop: make(chan struct{})}
	s.mu.Lock()
	if _, dup := s.calls[req.ID]; dup {
		s.mu.Unlock()
		s.refuseRequest(req, jsonrpc.CodeInvalidRequest, "a request with this id is already in flight")
		return
	}
	s.calls[req.ID] = c
	s.mu.Unlock()
	defer func() {
		// Forgotten when its answer was sent (send); here only if it was
		// never answered, and never a later call that reuses the id.
		s.mu.Lock()
		if s.calls[req.ID] == c {
			delete(s.calls, req.ID)
		}
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.CallTimeout)
	defer cancel()
	ctx = spanParent(ctx, rctx, p) // the trace the call belongs to, if traced
	switch req.Method {
	case "ping":
		s.reply(req.ID, map[string]any{})
	case "tools/list":
		s.listNamed(ctx, req, KindTool)
	case "prompts/list":
		s.listNamed(ctx, req, KindPrompt)
	case "resources/list":
		s.listResources(ctx, req, KindResource)
	case "resources/templates/list":
		s.listResources(ctx, req, KindResourceTemplate)
	case "tools/call":
		s.callNamed(ctx, req, p, KindTool)
	case "prompts/get":
		s.callNamed(ctx, req, p, KindPrompt)
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		s.resourceOp(ctx, req, p)
	case "completion/complete":
		s.complete(ctx, req, p)
	case "logging/setLevel":
		s.setLevel(ctx, req, p)
	}
}

func (s *Session) reply(id jsonrpc.ID, result any) {
	b, err := json.Marshal(result)
	if err != nil {
		s.replyErr(id, jsonrpc.CodeInternalError, "encode result: "+err.Error(), nil)
		return
	}
	s.send(&jsonrpc.Response{ID: id, Result: b}, id)
}

func (s *Session) replyErr(id jsonrpc.ID, code int64, msg string, data json.RawMessage) {
	s.send(&jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: code, Message: msg, Data: data}}, id)
}

// send sends msg to the client. An answer (a response) ends the call it
// answers: the call is forgotten before the answer leaves, so a client
// may reuse the id as soon as it has the answer.
func (s *Session) send(msg jsonrpc.Message, related jsonrpc.ID) {
	if _, ok := msg.(*jsonrpc.Response); ok {
		s.mu.Lock()
		delete(s.calls, related)
		s.mu.Unlock()
	}
	s.sendAs(msg, related)
}

func (s *Session) sendAs(msg jsonrpc.Message, related jsonrpc.ID) {
	if err := s.down.Send(withoutInternals(msg), related); err != nil {
		s.g.cfg.Logger.Debug("send to client failed", "session", s.who().Session, "err", err, slog.Any("id", related.Raw()))
	}
}

// withoutInternals returns msg, with an error response's message stripped
// of ward's infrastructure (redact.Internals): an error leaving the node,
// to the client or to an upstream, says what failed, not where ward's
// store lives.
func withoutInternals(msg jsonrpc.Message) jsonrpc.Message {
	r, ok := msg.(*jsonrpc.Response)
	if !ok || r.Error == nil {
		return msg
	}
	e, ok := r.Error.(*jsonrpc.Error)
	if !ok {
		return msg
	}
	m := redact.Internals(e.Message)
	if m == e.Message {
		return msg
	}
	c := *e
	c.Message = m
	return &jsonrpc.Response{ID: r.ID, Result: r.Result, Error: &c, Extra: r.Extra}
}

func intID(n int64) jsonrpc.ID {
	id, _ := jsonrpc.MakeID(float64(n))
	return id
}

func strID(s string) jsonrpc.ID {
	id, _ := jsonrpc.MakeID(s)
	return id
}
