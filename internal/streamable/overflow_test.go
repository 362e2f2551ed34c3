package streamable

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// burstServer answers, synchronously within Receive (so before the POST's
// stream is written): initialize with the version asked for; "echo" at
// once; "burst" with params.n notifications related to the call, then the
// response.
type burstServer struct{ s *Session }

func (b *burstServer) Authorize(*http.Request) error { return nil }
func (b *burstServer) Closed()                       {}
func (b *burstServer) Receive(_ context.Context, msg jsonrpc.Message) {
	req, ok := msg.(*jsonrpc.Request)
	if !ok || !req.IsCall() {
		return
	}
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
		N               int    `json:"n"`
	}
	_ = json.Unmarshal(req.Params, &p)
	reply := func(v any) {
		res, _ := json.Marshal(v)
		_ = b.s.Send(&jsonrpc.Response{ID: req.ID, Result: res}, jsonrpc.ID{})
	}
	switch req.Method {
	case "initialize":
		reply(map[string]any{"protocolVersion": p.ProtocolVersion, "capabilities": map[string]any{}, "serverInfo": map[string]any{"name": "burst", "version": "1"}})
	case "echo":
		reply(map[string]any{"echo": req.ID.Raw()})
	case "burst":
		for i := range p.N {
			note, _ := json.Marshal(map[string]any{"level": "info", "data": i})
			_ = b.s.Send(&jsonrpc.Request{Method: "notifications/message", Params: note}, req.ID)
		}
		reply(map[string]any{"sent": p.N})
	}
}

func burstHandler(t *testing.T) (string, *Handler) {
	t.Helper()
	h := NewHandler(HandlerConfig{Open: func(_ *http.Request, s *Session) (SessionHandler, error) {
		return &burstServer{s: s}, nil
	}})
	url, _ := serveHTTP(t, h, "HTTP/1.1")
	t.Cleanup(h.Close)
	return url, h
}

// sseResult is what a client following the SSE protocol got for one POST:
// the messages of every event, in order, across resumptions, and the
// error status and body of a resumption the server refused.
type sseResult struct {
	msgs       []jsonrpc.Message
	resumes    int
	refused    int
	refusedMsg string
}

// postSSE POSTs body on session sid accepting only SSE and reads the
// stream until every id in want is answered, resuming with Last-Event-ID
// whenever the stream ends early, as a client must. It fails the test if
// the stream ends early with no event id to resume from: the answers
// would be lost without a word.
func postSSE(t *testing.T, url, sid, body string, want int) sseResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(headerSessionID, sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res sseResult
	answered, lastID := 0, ""
	for {
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if res.resumes == 0 {
				t.Fatalf("POST: %d %s", resp.StatusCode, b)
			}
			res.refused, res.refusedMsg = resp.StatusCode, string(b)
			return res
		}
		rd := newSSEReader(resp.Body, DefaultMaxEventBytes)
		for {
			ev, err := rd.Next()
			if err != nil {
				break
			}
			if ev.HasID {
				lastID = ev.ID
			}
			if len(ev.Data) == 0 {
				continue
			}
			m, err := jsonrpc.DecodeMessage(ev.Data)
			if err != nil {
				t.Fatalf("event %s: %v", ev.ID, err)
			}
			res.msgs = append(res.msgs, m)
			if _, ok := m.(*jsonrpc.Response); ok {
				answered++
			}
		}
		resp.Body.Close()
		if answered >= want {
			return res
		}
		if lastID == "" {
			t.Fatalf("the stream ended with %d of %d answers and no event id to resume from: the rest are lost", answered, want)
		}
		if res.resumes++; res.resumes > 20 {
			t.Fatalf("no progress after %d resumptions (%d of %d answers)", res.resumes, answered, want)
		}
		get, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		get.Header.Set("Accept", "text/event-stream")
		get.Header.Set(headerSessionID, sid)
		get.Header.Set(headerLastEventID, lastID)
		if resp, err = http.DefaultClient.Do(get); err != nil {
			t.Fatal(err)
		}
	}
}

func initSession(t *testing.T, url, version string) string {
	t.Helper()
	status, hdr, body := post(t, url, "", nil, initBody(version))
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	return hdr.Get(headerSessionID)
}

// TestBatchOverSSEAnswersEveryCall: a JSON-RPC batch (2025-03-26) answered
// over SSE whose answers outnumber the events a connection may hold
// pending (and the session retains) gets every answer, once. It used to
// get 200 with an empty body: the stream overflowed before its first
// write and, with no event id, could not be resumed.
func TestBatchOverSSEAnswersEveryCall(t *testing.T) {
	url, _ := burstHandler(t)
	sid := initSession(t, url, versionBatch)
	const calls = maxPendingEvents + DefaultMaxRetainedEvents/2
	var b strings.Builder
	b.WriteByte('[')
	for i := range calls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"echo"}`, i)
	}
	b.WriteByte(']')
	res := postSSE(t, url, sid, b.String(), calls)
	seen := make(map[int64]int)
	for _, m := range res.msgs {
		r, ok := m.(*jsonrpc.Response)
		if !ok || r.Error != nil {
			t.Fatalf("unexpected message %+v", m)
		}
		seen[r.ID.Raw().(int64)]++
	}
	for i := range int64(calls) {
		if seen[i] != 1 {
			t.Fatalf("call %d answered %d times (%d answers for %d calls)", i, seen[i], len(res.msgs), calls)
		}
	}
}

// TestOverflowedStreamIsResumable: a call whose related messages outrun
// what a connection may hold pending gets the pending ones written before
// its connection is dropped, so the client always has an event id to
// resume from and gets every message in order; when the session no
// longer retains what the client missed, resuming is refused (400) rather
// than answered with a gap. Before, the connection was dropped before its
// first write: nothing to resume from, so the call was lost.
func TestOverflowedStreamIsResumable(t *testing.T) {
	for _, version := range []string{versionBatch, "2025-06-18", versionPriming} {
		t.Run(version, func(t *testing.T) {
			url, _ := burstHandler(t)
			sid := initSession(t, url, version)

			// More than a connection holds pending, less than the session
			// retains beyond it: every message arrives, in order.
			n := maxPendingEvents + DefaultMaxRetainedEvents/2
			res := postSSE(t, url, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":"b","method":"burst","params":{"n":%d}}`, n), 1)
			if res.refused != 0 {
				t.Fatalf("resume refused: %d %s", res.refused, res.refusedMsg)
			}
			if len(res.msgs) != n+1 {
				t.Fatalf("%d messages, want %d notifications and the response", len(res.msgs), n)
			}
			for i, m := range res.msgs[:n] {
				var p struct {
					Data int `json:"data"`
				}
				req, ok := m.(*jsonrpc.Request)
				if !ok || json.Unmarshal(req.Params, &p) != nil || p.Data != i {
					t.Fatalf("message %d is %+v, want notification %d", i, m, i)
				}
			}
			if res.resumes == 0 {
				t.Error("the stream never overflowed: the test proves nothing")
			}

			// Far more than the session retains: what the client missed is
			// gone, and it is told so.
			n = maxPendingEvents + 2*DefaultMaxRetainedEvents
			res = postSSE(t, url, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":"c","method":"burst","params":{"n":%d}}`, n), 1)
			if res.refused != http.StatusBadRequest || !strings.Contains(res.refusedMsg, "no longer retained") {
				t.Fatalf("resume after eviction: %d %q, want 400 naming the eviction", res.refused, res.refusedMsg)
			}
		})
	}
}

// TestClientConnResumesOverflow: ward's own client, on an overflowed
// stream, resumes and delivers every message, or, when the server no
// longer retains them, answers the call with an error: never silence.
func TestClientConnResumesOverflow(t *testing.T) {
	url, _ := burstHandler(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc, err := Dial(ctx, ClientConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	roundTrip(t, ctx, cc, "initialize", 1, nil)
	for _, tc := range []struct {
		n       int
		wantErr string
	}{
		{maxPendingEvents + DefaultMaxRetainedEvents/2, ""},
		{maxPendingEvents + 2*DefaultMaxRetainedEvents, "no longer retained"},
	} {
		id := mustID(fmt.Sprintf("burst-%d", tc.n))
		if err := cc.Write(ctx, &jsonrpc.Request{ID: id, Method: "burst", Params: json.RawMessage(fmt.Sprintf(`{"n":%d}`, tc.n))}); err != nil {
			t.Fatal(err)
		}
		notes := 0
		for {
			m, err := cc.Read(ctx)
			if err != nil {
				t.Fatalf("n=%d: read: %v", tc.n, err)
			}
			if _, ok := m.(*jsonrpc.Request); ok {
				notes++
				continue
			}
			r := m.(*jsonrpc.Response)
			if r.ID != id {
				t.Fatalf("n=%d: response to %v", tc.n, r.ID.Raw())
			}
			if tc.wantErr == "" {
				if r.Error != nil || notes != tc.n {
					t.Fatalf("n=%d: %d notifications and error %v, want all and the result", tc.n, notes, r.Error)
				}
			} else if r.Error == nil || !strings.Contains(r.Error.Error(), tc.wantErr) {
				t.Fatalf("n=%d: answer %+v, want an error naming %q", tc.n, r, tc.wantErr)
			}
			break
		}
	}
}
