package streamable

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/mcpmsg"
)

// Defaults for [ClientConfig].
const (
	// DefaultMaxEventBytes bounds one SSE event or one JSON response body.
	DefaultMaxEventBytes = 4 << 20
	// DefaultMaxResume is how many times in a row a dropped SSE stream is
	// resumed without receiving an event before the client gives up.
	DefaultMaxResume = 5
)

const (
	resumeInitialDelay = 200 * time.Millisecond // first resume delay unless the server sent retry:
	resumeMaxDelay     = 10 * time.Second
	errorExcerptBytes  = 256
	deleteTimeout      = 5 * time.Second
	incomingBuffer     = 64
	drainTimeout       = time.Second // bound on reading the end of a finished stream
	drainBytes         = 64 << 10
)

// ErrSessionExpired is the error (wrapped) from Read and Write once the
// server answered 404 to a request carrying the session id: the session is
// gone and a new one must be initialized.
var ErrSessionExpired = errors.New("session expired")

// ErrUnanswered is wrapped by Write's error when the message may have
// reached the server but no answer can be read: the POST failed or was
// cancelled after it got a connection to the server, or the server
// answered a request with 202, 204 or a body of no known type. The server
// may have acted on it; a caller that refunds what a request costs when
// it was not sent must not refund it. Errors without it were raised
// before the POST had a connection (it was not sent), or are an HTTP
// error status (the server refused it).
var ErrUnanswered = errors.New("sent, but not answered")

// errConnClosed is returned by Read and Write after Close.
var errConnClosed = errors.New("connection closed")

// HTTPError is returned by Write when the server answers a POST with a
// status other than 2xx.
type HTTPError struct {
	StatusCode int
	// Excerpt is the start of the response body (at most 256 bytes, with
	// control characters replaced), for diagnostics.
	Excerpt string
}

func (e *HTTPError) Error() string {
	if e.Excerpt == "" {
		return fmt.Sprintf("http status %d", e.StatusCode)
	}
	return fmt.Sprintf("http status %d: %s", e.StatusCode, e.Excerpt)
}

// ClientConfig configures [Dial].
type ClientConfig struct {
	// URL is the MCP endpoint (http or https).
	URL string
	// HTTPClient sends the requests; default: a new [NewHTTPClient] for
	// this connection alone. Connections to one server may share one
	// (their sessions are their Mcp-Session-Id, not a TCP connection), and
	// should when there are many: each client keeps its own idle
	// connections.
	HTTPClient *http.Client
	// Header is added to every request (e.g. upstream credentials).
	Header http.Header
	// MaxEventBytes bounds one SSE event or JSON response body.
	MaxEventBytes int
	// MaxResume is how many reconnect attempts in a row a dropped SSE
	// stream gets; the delay honours the server's retry: field and
	// otherwise backs off exponentially from 200ms.
	MaxResume int
}

// ClientConn is the client side of the Streamable HTTP transport: a
// [mcp.Connection] that carries raw JSON-RPC messages to one MCP server.
type ClientConn struct {
	cfg    ClientConfig
	client *http.Client
	ctx    context.Context // cancelled by Close; parent of every request
	cancel context.CancelFunc

	incoming chan jsonrpc.Message // nil once Push was called
	failed   chan struct{}
	failOnce sync.Once
	failErr  error

	// push and ended are set by Push, run by RunWith, before the first
	// Write.
	push      func(jsonrpc.Message)
	ended     func(error)
	endedOnce sync.Once
	run       func(func())

	mu           sync.Mutex
	sessionID    string
	version      string
	initID       jsonrpc.ID
	standalone   bool          // standalone GET stream started
	standaloneUp chan struct{} // closed once the server answered the standalone GET

	closeOnce sync.Once
	wg        sync.WaitGroup
	goMu      sync.Mutex // orders spawn against Close
	stopping  bool
}

var _ mcp.Connection = (*ClientConn)(nil)

// Dial validates cfg and returns a connection. It does no network I/O
// until the first Write.
func Dial(ctx context.Context, cfg ClientConfig) (*ClientConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("dial: invalid url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dial: url must be absolute http or https")
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if cfg.MaxResume <= 0 {
		cfg.MaxResume = DefaultMaxResume
	}
	cfg.Header = cfg.Header.Clone()
	client := cfg.HTTPClient
	if client == nil {
		client = NewHTTPClient()
	}
	cctx, cancel := context.WithCancel(context.Background())
	return &ClientConn{
		cfg:      cfg,
		client:   client,
		ctx:      cctx,
		cancel:   cancel,
		incoming: make(chan jsonrpc.Message, incomingBuffer),
		failed:   make(chan struct{}),
	}, nil
}

// NewHTTPClient returns the client [Dial] uses by default: connect and
// TLS handshake timeouts, no overall timeout (streams are long-lived; each
// Write is bounded by its context), and no redirects followed, so that
// ClientConfig.Header is never sent to another origin.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:            (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    10 * time.Second,
			IdleConnTimeout:        90 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxIdleConnsPerHost:    64,
			MaxResponseHeaderBytes: 64 << 10,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// SessionID returns the Mcp-Session-Id the server assigned, or "".
func (c *ClientConn) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// ProtocolVersion returns the version from the initialize response, or "".
func (c *ClientConn) ProtocolVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Push makes the connection hand each message the server sends to
// deliver, on the goroutine that read it (the one reading that message's
// stream), instead of keeping it for Read; ended is told, once, why the
// connection ended, when it fails or is closed (after Close, no deliver
// is running or will run). Messages of one stream are delivered in
// order; those of different streams may be delivered concurrently.
// deliver holds up its stream while it runs, so it must not block for
// long.
//
// Push must be called before the first Write. It spares a reader
// waiting in Read for each connection, and the queue between them: a
// gateway holding a connection per agent session and server kept a
// goroutine and 1 KiB of queue per connection for that. After Push, Read
// only reports the connection's end.
func (c *ClientConn) Push(deliver func(jsonrpc.Message), ended func(error)) {
	c.push, c.ended = deliver, ended
	c.incoming = nil
}

// end tells the Push caller, once, why the connection ended.
func (c *ClientConn) end(err error) {
	if c.ended != nil {
		c.endedOnce.Do(func() { c.ended(err) })
	}
}

// Read returns the next server→client message.
func (c *ClientConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case m := <-c.incoming:
		return m, nil
	default:
	}
	select {
	case m := <-c.incoming:
		return m, nil
	case <-c.failed:
		return nil, c.failErr
	case <-c.ctx.Done():
		return nil, errConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *ClientConn) fail(err error) {
	failed := false
	c.failOnce.Do(func() {
		c.failErr = err
		close(c.failed)
		failed = true
	})
	if failed {
		c.end(err)
	}
}

func (c *ClientConn) failure() error {
	select {
	case <-c.failed:
		return c.failErr
	default:
		return nil
	}
}

// deliver hands msg to Read; it reports false once the conn is closed.
func (c *ClientConn) deliver(msg jsonrpc.Message) bool {
	if r, ok := msg.(*jsonrpc.Response); ok {
		c.mu.Lock()
		if c.initID.IsValid() && r.ID == c.initID {
			c.initID = jsonrpc.ID{}
			var res struct {
				ProtocolVersion string `json:"protocolVersion"`
			}
			if r.Error == nil && json.Unmarshal(r.Result, &res) == nil && validVersion(res.ProtocolVersion) {
				c.version = res.ProtocolVersion
			}
		}
		c.mu.Unlock()
	}
	if c.push != nil {
		if c.ctx.Err() != nil {
			return false
		}
		c.push(msg)
		return true
	}
	select {
	case c.incoming <- msg:
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *ClientConn) setHeaders(h http.Header) {
	for k, vs := range c.cfg.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessionID != "" {
		h.Set(headerSessionID, c.sessionID)
	}
	if c.version != "" {
		h.Set(headerProtocolVersion, c.version)
	}
}

// Write POSTs msg. Responses to a request arrive through Read, from a JSON
// body or an SSE stream that is resumed with Last-Event-ID if it drops.
// ctx bounds the POST until the response headers arrive; the stream that
// follows lives until its responses arrive or the conn is closed.
func (c *ClientConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if err := c.failure(); err != nil {
		return err
	}
	if c.ctx.Err() != nil {
		return errConnClosed
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	what := "response"
	var call jsonrpc.ID
	initialized := false
	if req, ok := msg.(*jsonrpc.Request); ok {
		what = fmt.Sprintf("%q", req.Method)
		call = req.ID
		initialized = req.Method == "notifications/initialized" && !req.IsCall()
		if req.IsCall() && req.Method == "initialize" {
			c.mu.Lock()
			c.initID = req.ID
			c.mu.Unlock()
		}
	}

	rctx, rcancel := context.WithCancel(c.ctx)
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.cfg.URL, bytes.NewReader(data))
	if err != nil {
		rcancel()
		return fmt.Errorf("post %s: %w", what, err)
	}
	c.setHeaders(req.Header)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	hadSession := req.Header.Get(headerSessionID) != ""
	// Whether the request may have reached the server: once the transport
	// has a connection it writes to it, and the server may have read the
	// request whole before the client hears how the write went (a trace
	// of the write itself comes too late to tell). Only a POST that never
	// got a connection was surely not sent.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		wrote.Store(true)
	}}))
	unanswered := func(err error) error {
		if wrote.Load() {
			return fmt.Errorf("post %s: %w: %w", what, ErrUnanswered, err)
		}
		return fmt.Errorf("post %s: %w", what, err)
	}
	stop := context.AfterFunc(ctx, rcancel)
	resp, err := c.client.Do(req)
	if !stop() {
		if err == nil {
			resp.Body.Close()
		}
		rcancel()
		return unanswered(ctx.Err())
	}
	if err != nil {
		rcancel()
		if c.ctx.Err() != nil {
			if wrote.Load() {
				return fmt.Errorf("post %s: %w: %w", what, ErrUnanswered, errConnClosed)
			}
			return errConnClosed
		}
		return unanswered(err)
	}
	if err := c.checkStatus(resp, hadSession); err != nil {
		rcancel()
		return fmt.Errorf("post %s: %w", what, err)
	}
	if sid := resp.Header.Get(headerSessionID); sid != "" {
		c.mu.Lock()
		if c.sessionID == "" && len(sid) <= maxSessionIDLen {
			c.sessionID = sid
		}
		c.mu.Unlock()
	}
	if !call.IsValid() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, int64(c.cfg.MaxEventBytes)))
		resp.Body.Close()
		rcancel()
		if initialized {
			// Wait until the server holds the standalone stream (or
			// refused it): a server-initiated message it sends right
			// after initialization (a sampling request while serving
			// the first call, say) would otherwise find no stream and
			// be lost.
			select {
			case <-c.startStandalone():
			case <-ctx.Done():
			case <-time.After(standaloneWait):
			}
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent:
		resp.Body.Close()
		rcancel()
		return fmt.Errorf("post %s: %w: server answered %d to a request", what, ErrUnanswered, resp.StatusCode)
	case mt == "application/json":
		if !c.spawn(func() {
			defer rcancel()
			c.readJSON(resp, call)
		}) {
			resp.Body.Close()
			rcancel()
			return errConnClosed
		}
	case mt == "text/event-stream":
		if !c.spawn(func() {
			defer rcancel()
			c.runStream(resp, map[jsonrpc.ID]bool{call: true}, false)
		}) {
			resp.Body.Close()
			rcancel()
			return errConnClosed
		}
	default:
		resp.Body.Close()
		rcancel()
		return fmt.Errorf("post %s: %w: unsupported content type %q", what, ErrUnanswered, mt)
	}
	return nil
}

// checkStatus turns a non-2xx response into an error, closing its body.
func (c *ClientConn) checkStatus(resp *http.Response, hadSession bool) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && hadSession {
		c.fail(ErrSessionExpired)
		return ErrSessionExpired
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorExcerptBytes))
	return &HTTPError{StatusCode: resp.StatusCode, Excerpt: excerpt(b)}
}

func excerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// readJSON delivers the message(s) in a JSON response body; a call left
// unanswered gets a synthetic error response.
func (c *ClientConn) readJSON(resp *http.Response, call jsonrpc.ID) {
	defer resp.Body.Close()
	answered := false
	err := func() error {
		body, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxEventBytes)+1))
		if err != nil {
			return fmt.Errorf("read response body: %w", err)
		}
		if len(body) > c.cfg.MaxEventBytes {
			return fmt.Errorf("response body larger than %d bytes", c.cfg.MaxEventBytes)
		}
		var raws []json.RawMessage
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '[' {
			if err := json.Unmarshal(t, &raws); err != nil {
				return fmt.Errorf("decode response body: %w", err)
			}
		} else {
			raws = []json.RawMessage{body}
		}
		for _, raw := range raws {
			m, err := mcpmsg.DecodeLenient(raw)
			if err != nil {
				return fmt.Errorf("decode response body: %w", err)
			}
			if r, ok := m.(*jsonrpc.Response); ok && r.ID == call {
				answered = true
			}
			if !c.deliver(m) {
				return nil
			}
		}
		return nil
	}()
	if !answered && c.ctx.Err() == nil {
		msg := "no response in body"
		if err != nil {
			msg = err.Error()
		}
		c.deliver(errorResponse(call, msg))
	}
}

func errorResponse(id jsonrpc.ID, msg string) *jsonrpc.Response {
	return &jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: msg}}
}

// standaloneWait bounds how long Write of notifications/initialized waits
// for the standalone stream to be established.
const standaloneWait = 10 * time.Second

// startStandalone opens the standalone GET stream once. The channel it
// returns is closed once the server has answered the GET (or it failed).
func (c *ClientConn) startStandalone() <-chan struct{} {
	c.mu.Lock()
	started := c.standalone
	c.standalone = true
	if c.standaloneUp == nil {
		c.standaloneUp = make(chan struct{})
	}
	up := c.standaloneUp
	c.mu.Unlock()
	if started {
		return up
	}
	var once sync.Once
	ready := func() { once.Do(func() { close(up) }) }
	if !c.spawn(func() {
		defer ready()
		resp, err := c.get("")
		ready()
		if err != nil {
			if c.ctx.Err() == nil {
				c.fail(fmt.Errorf("standalone stream: %w", err))
			}
			return
		}
		switch {
		case resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotFound:
			resp.Body.Close()
			return // the server offers no standalone stream
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			c.fail(fmt.Errorf("standalone stream: %w", c.checkStatus(resp, false)))
			return
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
			resp.Body.Close()
			return
		}
		c.runStream(resp, nil, true)
	}) {
		ready()
	}
	return up
}

// get sends a GET for an SSE stream, resuming lastID if not "".
func (c *ClientConn) get(lastID string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, c.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	c.setHeaders(req.Header)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set(headerLastEventID, lastID)
	}
	return c.client.Do(req)
}

// runStream reads an SSE response, delivering its messages, until every
// call in want is answered (request streams) or the conn closes. When the
// stream drops early it is resumed with GET and Last-Event-ID.
func (c *ClientConn) runStream(resp *http.Response, want map[jsonrpc.ID]bool, standalone bool) {
	lastID := ""
	var retry time.Duration
	attempts := 0
	giveUp := func(why string) {
		if standalone {
			c.fail(fmt.Errorf("standalone stream: %s", why))
			return
		}
		for id := range want {
			c.deliver(errorResponse(id, why))
		}
	}
	for {
		progressed, err := c.consume(resp, &lastID, &retry, want)
		if c.ctx.Err() != nil || (!standalone && len(want) == 0) {
			return
		}
		if err != nil && !errors.Is(err, errStreamDropped) {
			c.fail(err)
			return
		}
		if progressed {
			attempts = 0
		}
		if lastID == "" && !standalone {
			giveUp("stream ended before the response and cannot be resumed")
			return
		}
		resp = nil
		for resp == nil {
			attempts++
			if attempts > c.cfg.MaxResume {
				giveUp(fmt.Sprintf("stream not resumed after %d attempts", c.cfg.MaxResume))
				return
			}
			delay := retry
			if delay <= 0 {
				delay = min(resumeInitialDelay<<(attempts-1), resumeMaxDelay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
			r, err := c.get(lastID)
			if err != nil {
				if c.ctx.Err() != nil {
					return
				}
				continue
			}
			if r.StatusCode == http.StatusNotFound && c.SessionID() != "" {
				r.Body.Close()
				c.fail(ErrSessionExpired)
				return
			}
			if r.StatusCode >= 400 && r.StatusCode < 500 && r.StatusCode != http.StatusTooManyRequests && r.StatusCode != http.StatusConflict {
				// The server will not resume this stream (e.g. its events
				// were evicted); retrying cannot help.
				err := c.checkStatus(r, false)
				giveUp(fmt.Sprintf("resume stream: %v", err))
				return
			}
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if r.StatusCode != http.StatusOK || mt != "text/event-stream" {
				r.Body.Close()
				continue
			}
			resp = r
		}
	}
}

// errStreamDropped reports a stream that ended (cleanly or not) before
// its work was done.
var errStreamDropped = errors.New("stream dropped")

// consume reads events from one SSE response until it ends. It reports
// whether any event id arrived, and returns errStreamDropped when the body
// ended, or a protocol error (oversize or undecodable event).
func (c *ClientConn) consume(resp *http.Response, lastID *string, retry *time.Duration, want map[jsonrpc.ID]bool) (bool, error) {
	defer resp.Body.Close()
	progressed := false
	rd := newSSEReader(resp.Body, c.cfg.MaxEventBytes)
	for {
		ev, err := rd.Next()
		if err != nil {
			if errors.Is(err, errEventTooLarge) {
				return progressed, fmt.Errorf("sse event larger than %d bytes", c.cfg.MaxEventBytes)
			}
			return progressed, errStreamDropped
		}
		if ev.HasID && ev.ID != *lastID && len(ev.ID) <= maxEventIDLen*4 {
			*lastID = ev.ID
			progressed = true
		}
		if ev.HasRetry {
			*retry = min(ev.Retry, resumeMaxDelay*3)
		}
		if len(ev.Data) == 0 || (ev.Name != "" && ev.Name != "message") {
			continue
		}
		m, err := mcpmsg.DecodeLenient(ev.Data)
		if err != nil {
			return progressed, fmt.Errorf("decode sse event: %w", err)
		}
		if r, ok := m.(*jsonrpc.Response); ok && want != nil {
			delete(want, r.ID)
		}
		if !c.deliver(m) {
			return progressed, nil
		}
		if want != nil && len(want) == 0 {
			// Read the (normally immediate) end of the stream so the
			// connection can be reused, but never wait long for it.
			t := time.AfterFunc(drainTimeout, func() { resp.Body.Close() })
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
			t.Stop()
			return progressed, nil
		}
	}
}

// spawn runs f on a goroutine Close waits for, unless Close has begun.
func (c *ClientConn) spawn(f func()) bool {
	c.goMu.Lock()
	defer c.goMu.Unlock()
	if c.stopping {
		return false
	}
	c.wg.Add(1)
	g := func() {
		defer c.wg.Done()
		f()
	}
	if c.run != nil {
		c.run(g)
	} else {
		go g()
	}
	return true
}

// RunWith makes the conn start the goroutines that read its streams with
// run instead of a go statement: run(f) must run f on a goroutine of its
// own, now. A caller with goroutines that outlive their work (the
// gateway's workers) spares each stream's reader the growth of a new
// goroutine's stack. Call it before the first Write, as Push.
func (c *ClientConn) RunWith(run func(f func())) { c.run = run }

// Close ends the session with DELETE when one exists, stops every stream
// and makes Read and Write fail. It is idempotent.
func (c *ClientConn) Close() error {
	c.closeOnce.Do(func() {
		c.goMu.Lock()
		c.stopping = true
		c.goMu.Unlock()
		c.cancel()
		sid := c.SessionID()
		if sid != "" && !errors.Is(c.failure(), ErrSessionExpired) {
			ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.cfg.URL, nil)
			if err == nil {
				c.setHeaders(req.Header)
				if resp, err := c.client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, errorExcerptBytes))
					resp.Body.Close()
				}
			}
		}
		c.wg.Wait()
		c.end(errConnClosed)
	})
	return nil
}
