package streamable

import (
	"net/http"
	"strings"
	"testing"
)

// TestSingleAnswerAsJSON: a POST carrying one request, from a client that
// accepts JSON and SSE, is answered with one JSON body when the answer is
// all there is; it is an SSE stream when the tool sends the client a
// message related to the call first (here progress notifications), and
// when the client accepts only SSE.
func TestSingleAnswerAsJSON(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{JSONAnswers: true}, nil)
	both := map[string]string{"Accept": "application/json, text/event-stream"}
	for _, version := range []string{"2025-06-18", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			code, hdr, body := post(t, ts.srv.URL, "", both, initBody(version))
			if code != 200 || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("initialize: %d %s %s", code, hdr.Get("Content-Type"), body)
			}
			sid := hdr.Get(headerSessionID)
			hv := func(accept string) map[string]string {
				return map[string]string{"Accept": accept, "MCP-Protocol-Version": version}
			}
			call := func(id, n string) string {
				return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"count","arguments":{"n":` + n + `},"_meta":{"progressToken":"p"}}}`
			}
			for _, c := range []struct {
				name, accept, body, wantType string
				want                         []string
			}{
				{"one answer, both accepted", "application/json, text/event-stream", call("2", "0"), "application/json", []string{`"id":2`, "counted to 0"}},
				{"one answer, SSE preferred by q", "text/event-stream, application/json;q=0.5", call("3", "0"), "application/json", []string{`"id":3`}},
				{"progress first", "application/json, text/event-stream", call("4", "2"), "text/event-stream", []string{"notifications/progress", `"id":4`, "counted to 2"}},
				{"SSE only", "text/event-stream", call("5", "0"), "text/event-stream", []string{`"id":5`, "counted to 0"}},
				{"JSON refused by q=0", "text/event-stream, application/json;q=0", call("6", "0"), "text/event-stream", []string{`"id":6`}},
				{"JSON only, progress first", "application/json", call("7", "2"), "application/json", []string{`"id":7`, "counted to 2"}},
			} {
				code, hdr, body := post(t, ts.srv.URL, sid, hv(c.accept), c.body)
				if code != http.StatusOK || hdr.Get("Content-Type") != c.wantType {
					t.Errorf("%s: %d %q, want 200 %q; body %s", c.name, code, hdr.Get("Content-Type"), c.wantType, body)
					continue
				}
				for _, w := range c.want {
					if !strings.Contains(string(body), w) {
						t.Errorf("%s: body %s lacks %s", c.name, body, w)
					}
				}
				if c.wantType == "application/json" && (strings.Contains(string(body), "data:") || strings.HasPrefix(string(body), "[")) {
					t.Errorf("%s: not a single JSON object: %s", c.name, body)
				}
			}
		})
	}
}

// TestSingleAnswerAsSSEByDefault: without JSONAnswers a POST of one request
// from a client that accepts either is answered with an SSE stream, as the
// MCP reference servers answer it.
func TestSingleAnswerAsSSEByDefault(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{}, nil)
	both := map[string]string{"Accept": "application/json, text/event-stream"}
	code, hdr, body := post(t, ts.srv.URL, "", both, initBody("2025-11-25"))
	if code != 200 || hdr.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("initialize: %d %s %s", code, hdr.Get("Content-Type"), body)
	}
}
