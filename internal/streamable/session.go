package streamable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// standaloneStreamID names the stream opened by GET without Last-Event-ID.
const standaloneStreamID = "0"

// Session is one MCP session of a [Handler]. Its methods are safe for
// concurrent use.
type Session struct {
	h       *Handler
	id      string
	key     [32]byte
	ctx     context.Context
	cancel  context.CancelFunc
	handler SessionHandler // set once before the session is registered

	recvMu sync.Mutex // serialises Receive calls

	mu         sync.Mutex
	closed     bool
	version    string
	initID     jsonrpc.ID // initialize request awaiting its response
	nextStream int64
	streams    map[string]*stream
	standalone *stream
	queue      [][]byte               // standalone messages waiting for a GET
	pending    map[jsonrpc.ID]*stream // client request id → its stream
	// ring holds the retained events, oldest at ringHead; it grows as
	// events come, up to h.cfg.MaxRetainedEvents (see growRing), so that
	// a session that never sends an event holds no ring: allocated at its
	// full size it cost every session 8 KiB.
	ring      []*event
	ringHead  int
	ringLen   int
	ringBytes int       // bytes of retained event data
	active    int       // HTTP requests in flight, including open streams
	opening   bool      // its initialize is being opened: in use, though not yet counted in active
	idleSince time.Time // when active last fell to 0
	idle      *time.Timer
	closeOnce sync.Once
}

// stream is one logical SSE stream (or, for a POST that accepts only JSON,
// the collection of its responses). It outlives the HTTP connection it is
// written to, so a client can resume it.
type stream struct {
	id          string
	standalone  bool
	json        bool     // responses go into one JSON body
	next        int64    // index of the next event
	evicted     int64    // events with index below this are no longer retained
	retained    int      // events of this stream in the ring
	outstanding int      // requests not yet answered
	calls       int      // requests the POST carried: their answers are beyond the bound on out
	out         []*event // events to write on the current connection
	outBytes    int      // bytes of data in out
	overflow    bool     // out outgrew its bound: the connection is dropped, the client resumes
	gen         int      // bumped when a resume takes the stream over from a stale connection
	jsonOut     [][]byte
	// deferred marks the stream of a POST carrying one request whose
	// client accepts JSON as well as SSE: its answer is sent as one JSON
	// body unless a message related to the request comes first, or
	// KeepAlive passes, which make it an SSE stream (see serveDeferred).
	deferred bool
	attached bool
	wake     chan struct{}
}

type event struct {
	s    *stream
	idx  int64
	data []byte // nil for a priming event
}

func (st *stream) eventID(idx int64) string {
	return st.id + "_" + strconv.FormatInt(idx, 10)
}

func newSession(h *Handler, version string) (*Session, error) {
	id, err := newSessionID()
	if err != nil {
		return nil, fmt.Errorf("create session id: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		h:         h,
		id:        id,
		key:       sessionKey(id),
		ctx:       ctx,
		cancel:    cancel,
		version:   version,
		idleSince: time.Now(),
		opening:   true,
		streams:   make(map[string]*stream),
		pending:   make(map[jsonrpc.ID]*stream),
	}
	s.nextStream = 1
	s.standalone = &stream{id: standaloneStreamID, standalone: true, wake: make(chan struct{}, 1)}
	s.streams[standaloneStreamID] = s.standalone
	return s, nil
}

// ID returns the session id sent in Mcp-Session-Id.
func (s *Session) ID() string { return s.id }

// ProtocolVersion returns the protocol version: the one the initialize
// request asked for, then the one the initialize response chose, then the
// latest MCP-Protocol-Version header. It is "" if none was valid.
func (s *Session) ProtocolVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

func (s *Session) setVersion(v string) {
	s.mu.Lock()
	s.version = v
	s.mu.Unlock()
}

// Send sends a server→client message.
//
// A *jsonrpc.Response goes to the stream of the POST that carried the
// request with its id, as an SSE event or, if that POST did not accept
// text/event-stream, in its JSON body; that POST completes once every
// request it carried is answered. A response to an unknown id is an error.
//
// A request or notification goes to the stream of the client request
// related, if related is valid and that request is still unanswered;
// otherwise to the standalone GET stream, or, while none is open, into a
// bounded queue flushed when one opens (ErrQueueFull when it is full).
//
// Every SSE event carries an id "<streamID>_<n>" and is retained (bounded)
// so that a client can resume a dropped stream with Last-Event-ID.
func (s *Session) Send(msg jsonrpc.Message, related jsonrpc.ID) error {
	if msg == nil {
		return errors.New("send: nil message")
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSessionClosed
	}
	switch m := msg.(type) {
	case *jsonrpc.Response:
		st, ok := s.pending[m.ID]
		if !ok {
			return fmt.Errorf("send response %v: no unanswered request with that id", m.ID.Raw())
		}
		delete(s.pending, m.ID)
		if s.initID.IsValid() && m.ID == s.initID {
			s.initID = jsonrpc.ID{}
			var r struct {
				ProtocolVersion string `json:"protocolVersion"`
			}
			if m.Error == nil && json.Unmarshal(m.Result, &r) == nil && validVersion(r.ProtocolVersion) {
				s.version = r.ProtocolVersion
			}
		}
		st.outstanding--
		if st.json || st.deferred {
			if st.attached {
				st.jsonOut = append(st.jsonOut, data)
				if st.outstanding == 0 {
					notify(st.wake)
				}
			}
		} else {
			s.enqueue(st, data)
			if st.outstanding == 0 {
				notify(st.wake)
			}
		}
		s.maybeForget(st)
		return nil
	case *jsonrpc.Request:
		if related.IsValid() {
			if st, ok := s.pending[related]; ok && !st.json {
				s.undefer(st)
				s.enqueue(st, data)
				return nil
			}
		}
		if s.standalone.attached {
			s.enqueue(s.standalone, data)
			return nil
		}
		if len(s.queue) >= s.h.cfg.MaxQueued {
			return ErrQueueFull
		}
		s.queue = append(s.queue, data)
		return nil
	default:
		return fmt.Errorf("send: unsupported message type %T", msg)
	}
}

// Close ends the session: open streams end, later requests with its id
// are answered 404, and its handler's Closed is called. It is idempotent.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.idle != nil {
			s.idle.Stop()
		}
		s.queue = nil
		s.pending = map[jsonrpc.ID]*stream{}
		s.mu.Unlock()
		s.cancel()
		s.h.remove(s)
		if s.handler != nil {
			s.handler.Closed()
		}
	})
}

// begin records an HTTP request in flight; it reports false if the
// session is closed.
func (s *Session) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.active++
	s.opening = false // the initialize, now counted in active
	if s.idle != nil {
		s.idle.Stop()
	}
	return true
}

func (s *Session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 {
		s.idleSince = time.Now()
		if !s.closed && s.idle != nil {
			s.idle.Reset(s.h.cfg.IdleTimeout)
		}
	}
}

// Idle reports whether the session has no HTTP request in flight and no
// open stream, and since when. A session whose initialize is still being
// opened is not idle.
func (s *Session) Idle() (since time.Time, idle bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idleSince, s.active == 0 && !s.closed && !s.opening
}

// Retire marks the session closed if it is idle (as the idle timeout
// does) and reports whether it did; a retired session accepts no further
// request. The caller must then call Close, which it may do after
// releasing locks of its own that Closed takes.
func (s *Session) Retire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active > 0 || s.closed || s.opening {
		return false
	}
	s.closed = true
	if s.idle != nil {
		s.idle.Stop()
	}
	return true
}

func (s *Session) checkIdle() {
	// Decide and mark closed under one lock, so a request that begins in
	// between cannot run on a closing session.
	s.mu.Lock()
	if s.active > 0 || s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.Close()
}

// receive hands msgs to the session handler in order. It reports false if
// the session is closed.
func (s *Session) receive(rctx context.Context, msgs []jsonrpc.Message) bool {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	ctx := requestValues{Context: s.ctx, req: rctx}
	for _, m := range msgs {
		if s.ctx.Err() != nil {
			return false
		}
		s.handler.Receive(ctx, m)
	}
	return true
}

// requestValues is the session's context (its cancellation and deadline)
// carrying the values of the HTTP request that delivered the messages, such
// as the request's trace span: a message outlives its request, so it must
// not be cancelled with it, but what it is part of must follow it.
type requestValues struct {
	context.Context // the session's
	req             context.Context
}

func (c requestValues) Value(key any) any {
	if v := c.req.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// openRequestStream registers the calls of one POST and returns the
// stream their responses go to, attached to that POST.
func (s *Session) openRequestStream(calls []jsonrpc.ID, jsonMode, deferred, isInit bool) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSessionClosed
	}
	seen := make(map[jsonrpc.ID]bool, len(calls))
	for _, id := range calls {
		if _, dup := s.pending[id]; dup || seen[id] {
			return nil, fmt.Errorf("invalid request: request id %v is already in use", id.Raw())
		}
		seen[id] = true
	}
	st := &stream{
		id:          strconv.FormatInt(s.nextStream, 10),
		json:        jsonMode,
		deferred:    deferred && !jsonMode,
		outstanding: len(calls),
		calls:       len(calls),
		attached:    true,
		wake:        make(chan struct{}, 1),
	}
	s.nextStream++
	for _, id := range calls {
		s.pending[id] = st
	}
	if isInit {
		s.initID = calls[0]
	}
	if !jsonMode {
		s.streams[st.id] = st
		if !st.deferred {
			s.prime(st)
		}
	}
	return st, nil
}

// openStandalone attaches the standalone stream to a GET and flushes the
// queue into it.
func (s *Session) openStandalone() (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSessionClosed
	}
	st := s.standalone
	if st.attached {
		return nil, errors.New("a standalone stream is already open for this session")
	}
	st.attached = true
	st.outBytes, st.overflow = 0, false
	st.out = nil
	s.prime(st)
	s.flushQueue()
	return st, nil
}

// resume attaches the stream named by a Last-Event-ID to a GET, with the
// retained events after idx queued for writing.
func (s *Session) resume(sid string, idx int64) (*stream, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[sid]
	if !ok || idx >= st.next {
		return nil, http.StatusBadRequest, errors.New("Last-Event-ID names an unknown stream or event")
	}
	if s.closed {
		return nil, http.StatusNotFound, ErrSessionClosed
	}
	if idx+1 < st.evicted {
		return nil, http.StatusBadRequest, errors.New("events after Last-Event-ID are no longer retained")
	}
	if st.attached {
		// The client reconnected before the server noticed the old
		// connection drop: the (authorized) resume takes the stream over.
		st.gen++
		notify(st.wake)
	}
	st.attached = true
	st.outBytes, st.overflow = 0, false
	st.out = nil
	for i := range s.ringLen {
		ev := s.ring[(s.ringHead+i)%len(s.ring)]
		if ev.s == st && ev.idx > idx {
			st.out = append(st.out, ev)
		}
	}
	if st.standalone {
		s.flushQueue()
	}
	return st, 0, nil
}

// detach marks st as no longer written to by a connection.
// detachGen detaches st unless a resume has taken it over since gen.
func (s *Session) detachGen(st *stream, gen int) {
	s.mu.Lock()
	current := st.gen == gen
	s.mu.Unlock()
	if current {
		s.detach(st)
	}
}

func (s *Session) detach(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.attached = false
	st.out, st.outBytes, st.overflow = nil, 0, false
	st.jsonOut = nil
	select {
	case <-st.wake:
	default:
	}
	s.maybeForget(st)
}

// prime queues a priming event (an id with empty data) so that a client
// can resume the stream even before the first message. Called with mu held.
func (s *Session) prime(st *stream) {
	if s.version < versionPriming {
		return
	}
	st.out = append(st.out, &event{s: st, idx: st.next})
	st.next++
}

// flushQueue moves queued standalone messages into the attached
// standalone stream. Called with mu held.
func (s *Session) flushQueue() {
	for _, data := range s.queue {
		s.enqueue(s.standalone, data)
	}
	s.queue = nil
}

// growRing makes room in the ring for one more event if it is full but
// smaller than h.cfg.MaxRetainedEvents, doubling it (from 8) and putting
// the oldest event first. Called with mu held.
func (s *Session) growRing() {
	if s.ringLen < len(s.ring) || len(s.ring) >= s.h.cfg.MaxRetainedEvents {
		return
	}
	ring := make([]*event, min(max(2*len(s.ring), 8), s.h.cfg.MaxRetainedEvents))
	for i := range s.ringLen {
		ring[i] = s.ring[(s.ringHead+i)%len(s.ring)]
	}
	s.ring, s.ringHead = ring, 0
}

// enqueue assigns the next event of st to data, retains it, and queues it
// for the attached connection if any. Called with mu held.
func (s *Session) enqueue(st *stream, data []byte) {
	ev := &event{s: st, idx: st.next, data: data}
	st.next++
	for s.ringLen > 0 && (s.ringLen == s.h.cfg.MaxRetainedEvents || s.ringBytes+len(data) > maxRetainedBytes) {
		old := s.ring[s.ringHead]
		s.ring[s.ringHead] = nil
		s.ringHead = (s.ringHead + 1) % len(s.ring)
		s.ringLen--
		s.ringBytes -= len(old.data)
		old.s.retained--
		old.s.evicted = max(old.s.evicted, old.idx+1)
		s.maybeForget(old.s)
	}
	s.growRing()
	s.ring[(s.ringHead+s.ringLen)%len(s.ring)] = ev
	s.ringLen++
	s.ringBytes += len(data)
	st.retained++
	if st.attached {
		switch {
		case st.overflow:
			// Already over: what follows is resumed from the retained
			// events, after what is pending, in order.
		case len(st.out) > 0 && (len(st.out) >= maxPendingEvents+st.calls || st.outBytes+len(data) > maxPendingBytes):
			// The client is not reading fast enough: the pending events
			// are written, then the connection is dropped rather than
			// buffer without bound; the client resumes from the last
			// event it got. The bound counts the POST's own answers
			// extra, so a batch answered at once never overflows by
			// their number, and the first event always fits, so a
			// dropped connection always leaves an event id to resume
			// from.
			st.overflow = true
		default:
			st.out = append(st.out, ev)
			st.outBytes += len(data)
		}
		notify(st.wake)
	}
}

// Bounds on what a session buffers for slow or absent readers.
const (
	maxRetainedBytes = 16 << 20 // retained events, for resumption
	maxPendingEvents = 1024     // events waiting to be written to one connection
	maxPendingBytes  = 8 << 20
)

// maybeForget drops a finished request stream once nothing can resume it.
// Called with mu held.
func (s *Session) maybeForget(st *stream) {
	if !st.standalone && !st.json && st.outstanding == 0 && !st.attached && st.retained == 0 {
		delete(s.streams, st.id)
	}
}

var ping = []byte(": ping\n\n")

// clientWriter writes to a client with a deadline on each write only.
type clientWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func newClientWriter(w http.ResponseWriter, timeout time.Duration) *clientWriter {
	return &clientWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// write writes b and flushes it, within the write timeout. The deadline
// is set before and lifted after, so the time between two writes (a call
// that takes minutes, an idle stream between pings) is never counted: a
// deadline left standing would reset the stream at its expiry, whatever
// was written in between (HTTP/2 resets the stream when it passes even
// with no write in progress).
func (cw *clientWriter) write(b []byte) error {
	_ = cw.rc.SetWriteDeadline(time.Now().Add(cw.timeout)) // unsupported: the server's own bounds apply
	defer func() { _ = cw.rc.SetWriteDeadline(time.Time{}) }()
	if len(b) > 0 {
		if _, err := cw.w.Write(b); err != nil {
			return err
		}
	}
	if err := cw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// serveStream writes st to w as SSE until the stream is done (request
// streams: every request answered and written), the connection ends, or
// the session closes.
func (s *Session) serveStream(w http.ResponseWriter, r *http.Request, st *stream) {
	s.mu.Lock()
	gen := st.gen
	s.mu.Unlock()
	defer s.detachGen(st, gen)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	cw := newClientWriter(w, s.h.cfg.WriteTimeout)
	w.WriteHeader(http.StatusOK)
	if cw.write(nil) != nil {
		return
	}
	ticker := time.NewTicker(s.h.cfg.KeepAlive)
	defer ticker.Stop()
	var buf []byte
	for {
		s.mu.Lock()
		if st.gen != gen {
			s.mu.Unlock()
			return // taken over by a resumed connection: leave its events alone
		}
		out := st.out
		st.out, st.outBytes = nil, 0
		overflow := st.overflow
		done := !st.standalone && st.outstanding == 0
		closed := s.closed
		s.mu.Unlock()
		if len(out) > 0 {
			buf = buf[:0]
			for _, ev := range out {
				buf = appendSSEEvent(buf, st.eventID(ev.idx), ev.data)
			}
			if cw.write(buf) != nil {
				return
			}
		}
		if overflow || done || closed {
			// On overflow the client resumes with the Last-Event-ID of
			// what was just written; the rest is retained.
			return
		}
		select {
		case <-st.wake:
		case <-ticker.C:
			if cw.write(ping) != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// undefer makes a deferred stream an SSE stream (primed, so that the
// client can resume it). Called with mu held.
func (s *Session) undefer(st *stream) {
	if st.deferred {
		st.deferred = false
		s.prime(st)
		notify(st.wake)
	}
}

// serveDeferred answers the POST of a deferred stream: with its one
// response as a JSON body if that comes first, as serveJSON would;
// otherwise (a request or notification related to the POST's request, or
// KeepAlive without an answer, so that a long call gets the SSE stream's
// pings) as an SSE stream from there on, as serveStream does. A single
// JSON answer costs the client and every proxy on the way less than a
// stream of one event.
func (s *Session) serveDeferred(w http.ResponseWriter, r *http.Request, st *stream) {
	timer := time.NewTimer(s.h.cfg.KeepAlive)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if !st.deferred {
			s.mu.Unlock()
			s.serveStream(w, r, st)
			return
		}
		if st.outstanding == 0 {
			out := st.jsonOut
			s.mu.Unlock()
			s.detach(st)
			if len(out) != 1 {
				writeError(w, http.StatusInternalServerError, jsonrpc.CodeInternalError, "internal error")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_ = newClientWriter(w, s.h.cfg.WriteTimeout).write(out[0])
			return
		}
		s.mu.Unlock()
		select {
		case <-st.wake:
		case <-timer.C:
			s.mu.Lock()
			s.undefer(st)
			s.mu.Unlock()
		case <-r.Context().Done():
			s.detach(st)
			return
		case <-s.ctx.Done():
			s.detach(st)
			writeError(w, http.StatusNotFound, jsonrpc.CodeInvalidRequest, "session closed")
			return
		}
	}
}

// serveJSON waits for every response of st and writes them as one JSON
// body: a single object, or an array for a batch.
func (s *Session) serveJSON(w http.ResponseWriter, r *http.Request, st *stream, batch bool) {
	defer s.detach(st)
	for {
		s.mu.Lock()
		done := st.outstanding == 0
		out := st.jsonOut
		s.mu.Unlock()
		if done {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			var body []byte
			if batch || len(out) != 1 {
				body = append(body, '[')
				for i, d := range out {
					if i > 0 {
						body = append(body, ',')
					}
					body = append(body, d...)
				}
				body = append(body, ']')
			} else {
				body = out[0]
			}
			_ = newClientWriter(w, s.h.cfg.WriteTimeout).write(body)
			return
		}
		select {
		case <-st.wake:
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			writeError(w, http.StatusNotFound, jsonrpc.CodeInvalidRequest, "session closed")
			return
		}
	}
}
