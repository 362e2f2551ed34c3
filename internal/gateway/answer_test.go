package gateway_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/gateway"
)

// failingAnswers is a guard that cannot record clients' answers.
type failingAnswers struct{ gateway.Guard }

func (failingAnswers) Answer(context.Context, *gateway.Caller, string, string, gateway.ClientAnswer) error {
	return errors.New("audit log unavailable: dial tcp 10.9.8.7:5432: connect: connection refused")
}

// responseTo is the answer u received to its request id.
func (u *notifiedUpstream) responseTo(id int64) *jsonrpc.Response {
	upID, _ := jsonrpc.MakeID(float64(id))
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.responses {
		if r.ID == upID {
			return r
		}
	}
	return nil
}

// A client's answer to a server's sampling or elicitation request is what
// the agent's side (its model, its user) sends that server: it is recorded,
// by digest and size, before the server gets it; an answer that cannot be
// recorded does not reach the server.
func TestClientAnswerRecordedBeforeForwarding(t *testing.T) {
	for _, method := range []string{"sampling/createMessage", "elicitation/create"} {
		t.Run(method, func(t *testing.T) {
			up := &notifiedUpstream{rawUpstream: &rawUpstream{}}
			f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "up", Dial: up.dial}}, nil)
			s, d := f.open(t)
			key := askMethod(t, up, d, 7, method, `{"message":"tell me","requestedSchema":{"type":"object"}}`)
			result := `{"action":"accept","content":{"name":"SECRET-VALUE"}}`
			send(t, s, d, `{"jsonrpc":"2.0","id":"`+key+`","result":`+result+`}`)
			answered(t, up, 7)
			got := up.responseTo(7)
			if got == nil || got.Error != nil || !strings.Contains(string(got.Result), "SECRET-VALUE") {
				t.Fatalf("the server got %+v, want the client's result", got)
			}
			sum := sha256.Sum256(got.Result)
			events, err := f.log.Read(0, f.log.Size())
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, e := range events {
				if e.Type != "server.request.answer" {
					continue
				}
				var data struct {
					Server, Method string
					Digest         string `json:"answer_sha256"`
					Bytes          int    `json:"answer_bytes"`
					IsError        bool   `json:"is_error"`
				}
				if err := json.Unmarshal(e.Data, &data); err != nil {
					t.Fatal(err)
				}
				if data.Server != "up" || data.Method != method || data.Digest != hex.EncodeToString(sum[:]) || data.Bytes != len(got.Result) || data.IsError {
					t.Errorf("recorded %+v", data)
				}
				if strings.Contains(string(e.Data), "SECRET-VALUE") {
					t.Error("the answer's content was recorded although results are not")
				}
				found = true
			}
			if !found {
				t.Fatal("the client's answer was not recorded")
			}
		})
	}
	t.Run("error answer", func(t *testing.T) {
		up := &notifiedUpstream{rawUpstream: &rawUpstream{}}
		f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "up", Dial: up.dial}}, nil)
		s, d := f.open(t)
		key := askMethod(t, up, d, 3, "sampling/createMessage", `{"messages":[],"maxTokens":1}`)
		send(t, s, d, `{"jsonrpc":"2.0","id":"`+key+`","error":{"code":-1,"message":"user declined"}}`)
		answered(t, up, 3)
		if got := up.responseTo(3); got == nil || got.Error == nil || !strings.Contains(got.Error.Error(), "user declined") {
			t.Fatalf("the server got %+v", got)
		}
		events, _ := f.log.Read(0, f.log.Size())
		for _, e := range events {
			if e.Type == "server.request.answer" && strings.Contains(string(e.Data), `"is_error":true`) {
				return
			}
		}
		t.Fatal("the client's error answer was not recorded as one")
	})
	t.Run("unrecordable", func(t *testing.T) {
		up := &notifiedUpstream{rawUpstream: &rawUpstream{}}
		f := newUpstreamsFixture(t, []gateway.Upstream{{Name: "up", Dial: up.dial}}, func(g gateway.Guard) gateway.Guard { return failingAnswers{g} })
		s, d := f.open(t)
		key := askMethod(t, up, d, 5, "elicitation/create", `{"message":"password?","requestedSchema":{"type":"object"}}`)
		send(t, s, d, `{"jsonrpc":"2.0","id":"`+key+`","result":{"action":"accept","content":{"password":"SECRET-VALUE"}}}`)
		answered(t, up, 5)
		got := up.responseTo(5)
		var werr *jsonrpc.Error
		if got == nil || !errors.As(got.Error, &werr) || werr.Code != gateway.CodeDenied || len(got.Result) != 0 {
			t.Fatalf("the server got %+v, want ward's refusal", got)
		}
		if strings.Contains(werr.Message, "10.9.8.7") {
			t.Errorf("the server was told where ward's store lives: %s", werr.Message)
		}
		if strings.Contains(werr.Message, "SECRET") {
			t.Fatal("the refusal carries the answer")
		}
	})
}

// askMethod has u send the client a request of method with params and
// returns the id the client sees it under.
func askMethod(t *testing.T, u *notifiedUpstream, d *downstream, id int64, method, params string) string {
	t.Helper()
	upID, _ := jsonrpc.MakeID(float64(id))
	u.emit(&jsonrpc.Request{ID: upID, Method: method, Params: json.RawMessage(params)})
	for range 1000 {
		d.mu.Lock()
		for _, m := range d.msgs {
			if r, ok := m.(*jsonrpc.Request); ok && r.Method == method && string(r.Params) == params {
				key, _ := r.ID.Raw().(string)
				d.mu.Unlock()
				return key
			}
		}
		d.mu.Unlock()
		<-d.ch
	}
	t.Fatalf("the %s request did not reach the client", method)
	return ""
}

// A request refused because the session has too many in flight is
// recorded like every other refusal, with its reason.
func TestTooManyInFlightRecorded(t *testing.T) {
	release := make(chan struct{})
	up := &rawUpstream{answer: func(method string) (json.RawMessage, bool) {
		if method == "tools/call" {
			<-release
		}
		return nil, false
	}}
	f := newRawFixture(t, up, nil)
	g, err := gateway.New(gateway.Config{Guard: f.guard, Upstreams: []gateway.Upstream{{Name: "up", Dial: up.dial}}, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	t.Cleanup(func() { close(release) })
	f.g = g
	s, d := f.open(t)
	msg, _ := jsonrpc.DecodeMessage([]byte(`{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"up.echo","arguments":{}}}`))
	s.Receive(context.Background(), msg)
	for i := 0; len(up.requests("tools/call")) == 0; i++ {
		if i == 1000 {
			t.Fatal("the first call never reached the upstream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := f.log.Size()
	resp := send(t, s, d, `{"jsonrpc":"2.0","id":"extra","method":"tools/call","params":{"name":"up.echo","arguments":{}}}`)
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "too many requests in flight") {
		t.Fatalf("second call answered %+v", resp)
	}
	events, err := f.log.Read(before, f.log.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Type == "refusal" && strings.Contains(string(e.Data), "too many requests in flight") {
			return
		}
	}
	t.Fatalf("the refusal was not recorded (%d new events)", len(events))
}

// storeDown is a guard whose store cannot be reached: its errors carry
// what the database driver writes about where it was connecting.
type storeDown struct{ gateway.Guard }

func (storeDown) Check(context.Context, *gateway.Caller, *gateway.Operation) (gateway.Verdict, error) {
	return gateway.Verdict{}, errors.New("get session: failed to connect to `user=wardsvc database=wardprod`: 10.20.30.40:5432 (db.internal): dial tcp 10.20.30.40:5432: connect: connection refused")
}

// An error that reaches the agent says what failed, not where ward's
// store lives: no database user, name or address.
func TestErrorsLeaveWithoutInternals(t *testing.T) {
	f := newRawFixture(t, &rawUpstream{}, func(g gateway.Guard) gateway.Guard { return storeDown{g} })
	s, d := f.open(t)
	resp := send(t, s, d, `{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"up.echo","arguments":{}}}`)
	if resp.Error == nil {
		t.Fatal("the call was answered without an error")
	}
	msg := resp.Error.Error()
	for _, leak := range []string{"wardsvc", "wardprod", "10.20.30.40", "db.internal"} {
		if strings.Contains(msg, leak) {
			t.Errorf("the agent was told %q: %s", leak, msg)
		}
	}
	if !strings.Contains(msg, "failed to connect to the database") {
		t.Errorf("the error no longer says what failed: %s", msg)
	}
}
