package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/strictjson"
)

// # Shared upstream connections
//
// By default every MCP session gets its own connection to every upstream
// (a process per stdio server), so that what a server keeps per connection
// belongs to one agent session. A client that opens many MCP sessions (one
// per tool call, say) then runs many server processes. [Share] lets the
// MCP sessions of one ward session share one connection to a server whose
// operator says it may (`share: true`): the same principal, one process.
// Sessions of different ward sessions never share.
//
// Each MCP session sees its own connection (a vconn): ward rewrites what
// would collide on the shared one and routes what comes back:
//
//   - request ids and progress tokens are renamed per connection, and
//     answers and progress routed back by them;
//   - initialize is sent once: later sessions get the first one's answer
//     (a shared server sees the first session's client capabilities), and
//     notifications/initialized is sent once;
//   - a request the server sends (sampling, elicitation, ping) goes to the
//     session with a call in flight on the server (the latest), else the
//     one that wrote last; its notifications/cancelled follows it;
//   - resources/subscribe and unsubscribe are counted per URI (the server
//     sees the first subscribe and the last unsubscribe) and
//     notifications/resources/updated goes to the sessions subscribed;
//   - other notifications (logging, list changes) go to every session;
//     logging/setLevel is the server's, so the last one set holds for all.
//
// The connection is closed sharedLinger after its last session closes
// (a client that opens a new session soon finds the server running), or
// at once when it fails, after which the next session dials a new one.

// sharedLinger is how long a shared connection outlives its last session.
const sharedLinger = time.Minute

type sessionKey struct{}

// withCallerSession tells Dial which ward session it dials for.
func withCallerSession(ctx context.Context, session string) context.Context {
	return context.WithValue(ctx, sessionKey{}, session)
}

// Share returns up with its connections shared by the MCP sessions of each
// ward session (see above).
func Share(up Upstream) Upstream {
	s := &sharer{name: up.Name, dial: up.Dial, conns: map[string]*shared{}}
	up.Dial = s.Dial
	return up
}

type sharer struct {
	name  string
	dial  func(ctx context.Context) (mcp.Connection, error)
	mu    sync.Mutex
	conns map[string]*shared // ward session → its shared connection
}

// Dial returns a connection of the calling ward session's shared one,
// dialling it first if there is none.
func (sh *sharer) Dial(ctx context.Context) (mcp.Connection, error) {
	session, _ := ctx.Value(sessionKey{}).(string)
	if session == "" {
		return sh.dial(ctx) // not called by a gateway session: nothing to share with
	}
	sh.mu.Lock()
	c := sh.conns[session]
	if c == nil {
		c = &shared{sh: sh, session: session, ready: make(chan struct{}), vconns: map[*vconn]struct{}{},
			calls: map[string]route{}, tokens: map[string]tokenRoute{}, fromServer: map[string]*vconn{}, subs: map[string]map[*vconn]bool{}}
		sh.conns[session] = c
		go c.connect(context.WithoutCancel(ctx))
	}
	v := &vconn{c: c, in: make(chan jsonrpc.Message, upstreamQueue), done: make(chan struct{})}
	c.mu.Lock()
	c.vconns[v] = struct{}{}
	if c.linger != nil {
		c.linger.Stop()
		c.linger = nil
	}
	c.mu.Unlock()
	sh.mu.Unlock()
	select {
	case <-c.ready:
	case <-ctx.Done():
		v.Close()
		return nil, ctx.Err()
	}
	if c.err != nil {
		v.Close()
		return nil, c.err
	}
	return v, nil
}

// forget drops c if it is still session's shared connection.
func (sh *sharer) forget(c *shared) {
	sh.mu.Lock()
	if sh.conns[c.session] == c {
		delete(sh.conns, c.session)
	}
	sh.mu.Unlock()
}

// shared is one upstream connection shared by the MCP sessions of one ward
// session.
type shared struct {
	sh      *sharer
	session string
	ready   chan struct{} // closed once dialled (err set on failure)
	err     error
	conn    mcp.Connection
	writeMu sync.Mutex // one writer at a time on conn

	mu          sync.Mutex
	next        int64
	vconns      map[*vconn]struct{}
	calls       map[string]route      // upstream request id (JSON text) → who sent it
	tokens      map[string]tokenRoute // upstream progress token (JSON text) → who sent it
	fromServer  map[string]*vconn     // server request id (JSON text) → who got it
	subs        map[string]map[*vconn]bool
	initResult  json.RawMessage // the server's answer to the first initialize
	initErr     *jsonrpc.Error
	initSent    bool          // an initialize went to the server
	initDone    chan struct{} // closed when it was answered
	initialized bool          // notifications/initialized went to the server
	lastWriter  *vconn
	dead        error
	linger      *time.Timer
}

type route struct {
	v  *vconn
	id jsonrpc.ID // the id the session used
	// init marks the first initialize, whose answer is kept for later
	// sessions.
	init bool
}

type tokenRoute struct {
	v     *vconn
	token json.RawMessage // the token the session used
}

func (c *shared) connect(ctx context.Context) {
	conn, err := c.sh.dial(ctx)
	if err != nil {
		c.err = err
		c.sh.forget(c)
		close(c.ready)
		return
	}
	c.conn = conn
	close(c.ready)
	go c.read()
}

// read routes what the server sends until the connection ends.
func (c *shared) read() {
	for {
		msg, err := c.conn.Read(context.Background())
		if err != nil {
			c.fail(err)
			return
		}
		switch m := msg.(type) {
		case *jsonrpc.Response:
			c.response(m)
		case *jsonrpc.Request:
			if m.IsCall() {
				c.serverRequest(m)
			} else {
				c.notification(m)
			}
		}
	}
}

func idKey(id jsonrpc.ID) string {
	b, _ := json.Marshal(id.Raw())
	return string(b)
}

func (c *shared) response(m *jsonrpc.Response) {
	c.mu.Lock()
	r, ok := c.calls[idKey(m.ID)]
	delete(c.calls, idKey(m.ID))
	if ok && r.init {
		c.initResult = m.Result
		if m.Error != nil {
			var we *jsonrpc.Error
			if errors.As(m.Error, &we) {
				c.initErr = we
			} else {
				c.initErr = &jsonrpc.Error{Code: CodeUpstream, Message: m.Error.Error()}
			}
		}
		close(c.initDone)
	}
	if ok {
		r.v.inflight--
	}
	failedInit := ok && r.init && c.initErr != nil
	c.mu.Unlock()
	if ok {
		r.v.deliver(&jsonrpc.Response{ID: r.id, Result: m.Result, Error: m.Error})
	}
	if failedInit {
		// A server that refused to initialize is not kept: the next
		// session dials it again.
		c.fail(fmt.Errorf("server %s refused initialize: %v", c.sh.name, m.Error))
	}
}

// target picks the session a server-initiated request goes to.
func (c *shared) target() *vconn {
	var best *vconn
	for v := range c.vconns {
		if v.inflight > 0 && (best == nil || v.lastWrite.After(best.lastWrite)) {
			best = v
		}
	}
	if best == nil {
		best = c.lastWriter
	}
	if best != nil {
		if _, live := c.vconns[best]; !live {
			best = nil
		}
	}
	return best
}

func (c *shared) serverRequest(m *jsonrpc.Request) {
	c.mu.Lock()
	v := c.target()
	if v != nil {
		c.fromServer[idKey(m.ID)] = v
	}
	c.mu.Unlock()
	if v == nil {
		c.write(&jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: CodeUpstream, Message: "no client session is connected"}})
		return
	}
	v.deliver(m)
}

func (c *shared) notification(m *jsonrpc.Request) {
	var targets []*vconn
	msg := jsonrpc.Message(m)
	c.mu.Lock()
	switch m.Method {
	case "notifications/progress":
		var p map[string]json.RawMessage
		if strictjson.UnmarshalOpen(m.Params, &p) == nil {
			if r, ok := c.tokens[string(p["progressToken"])]; ok {
				targets = []*vconn{r.v}
				p["progressToken"] = r.token
				params, _ := json.Marshal(p)
				msg = &jsonrpc.Request{Method: m.Method, Params: params}
			}
		}
	case "notifications/cancelled":
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
		}
		if strictjson.UnmarshalOpen(m.Params, &p) == nil {
			if v, ok := c.fromServer[string(p.RequestID)]; ok {
				targets = []*vconn{v}
			}
		}
	case "notifications/resources/updated":
		var p struct {
			URI string `json:"uri"`
		}
		if strictjson.UnmarshalOpen(m.Params, &p) == nil {
			for v := range c.subs[p.URI] {
				targets = append(targets, v)
			}
		}
	default:
		for v := range c.vconns {
			targets = append(targets, v)
		}
	}
	c.mu.Unlock()
	for _, v := range targets {
		v.deliver(msg)
	}
}

// fail ends the shared connection: every session's connection ends with
// err, and the next session dials a new one.
func (c *shared) fail(err error) {
	c.sh.forget(c)
	c.mu.Lock()
	if c.dead == nil {
		c.dead = err
	}
	vs := make([]*vconn, 0, len(c.vconns))
	for v := range c.vconns {
		vs = append(vs, v)
	}
	c.mu.Unlock()
	for _, v := range vs {
		v.end()
	}
	c.conn.Close()
}

func (c *shared) write(msg jsonrpc.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.conn.Write(ctx, msg)
}

// vconn is one MCP session's view of a shared connection.
type vconn struct {
	c         *shared
	in        chan jsonrpc.Message
	done      chan struct{}
	once      sync.Once
	endOnce   sync.Once
	inflight  int       // guarded by c.mu
	lastWrite time.Time // guarded by c.mu
}

func (v *vconn) deliver(m jsonrpc.Message) {
	select {
	case v.in <- m:
	case <-v.done:
	}
}

// end makes Read report the end of the connection.
func (v *vconn) end() { v.endOnce.Do(func() { close(v.done) }) }

func (v *vconn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case m := <-v.in:
		return m, nil
	case <-v.done:
		select {
		case m := <-v.in:
			return m, nil
		default:
		}
		v.c.mu.Lock()
		err := v.c.dead
		v.c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (v *vconn) SessionID() string { return "" }

func (v *vconn) Write(ctx context.Context, msg jsonrpc.Message) error {
	c := v.c
	select {
	case <-v.done:
		return errors.New("connection closed")
	default:
	}
	switch m := msg.(type) {
	case *jsonrpc.Response:
		// An answer to a request the server sent this session.
		c.mu.Lock()
		delete(c.fromServer, idKey(m.ID))
		c.mu.Unlock()
		return c.write(m)
	case *jsonrpc.Request:
		if !m.IsCall() {
			return v.notify(m)
		}
		return v.call(ctx, m)
	}
	return fmt.Errorf("shared connection: unsupported message %T", msg)
}

func (v *vconn) notify(m *jsonrpc.Request) error {
	c := v.c
	switch m.Method {
	case "notifications/initialized":
		c.mu.Lock()
		first := !c.initialized
		c.initialized = true
		c.mu.Unlock()
		if !first {
			return nil
		}
	case "notifications/cancelled":
		var p map[string]json.RawMessage
		if err := strictjson.UnmarshalOpen(m.Params, &p); err != nil {
			return nil
		}
		var id any
		if json.Unmarshal(p["requestId"], &id) != nil {
			return nil
		}
		c.mu.Lock()
		var upID string
		for k, r := range c.calls {
			if r.v == v && idKey(r.id) == string(p["requestId"]) {
				upID = k
				break
			}
		}
		c.mu.Unlock()
		if upID == "" {
			return nil
		}
		p["requestId"] = json.RawMessage(upID)
		params, _ := json.Marshal(p)
		m = &jsonrpc.Request{Method: m.Method, Params: params}
	}
	return c.write(m)
}

func (v *vconn) call(ctx context.Context, m *jsonrpc.Request) error {
	c := v.c
	var p map[string]json.RawMessage
	if len(m.Params) > 0 {
		if err := strictjson.UnmarshalOpen(m.Params, &p); err != nil {
			return fmt.Errorf("shared connection: params: %w", err)
		}
	}
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return c.dead
	}
	v.lastWrite = time.Now()
	c.lastWriter = v
	switch m.Method {
	case "initialize":
		if c.initSent {
			done := c.initDone
			c.mu.Unlock()
			go func() {
				select {
				case <-done:
				case <-v.done:
					return
				}
				c.mu.Lock()
				res, ierr := c.initResult, c.initErr
				c.mu.Unlock()
				if ierr != nil {
					v.deliver(&jsonrpc.Response{ID: m.ID, Error: ierr})
				} else {
					v.deliver(&jsonrpc.Response{ID: m.ID, Result: res})
				}
			}()
			return nil
		}
		c.initSent = true
		c.initDone = make(chan struct{})
	case "resources/subscribe", "resources/unsubscribe":
		var uri string
		_ = json.Unmarshal(p["uri"], &uri)
		subs := c.subs[uri]
		if subs == nil {
			subs = map[*vconn]bool{}
			c.subs[uri] = subs
		}
		before := len(subs)
		if m.Method == "resources/subscribe" {
			subs[v] = true
		} else {
			delete(subs, v)
		}
		// The server sees the first subscribe and the last unsubscribe;
		// the others are answered here.
		if (m.Method == "resources/subscribe" && before > 0) || (m.Method == "resources/unsubscribe" && len(subs) > 0) {
			c.mu.Unlock()
			v.deliver(&jsonrpc.Response{ID: m.ID, Result: json.RawMessage(`{}`)})
			return nil
		}
		if len(subs) == 0 {
			delete(c.subs, uri)
		}
	}
	c.next++
	upID := intID(c.next)
	c.calls[idKey(upID)] = route{v: v, id: m.ID, init: m.Method == "initialize"}
	v.inflight++
	if meta, ok := p["_meta"]; ok {
		var mm map[string]json.RawMessage
		if strictjson.UnmarshalOpen(meta, &mm) == nil {
			if tok, ok := mm["progressToken"]; ok {
				upTok := json.RawMessage(strconv.Quote("ward-" + strconv.FormatInt(c.next, 10)))
				c.tokens[string(upTok)] = tokenRoute{v: v, token: tok}
				mm["progressToken"] = upTok
				p["_meta"], _ = json.Marshal(mm)
			}
		}
	}
	c.mu.Unlock()
	params := m.Params
	if p != nil {
		params, _ = json.Marshal(p)
	}
	if err := c.write(&jsonrpc.Request{ID: upID, Method: m.Method, Params: params}); err != nil {
		c.mu.Lock()
		delete(c.calls, idKey(upID))
		v.inflight--
		c.mu.Unlock()
		return err
	}
	return nil
}

// Close leaves the shared connection: the session's subscriptions end (the
// server sees the last unsubscribe), its calls are forgotten, and the
// connection is closed sharedLinger after its last session leaves.
func (v *vconn) Close() error {
	v.once.Do(func() {
		c := v.c
		v.end()
		c.mu.Lock()
		delete(c.vconns, v)
		var unsub []string
		for uri, subs := range c.subs {
			if subs[v] {
				delete(subs, v)
				if len(subs) == 0 {
					delete(c.subs, uri)
					unsub = append(unsub, uri)
				}
			}
		}
		for k, r := range c.calls {
			if r.v == v && !r.init {
				delete(c.calls, k)
			}
		}
		for k, r := range c.tokens {
			if r.v == v {
				delete(c.tokens, k)
			}
		}
		for k, got := range c.fromServer {
			if got == v {
				delete(c.fromServer, k)
			}
		}
		last := len(c.vconns) == 0 && c.dead == nil && c.conn != nil
		if last {
			c.linger = time.AfterFunc(sharedLinger, c.closeIfUnused)
		}
		c.mu.Unlock()
		for _, uri := range unsub {
			c.mu.Lock()
			c.next++
			id := intID(c.next)
			c.mu.Unlock()
			params, _ := json.Marshal(map[string]string{"uri": uri})
			_ = c.write(&jsonrpc.Request{ID: id, Method: "resources/unsubscribe", Params: params})
		}
	})
	return nil
}

// closeIfUnused closes the connection if no session joined it meanwhile.
func (c *shared) closeIfUnused() {
	c.sh.mu.Lock()
	c.mu.Lock()
	unused := len(c.vconns) == 0
	c.mu.Unlock()
	if unused && c.sh.conns[c.session] == c {
		delete(c.sh.conns, c.session)
	}
	c.sh.mu.Unlock()
	if unused {
		c.mu.Lock()
		if c.dead == nil {
			c.dead = errors.New("closed")
		}
		c.mu.Unlock()
		c.conn.Close()
	}
}
