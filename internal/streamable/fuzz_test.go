package streamable

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// echoHandler answers every request at once and records what it received.
type echoHandler struct {
	s        *Session
	mu       sync.Mutex
	received []jsonrpc.Message
}

func (e *echoHandler) Authorize(*http.Request) error { return nil }
func (e *echoHandler) Closed()                       {}
func (e *echoHandler) Receive(_ context.Context, msg jsonrpc.Message) {
	e.mu.Lock()
	e.received = append(e.received, msg)
	e.mu.Unlock()
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
		_ = e.s.Send(&jsonrpc.Response{ID: req.ID, Result: json.RawMessage(`{"protocolVersion":"2025-03-26"}`)}, jsonrpc.ID{})
	}
}

// wellFormed reports whether body is a JSON-RPC message (or, in batch mode,
// an array of them) that the handler may pass on: valid JSON without
// duplicate names whose messages decode and have only the JSON-RPC members,
// spelled exactly so.
func wellFormed(body []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if _, err := dec.ReadValue(); err != nil {
		return false
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return false
	}
	t := bytes.TrimLeft(body, " \t\r\n")
	if len(t) > 0 && t[0] == '[' {
		var raws []json.RawMessage
		if json.Unmarshal(t, &raws) != nil {
			return false
		}
		for _, r := range raws {
			if _, err := jsonrpc.DecodeMessage(r); err != nil || !onlyMembers(r) {
				return false
			}
		}
		return len(raws) > 0
	}
	_, err := jsonrpc.DecodeMessage(t)
	return err == nil && onlyMembers(t)
}

// onlyMembers reports whether msg has only JSON-RPC 2.0 members, and its
// error only an error's.
func onlyMembers(msg []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil {
		return false
	}
	for k := range m {
		switch k {
		case "jsonrpc", "id", "method", "params", "result":
		case "error":
			var e map[string]json.RawMessage
			if json.Unmarshal(m[k], &e) != nil || e == nil {
				return false
			}
			for ek := range e {
				if ek != "code" && ek != "message" && ek != "data" {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

func FuzzServePOST(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":"x","result":{}}`,
		`[{"jsonrpc":"2.0","id":3,"method":"a"},{"jsonrpc":"2.0","method":"b"}]`,
		`[]`, `[1]`, `{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}`, `{"jsonrpc":"1.0"}`, `nul`, "\xff",
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","Params":{}}`, `{"jsonrpc":"2.0","id":2,"method":"x","Method":"y"}`,
		`{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m","Code":2}}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	var eh *echoHandler
	var refusals []int // statuses told to OnRefuse
	h := NewHandler(HandlerConfig{
		OnRefuse:          func(_ *http.Request, status int, _ string) { refusals = append(refusals, status) },
		MaxBodyBytes:      1 << 16,
		MaxRetainedEvents: 16,
		Open: func(_ *http.Request, s *Session) (SessionHandler, error) {
			eh = &echoHandler{s: s}
			return eh, nil
		},
	})
	f.Cleanup(h.Close)
	serve := func(sid string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if sid != "" {
			req.Header.Set(headerSessionID, sid)
		}
		ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		return rec
	}
	rec := serve("", []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}`))
	sid := rec.Header().Get(headerSessionID)
	if rec.Code != http.StatusOK || sid == "" {
		f.Fatalf("initialize: %d %s", rec.Code, rec.Body)
	}
	session := eh

	f.Fuzz(func(t *testing.T, body []byte, withSession bool) {
		id := ""
		if withSession {
			id = sid
		}
		session.mu.Lock()
		before := len(session.received)
		session.mu.Unlock()
		refusals = refusals[:0]
		rec := serve(id, body)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		if want := rec.Code >= 400; (len(refusals) == 1 && refusals[0] == rec.Code) != want || len(refusals) > 1 {
			t.Fatalf("status %d told to OnRefuse as %v", rec.Code, refusals)
		}
		if rec.Code >= 400 {
			var e struct {
				Error struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == 0 {
				t.Fatalf("error body %q is not a JSON-RPC error", rec.Body)
			}
		}
		session.mu.Lock()
		got := session.received[before:]
		session.received = session.received[:0]
		session.mu.Unlock()
		if len(got) > 0 && (!withSession || !wellFormed(body)) {
			t.Fatalf("Receive called with %d messages for rejected body %q", len(got), body)
		}
		if withSession && rec.Code/100 == 2 && !wellFormed(body) {
			t.Fatalf("accepted malformed body %q", body)
		}
		if rec.Code == http.StatusNotFound && withSession {
			t.Fatalf("the session was lost after %q", body)
		}
	})
}

func FuzzSSEParse(f *testing.F) {
	for _, s := range []string{
		"id: 1_0\ndata: {}\n\n",
		"data: a\ndata: b\n\n",
		"event: x\r\ndata: y\r\n\r\n",
		": comment\n\nretry: 100\nid: z\n\n",
		"data\rdata:\r\r",
		"id: a\x00b\ndata: x\n\n",
		strings.Repeat("data: xxxxxxxx\n", 20) + "\n",
	} {
		f.Add([]byte(s))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := newSSEReader(bytes.NewReader(in), max)
		for range len(in) + 1 {
			ev, err := rd.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, errEventTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if n := len(ev.Data) + len(ev.ID) + len(ev.Name); n > max {
				t.Fatalf("event of %d bytes exceeds bound %d", n, max)
			}
			if strings.ContainsAny(ev.ID, "\r\n\x00") || bytes.ContainsAny(ev.Data, "\r") {
				t.Fatalf("field with line break: %+v", ev)
			}
			if ev.HasRetry && ev.Retry < 0 {
				t.Fatalf("negative retry %v", ev.Retry)
			}
		}
		t.Fatal("parser did not terminate")
	})
}

// Round trip: events written by appendSSEEvent parse back unchanged.
func TestSSERoundTrip(t *testing.T) {
	tests := []struct{ id, data string }{
		{"0_0", ""},
		{"1_2", `{"jsonrpc":"2.0","method":"x"}`},
		{"3_4", "line1\nline2"},
	}
	var b []byte
	for _, tt := range tests {
		b = appendSSEEvent(b, tt.id, []byte(tt.data))
	}
	b = append(b, ": ping\n\n"...)
	rd := newSSEReader(bytes.NewReader(b), 1024)
	for _, tt := range tests {
		ev, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != tt.id || string(ev.Data) != tt.data {
			t.Errorf("got %q %q, want %q %q", ev.ID, ev.Data, tt.id, tt.data)
		}
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after last event: %v", err)
	}
}
