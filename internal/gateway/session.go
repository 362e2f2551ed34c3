package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/policy"
)

// Session is one downstream MCP session: the client on one side, one
// connection per upstream on the other.
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
	ups         []*upstream // fixed once initDone is closed
	byName      map[string]*upstream

	mu      sync.Mutex
	nextID  int64
	closed  bool
	pending map[jsonrpc.ID]*pending // by upstream-side id (unique per session)
	calls   map[jsonrpc.ID]*call    // client requests being served, by client id
	fromUp  map[string]upRequest    // server→client requests, by the id we gave the client
	tokens  map[string]jsonrpc.ID   // upstream name + "\x00" + progress token (JSON text) → client request id

	catMu     sync.Mutex
	tools     map[string]catEntry // exposed name → entry
	prompts   map[string]catEntry
	resources map[string]string // URI → server
	templates []template
}

type upstream struct {
	name string
	conn mcp.Connection
	caps capabilities
	// inflight lists client request ids forwarded to this upstream and not
	// yet answered, oldest first; guarded by Session.mu.
	inflight []jsonrpc.ID
	dead     error // guarded by Session.mu
	// out queues messages that must not block the client's receive loop
	// (notifications, answers to server requests), in order.
	out chan jsonrpc.Message
}

// call is a client request being served.
type call struct {
	stop chan struct{} // closed when the client cancels
	once sync.Once
	p    *pending // set while forwarded; guarded by Session.mu
}

func (c *call) cancel() { c.once.Do(func() { close(c.stop) }) }

// Bounds on what a session keeps for its peers.
const (
	// maxServerRequests bounds requests an upstream may have outstanding
	// with the client.
	maxServerRequests = 256
	// upstreamQueue bounds queued notifications and answers per upstream.
	upstreamQueue = 256
)

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

type pending struct {
	up     *upstream
	upID   jsonrpc.ID
	downID jsonrpc.ID // invalid for the gateway's own requests
	token  string
	ch     chan *jsonrpc.Response // buffered 1
}

type upRequest struct {
	up   *upstream
	upID jsonrpc.ID
}

type catEntry struct {
	server   string
	upstream string
	def      json.RawMessage
}

type template struct {
	uriTemplate string
	prefix      string
	server      string
}

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
// requests are served on their own goroutines.
func (s *Session) Receive(ctx context.Context, msg jsonrpc.Message) {
	switch m := msg.(type) {
	case *jsonrpc.Request:
		if !m.IsCall() {
			s.clientNotification(m)
			return
		}
		if m.Method == "initialize" {
			var params struct {
				ProtocolVersion string `json:"protocolVersion"`
			}
			if err := json.Unmarshal(m.Params, &params); err != nil || params.ProtocolVersion == "" {
				s.replyErr(m.ID, jsonrpc.CodeInvalidParams, "initialize: params must be an object carrying protocolVersion", nil)
				return
			}
			started := false
			s.initOnce.Do(func() {
				started = true
				s.initStarted.Store(true)
				go s.initialize(m)
			})
			if !started {
				s.replyErr(m.ID, jsonrpc.CodeInvalidRequest, "session is already initialized", nil)
			}
			return
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.replyErr(m.ID, jsonrpc.CodeInternalError, fmt.Sprintf("too many requests in flight (limit %d); retry later", cap(s.sem)), nil)
			return
		}
		go func() {
			defer func() { <-s.sem }()
			s.handle(m)
		}()
	case *jsonrpc.Response:
		s.clientResponse(m)
	}
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

// initialize connects every upstream, forwards the client's initialize and
// answers with the merged result.
func (s *Session) initialize(req *jsonrpc.Request) {
	var params struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(req.Params, &params) // validated by Receive
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.InitTimeout)
	defer cancel()

	type result struct {
		up   *upstream
		init initResult
		err  error
	}
	results := make([]result, len(s.g.cfg.Upstreams))
	var wg sync.WaitGroup
	for i, cfg := range s.g.cfg.Upstreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			up, init, err := s.connect(ctx, cfg, req.Params)
			results[i] = result{up, init, err}
		}()
	}
	wg.Wait()

	var failures []string
	var inits []initResult
	s.byName = map[string]*upstream{}
	for _, r := range results {
		if r.err != nil {
			failures = append(failures, r.err.Error())
			s.g.cfg.Logger.Warn("upstream unavailable", "session", s.who().Session, "err", r.err)
			continue
		}
		s.ups = append(s.ups, r.up)
		s.byName[r.up.name] = r.up
		inits = append(inits, r.init)
	}
	if len(s.g.cfg.Upstreams) > 0 && len(s.ups) == 0 {
		s.initErr = fmt.Errorf("no upstream MCP server could be reached: %s", strings.Join(failures, "; "))
		close(s.initDone)
		s.replyErr(req.ID, CodeUpstream, s.initErr.Error(), nil)
		return
	}
	close(s.initDone)
	s.reply(req.ID, mergeInit(params.ProtocolVersion, s.g.cfg.Version, inits))
}

type initResult struct {
	Server          string          `json:"-"`
	ProtocolVersion string          `json:"protocolVersion"`
	Capabilities    json.RawMessage `json:"capabilities"`
	Instructions    string          `json:"instructions,omitempty"`
}

func (s *Session) connect(ctx context.Context, cfg Upstream, initParams json.RawMessage) (*upstream, initResult, error) {
	conn, err := cfg.Dial(ctx)
	if err != nil {
		return nil, initResult{}, fmt.Errorf("%s: connect: %v", cfg.Name, err)
	}
	up := &upstream{name: cfg.Name, conn: conn, out: make(chan jsonrpc.Message, upstreamQueue)}
	go s.readUpstream(up)
	go s.writeUpstream(up)
	resp, err := s.roundTrip(ctx, up, "initialize", initParams, jsonrpc.ID{})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	var init initResult
	if err == nil {
		err = json.Unmarshal(resp.Result, &init)
	}
	if err == nil {
		if len(init.Capabilities) > 0 {
			err = json.Unmarshal(init.Capabilities, &up.caps)
		}
	}
	if err != nil {
		conn.Close()
		return nil, initResult{}, fmt.Errorf("%s: initialize: %v", cfg.Name, err)
	}
	init.Server = cfg.Name
	return up, init, nil
}

// mergeInit builds the gateway's initialize result from the upstreams'.
func mergeInit(requested, version string, inits []initResult) map[string]any {
	proto := requested
	caps := map[string]any{}
	var hasTools, hasPrompts, hasResources, subscribe, hasLogging, hasCompletions bool
	var instructions []string
	for _, in := range inits {
		if in.ProtocolVersion != "" && in.ProtocolVersion < proto {
			proto = in.ProtocolVersion
		}
		var c capabilities
		_ = json.Unmarshal(in.Capabilities, &c)
		hasTools = hasTools || c.Tools != nil
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
	_ = hasTools
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

// readUpstream dispatches everything an upstream sends until its connection
// ends.
func (s *Session) readUpstream(up *upstream) {
	for {
		msg, err := up.conn.Read(s.ctx)
		if err != nil {
			s.upstreamGone(up, err)
			return
		}
		switch m := msg.(type) {
		case *jsonrpc.Response:
			s.mu.Lock()
			p := s.pending[m.ID]
			if p != nil && p.up == up {
				delete(s.pending, m.ID)
			} else {
				p = nil // not ours: an upstream cannot answer for another
			}
			s.mu.Unlock()
			if p != nil {
				p.ch <- m
			}
		case *jsonrpc.Request:
			if m.IsCall() {
				s.serverRequest(up, m)
			} else {
				s.serverNotification(up, m)
			}
		}
	}
}

func (s *Session) upstreamGone(up *upstream, err error) {
	s.mu.Lock()
	if up.dead == nil {
		up.dead = fmt.Errorf("upstream %s disconnected: %v", up.name, err)
	}
	var failed []*pending
	for id, p := range s.pending {
		if p.up == up {
			failed = append(failed, p)
			delete(s.pending, id)
		}
	}
	for k, r := range s.fromUp {
		if r.up == up {
			delete(s.fromUp, k)
		}
	}
	closed := s.closed
	dead := up.dead
	s.mu.Unlock()
	if !closed {
		s.g.cfg.Logger.Warn("upstream connection ended", "session", s.who().Session, "server", up.name, "err", err)
	}
	for _, p := range failed {
		p.ch <- &jsonrpc.Response{ID: p.upID, Error: &jsonrpc.Error{Code: CodeUpstream, Message: dead.Error()}}
	}
}

// roundTrip sends one request to an upstream and waits for its answer.
// downID is the client request it forwards (invalid for the gateway's own).
func (s *Session) roundTrip(ctx context.Context, up *upstream, method string, params json.RawMessage, downID jsonrpc.ID) (*jsonrpc.Response, error) {
	p := &pending{up: up, downID: downID, ch: make(chan *jsonrpc.Response, 1)}
	var stop <-chan struct{}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("session closed")
	}
	if up.dead != nil {
		err := up.dead
		s.mu.Unlock()
		return nil, err
	}
	s.nextID++
	p.upID = intID(s.nextID)
	s.pending[p.upID] = p
	if downID.IsValid() {
		if c := s.calls[downID]; c != nil {
			c.p = p
			stop = c.stop
		}
		up.inflight = append(up.inflight, downID)
		if tok := progressToken(params); tok != "" {
			p.token = up.name + "\x00" + tok
			s.tokens[p.token] = downID
		}
	}
	s.mu.Unlock()
	defer s.finish(p)

	if err := up.conn.Write(ctx, &jsonrpc.Request{ID: p.upID, Method: method, Params: params}); err != nil {
		return nil, fmt.Errorf("upstream %s: send %s: %v", up.name, method, err)
	}
	select {
	case resp := <-p.ch:
		return resp, nil
	case <-stop:
		return nil, errCancelled
	case <-ctx.Done():
		s.cancelUpstream(p, "timed out")
		return nil, fmt.Errorf("upstream %s did not answer %s: %v", up.name, method, ctx.Err())
	}
}

func (s *Session) finish(p *pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, p.upID)
	if p.downID.IsValid() {
		if c := s.calls[p.downID]; c != nil && c.p == p {
			c.p = nil
		}
		if p.token != "" {
			delete(s.tokens, p.token)
		}
		in := p.up.inflight
		for i, id := range in {
			if id == p.downID {
				p.up.inflight = append(in[:i:i], in[i+1:]...)
				break
			}
		}
	}
}

func (s *Session) cancelUpstream(p *pending, reason string) {
	params, _ := json.Marshal(map[string]any{"requestId": p.upID.Raw(), "reason": reason})
	s.sendUp(p.up, &jsonrpc.Request{Method: "notifications/cancelled", Params: params})
}

// writeUpstream writes queued messages to an upstream in order.
func (s *Session) writeUpstream(up *upstream) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case msg := <-up.out:
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			err := up.conn.Write(ctx, msg)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.g.cfg.Logger.Warn("write to upstream failed", "server", up.name, "err", err)
			}
		}
	}
}

// sendUp queues msg for an upstream without blocking; a full queue (an
// upstream that stopped reading) drops the message and says so.
func (s *Session) sendUp(up *upstream, msg jsonrpc.Message) {
	select {
	case up.out <- msg:
	default:
		s.g.cfg.Logger.Warn("upstream is not reading; message dropped", "server", up.name, "session", s.who().Session)
	}
}

// progressToken returns params._meta.progressToken as JSON text, or "".
func progressToken(params json.RawMessage) string {
	var p struct {
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		return ""
	}
	return string(p.Meta.ProgressToken)
}

// related picks the client request a server-initiated message most likely
// belongs to: the newest request in flight to that upstream.
func (s *Session) related(up *upstream) jsonrpc.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(up.inflight); n > 0 {
		return up.inflight[n-1]
	}
	return jsonrpc.ID{}
}

// serverRequest forwards a request an upstream sends to the client
// (sampling, elicitation, roots, ping) under an id of the gateway's.
func (s *Session) serverRequest(up *upstream, m *jsonrpc.Request) {
	s.mu.Lock()
	if len(s.fromUp) >= maxServerRequests {
		s.mu.Unlock()
		s.sendUp(up, &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: CodeUpstream, Message: fmt.Sprintf("too many requests outstanding with the client (limit %d)", maxServerRequests)}})
		return
	}
	s.nextID++
	downKey := "ward-" + strconv.FormatInt(s.nextID, 10)
	s.fromUp[downKey] = upRequest{up: up, upID: m.ID}
	s.mu.Unlock()
	related := s.related(up)
	fwd := &jsonrpc.Request{ID: strID(downKey), Method: m.Method, Params: m.Params}
	go func() {
		if err := s.g.cfg.Guard.Notice(s.ctx, s.who(), up.name, m.Method); err != nil {
			s.mu.Lock()
			delete(s.fromUp, downKey)
			s.mu.Unlock()
			s.sendUp(up, &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: CodeDenied, Message: "ward could not record this request: " + err.Error()}})
			return
		}
		if err := s.down.Send(fwd, related); err != nil {
			s.mu.Lock()
			delete(s.fromUp, downKey)
			s.mu.Unlock()
			s.sendUp(up, &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: CodeUpstream, Message: "ward could not deliver the request to the client: " + err.Error()}})
		}
	}()
}

func (s *Session) writeUp(up *upstream, msg jsonrpc.Message) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := up.conn.Write(ctx, msg); err != nil {
		s.g.cfg.Logger.Debug("write to upstream failed", "server", up.name, "err", err)
	}
}

func (s *Session) serverNotification(up *upstream, m *jsonrpc.Request) {
	related := jsonrpc.ID{}
	switch m.Method {
	case "notifications/progress":
		var p struct {
			Token json.RawMessage `json:"progressToken"`
		}
		if json.Unmarshal(m.Params, &p) == nil {
			s.mu.Lock()
			related = s.tokens[up.name+"\x00"+string(p.Token)]
			s.mu.Unlock()
		}
	case "notifications/cancelled":
		// The upstream cancels a request it sent the client: rename the id.
		var p map[string]json.RawMessage
		if json.Unmarshal(m.Params, &p) != nil {
			return
		}
		var upRaw any
		if json.Unmarshal(p["requestId"], &upRaw) != nil {
			return
		}
		upID, err := jsonrpc.MakeID(upRaw)
		if err != nil {
			return
		}
		s.mu.Lock()
		var downKey string
		for k, r := range s.fromUp {
			if r.up == up && r.upID == upID {
				downKey = k
				break
			}
		}
		delete(s.fromUp, downKey)
		s.mu.Unlock()
		if downKey == "" {
			return
		}
		p["requestId"], _ = json.Marshal(downKey)
		params, _ := json.Marshal(p)
		m = &jsonrpc.Request{Method: m.Method, Params: params}
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		s.invalidate(up.name)
	case "notifications/resources/updated":
	default:
		related = s.related(up)
	}
	if err := s.down.Send(m, related); err != nil {
		s.g.cfg.Logger.Debug("notification not delivered", "session", s.who().Session, "method", m.Method, "err", err)
	}
}

// clientResponse routes the client's answer to a server-initiated request
// back to the upstream that asked.
func (s *Session) clientResponse(m *jsonrpc.Response) {
	key, _ := m.ID.Raw().(string)
	s.mu.Lock()
	r, ok := s.fromUp[key]
	delete(s.fromUp, key)
	s.mu.Unlock()
	if !ok {
		return
	}
	s.sendUp(r.up, &jsonrpc.Response{ID: r.upID, Result: m.Result, Error: m.Error})
}

func (s *Session) clientNotification(m *jsonrpc.Request) {
	switch m.Method {
	case "notifications/cancelled":
		var p map[string]json.RawMessage
		if json.Unmarshal(m.Params, &p) != nil {
			return
		}
		var raw any
		if json.Unmarshal(p["requestId"], &raw) != nil {
			return
		}
		id, err := jsonrpc.MakeID(raw)
		if err != nil {
			return
		}
		s.mu.Lock()
		c := s.calls[id]
		var pend *pending
		if c != nil {
			pend = c.p
		}
		s.mu.Unlock()
		if c == nil {
			return
		}
		c.cancel()
		if pend != nil {
			p["requestId"], _ = json.Marshal(pend.upID.Raw())
			params, _ := json.Marshal(p)
			s.sendUp(pend.up, &jsonrpc.Request{Method: m.Method, Params: params})
		}
	case "notifications/initialized":
		// Sent once, right after initialize: written before any request
		// can follow it.
		if s.waitInit() != nil {
			return
		}
		for _, up := range s.ups {
			s.writeUp(up, &jsonrpc.Request{Method: m.Method, Params: m.Params})
		}
	case "notifications/roots/list_changed", "notifications/progress":
		if s.waitInit() != nil {
			return
		}
		for _, up := range s.ups {
			s.sendUp(up, &jsonrpc.Request{Method: m.Method, Params: m.Params})
		}
	default:
		// Notifications the gateway does not know are not forwarded: they
		// would reach every upstream undecided and unrecorded.
		s.g.cfg.Logger.Debug("client notification dropped", "session", s.who().Session, "method", m.Method)
	}
}

// knownMethods are the client requests the gateway serves.
var knownMethods = map[string]bool{
	"ping": true, "tools/list": true, "tools/call": true, "prompts/list": true, "prompts/get": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true, "completion/complete": true, "logging/setLevel": true,
}

// handle serves one client request.
func (s *Session) handle(req *jsonrpc.Request) {
	if !knownMethods[req.Method] {
		s.replyErr(req.ID, jsonrpc.CodeMethodNotFound, fmt.Sprintf("ward's gateway does not forward method %q", req.Method), nil)
		return
	}
	if !s.initStarted.Load() {
		if req.Method == "ping" {
			s.reply(req.ID, map[string]any{})
			return
		}
		s.replyErr(req.ID, jsonrpc.CodeInvalidRequest, "session is not initialized: send initialize first", nil)
		return
	}
	if err := s.waitInit(); err != nil {
		s.replyErr(req.ID, jsonrpc.CodeInvalidRequest, err.Error(), nil)
		return
	}
	c := &call{stop: make(chan struct{})}
	s.mu.Lock()
	if _, dup := s.calls[req.ID]; dup {
		s.mu.Unlock()
		s.replyErr(req.ID, jsonrpc.CodeInvalidRequest, "a request with this id is already in flight", nil)
		return
	}
	s.calls[req.ID] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calls, req.ID)
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.CallTimeout)
	defer cancel()
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
		s.callNamed(ctx, req, KindTool)
	case "prompts/get":
		s.callNamed(ctx, req, KindPrompt)
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		s.resourceOp(ctx, req)
	case "completion/complete":
		s.complete(ctx, req)
	case "logging/setLevel":
		s.setLevel(ctx, req)
	default:
		s.replyErr(req.ID, jsonrpc.CodeMethodNotFound, fmt.Sprintf("ward's gateway does not forward method %q", req.Method), nil)
	}
}

// fetchAll pages through one list method of one upstream.
func (s *Session) fetchAll(ctx context.Context, up *upstream, method, key string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	cursor := ""
	for page := 0; page < maxListPages; page++ {
		var params json.RawMessage
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		} else {
			params = json.RawMessage(`{}`)
		}
		resp, err := s.roundTrip(ctx, up, method, params, jsonrpc.ID{})
		if err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("upstream %s: %s: %v", up.name, method, resp.Error)
		}
		var res map[string]json.RawMessage
		if err := json.Unmarshal(resp.Result, &res); err != nil {
			return nil, fmt.Errorf("upstream %s: %s: malformed result: %v", up.name, method, err)
		}
		var items []json.RawMessage
		if raw, ok := res[key]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("upstream %s: %s: malformed %s: %v", up.name, method, key, err)
			}
		}
		all = append(all, items...)
		cursor = ""
		if raw, ok := res["nextCursor"]; ok {
			_ = json.Unmarshal(raw, &cursor)
		}
		if cursor == "" {
			return all, nil
		}
	}
	return all, nil
}

func listMethod(kind Kind) (method, key string) {
	switch kind {
	case KindTool:
		return "tools/list", "tools"
	case KindPrompt:
		return "prompts/list", "prompts"
	case KindResource:
		return "resources/list", "resources"
	default:
		return "resources/templates/list", "resourceTemplates"
	}
}

func (u *upstream) offers(kind Kind) bool {
	switch kind {
	case KindTool:
		return u.caps.Tools != nil
	case KindPrompt:
		return u.caps.Prompts != nil
	default:
		return u.caps.Resources != nil
	}
}

// refreshNamed fetches the tools or prompts of one upstream into the catalog
// and returns them, filtered by the guard, with exposed names.
func (s *Session) refreshNamed(ctx context.Context, up *upstream, kind Kind) ([]json.RawMessage, error) {
	method, key := listMethod(kind)
	raw, err := s.fetchAll(ctx, up, method, key)
	if err != nil {
		return nil, err
	}
	items := make([]Item, 0, len(raw))
	objs := make([]map[string]json.RawMessage, 0, len(raw))
	for _, r := range raw {
		var obj map[string]json.RawMessage
		var name string
		if json.Unmarshal(r, &obj) != nil || json.Unmarshal(obj["name"], &name) != nil || name == "" {
			s.g.cfg.Logger.Warn("upstream listed a malformed item; skipped", "server", up.name, "kind", kind)
			continue
		}
		items = append(items, Item{Name: up.name + "." + name, Upstream: name, Definition: r})
		objs = append(objs, obj)
	}
	s.catMu.Lock()
	cat := s.tools
	if kind == KindPrompt {
		cat = s.prompts
	}
	if cat == nil {
		cat = map[string]catEntry{}
	}
	for name, e := range cat {
		if e.server == up.name {
			delete(cat, name)
		}
	}
	for _, it := range items {
		cat[it.Name] = catEntry{server: up.name, upstream: it.Upstream, def: it.Definition}
	}
	if kind == KindPrompt {
		s.prompts = cat
	} else {
		s.tools = cat
	}
	s.catMu.Unlock()

	keep, err := s.g.cfg.Guard.Filter(ctx, s.who(), kind, up.name, items)
	if err != nil {
		return nil, fmt.Errorf("filter %s of %s: %v", key, up.name, err)
	}
	var out []json.RawMessage
	for i, obj := range objs {
		if i >= len(keep) || !keep[i] {
			continue
		}
		obj["name"], _ = json.Marshal(items[i].Name)
		b, err := json.Marshal(obj)
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

func (s *Session) listNamed(ctx context.Context, req *jsonrpc.Request, kind Kind) {
	_, key := listMethod(kind)
	all := []json.RawMessage{}
	for _, up := range s.ups {
		if !up.offers(kind) {
			continue
		}
		items, err := s.refreshNamed(ctx, up, kind)
		if err != nil {
			s.g.cfg.Logger.Warn("list failed", "server", up.name, "kind", kind, "err", err)
			continue
		}
		all = append(all, items...)
	}
	s.reply(req.ID, map[string]any{key: all})
}

func (s *Session) invalidate(server string) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	for _, cat := range []map[string]catEntry{s.tools, s.prompts} {
		for name, e := range cat {
			if e.server == server {
				delete(cat, name)
			}
		}
	}
	for uri, srv := range s.resources {
		if srv == server {
			delete(s.resources, uri)
		}
	}
	kept := s.templates[:0]
	for _, t := range s.templates {
		if t.server != server {
			kept = append(kept, t)
		}
	}
	s.templates = kept
}

func (s *Session) lookup(kind Kind, name string) (catEntry, bool) {
	s.catMu.Lock()
	defer s.catMu.Unlock()
	cat := s.tools
	if kind == KindPrompt {
		cat = s.prompts
	}
	e, ok := cat[name]
	return e, ok
}

// callNamed serves tools/call and prompts/get.
func (s *Session) callNamed(ctx context.Context, req *jsonrpc.Request, kind Kind) {
	var params map[string]json.RawMessage
	var name string
	if json.Unmarshal(req.Params, &params) != nil || json.Unmarshal(params["name"], &name) != nil || name == "" {
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, req.Method+": params must be an object with a string \"name\"", nil)
		return
	}
	server, _, ok := splitName(name)
	up := s.byName[server]
	if !ok || up == nil {
		s.refuse(ctx, req, actionFor(kind), name, fmt.Sprintf("unknown %s %q: names look like SERVER.NAME and SERVER must be one of %s", kind, name, strings.Join(s.g.Servers(), ", ")))
		return
	}
	entry, found := s.lookup(kind, name)
	if !found {
		if _, err := s.refreshNamed(ctx, up, kind); err != nil {
			s.replyErr(req.ID, CodeUpstream, err.Error(), nil)
			return
		}
		entry, found = s.lookup(kind, name)
	}
	if !found {
		s.refuse(ctx, req, actionFor(kind), name, fmt.Sprintf("unknown %s %q: server %s does not offer it", kind, name, server))
		return
	}
	op := &Operation{Action: policy.ActionCallTool, Method: req.Method, Server: server, Name: name, Upstream: entry.upstream, Definition: entry.def}
	if kind == KindPrompt {
		op.Action = policy.ActionGetPrompt
	}
	op.Arguments = params["arguments"]
	params["name"], _ = json.Marshal(entry.upstream)
	fwd, _ := json.Marshal(params)
	s.decideAndForward(ctx, req, up, op, fwd)
}

// decideAndForward asks the guard, forwards if allowed, records the outcome
// and answers the client.
func (s *Session) decideAndForward(ctx context.Context, req *jsonrpc.Request, up *upstream, op *Operation, params json.RawMessage) {
	v, err := s.g.cfg.Guard.Check(ctx, s.who(), op)
	if err != nil {
		s.deny(req, fmt.Sprintf("ward could not decide %s %s (denied): %v", req.Method, op.Name, err), nil)
		return
	}
	if v.Escalate {
		v, err = s.hold(ctx, req, op, v)
		if err != nil {
			s.deny(req, fmt.Sprintf("ward could not decide %s %s after approval (denied): %v", req.Method, op.Name, err), nil)
			return
		}
		if v.Escalate {
			data, _ := json.Marshal(map[string]any{"decision": "escalate", "reason": v.Reason, "policies": v.Policies, "approvals": v.Approvals})
			s.replyErr(req.ID, CodePending, fmt.Sprintf("ward is holding %s %s for approval (request %s): %s; retry the same call once it is approved", req.Method, op.Name, strings.Join(v.Approvals, ", "), v.Reason), data)
			return
		}
	}
	if !v.Allow {
		s.deny(req, v.Reason, v.Policies)
		return
	}
	if s.cancelled(req.ID) {
		s.observe(op, Outcome{Error: "cancelled by the client before it was forwarded", Decision: v.Event})
		s.replyErr(req.ID, codeCancelled, "request cancelled by the client", nil)
		return
	}
	start := time.Now()
	resp, err := s.roundTrip(ctx, up, req.Method, params, req.ID)
	out := Outcome{Duration: time.Since(start), Decision: v.Event}
	switch {
	case errors.Is(err, errCancelled):
		out.Error = "cancelled by the client"
		s.observe(op, out)
		// Answer anyway so that transports can release the request's
		// stream; clients ignore answers to requests they cancelled.
		s.replyErr(req.ID, codeCancelled, "request cancelled by the client", nil)
		return
	case err != nil:
		out.Error = err.Error()
		s.observe(op, out)
		s.replyErr(req.ID, CodeUpstream, err.Error(), nil)
		return
	}
	if resp.Error != nil {
		out.Error = resp.Error.Error()
		// An error's message and data are the upstream's words too: the
		// guard labels and scans them like a result.
		out.Result, _ = json.Marshal(resp.Error)
		out.Answered = true
	} else {
		out.Answered = true
		sum := sha256.Sum256(resp.Result)
		out.ResultDigest = hex.EncodeToString(sum[:])
		out.ResultBytes = len(resp.Result)
		out.Result = resp.Result
		var r struct {
			IsError bool `json:"isError"`
		}
		_ = json.Unmarshal(resp.Result, &r)
		out.IsError = r.IsError
	}
	octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), observeTimeout)
	defer ocancel()
	if err := s.g.cfg.Guard.Observe(octx, s.who(), op, out); err != nil {
		// The result could not be recorded: withhold it (fail closed).
		s.replyErr(req.ID, CodeDenied, "ward could not record the result, so it is withheld: "+err.Error(), nil)
		return
	}
	s.send(&jsonrpc.Response{ID: req.ID, Result: resp.Result, Error: resp.Error}, req.ID)
}

// hold keeps an escalated call waiting for its approvals, up to the hold
// timeout, telling the client with progress notifications if it asked for
// progress. Once approved, the call is decided again (which redeems the
// approvals); otherwise the escalated verdict is returned with the final
// state in its reason.
func (s *Session) hold(ctx context.Context, req *jsonrpc.Request, op *Operation, v Verdict) (Verdict, error) {
	if s.g.cfg.HoldTimeout < 0 {
		return v, nil
	}
	hctx, cancel := context.WithTimeout(ctx, s.g.cfg.HoldTimeout)
	defer cancel()
	if tok := progressToken(req.Params); tok != "" {
		go func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-hctx.Done():
					return
				case <-t.C:
					params, _ := json.Marshal(map[string]any{"progressToken": json.RawMessage(tok), "progress": n,
						"message": "waiting for approval of request " + strings.Join(v.Approvals, ", ")})
					s.send(&jsonrpc.Request{Method: "notifications/progress", Params: params}, req.ID)
				}
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		// A client cancel ends the hold.
		s.mu.Lock()
		c := s.calls[req.ID]
		s.mu.Unlock()
		if c == nil {
			return
		}
		select {
		case <-c.stop:
			cancel()
		case <-stop:
		}
	}()
	state, err := s.g.cfg.Guard.Await(hctx, s.who(), v.Approvals)
	close(stop)
	if err != nil {
		return Verdict{}, err
	}
	switch state {
	case "approved":
		return s.g.cfg.Guard.Check(ctx, s.who(), op)
	case "pending":
		return v, nil
	default:
		return Verdict{Reason: fmt.Sprintf("approval request %s was %s: %s", strings.Join(v.Approvals, ", "), state, v.Reason), Policies: v.Policies}, nil
	}
}

// codeCancelled answers a request the client cancelled (as LSP's
// RequestCancelled).
const codeCancelled = -32800

// observeTimeout bounds recording an outcome, independently of the call's
// own deadline.
const observeTimeout = 10 * time.Second

func (s *Session) cancelled(id jsonrpc.ID) bool {
	s.mu.Lock()
	c := s.calls[id]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (s *Session) observe(op *Operation, out Outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), observeTimeout)
	defer cancel()
	if err := s.g.cfg.Guard.Observe(ctx, s.who(), op, out); err != nil {
		s.g.cfg.Logger.Error("recording outcome failed", "session", s.who().Session, "op", op.Name, "err", err)
	}
}

func (s *Session) listResources(ctx context.Context, req *jsonrpc.Request, kind Kind) {
	_, key := listMethod(kind)
	all := []json.RawMessage{}
	for _, up := range s.ups {
		if !up.offers(kind) {
			continue
		}
		items, err := s.refreshResources(ctx, up, kind)
		if err != nil {
			s.g.cfg.Logger.Warn("list failed", "server", up.name, "kind", kind, "err", err)
			continue
		}
		all = append(all, items...)
	}
	s.reply(req.ID, map[string]any{key: all})
}

func (s *Session) refreshResources(ctx context.Context, up *upstream, kind Kind) ([]json.RawMessage, error) {
	method, key := listMethod(kind)
	raw, err := s.fetchAll(ctx, up, method, key)
	if err != nil {
		return nil, err
	}
	field := "uri"
	if kind == KindResourceTemplate {
		field = "uriTemplate"
	}
	var items []Item
	var kept []json.RawMessage
	for _, r := range raw {
		var obj map[string]json.RawMessage
		var uri string
		if json.Unmarshal(r, &obj) != nil || json.Unmarshal(obj[field], &uri) != nil || uri == "" {
			continue
		}
		items = append(items, Item{Name: uri, Upstream: uri, Definition: r})
		kept = append(kept, r)
	}
	s.catMu.Lock()
	if kind == KindResource {
		if s.resources == nil {
			s.resources = map[string]string{}
		}
		for _, it := range items {
			if prev, ok := s.resources[it.Name]; ok && prev != up.name {
				// Claimed by two upstreams: route it to neither.
				s.resources[it.Name] = ""
				continue
			}
			s.resources[it.Name] = up.name
		}
	} else {
		kept := s.templates[:0]
		for _, t := range s.templates {
			if t.server != up.name {
				kept = append(kept, t)
			}
		}
		s.templates = kept
		for _, it := range items {
			prefix, _, _ := strings.Cut(it.Name, "{")
			s.templates = append(s.templates, template{uriTemplate: it.Name, prefix: prefix, server: up.name})
		}
		sort.SliceStable(s.templates, func(i, j int) bool { return len(s.templates[i].prefix) > len(s.templates[j].prefix) })
	}
	s.catMu.Unlock()
	keep, err := s.g.cfg.Guard.Filter(ctx, s.who(), kind, up.name, items)
	if err != nil {
		return nil, fmt.Errorf("filter %s of %s: %v", key, up.name, err)
	}
	var out []json.RawMessage
	for i, r := range kept {
		if i < len(keep) && keep[i] {
			out = append(out, r)
		}
	}
	return out, nil
}

// routeURI finds the upstream that serves a resource URI: the one that
// listed it, else the one whose URI template has the longest matching literal
// prefix, else the only upstream offering resources. A URI that two upstreams
// claim (listed by both, or matched by templates of both) is routed to
// neither: one upstream must not capture another's resources.
func (s *Session) routeURI(ctx context.Context, uri string) (*upstream, error) {
	find := func() (*upstream, error) {
		s.catMu.Lock()
		defer s.catMu.Unlock()
		if srv, ok := s.resources[uri]; ok {
			if srv == "" {
				return nil, fmt.Errorf("resource %q is listed by more than one upstream; ward will not guess which one serves it", uri)
			}
			return s.byName[srv], nil
		}
		var match *upstream
		best := -1
		for _, t := range s.templates {
			if t.uriTemplate != uri && (t.prefix == "" || !strings.HasPrefix(uri, t.prefix)) {
				continue
			}
			up := s.byName[t.server]
			switch {
			case match == nil:
				match, best = up, len(t.prefix)
			case up != match:
				return nil, fmt.Errorf("resource %q matches URI templates of more than one upstream (%s, %s); ward will not guess which one serves it", uri, match.name, up.name)
			case len(t.prefix) > best:
				best = len(t.prefix)
			}
		}
		return match, nil
	}
	if up, err := find(); up != nil || err != nil {
		return up, err
	}
	var offering []*upstream
	for _, up := range s.ups {
		if up.offers(KindResource) {
			offering = append(offering, up)
			_, _ = s.refreshResources(ctx, up, KindResource)
			_, _ = s.refreshResources(ctx, up, KindResourceTemplate)
		}
	}
	if up, err := find(); up != nil || err != nil {
		return up, err
	}
	if len(offering) == 1 {
		return offering[0], nil
	}
	return nil, fmt.Errorf("no upstream serves resource %q", uri)
}

// checkURI refuses resource URIs whose meaning depends on how an upstream
// resolves them: dot segments, encoded dots or separators, backslashes and
// control characters. Scope patterns match URIs as written, so
// "file:///tmp/../etc/passwd" must never pass as something under /tmp.
func checkURI(uri string) error {
	if len(uri) > 4096 {
		return fmt.Errorf("resource URI longer than 4096 bytes")
	}
	for _, r := range uri {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("resource URI %q contains a control character or backslash", uri)
		}
	}
	lower := strings.ToLower(uri)
	for _, enc := range []string{"%2e", "%2f", "%5c", "%00"} {
		if strings.Contains(lower, enc) {
			return fmt.Errorf("resource URI %q contains an encoded dot, separator or NUL; ward refuses it rather than guess what it names", uri)
		}
	}
	rest := uri
	if i := strings.Index(rest, "?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.Index(rest, "#"); i >= 0 {
		rest = rest[:i]
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("resource URI %q contains a dot segment; ward refuses it rather than guess what it names", uri)
		}
	}
	return nil
}

func (s *Session) resourceOp(ctx context.Context, req *jsonrpc.Request) {
	var params struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(req.Params, &params) != nil || params.URI == "" {
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, req.Method+": params must carry a string \"uri\"", nil)
		return
	}
	if err := checkURI(params.URI); err != nil {
		s.refuse(ctx, req, policy.ActionReadResource, params.URI, err.Error())
		return
	}
	up, err := s.routeURI(ctx, params.URI)
	if err != nil {
		s.refuse(ctx, req, policy.ActionReadResource, params.URI, err.Error())
		return
	}
	op := &Operation{Action: policy.ActionReadResource, Method: req.Method, Server: up.name, Name: params.URI, Upstream: params.URI}
	s.decideAndForward(ctx, req, up, op, req.Params)
}

func (s *Session) complete(ctx context.Context, req *jsonrpc.Request) {
	var params struct {
		Ref struct {
			Type string `json:"type"`
			Name string `json:"name"`
			URI  string `json:"uri"`
		} `json:"ref"`
		Argument struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"argument"`
		Context struct {
			Arguments map[string]string `json:"arguments"`
		} `json:"context"`
	}
	if err := json.Unmarshal(req.Params, &params); err != nil {
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, "completion/complete: malformed params: "+err.Error(), nil)
		return
	}
	args := map[string]string{}
	for k, v := range params.Context.Arguments {
		args[k] = v
	}
	if params.Argument.Name != "" {
		args[params.Argument.Name] = params.Argument.Value
	}
	argJSON, _ := json.Marshal(args)
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(req.Params, &raw)
	switch params.Ref.Type {
	case "ref/prompt":
		server, _, ok := splitName(params.Ref.Name)
		up := s.byName[server]
		if !ok || up == nil {
			s.refuse(ctx, req, policy.ActionGetPrompt, params.Ref.Name, fmt.Sprintf("unknown prompt %q", params.Ref.Name))
			return
		}
		entry, found := s.lookup(KindPrompt, params.Ref.Name)
		if !found {
			_, _ = s.refreshNamed(ctx, up, KindPrompt)
			entry, found = s.lookup(KindPrompt, params.Ref.Name)
		}
		if !found {
			s.refuse(ctx, req, policy.ActionGetPrompt, params.Ref.Name, fmt.Sprintf("unknown prompt %q", params.Ref.Name))
			return
		}
		var ref map[string]json.RawMessage
		_ = json.Unmarshal(raw["ref"], &ref)
		ref["name"], _ = json.Marshal(entry.upstream)
		raw["ref"], _ = json.Marshal(ref)
		fwd, _ := json.Marshal(raw)
		op := &Operation{Action: policy.ActionGetPrompt, Method: req.Method, Server: server, Name: params.Ref.Name, Upstream: entry.upstream, Arguments: argJSON}
		s.decideAndForward(ctx, req, up, op, fwd)
	case "ref/resource":
		if err := checkURI(params.Ref.URI); err != nil {
			s.refuse(ctx, req, policy.ActionReadResource, params.Ref.URI, err.Error())
			return
		}
		up, err := s.routeURI(ctx, params.Ref.URI)
		if err != nil {
			s.refuse(ctx, req, policy.ActionReadResource, params.Ref.URI, err.Error())
			return
		}
		op := &Operation{Action: policy.ActionReadResource, Method: req.Method, Server: up.name, Name: params.Ref.URI, Upstream: params.Ref.URI, Arguments: argJSON}
		s.decideAndForward(ctx, req, up, op, req.Params)
	default:
		s.replyErr(req.ID, jsonrpc.CodeInvalidParams, fmt.Sprintf("completion/complete: unknown ref type %q", params.Ref.Type), nil)
	}
}

func (s *Session) setLevel(ctx context.Context, req *jsonrpc.Request) {
	var errs []string
	n := 0
	for _, up := range s.ups {
		if up.caps.Logging == nil {
			continue
		}
		n++
		resp, err := s.roundTrip(ctx, up, req.Method, req.Params, jsonrpc.ID{})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", up.name, err))
		}
	}
	if n > 0 && len(errs) == n {
		s.replyErr(req.ID, CodeUpstream, "logging/setLevel failed: "+strings.Join(errs, "; "), nil)
		return
	}
	s.reply(req.ID, map[string]any{})
}

// refuse denies a request the gateway cannot even route (unknown name,
// unsafe URI), recording the refusal like any other decision.
func (s *Session) refuse(ctx context.Context, req *jsonrpc.Request, action policy.Action, name, reason string) {
	op := &Operation{Action: action, Method: req.Method, Name: name, Refused: reason}
	if _, err := s.g.cfg.Guard.Check(ctx, s.who(), op); err != nil {
		reason += " (and the refusal could not be recorded: " + err.Error() + ")"
	}
	s.deny(req, reason, nil)
}

func (s *Session) deny(req *jsonrpc.Request, reason string, policies []string) {
	data, _ := json.Marshal(map[string]any{"decision": "deny", "reason": reason, "policies": policies})
	s.replyErr(req.ID, CodeDenied, "ward denied "+req.Method+": "+reason, data)
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

func (s *Session) send(msg jsonrpc.Message, related jsonrpc.ID) {
	if err := s.down.Send(msg, related); err != nil {
		s.g.cfg.Logger.Debug("send to client failed", "session", s.who().Session, "err", err, slog.Any("id", related.Raw()))
	}
}

func intID(n int64) jsonrpc.ID {
	id, _ := jsonrpc.MakeID(float64(n))
	return id
}

func strID(s string) jsonrpc.ID {
	id, _ := jsonrpc.MakeID(s)
	return id
}
