package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/witness"
)

// routes are every route of the API, with placeholders for the session
// and agent they name.
var routes = []struct{ method, path string }{
	{"GET", "/healthz"}, {"GET", "/readyz"}, {"GET", "/livez"}, {"GET", "/v1/health"}, {"GET", "/.well-known/spiffe-bundle"}, {"GET", "/.well-known/jwks.json"},
	{"POST", "/mcp"}, {"GET", "/mcp"}, {"DELETE", "/mcp"},
	{"POST", "/v1/sponsors"}, {"GET", "/v1/sponsors"}, {"POST", "/v1/sponsors/acme/credentials"},
	{"POST", "/v1/agents"}, {"GET", "/v1/agents"}, {"GET", "/v1/agents/base"},
	{"POST", "/v1/agents/base/quarantine"}, {"POST", "/v1/agents/base/release"}, {"POST", "/v1/agents/base/trust"},
	{"POST", "/v1/sessions"}, {"GET", "/v1/sessions"}, {"GET", "/v1/sessions/SID"}, {"POST", "/v1/sessions/SID/end"},
	{"GET", "/v1/tools"}, {"POST", "/v1/tools/approve"},
	{"GET", "/v1/audit/checkpoint"}, {"GET", "/v1/audit/events"},
	{"GET", "/v1/approvals"}, {"GET", "/v1/approvals/x"}, {"POST", "/v1/approvals/x/approve"}, {"POST", "/v1/approvals/x/deny"},
	{"POST", "/v1/token"}, {"POST", "/v1/verify"},
	{"POST", "/v1/guard/filter"}, {"POST", "/v1/guard/check"}, {"POST", "/v1/guard/observe"}, {"POST", "/v1/guard/notice"}, {"POST", "/v1/guard/answer"}, {"POST", "/v1/guard/await"},
	{"GET", "/v1/receipts"}, {"POST", "/v1/records"}, {"GET", "/v1/session"},
	{"POST", "/v1/sessions/SID/exec"}, {"POST", "/v1/sessions/SID/runtime"},
	{"GET", "/v1/taint"}, {"GET", "/v1/sessions/SID/labels"}, {"DELETE", "/v1/sessions/SID/labels/untrusted"},
	{"PUT", "/v1/agents"}, {"GET", "/nowhere"},
	{"POST", "/witness/add-checkpoint"},
}

// allowed are the statuses the API may answer; 500 is never the answer to
// bad input.
var allowed = []int{200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 503}

// FuzzAPI sends arbitrary bodies, content types and credentials to every
// route and checks that the node answers within the expected statuses
// (never 500, never a panic), that every error is a JSON error body, and
// that no credential the request presented comes back.
func FuzzAPI(f *testing.F) {
	_, logKey, err := audit.NewNoteKey("other.example/audit")
	if err != nil {
		f.Fatal(err)
	}
	n := newNodeWith(f, func(c *server.Config) {
		c.Upstreams = []server.Upstream{{Name: "demo", Builtin: "demo"}}
		c.WitnessFor = []witness.Log{{Origin: "other.example/audit", Key: logKey}}
	})
	n.agent("base", "demo.*")
	s := n.start("base")
	f.Add(uint8(len(routes)-1), uint8(0), uint8(0), []byte("old 0\n\nother.example/audit\n1\nAAAA\n\n— other.example/audit AAAA\n"), "")
	for i := range routes {
		for _, body := range []string{``, `{}`, `null`, `[]`, `{"name":"x","name":"y"}`, `{"Name":"x"}`, "{\"a\":\"\xff\"}",
			`{"kind":"tool","server":"w","items":[{"name":"w.a","upstream":"a","definition":{}}]}`,
			`{"operation":{"action":"call_tool","method":"tools/call","server":"w","name":"w.a","upstream":"a","arguments":{}}}`,
			`{"operation":{"refused":"x","method":"zzz","action":"nope"}}`,
			`{"events":[{"kind":"k","detail":"d","data":{"a":[1,{"b":null}]}}]}`,
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`,
			"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&scope=a&scope=b"} {
			f.Add(uint8(i), uint8(i%7), uint8(i%5), []byte(body), "")
		}
	}
	credentials := []string{n.admin, s.view.Grant}
	f.Fuzz(func(t *testing.T, route, auth, ctype uint8, body []byte, extra string) {
		if len(extra) > 256 {
			extra = extra[:256]
		}
		r := routes[int(route)%len(routes)]
		req := httptest.NewRequest(r.method, strings.ReplaceAll(r.path, "SID", s.view.Session), bytes.NewReader(body))
		req.RemoteAddr = "203.0.113.50:1000"
		switch ctype % 5 {
		case 0:
			req.Header.Set("Content-Type", "application/json")
		case 1:
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case 2:
			req.Header.Set("Content-Type", extra)
		case 3:
			req.Header.Set("Mcp-Session-Id", extra)
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		presented := []string{}
		switch auth % 7 {
		case 1:
			req.Header.Set("Authorization", "Bearer "+n.admin)
		case 2, 3:
			s.sign(t, req)
			if auth%7 == 3 {
				req.Header.Set("Origin", extra)
			}
		case 4:
			req.Header.Set("Authorization", "Bearer "+s.view.Grant)
		case 5:
			req.Header.Set("Authorization", "DPoP "+extra)
			req.Header.Set("DPoP", extra)
			presented = append(presented, extra)
		case 6:
			proof, _ := grant.NewProof(s.key, "POST", host+"/elsewhere", s.view.Grant, time.Now())
			req.Header.Set("Authorization", "DPoP "+s.view.Grant)
			req.Header.Set("DPoP", proof)
			presented = append(presented, proof)
		}
		if p := req.Header.Get("DPoP"); p != "" {
			presented = append(presented, p)
		}
		// A stream or an await may wait; nothing here needs long.
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		n.h.ServeHTTP(rec, req.WithContext(ctx))

		if !slices.Contains(allowed, rec.Code) {
			t.Fatalf("%s %s: status %d: %s", r.method, r.path, rec.Code, rec.Body)
		}
		if strings.Contains(n.log.String(), "panic serving") {
			t.Fatalf("%s %s panicked: %s", r.method, r.path, n.log.String())
		}
		if rec.Code >= 400 && !strings.HasPrefix(r.path, "/witness/") { // C2SP tlog-witness errors are text
			checkErrorBody(t, r.path, rec)
		}
		out := rec.Body.String() + strings.Join(slices.Collect(func(yield func(string) bool) {
			for _, v := range rec.Header() {
				for _, x := range v {
					if !yield(x) {
						return
					}
				}
			}
		}), "\n")
		for _, c := range append(credentials, presented...) {
			if len(c) >= 16 && strings.Contains(out, c) {
				t.Fatalf("%s %s echoed a presented credential: %s", r.method, r.path, out)
			}
		}
	})
}

// checkErrorBody checks that an error answer is JSON that says what went
// wrong: {"error": …} (the token endpoint adds error_description), or a
// JSON-RPC error for the MCP endpoint.
func checkErrorBody(t *testing.T, path string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: error %d with Content-Type %q: %s", path, rec.Code, ct, rec.Body)
	}
	if path == "/mcp" && rec.Code != http.StatusForbidden { // Origin refusals are the API's
		var e struct {
			JSONRPC string `json:"jsonrpc"`
			Error   *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.JSONRPC != "2.0" || e.Error == nil || e.Error.Message == "" {
			t.Fatalf("%s: error %d is not a JSON-RPC error: %s", path, rec.Code, rec.Body)
		}
		return
	}
	var e map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%s: error %d body is not JSON: %s", path, rec.Code, rec.Body)
	}
	if msg, ok := e["error"].(string); !ok || msg == "" {
		if _, rpc := e["jsonrpc"]; !rpc {
			t.Fatalf("%s: error %d body has no error: %s", path, rec.Code, rec.Body)
		}
	}
}

// tokenErrors are the RFC 6749 / RFC 8693 error codes the token endpoint
// answers with.
var tokenErrors = []string{"invalid_request", "unsupported_grant_type", "invalid_grant", "invalid_scope", "invalid_target"}

// FuzzTokenExchange fuzzes the token endpoint's form with a valid proof
// for the parent's grant: the answer is an exchange or an RFC 6749 error,
// a form that repeats a parameter (but audience) or names one the endpoint
// does not read is refused, a child never gets more than its parent, and
// the subject token never comes back.
func FuzzTokenExchange(f *testing.F) {
	n := newNode(f)
	n.agent("base", "demo.echo", "demo.write_note")
	s := n.start("base")
	valid := baseForm(&testing.T{}, s)
	valid.Set("scope", "tool:demo.echo")
	// The subject token is the fuzzer's to change: "SUBJECT" stands for
	// the parent's grant.
	seed := strings.ReplaceAll(valid.Encode(), url.QueryEscape(s.view.Grant), "SUBJECT")
	for _, extra := range []string{"", "&scope=x", "&Scope=tool:demo.*", "&audience=a&audience=b", "&grant_type=x", "&ttl=1s", "&ttl=-5",
		"&agent=base", "&actor_token=x", "&scope=tool:*", "&scope=host:*", "&csr=AAAA", "&requested_token_type=x", "&%ff=1", ";"} {
		f.Add([]byte(seed + extra))
	}
	f.Add([]byte(""))
	f.Add([]byte("subject_token=SUBJECT"))
	f.Add([]byte(seed + "&agent=" + strings.Repeat("a", api.DefaultMaxBody))) // 413
	f.Fuzz(func(t *testing.T, form []byte) {
		body := strings.ReplaceAll(string(form), "SUBJECT", url.QueryEscape(s.view.Grant))
		req := exchangeRequest(t, s, body)
		req.RemoteAddr = "203.0.113.51:1000"
		rec := httptest.NewRecorder()
		n.h.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer %d is not JSON: %s", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), s.view.Grant) {
			t.Fatalf("the subject token came back: %s", rec.Body)
		}
		if strings.Contains(n.log.String(), "panic serving") {
			t.Fatalf("panicked on %q: %s", body, n.log.String())
		}
		switch rec.Code {
		case http.StatusOK:
			scope, _ := out["scope"].(string)
			for _, p := range strings.Fields(scope) {
				if p != "tool:demo.echo" && p != "tool:demo.write_note" {
					t.Fatalf("child scope %q is wider than the parent's", scope)
				}
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			code, _ := out["error"].(string)
			if desc, _ := out["error_description"].(string); !slices.Contains(tokenErrors, code) || desc == "" {
				t.Fatalf("error %d is not an RFC 6749 error: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if (rec.Code == http.StatusRequestEntityTooLarge) != (len(body) > api.DefaultMaxBody) {
			t.Fatalf("a form of %d bytes answered %d (the limit is %d)", len(body), rec.Code, api.DefaultMaxBody)
		}
		if rec.Code == http.StatusRequestEntityTooLarge {
			return // never read
		}
		if q, err := url.ParseQuery(body); err == nil {
			for k, v := range q {
				known := slices.Contains([]string{"grant_type", "subject_token", "subject_token_type", "requested_token_type", "scope", "audience", "csr", "ttl", "agent"}, k)
				if (!known || (len(v) > 1 && k != "audience")) && rec.Code != http.StatusBadRequest {
					t.Fatalf("parameter %q (%d times) accepted with %d", k, len(v), rec.Code)
				}
			}
		} else if rec.Code != http.StatusBadRequest {
			t.Fatalf("unparsable form answered %d", rec.Code)
		}
	})
}
