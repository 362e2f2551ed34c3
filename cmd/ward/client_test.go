package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// answering is a node stand-in that answers every request with status and
// body: what the client does with answers is under test, not the node.
func answering(t *testing.T, status int, body string) *client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return &client{base: srv.URL, http: srv.Client()}
}

// TestClientReadsAnswersStrictly: an answer is read as the node reads
// requests (case-sensitive names, nothing twice, valid UTF-8), except that
// members the client does not know are ignored.
func TestClientReadsAnswersStrictly(t *testing.T) {
	type view struct {
		Session string `json:"session"`
	}
	for name, tc := range map[string]struct {
		body, want string // want: "" accepted, else in the error
		session    string
	}{
		"plain":          {`{"session":"s1"}`, "", "s1"},
		"newer member":   {`{"session":"s1","added_later":{"x":1}}`, "", "s1"},
		"case variant":   {`{"Session":"s2"}`, "", ""}, // not taken for "session"
		"duplicate":      {`{"session":"s1","session":"s2"}`, `duplicate member "/session"`, ""},
		"nested dup":     {`{"session":"s1","x":{"a":1,"a":2}}`, `duplicate member "/x/a"`, ""},
		"invalid utf-8":  {"{\"session\":\"\xff\"}", "UTF-8", ""},
		"trailing":       {`{"session":"s1"} {"session":"s2"}`, "after", ""},
		"oversize":       {`{"session":"` + strings.Repeat("a", maxResponse) + `"}`, "larger than", ""},
		"case and exact": {`{"session":"s1","SESSION":"s2"}`, "", "s1"},
	} {
		var v view
		err := answering(t, 200, tc.body).do("GET", "/v1/x", nil, &v)
		switch {
		case tc.want == "" && (err != nil || v.Session != tc.session):
			t.Errorf("%s: %v, session %q; want %q", name, err, v.Session, tc.session)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
	var raw json.RawMessage
	if err := answering(t, 200, `{"a":1,"a":2}`).do("GET", "/v1/x", nil, &raw); err == nil {
		t.Error("a raw answer with a duplicate member was accepted")
	}
	// An error answer that is not strict JSON is shown as text.
	err := answering(t, 400, `{"error":"a","error":"b"}`).do("GET", "/v1/x", nil, nil)
	if err == nil || !strings.Contains(err.Error(), `{"error":"a","error":"b"}`) {
		t.Errorf("error answer: %v", err)
	}
	err = answering(t, 401, `{"error":"invalid_grant","error_description":"expired"}`).do("GET", "/v1/x", nil, nil)
	if err == nil || err.Error() != "invalid_grant: expired (HTTP 401)" {
		t.Errorf("RFC 6749 error answer: %v", err)
	}
}
