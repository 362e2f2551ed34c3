package streamable

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// rawServer is a small MCP server written against raw JSON-RPC messages,
// standing in for the gateway's session handler. It answers initialize,
// tools/list and tools/call. The "ask" tool sends a progress notification
// and a sampling/createMessage request related to the call and answers
// with the sampled text; the "count" tool sends n progress notifications
// related to the call and then answers.
type rawServer struct {
	s       *Session
	authErr atomic.Pointer[error]
	closed  atomic.Int32

	mu       sync.Mutex
	waiting  map[jsonrpc.ID]chan *jsonrpc.Response // server→client requests
	received []jsonrpc.Message
	nextID   int64
	sendErrs []error
}

func newRawServer(s *Session) *rawServer {
	return &rawServer{s: s, waiting: make(map[jsonrpc.ID]chan *jsonrpc.Response)}
}

func (rs *rawServer) Authorize(*http.Request) error {
	if p := rs.authErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (rs *rawServer) Closed() { rs.closed.Add(1) }

func (rs *rawServer) send(msg jsonrpc.Message, related jsonrpc.ID) {
	if err := rs.s.Send(msg, related); err != nil {
		rs.mu.Lock()
		rs.sendErrs = append(rs.sendErrs, err)
		rs.mu.Unlock()
	}
}

func (rs *rawServer) reply(id jsonrpc.ID, result any) {
	b, _ := json.Marshal(result)
	rs.send(&jsonrpc.Response{ID: id, Result: b}, jsonrpc.ID{})
}

// call sends a server→client request related to the client request
// related and waits for the client's response.
func (rs *rawServer) call(ctx context.Context, method string, params any, related jsonrpc.ID) (*jsonrpc.Response, error) {
	rs.mu.Lock()
	rs.nextID++
	id, _ := jsonrpc.MakeID(fmt.Sprintf("srv-%d", rs.nextID))
	ch := make(chan *jsonrpc.Response, 1)
	rs.waiting[id] = ch
	rs.mu.Unlock()
	p, _ := json.Marshal(params)
	if err := rs.s.Send(&jsonrpc.Request{ID: id, Method: method, Params: p}, related); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (rs *rawServer) Receive(ctx context.Context, msg jsonrpc.Message) {
	rs.mu.Lock()
	rs.received = append(rs.received, msg)
	rs.mu.Unlock()
	if r, ok := msg.(*jsonrpc.Response); ok {
		rs.mu.Lock()
		ch := rs.waiting[r.ID]
		delete(rs.waiting, r.ID)
		rs.mu.Unlock()
		if ch != nil {
			ch <- r
		}
		return
	}
	req := msg.(*jsonrpc.Request)
	if !req.IsCall() {
		return
	}
	switch req.Method {
	case "initialize":
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		_ = json.Unmarshal(req.Params, &p)
		v := "2025-11-25"
		if p.ProtocolVersion == "2025-03-26" || p.ProtocolVersion == "2025-06-18" {
			v = p.ProtocolVersion
		}
		rs.reply(req.ID, map[string]any{
			"protocolVersion": v,
			"capabilities":    map[string]any{"tools": map[string]any{}, "logging": map[string]any{}},
			"serverInfo":      map[string]any{"name": "raw", "version": "1.0.0"},
		})
	case "tools/list":
		schema := map[string]any{"type": "object"}
		rs.reply(req.ID, map[string]any{"tools": []any{
			map[string]any{"name": "ask", "description": "asks the client's model", "inputSchema": schema},
			map[string]any{"name": "count", "description": "counts with progress", "inputSchema": schema},
		}})
	case "tools/call":
		go rs.toolsCall(ctx, req)
	default:
		rs.send(&jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "no such method"}}, jsonrpc.ID{})
	}
}

func (rs *rawServer) toolsCall(ctx context.Context, req *jsonrpc.Request) {
	var p struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
		Meta      struct {
			ProgressToken any `json:"progressToken"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(req.Params, &p); err != nil {
		rs.send(&jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}}, jsonrpc.ID{})
		return
	}
	progress := func(n int) {
		b, _ := json.Marshal(map[string]any{"progressToken": p.Meta.ProgressToken, "progress": n, "total": 100})
		rs.send(&jsonrpc.Request{Method: "notifications/progress", Params: b}, req.ID)
	}
	text := ""
	switch p.Name {
	case "ask":
		progress(1)
		resp, err := rs.call(ctx, "sampling/createMessage", map[string]any{
			"messages":  []any{map[string]any{"role": "user", "content": map[string]any{"type": "text", "text": "what?"}}},
			"maxTokens": 10,
		}, req.ID)
		if err != nil || resp.Error != nil {
			rs.send(&jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "sampling failed"}}, jsonrpc.ID{})
			return
		}
		var res struct {
			Content struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		_ = json.Unmarshal(resp.Result, &res)
		text = "sampled: " + res.Content.Text
	case "count":
		n, _ := p.Arguments["n"].(float64)
		for i := 1; i <= int(n); i++ {
			progress(i)
		}
		text = fmt.Sprintf("counted to %d", int(n))
	}
	rs.reply(req.ID, map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}})
}

// testServer is a Handler serving rawServers on an httptest server.
type testServer struct {
	h   *Handler
	srv *httptest.Server

	mu       sync.Mutex
	sessions []*rawServer
}

func newTestServer(t testing.TB, cfg HandlerConfig, wrap func(http.Handler) http.Handler) *testServer {
	ts := &testServer{}
	cfg.Open = func(r *http.Request, s *Session) (SessionHandler, error) {
		if r.Header.Get("X-Deny") != "" {
			return nil, fmt.Errorf("denied by test: %w", ErrUnauthorized)
		}
		if r.Header.Get("X-Unavailable") != "" {
			return nil, fmt.Errorf("%w: cannot decide right now (test)", ErrUnavailable)
		}
		if r.Header.Get("X-Forbid") != "" {
			return nil, errors.New("forbidden by test")
		}
		rs := newRawServer(s)
		ts.mu.Lock()
		ts.sessions = append(ts.sessions, rs)
		ts.mu.Unlock()
		return rs, nil
	}
	ts.h = NewHandler(cfg)
	var h http.Handler = ts.h
	if wrap != nil {
		h = wrap(h)
	}
	ts.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		ts.h.Close()
		ts.srv.CloseClientConnections()
		ts.srv.Close()
	})
	return ts
}

func (ts *testServer) session(t testing.TB, i int) *rawServer {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if i >= len(ts.sessions) {
		t.Fatalf("session %d not opened (have %d)", i, len(ts.sessions))
	}
	return ts.sessions[i]
}

func TestGoSDKClientAgainstHandler(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	var progress []*mcp.ProgressNotificationParams
	logs := make(chan *mcp.LoggingMessageParams, 1)
	sampled := make(chan *mcp.CreateMessageParams, 1)
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			sampled <- req.Params
			return &mcp.CreateMessageResult{Content: &mcp.TextContent{Text: "forty-two"}, Model: "test-model", Role: "assistant"}, nil
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params)
			mu.Unlock()
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			logs <- req.Params
		},
	})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: ts.srv.URL}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	rs := ts.session(t, 0)
	if got := rs.s.ProtocolVersion(); got != "2025-11-25" {
		t.Errorf("ProtocolVersion() = %q, want 2025-11-25", got)
	}
	if cs.ID() != rs.s.ID() {
		t.Errorf("client session id %q, server %q", cs.ID(), rs.s.ID())
	}

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	if len(tools.Tools) != 2 || tools.Tools[0].Name != "ask" {
		t.Fatalf("tools = %+v", tools.Tools)
	}

	params := &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("call tool: %v", err)
	}
	if len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "sampled: forty-two" {
		t.Fatalf("call result = %+v", res.Content)
	}
	select {
	case p := <-sampled:
		if len(p.Messages) != 1 || p.Messages[0].Content.(*mcp.TextContent).Text != "what?" {
			t.Errorf("sampling params = %+v", p)
		}
	default:
		t.Error("sampling request did not reach the client")
	}
	waitFor(t, ctx, func() bool { mu.Lock(); defer mu.Unlock(); return len(progress) >= 1 })
	mu.Lock()
	if len(progress) != 1 || progress[0].ProgressToken != "tok-1" || progress[0].Progress != 1 {
		t.Errorf("progress = %+v", progress)
	}
	mu.Unlock()
	// The sampling answer reached the test server as a client→server response.
	rs.mu.Lock()
	sawSamplingAnswer := false
	for _, m := range rs.received {
		if r, ok := m.(*jsonrpc.Response); ok && r.ID.Raw() == "srv-1" && r.Error == nil {
			sawSamplingAnswer = true
		}
	}
	rs.mu.Unlock()
	if !sawSamplingAnswer {
		t.Error("server did not receive the sampling response")
	}

	// A notification with no related request goes to the standalone stream
	// (queued until the client's GET opens it).
	msg, _ := json.Marshal(map[string]any{"level": "info", "logger": "raw", "data": "hello standalone"})
	if err := rs.s.Send(&jsonrpc.Request{Method: "notifications/message", Params: msg}, jsonrpc.ID{}); err != nil {
		t.Fatalf("send log: %v", err)
	}
	select {
	case l := <-logs:
		if l.Data != "hello standalone" {
			t.Errorf("log data = %v", l.Data)
		}
	case <-ctx.Done():
		t.Fatal("log notification did not arrive")
	}

	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// DELETE ended the session: Closed was called once, and the id is gone.
	if n := rs.closed.Load(); n != 1 {
		t.Errorf("Closed called %d times after DELETE, want 1", n)
	}
	ts.h.Close()
	if n := rs.closed.Load(); n != 1 {
		t.Errorf("Closed called %d times after Handler.Close, want 1", n)
	}
	if err := rs.s.Send(&jsonrpc.Request{Method: "notifications/message", Params: msg}, jsonrpc.ID{}); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Send after close = %v, want ErrSessionClosed", err)
	}
	rs.mu.Lock()
	if len(rs.sendErrs) != 0 {
		t.Errorf("send errors: %v", rs.sendErrs)
	}
	rs.mu.Unlock()
}

func TestGoSDKClientAuthorizeAndOpenErrors(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil)

	// Open refuses: the client cannot connect.
	hc := &http.Client{Transport: headerTransport{"X-Deny", "1"}}
	if _, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: ts.srv.URL, HTTPClient: hc}, nil); err == nil {
		t.Fatal("connect succeeded though Open refused")
	}

	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: ts.srv.URL}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	rs := ts.session(t, 0)
	denied := error(errors.New("grant revoked"))
	rs.authErr.Store(&denied)
	if _, err := cs.ListTools(ctx, nil); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("list tools with Authorize failing: err = %v, want a 403 failure", err)
	}
}

type headerTransport struct{ k, v string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.k, h.v)
	return http.DefaultTransport.RoundTrip(r)
}

// post sends body to the handler and returns status, headers and body.
func post(t testing.TB, url, sid string, hdr map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if sid != "" {
		req.Header.Set(headerSessionID, sid)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func initBody(version string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + version + `","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{MaxBodyBytes: 1024}, nil)
	url := ts.srv.URL
	status, hdr, body := post(t, url, "", nil, initBody("2025-06-18"))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	sid := hdr.Get(headerSessionID)
	if len(sid) < 32 {
		t.Fatalf("session id %q too short", sid)
	}
	rs := ts.session(t, 0)
	if got := rs.s.ProtocolVersion(); got != "2025-06-18" {
		t.Fatalf("version = %q", got)
	}
	receivedBefore := func() int { rs.mu.Lock(); defer rs.mu.Unlock(); return len(rs.received) }

	tests := []struct {
		name     string
		method   string
		sid      string
		hdr      map[string]string
		body     string
		status   int
		code     int    // JSON-RPC error code in the body, 0 to skip
		contains string // in the body
	}{
		{"malformed JSON", "POST", sid, nil, `{"jsonrpc":"2.0","id":2,"method":`, 400, -32700, "parse error"},
		{"empty body", "POST", sid, nil, ``, 400, -32700, "empty body"},
		{"trailing data", "POST", sid, nil, `{"jsonrpc":"2.0","method":"x"} {}`, 400, -32700, "after the JSON value"},
		{"duplicate key", "POST", sid, nil, `{"jsonrpc":"2.0","id":2,"method":"tools/call","method":"evil"}`, 400, -32700, "duplicate"},
		{"not JSON-RPC", "POST", sid, nil, `{"hello":"world"}`, 400, -32600, "invalid request"},
		{"batch on 2025-06-18", "POST", sid, nil, `[{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`, 400, -32600, "batches"},
		{"oversize body", "POST", sid, nil, `{"jsonrpc":"2.0","method":"x","params":"` + strings.Repeat("a", 2000) + `"}`, 413, -32600, "larger than 1024"},
		{"wrong content type", "POST", sid, map[string]string{"Content-Type": "text/plain"}, `{"jsonrpc":"2.0","method":"x"}`, 415, -32600, "Content-Type"},
		{"unknown session", "POST", "deadbeef", nil, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, 404, -32600, "session not found"},
		{"non-initialize without session", "POST", "", nil, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, 400, -32600, "only an initialize"},
		{"second initialize", "POST", sid, nil, initBody("2025-06-18"), 400, -32600, "already initialized"},
		{"bad protocol version header", "POST", sid, map[string]string{"MCP-Protocol-Version": "latest"}, `{"jsonrpc":"2.0","method":"x"}`, 400, -32600, "MCP-Protocol-Version"},
		{"long session header", "POST", strings.Repeat("a", 200), nil, `{}`, 400, -32600, "header too long"},
		{"GET without session", "GET", "", map[string]string{"Accept": "text/event-stream"}, "", 400, -32600, "Mcp-Session-Id"},
		{"GET without SSE accept", "GET", sid, nil, "", 406, -32600, "text/event-stream"},
		{"GET malformed Last-Event-ID", "GET", sid, map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "x_y"}, "", 400, -32600, "Last-Event-ID"},
		{"GET unknown stream", "GET", sid, map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "99_3"}, "", 400, -32600, "unknown stream"},
		{"PUT", "PUT", sid, nil, "", 405, -32600, "method not allowed"},
		{"DELETE unknown session", "DELETE", "nope", nil, "", 404, -32600, "session not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := receivedBefore()
			req, _ := http.NewRequest(tt.method, url, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			if tt.sid != "" {
				req.Header.Set(headerSessionID, tt.sid)
			}
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, b)
			}
			var e struct {
				ID    any `json:"id"`
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("body %q is not a JSON-RPC error: %v", b, err)
			}
			if tt.code != 0 && e.Error.Code != tt.code {
				t.Errorf("code = %d, want %d", e.Error.Code, tt.code)
			}
			if e.ID != nil {
				t.Errorf("id = %v, want null", e.ID)
			}
			if !strings.Contains(e.Error.Message, tt.contains) {
				t.Errorf("message %q does not contain %q", e.Error.Message, tt.contains)
			}
			if got := receivedBefore(); got != before {
				t.Errorf("Receive called %d times for a rejected request", got-before)
			}
		})
	}

	// The session still works.
	status, _, body = post(t, url, sid, nil, `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"ask"`) {
		t.Fatalf("tools/list after bad input: %d %s", status, body)
	}
	var r struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.ID != 7 {
		t.Fatalf("tools/list body %s", body)
	}
	// Notifications get 202 and an empty body.
	status, _, body = post(t, url, sid, nil, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if status != http.StatusAccepted || len(body) != 0 {
		t.Fatalf("notification: %d %q", status, body)
	}
	// A response to an unknown request is an error for Send.
	if err := rs.s.Send(&jsonrpc.Response{ID: mustID(12345), Result: json.RawMessage(`{}`)}, jsonrpc.ID{}); err == nil {
		t.Error("Send of a response to an unknown id succeeded")
	}
	// Open refusing: 401 with the error text.
	status, _, body = post(t, url, "", map[string]string{"X-Deny": "1"}, initBody("2025-06-18"))
	if status != http.StatusUnauthorized || !strings.Contains(string(body), "denied by test") {
		t.Fatalf("denied initialize: %d %s", status, body)
	}
	// Open unable to decide now: 503 with Retry-After; any other error 403.
	status, hdr, body = post(t, url, "", map[string]string{"X-Unavailable": "1"}, initBody("2025-06-18"))
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "cannot decide right now") {
		t.Fatalf("initialize while unavailable: %d %v %s", status, hdr, body)
	}
	status, _, body = post(t, url, "", map[string]string{"X-Forbid": "1"}, initBody("2025-06-18"))
	if status != http.StatusForbidden || !strings.Contains(string(body), "forbidden by test") {
		t.Fatalf("initialize forbidden: %d %s", status, body)
	}
	// DELETE then the session is gone.
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Header.Set(headerSessionID, sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if n := rs.closed.Load(); n != 1 {
		t.Fatalf("Closed called %d times", n)
	}
	status, _, _ = post(t, url, sid, nil, `{"jsonrpc":"2.0","id":8,"method":"tools/list"}`)
	if status != http.StatusNotFound {
		t.Fatalf("POST after DELETE: %d, want 404", status)
	}
}

func mustID(v any) jsonrpc.ID {
	switch v := v.(type) {
	case int:
		id, _ := jsonrpc.MakeID(float64(v))
		return id
	default:
		id, _ := jsonrpc.MakeID(v)
		return id
	}
}

func TestBatchOn20250326(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{}, nil)
	status, hdr, body := post(t, ts.srv.URL, "", nil, initBody("2025-03-26"))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	sid := hdr.Get(headerSessionID)
	status, _, body = post(t, ts.srv.URL, sid, nil,
		`[{"jsonrpc":"2.0","id":"a","method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]`)
	if status != http.StatusOK {
		t.Fatalf("batch: %d %s", status, body)
	}
	var out []struct {
		ID     string          `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("batch body %s: %v", body, err)
	}
	if len(out) != 2 || out[0].ID != "a" || out[1].ID != "b" {
		t.Fatalf("batch responses = %s", body)
	}
	// Duplicate ids within a batch are refused.
	status, _, body = post(t, ts.srv.URL, sid, nil,
		`[{"jsonrpc":"2.0","id":"c","method":"tools/list"},{"jsonrpc":"2.0","id":"c","method":"tools/list"}]`)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "already in use") {
		t.Fatalf("duplicate ids: %d %s", status, body)
	}
}

func TestStandaloneQueueAndConflict(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{MaxQueued: 2}, nil)
	status, hdr, body := post(t, ts.srv.URL, "", nil, initBody("2025-11-25"))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	sid := hdr.Get(headerSessionID)
	rs := ts.session(t, 0)
	note := func(i int) jsonrpc.Message {
		return &jsonrpc.Request{Method: "notifications/message", Params: json.RawMessage(fmt.Sprintf(`{"level":"info","data":%d}`, i))}
	}
	for i := range 2 {
		if err := rs.s.Send(note(i), jsonrpc.ID{}); err != nil {
			t.Fatalf("queue %d: %v", i, err)
		}
	}
	if err := rs.s.Send(note(2), jsonrpc.ID{}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third queued Send = %v, want ErrQueueFull", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.srv.URL, nil)
	req.Header.Set(headerSessionID, sid)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := newSSEReader(resp.Body, 1<<20)
	var got []string
	for len(got) < 3 {
		ev, err := rd.Next()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(ev.Data) == 0 {
			if ev.ID != "0_0" {
				t.Errorf("priming event id %q, want 0_0", ev.ID)
			}
			continue
		}
		got = append(got, ev.ID+" "+string(ev.Data))
		if len(got) == 2 {
			// Live message after the flushed queue.
			if err := rs.s.Send(note(9), jsonrpc.ID{}); err != nil {
				t.Fatalf("live send: %v", err)
			}
		}
	}
	want := []string{
		`0_1 {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":0}}`,
		`0_2 {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":1}}`,
		`0_3 {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":9}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A second standalone stream while this one is open: 409.
	req2, _ := http.NewRequest(http.MethodGet, ts.srv.URL, nil)
	req2.Header.Set(headerSessionID, sid)
	req2.Header.Set("Accept", "text/event-stream")
	resp2, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusConflict {
		t.Fatalf("second GET: %d, want 409", resp2.StatusCode)
	}
}

func TestIdleTimeoutClosesSession(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{IdleTimeout: 50 * time.Millisecond}, nil)
	status, hdr, _ := post(t, ts.srv.URL, "", nil, initBody("2025-06-18"))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d", status)
	}
	rs := ts.session(t, 0)
	<-rs.s.ctx.Done() // closes by itself once idle
	// Close cancels the session's context before it calls Closed: wait
	// for the call (bounded), then check it came exactly once.
	for deadline := time.Now().Add(5 * time.Second); rs.closed.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := rs.closed.Load(); n != 1 {
		t.Fatalf("Closed called %d times", n)
	}
	status, _, _ = post(t, ts.srv.URL, hdr.Get(headerSessionID), nil, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if status != http.StatusNotFound {
		t.Fatalf("POST on idle-closed session: %d, want 404", status)
	}
}

// cutter aborts the first SSE response to a tools/call POST after it has
// written cutAfter message events, so the client has to resume it.
type cutter struct {
	next     http.Handler
	cutAfter int
	cut      atomic.Bool
	resumes  atomic.Int32
}

func (c *cutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") != "" {
		c.resumes.Add(1)
	}
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"tools/call"`)) && c.cut.CompareAndSwap(false, true) {
			w = &cutWriter{ResponseWriter: w, left: c.cutAfter}
		}
	}
	c.next.ServeHTTP(w, r)
}

type cutWriter struct {
	http.ResponseWriter
	left int
}

func (w *cutWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func (w *cutWriter) Write(p []byte) (int, error) {
	// Write whole events until the budget of message events is spent,
	// then drop the connection.
	for len(p) > 0 {
		i := bytes.Index(p, []byte("\n\n"))
		if i < 0 {
			return w.ResponseWriter.Write(p)
		}
		ev := p[:i+2]
		if bytes.Contains(ev, []byte("data: {")) {
			if w.left == 0 {
				w.Flush()
				panic(http.ErrAbortHandler)
			}
			w.left--
		}
		if _, err := w.ResponseWriter.Write(ev); err != nil {
			return 0, err
		}
		p = p[i+2:]
	}
	return 0, nil
}

func TestResumeAfterCut(t *testing.T) {
	const n = 6
	for _, name := range []string{"ClientConn", "go-sdk client"} {
		t.Run(name, func(t *testing.T) {
			var c *cutter
			ts := newTestServer(t, HandlerConfig{}, func(h http.Handler) http.Handler {
				c = &cutter{next: h, cutAfter: 2}
				return c
			})
			// Hold the tool's events until the POST stream is cut, so that
			// some arrive live and the rest only by resumption.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var progress []float64
			var text string
			if name == "ClientConn" {
				progress, text = countWithClientConn(t, ctx, ts.srv.URL, n)
			} else {
				progress, text = countWithSDKClient(t, ctx, ts.srv.URL, n)
			}
			if text != fmt.Sprintf("counted to %d", n) {
				t.Errorf("result text %q", text)
			}
			want := make([]float64, n)
			for i := range want {
				want[i] = float64(i + 1)
			}
			if fmt.Sprint(progress) != fmt.Sprint(want) {
				t.Errorf("progress = %v, want each of %v exactly once in order", progress, want)
			}
			if !c.cut.Load() {
				t.Error("the stream was never cut")
			}
			if c.resumes.Load() == 0 {
				t.Error("no GET with Last-Event-ID was made")
			}
		})
	}
}

func countWithClientConn(t *testing.T, ctx context.Context, url string, n int) ([]float64, string) {
	cc, err := Dial(ctx, ClientConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	roundTrip(t, ctx, cc, "initialize", 1, nil)
	var progress []float64
	var text string
	params := fmt.Sprintf(`{"name":"count","arguments":{"n":%d},"_meta":{"progressToken":"p"}}`, n)
	if err := cc.Write(ctx, &jsonrpc.Request{ID: mustID(2), Method: "tools/call", Params: json.RawMessage(params)}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := cc.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		switch m := m.(type) {
		case *jsonrpc.Request:
			var p struct {
				Progress float64 `json:"progress"`
			}
			_ = json.Unmarshal(m.Params, &p)
			progress = append(progress, p.Progress)
		case *jsonrpc.Response:
			if m.Error != nil {
				t.Fatalf("tools/call error: %v", m.Error)
			}
			var r struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			}
			_ = json.Unmarshal(m.Result, &r)
			if len(r.Content) == 1 {
				text = r.Content[0].Text
			}
			return progress, text
		}
	}
}

// roundTrip writes a request (initialize gets standard params) and reads
// until its response, which it returns.
func roundTrip(t testing.TB, ctx context.Context, cc *ClientConn, method string, id int, params json.RawMessage) *jsonrpc.Response {
	t.Helper()
	if method == "initialize" {
		params = json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ward-test","version":"1"}}`)
	}
	if err := cc.Write(ctx, &jsonrpc.Request{ID: mustID(id), Method: method, Params: params}); err != nil {
		t.Fatalf("write %s: %v", method, err)
	}
	for {
		m, err := cc.Read(ctx)
		if err != nil {
			t.Fatalf("read %s: %v", method, err)
		}
		if r, ok := m.(*jsonrpc.Response); ok && r.ID == mustID(id) {
			if r.Error != nil {
				t.Fatalf("%s: %v", method, r.Error)
			}
			if method == "initialize" {
				if err := cc.Write(ctx, &jsonrpc.Request{Method: "notifications/initialized"}); err != nil {
					t.Fatalf("write initialized: %v", err)
				}
			}
			return r
		}
	}
}

func countWithSDKClient(t *testing.T, ctx context.Context, url string, n int) ([]float64, string) {
	var mu sync.Mutex
	var progress []float64
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Progress)
			mu.Unlock()
		},
	})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"n": n}}
	params.SetProgressToken("p")
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	// Notifications are dispatched asynchronously by the SDK; wait for them.
	waitFor(t, ctx, func() bool { mu.Lock(); defer mu.Unlock(); return len(progress) >= n })
	mu.Lock()
	defer mu.Unlock()
	text := ""
	if len(res.Content) == 1 {
		text = res.Content[0].(*mcp.TextContent).Text
	}
	return append([]float64(nil), progress...), text
}

// waitFor polls cond until it holds or ctx ends (then the test fails).
func waitFor(t testing.TB, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached before the test deadline")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestRefusalsAreTold: every request the handler refuses is told to
// OnRefuse once, with the status and the message it answers, before the
// answer is written; accepted requests are not. The strict envelope
// refuses case variants of the JSON-RPC members, which a case-insensitive
// upstream would read as the members ward did not see.
func TestRefusalsAreTold(t *testing.T) {
	type told struct {
		status int
		reason string
	}
	var mu sync.Mutex
	var got []told
	ts := newTestServer(t, HandlerConfig{OnRefuse: func(r *http.Request, status int, reason string) {
		mu.Lock()
		got = append(got, told{status, reason})
		mu.Unlock()
	}}, nil)
	url := ts.srv.URL
	status, hdr, body := post(t, url, "", nil, initBody("2025-06-18"))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	sid := hdr.Get(headerSessionID)
	deep := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`
	for _, tc := range []struct {
		name, sid, body string
		hdr             map[string]string
		status          int
		contains        string
	}{
		{"case variant member", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","Params":{"name":"x"}}`, nil, 400, `unknown member "Params"`},
		{"case variant method", sid, `{"jsonrpc":"2.0","id":2,"method":"ping","Method":"tools/call"}`, nil, 400, `unknown member "Method"`},
		{"case variant id", sid, `{"jsonrpc":"2.0","ID":2,"method":"ping"}`, nil, 400, `unknown member "ID"`},
		{"extra member", sid, `{"jsonrpc":"2.0","id":2,"method":"ping","meta":{}}`, nil, 400, `unknown member "meta"`},
		{"error case variant", sid, `{"jsonrpc":"2.0","id":"s","error":{"code":1,"message":"m","Message":"n"}}`, nil, 400, `unknown member "Message"`},
		{"not an object", sid, `"ping"`, nil, 400, "invalid request"},
		{"duplicate nested", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a","name":"b"}}`, nil, 400, "duplicate"},
		{"invalid utf-8", sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\"}}", nil, 400, "UTF-8"},
		{"deep nesting", sid, deep, nil, 400, "depth"},
		{"batch", sid, `[{"jsonrpc":"2.0","id":2,"method":"ping"}]`, nil, 400, "batches"},
		{"oversize", sid, `{"jsonrpc":"2.0","method":"x","params":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, nil, 413, "larger than"},
		{"unknown session", "feedface", `{"jsonrpc":"2.0","id":2,"method":"ping"}`, nil, 404, "session not found"},
		{"open refused", "", initBody("2025-06-18"), map[string]string{"X-Deny": "1"}, 401, "denied by test"},
	} {
		mu.Lock()
		got = got[:0]
		mu.Unlock()
		status, _, body := post(t, url, tc.sid, tc.hdr, tc.body)
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		json.Unmarshal(body, &e)
		if status != tc.status || !strings.Contains(e.Error.Message, tc.contains) {
			t.Errorf("%s: %d %s; want %d containing %q", tc.name, status, body, tc.status, tc.contains)
			continue
		}
		mu.Lock()
		if len(got) != 1 || got[0].status != status || got[0].reason != e.Error.Message {
			t.Errorf("%s: told %+v, want one refusal %d %q", tc.name, got, status, e.Error.Message)
		}
		mu.Unlock()
	}
	// Accepted requests are not refusals; the session still works.
	mu.Lock()
	got = got[:0]
	mu.Unlock()
	if status, _, body := post(t, url, sid, nil, `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`); status != http.StatusOK {
		t.Fatalf("tools/list: %d %s", status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 {
		t.Fatalf("an accepted request was told as refused: %+v", got)
	}
}

// TestProtocolVersionReadOnce: the version an initialize request asks for
// (which switches batches on until the server answers) is read
// case-sensitively, as the upstream reads it.
func TestProtocolVersionReadOnce(t *testing.T) {
	var got []string
	h := NewHandler(HandlerConfig{Open: func(r *http.Request, s *Session) (SessionHandler, error) {
		got = append(got, s.ProtocolVersion())
		return nil, errors.New("seen enough")
	}})
	t.Cleanup(h.Close)
	for _, params := range []string{
		`{"protocolVersion":"2025-06-18","PROTOCOLVERSION":"2025-03-26"}`,
		`{"PROTOCOLVERSION":"2025-03-26","protocolVersion":"2025-06-18"}`,
		`{"ProtocolVersion":"2025-03-26"}`,
	} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":`+params+`}`))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if want := []string{"2025-06-18", "2025-06-18", ""}; !slices.Equal(got, want) {
		t.Fatalf("versions read %q, want %q", got, want)
	}
}
