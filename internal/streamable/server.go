package streamable

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/mcpmsg"

	"github.com/ward-dev/ward/internal/strictjson"
)

// Defaults for [HandlerConfig].
const (
	// DefaultMaxBodyBytes bounds a POST body.
	DefaultMaxBodyBytes = 4 << 20
	// DefaultMaxRetainedEvents is how many SSE events a session keeps for
	// resumption, over all of its streams.
	DefaultMaxRetainedEvents = 1024
	// DefaultMaxQueued is how many server→client messages a session queues
	// while no standalone stream is open.
	DefaultMaxQueued = 256
	// DefaultIdleTimeout closes a session with no HTTP request in flight and
	// no open stream for this long. A client that is still there holds
	// the standalone GET stream open (the SDKs do), so a session without
	// one for this long has most likely been abandoned, and each one holds
	// upstream connections (a stdio server process each). A client that
	// comes back gets 404 and, as the specification asks, starts a new
	// session.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultKeepAlive is the interval of SSE comment pings on open streams.
	DefaultKeepAlive = 15 * time.Second
	// DefaultMaxSessions bounds concurrent sessions of one Handler.
	DefaultMaxSessions = 10000
	// DefaultWriteTimeout bounds one write to a client (SSE events, a
	// ping, a JSON body): a client that stops reading is disconnected
	// after this long. It never bounds how long a stream lives.
	DefaultWriteTimeout = 30 * time.Second
)

// Bounds on the headers this package reads.
const (
	maxSessionIDLen = 128
	maxEventIDLen   = 64
	maxVersionLen   = 32
)

// Header names.
const (
	headerSessionID       = "Mcp-Session-Id"
	headerProtocolVersion = "Mcp-Protocol-Version"
	headerLastEventID     = "Last-Event-Id"
)

// Protocol versions with behaviour that differs in this transport.
const (
	versionBatch   = "2025-03-26" // the only version with JSON-RPC batches
	versionPriming = "2025-11-25" // first version with priming events
)

var (
	// ErrUnauthorized is returned (wrapped) by [HandlerConfig.Open] and
	// [SessionHandler.Authorize] when the caller is not authenticated; the
	// handler answers 401. ErrUnavailable is returned (wrapped) by them
	// when the server cannot decide right now (a store out of reach); the
	// handler answers 503 with Retry-After, so that a client, or a load
	// balancer, tries again or elsewhere. Any other error from them is
	// answered 403.
	ErrUnauthorized = errors.New("unauthorized")
	ErrUnavailable  = errors.New("unavailable")
	// ErrQueueFull is returned by [Session.Send] when a message for the
	// standalone stream cannot be queued because no stream is open and
	// the queue holds [HandlerConfig.MaxQueued] messages.
	ErrQueueFull = errors.New("server-to-client queue full")
	// ErrSessionClosed is returned by [Session.Send] after the session ended.
	ErrSessionClosed = errors.New("session closed")
)

// HandlerConfig configures a [Handler]. Zero values take the defaults.
type HandlerConfig struct {
	// Open is called for a POST without Mcp-Session-Id whose body is one
	// initialize request. It returns the session's handler, or an error:
	// errors.Is(err, ErrUnauthorized) is answered 401, other errors 403,
	// with the error text (which must be safe to show) in the body.
	Open func(r *http.Request, s *Session) (SessionHandler, error)
	// MaxBodyBytes bounds a POST body; larger bodies are answered 413.
	MaxBodyBytes int64
	// MaxSessions bounds concurrent sessions; an initialize beyond it is
	// answered 503. Default DefaultMaxSessions.
	MaxSessions int
	// MaxRetainedEvents is how many SSE events a session keeps for
	// resumption; the oldest are evicted first.
	MaxRetainedEvents int
	// MaxQueued is how many server→client messages are queued while no
	// standalone stream is open; beyond it Send returns ErrQueueFull.
	MaxQueued int
	// IdleTimeout closes a session after this long with no HTTP request in
	// flight and no open stream.
	IdleTimeout time.Duration
	// KeepAlive is the interval of SSE comment pings.
	KeepAlive time.Duration
	// JSONAnswers answers a POST of one request from a client that accepts
	// application/json as well as SSE with one JSON body, unless the tool
	// talks to the client first (then the stream becomes SSE). Off by
	// default: an SSE stream is what the MCP reference servers answer and
	// what the official conformance suite checks in full (with JSON
	// answers it reports 39 of its 40 checks, one as information).
	JSONAnswers bool
	// WriteTimeout bounds each write to a client: the deadline is set
	// before every write (events and pings alike) and lifted after it, so
	// a stream or a call lives as long as its session while a client that
	// stops reading is disconnected (it can resume with Last-Event-ID).
	// Default DefaultWriteTimeout. The http.Server must have no
	// WriteTimeout of its own, which would end every stream.
	WriteTimeout time.Duration
	// OnRefuse, if set, is called with every request the handler refuses
	// (every error status it answers), the status and the reason it
	// answers with, before the answer is written. It must not write to
	// the response; it is for recording refusals.
	OnRefuse func(r *http.Request, status int, reason string)
}

// SessionHandler receives the messages of one session. It is returned by
// [HandlerConfig.Open].
type SessionHandler interface {
	// Authorize is called for every HTTP request on an existing session
	// (POST, GET, DELETE) before anything else. An error is answered 401
	// if it wraps ErrUnauthorized and 403 otherwise, with its text.
	Authorize(r *http.Request) error
	// Receive is called with every client→server message, in arrival
	// order, one at a time. ctx is the session's context, cancelled when
	// the session closes, carrying the values of the context of the HTTP
	// request that delivered msg (its trace span). Receive must not block
	// for long.
	Receive(ctx context.Context, msg jsonrpc.Message)
	// Closed is called once when the session ends (DELETE, idle timeout,
	// Session.Close or Handler.Close).
	Closed()
}

// Handler serves the MCP Streamable HTTP transport on one endpoint. It is
// an http.Handler; see the package documentation for the HTTP behaviour.
type Handler struct {
	cfg HandlerConfig

	mu       sync.Mutex
	sessions map[[32]byte]*Session // keyed by SHA-256 of the session id
	slots    int                   // sessions registered plus sessions being opened; at most MaxSessions
	closed   bool
}

// NewHandler returns a Handler for cfg, with defaults applied.
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxRetainedEvents <= 0 {
		cfg.MaxRetainedEvents = DefaultMaxRetainedEvents
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	return &Handler{cfg: cfg, sessions: make(map[[32]byte]*Session)}
}

// Close closes every session and makes the handler refuse new ones (503).
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	ss := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
}

func sessionKey(id string) [32]byte { return sha256.Sum256([]byte(id)) }

func (h *Handler) lookup(id string) *Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[sessionKey(id)]
}

func (h *Handler) remove(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.key] == s {
		delete(h.sessions, s.key)
		h.slots--
	}
}

// reserve takes a session slot for an initialize about to be opened. The
// check and the taking are one critical section, so MaxSessions holds
// exactly however many initializes arrive at once. It returns the status
// and reason to refuse with when no slot is free. A slot taken is given
// back by release if the session is not registered, and by remove once it
// ends if it is.
func (h *Handler) reserve() (int, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return http.StatusServiceUnavailable, "server shutting down"
	}
	if h.slots >= h.cfg.MaxSessions {
		return http.StatusServiceUnavailable, fmt.Sprintf("too many MCP sessions (limit %d); end one (DELETE) or retry later", h.cfg.MaxSessions)
	}
	h.slots++
	return 0, ""
}

func (h *Handler) release() {
	h.mu.Lock()
	h.slots--
	h.mu.Unlock()
}

// register adds an opened session under the slot reserve took for it. It
// reports false (and gives the slot back) if the handler or the session
// closed meanwhile: a session closed before it is registered would
// otherwise stay registered, since its Close found nothing to remove.
func (h *Handler) register(s *Session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Lock order: h.mu, then s.mu (nothing takes them the other way).
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if h.closed || closed {
		h.slots--
		return false
	}
	h.sessions[s.key] = s
	return true
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.Header.Get(headerSessionID)) > maxSessionIDLen ||
		len(r.Header.Get(headerLastEventID)) > maxEventIDLen ||
		len(r.Header.Get(headerProtocolVersion)) > maxVersionLen {
		h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "header too long")
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.servePOST(w, r)
	case http.MethodGet:
		h.serveGET(w, r)
	case http.MethodDelete:
		h.serveDELETE(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		h.refuse(w, r, http.StatusMethodNotAllowed, jsonrpc.CodeInvalidRequest, "method not allowed")
	}
}

// existing looks up the session named by the request and authorizes the
// request. On failure it has written the response and returns nil. On
// success the caller must call s.end() when done.
func (h *Handler) existing(w http.ResponseWriter, r *http.Request) *Session {
	id := r.Header.Get(headerSessionID)
	if id == "" {
		h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "missing Mcp-Session-Id header")
		return nil
	}
	s := h.lookup(id)
	if s == nil || !s.begin() {
		h.refuse(w, r, http.StatusNotFound, jsonrpc.CodeInvalidRequest, "session not found")
		return nil
	}
	if err := s.handler.Authorize(r); err != nil {
		s.end()
		h.refuseAuth(w, r, err)
		return nil
	}
	if v := r.Header.Get(headerProtocolVersion); v != "" {
		if !validVersion(v) {
			s.end()
			h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "malformed MCP-Protocol-Version header")
			return nil
		}
		// An unsupported version is refused (as the specification
		// asks); a supported one other than the negotiated version is
		// served, under the negotiated version: the header never
		// changes it (that would switch batching or priming
		// mid-session).
		if !supportedVersion(v) {
			s.end()
			h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, fmt.Sprintf("MCP-Protocol-Version %q is not supported (supported: %s)", v, strings.Join(SupportedVersions, ", ")))
			return nil
		}
	}
	return s
}

func (h *Handler) servePOST(w http.ResponseWriter, r *http.Request) {
	var s *Session
	if r.Header.Get(headerSessionID) != "" {
		if s = h.existing(w, r); s == nil {
			return
		}
		defer s.end()
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.refuse(w, r, http.StatusUnsupportedMediaType, jsonrpc.CodeInvalidRequest, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.refuse(w, r, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest,
				fmt.Sprintf("request body larger than %d bytes", h.cfg.MaxBodyBytes))
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The server in front bounds how long a body may take.
			h.refuse(w, r, http.StatusRequestTimeout, jsonrpc.CodeInvalidRequest, "request body not received in time: send it at once")
			return
		}
		h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeParseError, "read request body failed")
		return
	}
	version := ""
	if s != nil {
		version = s.ProtocolVersion()
	}
	msgs, batch, code, err := decodeBody(body, version == versionBatch)
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, code, err.Error())
		return
	}
	isInit := len(msgs) == 1 && !batch && isInitialize(msgs[0])
	if s == nil {
		if len(msgs) == 1 && !batch && isDiscover(msgs[0]) {
			// A client of protocol 2026-07-28 and later (the Go SDK's
			// default) probes with server/discover first and falls back
			// to initialize on an error: a protocol probe, answered as
			// such and not counted as a refusal.
			writeJSONRPC(w, &jsonrpc.Response{ID: msgs[0].(*jsonrpc.Request).ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound,
				Message: "server/discover is not supported: this server speaks MCP " + strings.Join(SupportedVersions, ", ") + "; send initialize"}})
			return
		}
		if !isInit {
			h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest,
				"missing Mcp-Session-Id header: only an initialize request may start a session")
			return
		}
		if s = h.open(w, r, msgs[0].(*jsonrpc.Request)); s == nil {
			return
		}
		defer s.end()
		w.Header().Set(headerSessionID, s.id)
	} else {
		for _, m := range msgs {
			if isInitialize(m) {
				h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "session already initialized")
				return
			}
		}
	}

	var calls []jsonrpc.ID
	for _, m := range msgs {
		if req, ok := m.(*jsonrpc.Request); ok && req.IsCall() {
			calls = append(calls, req.ID)
		}
	}
	if len(calls) == 0 {
		if !s.receive(r.Context(), msgs) {
			h.refuse(w, r, http.StatusNotFound, jsonrpc.CodeInvalidRequest, "session closed")
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}

	sse := acceptsSSE(r.Header.Values("Accept"))
	// One request, from a client that takes either: answered with one
	// JSON body unless the tool talks to the client first.
	deferred := h.cfg.JSONAnswers && sse && !batch && len(msgs) == 1 && acceptsJSON(r.Header.Values("Accept"))
	st, err := s.openRequestStream(calls, !sse, deferred, isInit)
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, err.Error())
		return
	}
	if !s.receive(r.Context(), msgs) {
		s.detach(st)
		h.refuse(w, r, http.StatusNotFound, jsonrpc.CodeInvalidRequest, "session closed")
		return
	}
	switch {
	case deferred:
		s.serveDeferred(w, r, st)
	case sse:
		s.serveStream(w, r, st)
	default:
		s.serveJSON(w, r, st, batch)
	}
}

// open creates a session for an initialize request and asks cfg.Open for
// its handler. On failure it has written the response and returns nil; on
// success the session is registered and begun.
func (h *Handler) open(w http.ResponseWriter, r *http.Request, init *jsonrpc.Request) *Session {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	// A missing or odd version is for the server to refuse. Read it as the
	// server does, case-sensitively: {"ProtocolVersion": "2025-03-26"}
	// must not turn batches on here and not upstream.
	_ = strictjson.UnmarshalOpen(init.Params, &p)
	if !validVersion(p.ProtocolVersion) {
		p.ProtocolVersion = ""
	}
	if status, reason := h.reserve(); status != 0 {
		h.refuse(w, r, status, jsonrpc.CodeInternalError, reason)
		return nil
	}
	s, err := newSession(h, p.ProtocolVersion)
	if err != nil {
		h.release()
		h.refuse(w, r, http.StatusInternalServerError, jsonrpc.CodeInternalError, "create session failed")
		return nil
	}
	if h.cfg.Open == nil {
		s.cancel()
		h.release()
		h.refuse(w, r, http.StatusForbidden, jsonrpc.CodeInvalidRequest, "sessions are not accepted")
		return nil
	}
	sh, err := h.cfg.Open(r, s)
	if err != nil || sh == nil {
		s.cancel()
		h.release()
		if err != nil {
			h.refuseAuth(w, r, err)
		} else {
			h.refuse(w, r, http.StatusForbidden, jsonrpc.CodeInvalidRequest, "sessions are not accepted")
		}
		return nil
	}
	s.handler = sh
	if !s.begin() {
		// The handler closed the session while opening it.
		h.release()
		h.refuse(w, r, http.StatusServiceUnavailable, jsonrpc.CodeInternalError, "session closed while it was being opened")
		return nil
	}
	s.mu.Lock()
	s.idle = time.AfterFunc(h.cfg.IdleTimeout, s.checkIdle)
	s.mu.Unlock()
	if !h.register(s) {
		s.end()
		s.Close()
		h.refuse(w, r, http.StatusServiceUnavailable, jsonrpc.CodeInternalError, "session closed while it was being opened, or the server is shutting down")
		return nil
	}
	return s
}

func (h *Handler) serveGET(w http.ResponseWriter, r *http.Request) {
	s := h.existing(w, r)
	if s == nil {
		return
	}
	defer s.end()
	if !acceptsSSE(r.Header.Values("Accept")) {
		h.refuse(w, r, http.StatusNotAcceptable, jsonrpc.CodeInvalidRequest, "GET requires Accept: text/event-stream")
		return
	}
	var st *stream
	if leid := r.Header.Get(headerLastEventID); leid != "" {
		sid, idx, ok := parseEventID(leid)
		if !ok {
			h.refuse(w, r, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "malformed Last-Event-ID header")
			return
		}
		var status int
		var err error
		st, status, err = s.resume(sid, idx)
		if err != nil {
			h.refuse(w, r, status, jsonrpc.CodeInvalidRequest, err.Error())
			return
		}
	} else {
		var err error
		if st, err = s.openStandalone(); err != nil {
			h.refuse(w, r, http.StatusConflict, jsonrpc.CodeInvalidRequest, err.Error())
			return
		}
	}
	s.serveStream(w, r, st)
}

func (h *Handler) serveDELETE(w http.ResponseWriter, r *http.Request) {
	s := h.existing(w, r)
	if s == nil {
		return
	}
	s.end()
	s.Close()
	w.WriteHeader(http.StatusNoContent)
}

// decodeBody parses a POST body into messages. It rejects invalid JSON,
// duplicate object member names and invalid UTF-8 (so that the gateway and
// the upstream server cannot read different values from one message) and
// batches unless allowed. It returns the JSON-RPC error code to answer with.
func decodeBody(body []byte, allowBatch bool) ([]jsonrpc.Message, bool, int, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if _, err := dec.ReadValue(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, false, jsonrpc.CodeParseError, errors.New("parse error: empty body")
		}
		return nil, false, jsonrpc.CodeParseError, fmt.Errorf("parse error: %v", err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, false, jsonrpc.CodeParseError, errors.New("parse error: data after the JSON value")
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if !allowBatch {
			return nil, true, jsonrpc.CodeInvalidRequest, errors.New("invalid request: JSON-RPC batches are only accepted in protocol version 2025-03-26")
		}
		var raws []json.RawMessage
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, true, jsonrpc.CodeParseError, fmt.Errorf("parse error: %v", err)
		}
		if len(raws) == 0 {
			return nil, true, jsonrpc.CodeInvalidRequest, errors.New("invalid request: empty batch")
		}
		msgs := make([]jsonrpc.Message, 0, len(raws))
		for i, raw := range raws {
			m, err := mcpmsg.Decode(raw)
			if err != nil {
				return nil, true, jsonrpc.CodeInvalidRequest, fmt.Errorf("batch element %d: %v", i, err)
			}
			msgs = append(msgs, m)
		}
		return msgs, true, 0, nil
	}
	// One reading of a message, shared with ward's other transports.
	m, err := mcpmsg.Decode(trimmed)
	if err != nil {
		var inv *mcpmsg.ErrInvalid
		code := jsonrpc.CodeInvalidRequest
		if errors.As(err, &inv) {
			code = int(inv.Code)
		}
		return nil, false, code, err
	}
	return []jsonrpc.Message{m}, false, 0, nil
}

func isDiscover(m jsonrpc.Message) bool {
	req, ok := m.(*jsonrpc.Request)
	return ok && req.IsCall() && req.Method == "server/discover"
}

// writeJSONRPC answers one JSON-RPC message as a 200 JSON body.
func writeJSONRPC(w http.ResponseWriter, msg jsonrpc.Message) {
	b, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		http.Error(w, "encode failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func isInitialize(m jsonrpc.Message) bool {
	req, ok := m.(*jsonrpc.Request)
	return ok && req.IsCall() && req.Method == "initialize"
}

// SupportedVersions are the MCP protocol versions this transport serves.
var SupportedVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}

func supportedVersion(v string) bool { return slices.Contains(SupportedVersions, v) }

// validVersion reports whether v looks like an MCP protocol version
// (YYYY-MM-DD).
func validVersion(v string) bool {
	if len(v) != len("2006-01-02") {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if i == 4 || i == 7 {
			if c != '-' {
				return false
			}
		} else if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// acceptsSSE reports whether the Accept header values allow
// text/event-stream explicitly (text/event-stream or text/*).
func acceptsSSE(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if mt == "text/event-stream" || mt == "text/*" {
				return true
			}
		}
	}
	return false
}

// acceptsJSON reports whether the Accept header values allow
// application/json explicitly (application/json or application/*).
func acceptsJSON(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || params["q"] == "0" {
				continue
			}
			if mt == "application/json" || mt == "application/*" {
				return true
			}
		}
	}
	return false
}

// parseEventID parses "<streamID>_<index>" with both parts decimal.
func parseEventID(s string) (string, int64, bool) {
	i := strings.LastIndexByte(s, '_')
	if i <= 0 || i == len(s)-1 {
		return "", 0, false
	}
	sid := s[:i]
	if _, err := strconv.ParseUint(sid, 10, 63); err != nil {
		return "", 0, false
	}
	idx, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil || idx < 0 || s[i+1] == '+' {
		return "", 0, false
	}
	return sid, idx, true
}

func (h *Handler) refuseAuth(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusForbidden
	switch {
	case errors.Is(err, ErrUnauthorized):
		status = http.StatusUnauthorized
	case errors.Is(err, ErrUnavailable):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	h.refuse(w, r, status, jsonrpc.CodeInvalidRequest, err.Error())
}

// refuse tells OnRefuse, then answers with status and a JSON-RPC error.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status, code int, msg string) {
	if h.cfg.OnRefuse != nil {
		h.cfg.OnRefuse(r, status, msg)
	}
	writeError(w, status, code, msg)
}

// writeError answers with status and a JSON-RPC error response with a null
// id as the body.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		ID      any    `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
	if err != nil {
		body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func newSessionID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
