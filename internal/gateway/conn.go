package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/streamable"
	"github.com/ward-dev/ward/internal/strictjson"
)

// upstream is one session's connection to one configured server.
type upstream struct {
	name  string
	roots []string // as configured, for roots/list
	conn  mcp.Connection
	caps  capabilities
	// inflight lists client request ids forwarded to this upstream and not
	// yet answered, oldest first; guarded by Session.mu.
	inflight []jsonrpc.ID
	dead     error // guarded by Session.mu
	// out queues messages that must not block the client's receive loop
	// (notifications, answers to server requests), in order, at most
	// upstreamQueue of them. A slice that grows as messages come rather
	// than a channel of upstreamQueue: a buffered channel cost every
	// session 4 KiB per upstream before its first message. writing says
	// a writeUpstream goroutine is draining it: one is started when a
	// message finds none, and it ends when the queue is empty, so an idle
	// session holds no writer (a goroutine standing by for each session
	// and upstream cost its stack, 2 to 8 KiB, in every idle session).
	outMu   sync.Mutex
	out     []jsonrpc.Message // guarded by outMu
	writing bool              // guarded by outMu
	// notes bounds the notifications it may send the session; nil until
	// its first. Guarded by Session.mu.
	notes *noteBudget
}

// noteBudget is a token bucket of notifications: each is recorded before
// it is passed on, so an upstream that floods them would grow the audit
// log without bound. Past the bucket they are dropped (not recorded, not
// passed on: nothing unrecorded reaches the client) and counted.
type noteBudget struct {
	tokens  float64
	last    time.Time
	dropped int
}

// Bounds on an upstream's notifications to one session: noteRate a
// second, in bursts of up to noteBurst (a progress report per step of a
// long task, a burst of log lines).
const (
	noteRate  = 50
	noteBurst = 200
)

// noteAllowed reports whether up may send the session one more
// notification now, and how many were dropped before it since the last
// one that passed.
func (s *Session) noteAllowed(up *upstream) (ok bool, dropped int) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := up.notes
	if b == nil {
		b = &noteBudget{tokens: noteBurst, last: now}
		up.notes = b
	}
	b.tokens = min(noteBurst, b.tokens+now.Sub(b.last).Seconds()*noteRate)
	b.last = now
	if b.tokens < 1 {
		b.dropped++
		return false, 0
	}
	b.tokens--
	dropped, b.dropped = b.dropped, 0
	return true, dropped
}

// Bounds on what a session keeps for its peers.
const (
	// maxServerRequests bounds requests an upstream may have outstanding
	// with the client.
	maxServerRequests = 256
	// upstreamQueue bounds queued notifications and answers per upstream.
	upstreamQueue = 256
)

type pending struct {
	up     *upstream
	upID   jsonrpc.ID
	downID jsonrpc.ID // invalid for the gateway's own requests
	token  string
	ch     chan *jsonrpc.Response // buffered 1
}

type upRequest struct {
	up     *upstream
	upID   jsonrpc.ID
	method string
	// token is the request's progress token (tokenKey), "" if none: the
	// client's progress notifications for it go to up alone.
	token string
}

// tokenKey is a progress token (a string or a number, as JSON) in one
// form, "" for anything else.
func tokenKey(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if strictjson.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch v.(type) {
	case string, float64:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return ""
}

// connect dials one upstream and initializes it with the client's params.
func (s *Session) connect(ctx context.Context, cfg Upstream, initParams json.RawMessage) (_ *upstream, _ initResult, err error) {
	if report := s.g.cfg.OnConnect; report != nil {
		defer func() {
			if !errors.Is(err, context.Canceled) {
				report(cfg.Name, err)
			}
		}()
	}
	conn, err := cfg.Dial(withCallerSession(ctx, s.who().Session))
	if err != nil {
		return nil, initResult{}, fmt.Errorf("%s: connect: %v", cfg.Name, err)
	}
	up := &upstream{name: cfg.Name, roots: cfg.Roots, conn: conn}
	if p, ok := conn.(pusher); ok {
		// Handed each message by the connection's own stream readers,
		// which run on the gateway's workers (their stacks grown
		// already): no goroutine of the session's waits on the
		// connection.
		p.RunWith(s.g.workers.run)
		p.Push(func(msg jsonrpc.Message) {
			if s.ctx.Err() != nil {
				return // the session ended: as readUpstream, which stops reading
			}
			defer s.recover("upstream "+up.name, jsonrpc.ID{})
			s.fromUpstream(up, msg)
		}, func(err error) { s.upstreamGone(up, err) })
	} else {
		go s.readUpstream(up)
	}
	resp, err := s.roundTrip(ctx, up, "initialize", initParams, jsonrpc.ID{})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	var init initResult
	if err == nil {
		err = strictjson.UnmarshalOpen(resp.Result, &init)
	}
	if err == nil && len(init.Capabilities) > 0 {
		err = strictjson.UnmarshalOpen(init.Capabilities, &init.caps)
	}
	if err != nil {
		conn.Close()
		return nil, initResult{}, fmt.Errorf("%s: initialize: %v", cfg.Name, err)
	}
	up.caps = init.caps
	init.Server = cfg.Name
	return up, init, nil
}

// readUpstream dispatches everything an upstream sends until its
// connection ends. What an upstream sends is read strictly too: a result or
// params that could be read two ways (duplicate names, invalid UTF-8) is
// not passed on, since ward would scan and record one reading and the
// client act on another. A connection that can push what it reads
// ([streamable.ClientConn.Push]) is not read here: connect has it hand
// each message to fromUpstream on the goroutine that read it.
func (s *Session) readUpstream(up *upstream) {
	defer s.recover("upstream "+up.name, jsonrpc.ID{})
	for {
		msg, err := up.conn.Read(s.ctx)
		if err != nil {
			s.upstreamGone(up, err)
			return
		}
		s.fromUpstream(up, msg)
	}
}

// pusher is a connection that hands what it reads to a function instead
// of to Read (streamable.ClientConn.Push).
type pusher interface {
	Push(deliver func(jsonrpc.Message), ended func(error))
	RunWith(run func(f func()))
}

// fromUpstream dispatches one message an upstream sent.
func (s *Session) fromUpstream(up *upstream, msg jsonrpc.Message) {
	switch m := msg.(type) {
	case *jsonrpc.Response:
		if err := validUpstream(m); err != nil {
			s.g.cfg.Logger.Warn("upstream answered with JSON ward will not pass on", "server", up.name, "err", err)
			m = &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: CodeUpstream, Message: fmt.Sprintf("upstream %s answered with invalid JSON (%v); ward withheld the answer", up.name, err)}}
		}
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
		if len(m.Params) > 0 {
			if err := strictjson.Valid(m.Params); err != nil {
				s.g.cfg.Logger.Warn("upstream sent a message ward will not pass on", "server", up.name, "method", m.Method, "err", err)
				if m.IsCall() {
					s.sendUp(up, &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "ward refuses params that are not strict JSON: " + err.Error()}})
				}
				return
			}
		}
		if m.Method == "initialize" {
			// Only a client initializes; ward records the server's
			// instructions under this method (Guard.Notice), so a server
			// sending it would have its text taken in as instructions.
			s.g.cfg.Logger.Warn("upstream sent initialize, which only a client sends: not passed on", "server", up.name)
			if m.IsCall() {
				s.sendUp(up, &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "initialize is the client's to send"}})
			}
			return
		}
		if m.IsCall() {
			s.serverRequest(up, m)
		} else {
			s.serverNotification(up, m)
		}
	}
}

// validUpstream checks an upstream's response: its result, or its error's
// data, must be strict JSON.
func validUpstream(m *jsonrpc.Response) error {
	if len(m.Result) > 0 {
		return strictjson.Valid(m.Result)
	}
	if m.Error != nil {
		var we *jsonrpc.Error
		if errors.As(m.Error, &we) && len(we.Data) > 0 {
			return strictjson.Valid(we.Data)
		}
	}
	return nil
}

func (s *Session) upstreamGone(up *upstream, err error) {
	s.mu.Lock()
	if up.dead == nil {
		up.dead = fmt.Errorf("server %s is unavailable (its connection ended: %v); open a new MCP session once it is back", up.name, err)
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

// errNotSent is wrapped by roundTrip's error when the request never left
// ward: only such a call may have its quota refunded.
var errNotSent = errors.New("not sent")

// roundTrip sends one request to an upstream and waits for its answer.
// downID is the client request it forwards (invalid for the gateway's own).
func (s *Session) roundTrip(ctx context.Context, up *upstream, method string, params json.RawMessage, downID jsonrpc.ID) (*jsonrpc.Response, error) {
	p := &pending{up: up, downID: downID, ch: make(chan *jsonrpc.Response, 1)}
	var stop <-chan struct{}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: session closed", errNotSent)
	}
	if up.dead != nil {
		err := up.dead
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", errNotSent, err)
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
		if errors.Is(err, streamable.ErrUnanswered) {
			// It reached the server, which may have acted on it.
			return nil, fmt.Errorf("upstream %s: %s sent, but no answer came: %v", up.name, method, err)
		}
		return nil, fmt.Errorf("%w: upstream %s: send %s: %v", errNotSent, up.name, method, err)
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

// writeUpstream writes queued messages to an upstream in order, until the
// queue is empty or the session ends (what is still queued then is
// dropped: the upstream's connection is being closed). sendUp starts it.
func (s *Session) writeUpstream(up *upstream) {
	for {
		up.outMu.Lock()
		if len(up.out) == 0 || s.ctx.Err() != nil {
			up.out = nil // what grew for a burst is let go
			up.writing = false
			up.outMu.Unlock()
			return
		}
		msg := up.out[0]
		up.out[0] = nil
		up.out = up.out[1:]
		up.outMu.Unlock()
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		err := up.conn.Write(ctx, msg)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.g.cfg.Logger.Warn("write to upstream failed", "server", up.name, "err", err)
		}
	}
}

// sendUp queues msg for an upstream without blocking, starting a writer
// if none is running; a full queue (an upstream that stopped reading)
// drops the message and says so.
func (s *Session) sendUp(up *upstream, msg jsonrpc.Message) {
	msg = withoutInternals(msg)
	up.outMu.Lock()
	full := len(up.out) >= upstreamQueue
	start := false
	if !full {
		up.out = append(up.out, msg)
		start = !up.writing
		up.writing = true
	}
	up.outMu.Unlock()
	if full {
		s.g.cfg.Logger.Warn("upstream is not reading; message dropped", "server", up.name, "session", s.who().Session)
		return
	}
	if start {
		go s.writeUpstream(up)
	}
}

// progressToken returns params._meta.progressToken as JSON text, or "".
func progressToken(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var p struct {
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	if strictjson.UnmarshalOpen(raw, &p) != nil {
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
	if m.Method == "roots/list" {
		// Answered by ward, with the roots the operator configured: the
		// agent must not choose the directories a server serves.
		roots := []map[string]string{}
		for _, r := range up.roots {
			roots = append(roots, map[string]string{"uri": (&url.URL{Scheme: "file", Path: r}).String(), "name": r})
		}
		res, _ := json.Marshal(map[string]any{"roots": roots})
		s.sendUp(up, &jsonrpc.Response{ID: m.ID, Result: res})
		return
	}
	s.mu.Lock()
	if len(s.fromUp)+s.answering >= maxServerRequests {
		s.mu.Unlock()
		s.sendUp(up, &jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: CodeUpstream, Message: fmt.Sprintf("too many requests outstanding with the client (limit %d)", maxServerRequests)}})
		return
	}
	s.nextID++
	downKey := "ward-" + strconv.FormatInt(s.nextID, 10)
	s.fromUp[downKey] = upRequest{up: up, upID: m.ID, method: m.Method, token: tokenKey(json.RawMessage(progressToken(m.Params)))}
	s.mu.Unlock()
	related := s.related(up)
	fwd := &jsonrpc.Request{ID: strID(downKey), Method: m.Method, Params: m.Params}
	go func() {
		defer s.recover("server request "+m.Method, jsonrpc.ID{})
		if err := s.g.cfg.Guard.Notice(s.ctx, s.who(), up.name, m.Method, m.Params); err != nil {
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

// requestID reads params.requestId as a JSON-RPC id.
func requestID(p params) (jsonrpc.ID, bool) {
	raw, ok := p["requestId"]
	if !ok {
		return jsonrpc.ID{}, false
	}
	var v any
	if strictjson.Unmarshal(raw, &v) != nil {
		return jsonrpc.ID{}, false
	}
	if f, isNum := v.(float64); isNum && f != float64(int64(f)) {
		return jsonrpc.ID{}, false
	}
	id, err := jsonrpc.MakeID(v)
	return id, err == nil && id.IsValid()
}

func (s *Session) serverNotification(up *upstream, m *jsonrpc.Request) {
	related := jsonrpc.ID{}
	switch m.Method {
	case "notifications/progress":
		var p struct {
			Token json.RawMessage `json:"progressToken"`
		}
		if strictjson.UnmarshalOpen(m.Params, &p) == nil {
			s.mu.Lock()
			related = s.tokens[up.name+"\x00"+string(p.Token)]
			s.mu.Unlock()
		}
	case "notifications/cancelled":
		// The upstream cancels a request it sent the client: rename the id.
		p, err := parseParams(m.Params)
		if err != nil {
			return
		}
		upID, ok := requestID(p)
		if !ok {
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
		m = &jsonrpc.Request{Method: m.Method, Params: p.with("requestId", downKey).encode()}
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		s.invalidate(up.name)
	case "notifications/resources/updated":
	default:
		related = s.related(up)
	}
	// Recorded, and its text taken in as the server's, before the client
	// gets it; in order with the server's other messages. Not recorded,
	// not passed on; past the server's budget, neither.
	ok, dropped := s.noteAllowed(up)
	if dropped > 0 {
		s.g.cfg.Logger.Warn("server notifications dropped: more than the bound", "session", s.who().Session, "server", up.name, "dropped", dropped, "per_second", noteRate, "burst", noteBurst)
	}
	if !ok {
		return
	}
	if err := s.g.cfg.Guard.Notice(s.ctx, s.who(), up.name, m.Method, m.Params); err != nil {
		s.g.cfg.Logger.Warn("server notification not passed on: it could not be recorded", "session", s.who().Session, "server", up.name, "method", m.Method, "err", err)
		return
	}
	if err := s.down.Send(m, related); err != nil {
		s.g.cfg.Logger.Debug("notification not delivered", "session", s.who().Session, "method", m.Method, "err", err)
	}
}

// clientResponse routes the client's answer to a server-initiated request
// back to the upstream that asked. An answer that is not strict JSON is
// replaced by an error.
func (s *Session) clientResponse(m *jsonrpc.Response) {
	key, _ := m.ID.Raw().(string)
	s.mu.Lock()
	r, ok := s.fromUp[key]
	delete(s.fromUp, key)
	if ok {
		s.answering++
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	resp := &jsonrpc.Response{ID: r.upID, Result: m.Result, Error: m.Error}
	if len(m.Result) > 0 {
		err := strictjson.Valid(m.Result)
		if err == nil {
			err = checkNames(m.Result)
		}
		if err != nil {
			resp = &jsonrpc.Response{ID: r.upID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "the client answered with JSON ward will not pass on: " + err.Error()}}
		}
	}
	// What the agent's side sends the server is recorded before the server
	// gets it, off the read loop: at most maxServerRequests at once, as an
	// answer being recorded still counts toward that bound.
	sent := resp.Result
	if resp.Error != nil {
		sent, _ = json.Marshal(resp.Error)
	}
	sum := sha256.Sum256(sent)
	a := ClientAnswer{Digest: hex.EncodeToString(sum[:]), Bytes: len(sent), IsError: resp.Error != nil}
	go func() {
		defer func() {
			s.mu.Lock()
			s.answering--
			s.mu.Unlock()
		}()
		defer s.recover("answer to "+r.method, jsonrpc.ID{})
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), observeTimeout)
		defer cancel()
		if err := s.g.cfg.Guard.Answer(ctx, s.who(), r.up.name, r.method, a); err != nil {
			resp = &jsonrpc.Response{ID: r.upID, Error: &jsonrpc.Error{Code: CodeDenied, Message: "ward could not record the client's answer, so it was not passed on: " + err.Error()}}
		}
		s.sendUp(r.up, resp)
	}()
}

func (s *Session) clientNotification(m *jsonrpc.Request) {
	p, err := parseParams(m.Params)
	if err != nil {
		s.g.cfg.Logger.Debug("client notification dropped: unreadable params", "session", s.who().Session, "method", m.Method, "err", err)
		return
	}
	switch m.Method {
	case "notifications/cancelled":
		id, ok := requestID(p)
		if !ok {
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
			// The id alone: the client's other members ("reason") are
			// text for the server nobody decided.
			s.sendUp(pend.up, &jsonrpc.Request{Method: m.Method, Params: params{}.with("requestId", pend.upID.Raw()).encode()})
		}
	case "notifications/initialized":
		// Sent once, right after initialize: written before any request
		// can follow it.
		if s.waitInit() != nil || !s.initialized.CompareAndSwap(false, true) {
			return
		}
		// Once, and without the client's params: what it put there would
		// reach every upstream undecided.
		for _, up := range s.ups {
			s.writeUp(up, &jsonrpc.Request{Method: m.Method})
		}
	case "notifications/roots/list_changed":
		// The client's roots are not passed on (see Upstream.Roots).
	case "notifications/progress":
		// Progress reports on a request that carried its token: it goes
		// to the one upstream whose open request did, never to the
		// others (undecided, it would carry what the agent wrote to
		// servers that never asked).
		key := tokenKey(json.RawMessage(p["progressToken"]))
		if key == "" {
			return
		}
		var to *upstream
		s.mu.Lock()
		for _, r := range s.fromUp {
			if r.token != key {
				continue
			}
			if to != nil && to != r.up {
				to = nil // two upstreams chose the same token: ambiguous
				break
			}
			to = r.up
		}
		s.mu.Unlock()
		if to != nil {
			s.sendUp(to, &jsonrpc.Request{Method: m.Method, Params: p.encode()})
		}
	default:
		// Notifications the gateway does not know are not forwarded: they
		// would reach every upstream undecided and unrecorded.
		s.g.cfg.Logger.Debug("client notification dropped", "session", s.who().Session, "method", m.Method)
	}
}
