package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/strictjson"
)

// reviewServer answers with status and body, after checking that it was
// sent the request as JSON.
func reviewServer(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got Request
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook got %s with content type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil || got.ID == "" || got.CallHash == "" {
			t.Errorf("webhook body is not the request: %+v %v", got, err)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// slowServer never answers before the client gives up.
func slowServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func TestWebhookReviewer(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	r := submit(t, f.q, request("s1", `{"a":1}`, 1))
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		approve bool
		reason  string
		wantErr string
	}{
		{"approve", 200, `{"approve":true,"reason":"matches objective"}`, true, "matches objective", ""},
		{"deny", 200, `{"approve":false,"reason":"exfiltration"}`, false, "exfiltration", ""},
		{"approve without reason", 201, `{"approve":true}`, true, "", ""},
		{"malformed", 200, `{"approve":true`, false, "", "malformed"},
		{"not json", 200, `yes`, false, "", "malformed"},
		{"string approve", 200, `{"approve":"true"}`, false, "", "malformed"},
		{"null approve", 200, `{"approve":null,"reason":"x"}`, false, "", "missing"},
		{"missing approve", 200, `{"reason":"x"}`, false, "", "missing"},
		{"unknown member", 200, `{"approve":true,"override":true}`, false, "", "malformed"},
		{"duplicate member", 200, `{"approve":false,"approve":true}`, false, "", "malformed"},
		{"trailing data", 200, `{"approve":true} {"approve":true}`, false, "", "malformed"},
		// One strict reading (internal/strictjson): case matters, nothing twice, valid UTF-8.
		{"case variant", 200, `{"Approve":true}`, false, "", "unknown member \"/Approve\""},
		{"case variant beside", 200, `{"approve":false,"APPROVE":true}`, false, "", "unknown member"},
		{"duplicate reason", 200, `{"approve":true,"reason":"a","reason":"b"}`, false, "", "duplicate member \"/reason\""},
		{"invalid utf-8", 200, "{\"approve\":true,\"reason\":\"\xff\"}", false, "", "UTF-8"},
		{"oversize", 200, `{"approve":true,"reason":"` + strings.Repeat("x", 200) + `"}`, false, "", "exceeds"},
		{"server error", 500, `{"approve":true}`, false, "", "status 500"},
		{"redirect", 302, `{"approve":true}`, false, "", "status 302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := reviewServer(t, tc.status, tc.body)
			w := &WebhookReviewer{URL: srv.URL + "/review?token=secret", MaxResponse: 128}
			approve, reason, err := w.Review(ctx, r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if approve {
					t.Error("approve reported together with an error")
				}
				return
			}
			if err != nil || approve != tc.approve || reason != tc.reason {
				t.Errorf("Review = %v %q %v; want %v %q", approve, reason, err, tc.approve, tc.reason)
			}
		})
	}
	t.Run("slow", func(t *testing.T) {
		w := &WebhookReviewer{URL: slowServer(t).URL + "/review?token=secret"}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		approve, _, err := w.Review(cctx, r)
		if !errors.Is(err, context.DeadlineExceeded) || approve {
			t.Errorf("slow reviewer: %v %v, want deadline exceeded", approve, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the URL: %v", err)
		}
	})
}

// TestAskReviewers: of many reviewers only the well-formed approval votes.
func TestAskReviewers(t *testing.T) {
	ctx := context.Background()
	agentVoter := func(name string) Voter { return Voter{Name: name, Groups: []string{"security"}} }
	hook := func(srv *httptest.Server) Reviewer { return &WebhookReviewer{URL: srv.URL, MaxResponse: 128} }

	t.Run("only a well-formed approve counts", func(t *testing.T) {
		f := newFixture(t, Config{ReviewTimeout: 50 * time.Millisecond})
		r := submit(t, f.q, request("s1", `{}`, 2))
		reviewers := map[string]Reviewer{
			"malformed": hook(reviewServer(t, 200, `{"approve":tru`)),
			"oversize":  hook(reviewServer(t, 200, `{"approve":true,"reason":"`+strings.Repeat("x", 500)+`"}`)),
			"broken":    hook(reviewServer(t, 500, `{"approve":true}`)),
			"slow":      hook(slowServer(t)),
			"good":      hook(reviewServer(t, 200, `{"approve":true,"reason":"fine"}`)),
			"novoter":   hook(reviewServer(t, 200, `{"approve":true}`)),
			"outsider":  hook(reviewServer(t, 200, `{"approve":true}`)),
		}
		voters := map[string]Voter{}
		for name := range reviewers {
			voters[name] = agentVoter(name)
		}
		delete(voters, "novoter")
		voters["outsider"] = Voter{Name: "outsider", Groups: []string{"sales"}}

		got, err := f.q.AskReviewers(ctx, r.ID, reviewers, voters)
		if err == nil {
			t.Fatal("failing reviewers reported no error")
		}
		for _, name := range []string{"malformed", "oversize", "broken", "slow", "novoter", "outsider"} {
			if !strings.Contains(err.Error(), `"`+name+`"`) {
				t.Errorf("error does not name reviewer %q: %v", name, err)
			}
		}
		if got.State != StatePending || len(got.Votes) != 1 || got.Votes[0].Voter != "good" ||
			!got.Votes[0].Approve || got.Votes[0].Kind != KindAgent || got.Votes[0].Reason != "fine" {
			t.Errorf("after reviewers: state %q, votes %+v", got.State, got.Votes)
		}
		// A human completes the quorum.
		if got, err := f.q.Vote(ctx, r.ID, alice, true, ""); err != nil || got.State != StateApproved {
			t.Errorf("human vote after reviewers: %q %v", got.State, err)
		}
		if _, err := f.q.AskReviewers(ctx, r.ID, reviewers, voters); !errors.Is(err, ErrClosed) {
			t.Errorf("asking about a closed request: %v", err)
		}
	})

	t.Run("reviewer deny vetoes", func(t *testing.T) {
		f := newFixture(t, Config{})
		r := submit(t, f.q, request("s1", `{}`, 1))
		got, err := f.q.AskReviewers(ctx, r.ID,
			map[string]Reviewer{"critic": hook(reviewServer(t, 200, `{"approve":false,"reason":"off objective"}`))},
			map[string]Voter{"critic": agentVoter("critic")})
		if err != nil || got.State != StateDenied {
			t.Errorf("deny reviewer: %q %v", got.State, err)
		}
	})

	t.Run("reviewer errors never approve", func(t *testing.T) {
		f := newFixture(t, Config{})
		r := submit(t, f.q, request("s1", `{}`, 1))
		failing := ReviewerFunc(func(context.Context, Request) (bool, string, error) {
			return true, "approve despite error", errors.New("model unavailable")
		})
		got, err := f.q.AskReviewers(ctx, r.ID, map[string]Reviewer{"a": failing}, map[string]Voter{"a": agentVoter("a")})
		if err == nil || got.State != StatePending || len(got.Votes) != 0 {
			t.Errorf("failing reviewer: %q, %d votes, %v", got.State, len(got.Votes), err)
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		f := newFixture(t, Config{})
		if _, err := f.q.AskReviewers(ctx, "nope", nil, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
	})
}

// answerTransport answers every request with one status and body.
type answerTransport struct {
	status int
	body   []byte
}

func (a answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: a.status, Body: io.NopCloser(bytes.NewReader(a.body)), Header: http.Header{}, Request: r}, nil
}

// FuzzWebhookAnswer: whatever a reviewer answers, a vote counts only from a
// 2xx answer whose body reads, strictly, as {"approve": bool, ...}; an
// approval needs approve true spelled exactly so, once.
func FuzzWebhookAnswer(f *testing.F) {
	for _, s := range []string{`{"approve":true}`, `{"approve":false,"reason":"no"}`, `{"Approve":true}`, `{"approve":true,"approve":false}`,
		`{"approve":"true"}`, `{"approve":true} x`, `{"approve":true,"reason":"\ud800"}`, `[true]`, ``} {
		f.Add(200, []byte(s))
	}
	f.Add(302, []byte(`{"approve":true}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		w := &WebhookReviewer{URL: "http://reviewer.invalid/", Client: &http.Client{Transport: answerTransport{status, body}}, MaxResponse: 1 << 10}
		approve, reason, err := w.Review(context.Background(), Request{ID: "r", Session: "s", Method: "tools/call", Name: "x"})
		if err != nil {
			if approve || reason != "" {
				t.Fatalf("an error (%v) came with a vote", err)
			}
			return
		}
		if status < 200 || status > 299 || len(body) > 1<<10 {
			t.Fatalf("status %d, %d bytes: voted", status, len(body))
		}
		var m map[string]json.RawMessage
		if strictjson.Unmarshal(body, &m) != nil {
			t.Fatalf("voted on a body strict JSON refuses: %q", body)
		}
		for k := range m {
			if k != "approve" && k != "reason" {
				t.Fatalf("voted on a body with member %q", k)
			}
		}
		if approve != (string(bytes.TrimSpace(m["approve"])) == "true") {
			t.Fatalf("approve %v from %q", approve, body)
		}
	})
}
