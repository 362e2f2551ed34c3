package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/refusal"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// resign returns token with its payload changed by edit and signed again
// with the node's grant key: a grant ward itself could have issued, but
// with claims its verifier refuses.
func (n *node) resign(token string, edit func(map[string]any)) string {
	n.t.Helper()
	key, _, err := identity.LoadOrCreateECKey(filepath.Join(n.data, "keys", "grant.key"))
	if err != nil {
		n.t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		n.t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		n.t.Fatal(err)
	}
	edit(claims)
	payload, _ = json.Marshal(claims)
	input := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)
	return input + "." + es256(n.t, key, input)
}

func es256(t testing.TB, key *ecdsa.PrivateKey, input string) string {
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return base64.RawURLEncoding.EncodeToString(sig)
}

// withGrant authenticates req with token and a proof by key for it.
func withGrant(t testing.TB, req *http.Request, key *ecdsa.PrivateKey, token string) *http.Request {
	proof, err := grant.NewProof(key, req.Method, host+req.URL.Path, token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	return req
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`

func mcpRequest(body string) *http.Request {
	req := request("POST", "/mcp", body)
	req.Header.Set("Accept", "application/json, text/event-stream")
	return req
}

// want is the refusal event a request must leave.
type want struct {
	status int
	kind   string
	// proven is the actor of a proven principal; claimed the principal a
	// claim names, with basis containing claimBasis.
	proven, claimed, claimBasis string
	reason                      string // contained in the recorded reason
}

// TestRefusalsRecorded: every kind of refusal leaves exactly one audit
// event, of type "refusal", with who (proven, claimed, or only the
// source), what and why, and no credential in it.
func TestRefusalsRecorded(t *testing.T) {
	n := newNode(t, server.Upstream{Name: "demo", Builtin: "demo"})
	n.agent("base", "demo.*")
	a, b := n.start("base"), n.start("base")
	var sponsorCred struct{ Credential string }
	n.must("POST", "/v1/sponsors/acme/credentials", "", &sponsorCred)

	// An MCP session of a, for b to try.
	rec := n.serve(a.sign(t, mcpRequest(initBody)))
	mcpID := rec.Header().Get("Mcp-Session-Id")
	if rec.Code != http.StatusOK || mcpID == "" {
		t.Fatalf("initialize: %d %s", rec.Code, rec.Body)
	}

	forged := a.view.Grant[:len(a.view.Grant)-4] + "AAAA"
	expired := n.resign(a.view.Grant, func(c map[string]any) {
		c["iat"], c["nbf"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	})
	otherAud := n.resign(a.view.Grant, func(c map[string]any) { c["aud"] = "another-service" })
	replayed := a.sign(t, request("GET", "/v1/receipts?session="+a.view.Session, ""))
	if rec := n.serve(replayed.Clone(context.Background())); rec.Code != http.StatusOK {
		t.Fatalf("first use of the proof: %d %s", rec.Code, rec.Body)
	}
	elsewhere := a.sign(t, request("POST", "/v1/guard/notice", `{"server":"w","method":"sampling/createMessage"}`))
	elsewhere.URL.Path = "/v1/guard/await"

	// A call of a's waiting for approval by group sre.
	pending, err := n.n.Approvals.Submit(context.Background(), approval.Request{Session: a.view.Session, Agent: "base", Sponsor: "acme",
		SPIFFEID: a.view.SPIFFEID, Server: "demo", Method: "tools/call", Name: "demo.echo", Arguments: json.RawMessage(`{}`),
		Requirement: approval.Requirement{Groups: []string{"sre"}}})
	if err != nil {
		t.Fatal(err)
	}

	credentials := []string{n.admin, sponsorCred.Credential, a.view.Grant, b.view.Grant, forged, expired, otherAud}
	aID, bID := a.view.SPIFFEID, b.view.SPIFFEID
	deep := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":` + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + `}`

	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want want
	}{
		// Operator API.
		{"no credential", func() *http.Request { return request("GET", "/v1/agents", "") },
			want{status: 401, kind: "authentication", reason: "Bearer"}},
		{"bad bearer", func() *http.Request {
			r := request("GET", "/v1/agents", "")
			r.Header.Set("Authorization", "Bearer ward_not_a_credential")
			return r
		}, want{status: 401, kind: "authentication", reason: "unknown or revoked credential"}},
		{"grant as operator credential", func() *http.Request {
			r := request("GET", "/v1/agents", "")
			r.Header.Set("Authorization", "Bearer "+a.view.Grant)
			return r
		}, want{status: 401, kind: "authentication", claimed: aID, claimBasis: "operator credential"}},
		{"sponsor on an admin route", func() *http.Request {
			r := request("GET", "/v1/sponsors", "")
			r.Header.Set("Authorization", "Bearer "+sponsorCred.Credential)
			return r
		}, want{status: 403, kind: "forbidden", proven: "acme", reason: "only an admin"}},
		// Agent authentication.
		{"forged grant", func() *http.Request { return withGrant(t, request("GET", "/v1/receipts?session=x", ""), a.key, forged) },
			want{status: 401, kind: "authentication", claimed: aID, claimBasis: "unverified grant", reason: "grant"}},
		{"expired grant", func() *http.Request {
			return withGrant(t, request("GET", "/v1/receipts?session=x", ""), a.key, expired)
		},
			want{status: 401, kind: "authentication", claimed: aID, claimBasis: "unverified grant", reason: "grant"}},
		{"wrong-audience grant", func() *http.Request {
			return withGrant(t, request("GET", "/v1/receipts?session=x", ""), a.key, otherAud)
		},
			want{status: 401, kind: "authentication", claimed: aID, claimBasis: "unverified grant", reason: "grant"}},
		{"stolen bearer", func() *http.Request {
			r := request("POST", "/v1/guard/notice", `{"server":"w","method":"x"}`)
			r.Header.Set("Authorization", "Bearer "+a.view.Grant)
			return r
		}, want{status: 401, kind: "authentication", claimed: aID, claimBasis: "bearer token", reason: "not a bearer token"}},
		{"grant without its key", func() *http.Request {
			return withGrant(t, request("GET", "/v1/receipts?session=x", ""), b.key, a.view.Grant)
		}, want{status: 401, kind: "authentication", claimed: aID, claimBasis: "without a valid proof"}},
		{"replayed proof", func() *http.Request { return replayed.Clone(context.Background()) },
			want{status: 401, kind: "authentication", claimed: aID, claimBasis: "without a valid proof", reason: "DPoP proof"}},
		{"proof for another URL", func() *http.Request { return elsewhere },
			want{status: 401, kind: "authentication", claimed: aID, claimBasis: "without a valid proof", reason: "DPoP proof"}},
		// Token exchange.
		{"exchange widening", func() *http.Request {
			f := baseForm(t, a)
			f.Set("scope", "tool:other.*")
			return exchangeRequest(t, a, f.Encode())
		}, want{status: 403, kind: "token_exchange", proven: aID, reason: "scope widens parent"}},
		{"exchange with a forged subject", func() *http.Request {
			f := baseForm(t, a)
			f.Set("subject_token", forged)
			return exchangeRequest(t, a, f.Encode())
		}, want{status: 401, kind: "token_exchange", claimed: aID, claimBasis: "unverified grant", reason: "invalid_grant"}},
		{"exchange with a repeated parameter", func() *http.Request {
			return exchangeRequest(t, a, baseForm(t, a).Encode()+"&scope=a&scope=b")
		}, want{status: 400, kind: "token_exchange", reason: "repeated"}},
		{"exchange oversize", func() *http.Request {
			return exchangeRequest(t, a, baseForm(t, a).Encode()+"&agent="+strings.Repeat("a", api.DefaultMaxBody))
		}, want{status: 413, kind: "token_exchange", reason: "exceeds"}},
		// The MCP endpoint's transport.
		{"mcp oversize", func() *http.Request {
			return a.sign(t, mcpRequest(`{"jsonrpc":"2.0","method":"x","params":"`+strings.Repeat("a", 4<<20)+`"}`))
		}, want{status: 413, kind: "transport", claimed: aID, claimBasis: "unverified grant", reason: "larger than"}},
		{"mcp deep nesting", func() *http.Request { return a.sign(t, mcpRequest(deep)) },
			want{status: 400, kind: "transport", claimed: aID, reason: "depth"}},
		{"mcp invalid utf-8", func() *http.Request {
			return a.sign(t, mcpRequest("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"\xff\"}"))
		},
			want{status: 400, kind: "transport", claimed: aID, reason: "UTF-8"}},
		{"mcp duplicate keys", func() *http.Request {
			return a.sign(t, mcpRequest(`{"jsonrpc":"2.0","id":1,"method":"initialize","method":"x","params":{}}`))
		}, want{status: 400, kind: "transport", claimed: aID, reason: "duplicate"}},
		{"mcp batch", func() *http.Request { return a.sign(t, mcpRequest(`[`+initBody+`]`)) },
			want{status: 400, kind: "transport", claimed: aID, reason: "batches"}},
		{"mcp case variant", func() *http.Request {
			r := a.sign(t, mcpRequest(`{"jsonrpc":"2.0","id":3,"method":"ping","Method":"tools/call"}`))
			r.Header.Set("Mcp-Session-Id", mcpID)
			return r
		}, want{status: 400, kind: "transport", proven: aID, reason: `"Method"`}}, // authorized for its MCP session first
		{"another session's MCP session", func() *http.Request {
			r := b.sign(t, mcpRequest(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`))
			r.Header.Set("Mcp-Session-Id", mcpID)
			return r
		}, want{status: 403, kind: "forbidden", proven: bID, reason: "another ward session"}},
		{"mcp without credentials", func() *http.Request { return mcpRequest(initBody) },
			want{status: 401, kind: "authentication", reason: "X.509-SVID"}},
		{"cross-origin", func() *http.Request {
			r := a.sign(t, mcpRequest(initBody))
			r.Header.Set("Origin", "https://evil.example")
			return r
		}, want{status: 403, kind: "cross_origin", claimed: aID, reason: "evil.example"}},
		// Votes.
		{"vote on nothing", func() *http.Request {
			r := request("POST", "/v1/approvals/nope/approve", "")
			r.Header.Set("Authorization", "Bearer "+n.admin)
			return r
		}, want{status: 404, kind: "approval_vote", proven: "admin"}},
		{"vote by the agent's own sponsor", func() *http.Request {
			r := request("POST", "/v1/approvals/"+pending.ID+"/approve", "")
			r.Header.Set("Authorization", "Bearer "+sponsorCred.Credential)
			return r
		}, want{status: 403, kind: "approval_vote", proven: "acme"}},
		{"malformed vote", func() *http.Request {
			r := request("POST", "/v1/approvals/nope/deny", `{"reason":"a","reason":"b"}`)
			r.Header.Set("Authorization", "Bearer "+sponsorCred.Credential)
			return r
		}, want{status: 400, kind: "approval_vote", proven: "acme", reason: "duplicate"}},
		// What the router refuses.
		{"no such route", func() *http.Request { return request("GET", "/v1/nothing", "") }, want{status: 404, kind: "not_found"}},
		{"wrong method", func() *http.Request { return request("GET", "/v1/token", "") }, want{status: 405, kind: "method"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			before := n.n.Audit.Size()
			rec := n.serve(req)
			if rec.Code != tc.want.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want.status, rec.Body)
			}
			evs := n.events(before)
			if len(evs) != 1 || evs[0].Type != "refusal" {
				types := []string{}
				for _, e := range evs {
					types = append(types, e.Type)
				}
				t.Fatalf("events %v, want exactly one refusal", types)
			}
			e := evs[0]
			var d refusalData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if d.Kind != w.kind || d.Status != w.status || d.Method != req.Method || d.Path != req.URL.Path || d.Source == "" ||
				!strings.Contains(d.Reason, w.reason) {
				t.Errorf("refusal %s, want kind %s, status %d, reason with %q", e.Data, w.kind, w.status, w.reason)
			}
			if e.Actor != w.proven {
				t.Errorf("actor %q, want %q", e.Actor, w.proven)
			}
			switch {
			case w.claimed == "" && d.Claimed != nil:
				t.Errorf("claimed %+v, want none", d.Claimed)
			case w.claimed != "" && (d.Claimed == nil || d.Claimed.Principal != w.claimed || !strings.Contains(d.Claimed.Basis, w.claimBasis)):
				t.Errorf("claimed %+v, want %s (%s)", d.Claimed, w.claimed, w.claimBasis)
			case w.claimed != "" && (e.Session != "" || e.Agent != ""):
				t.Errorf("a claim was attributed: session %q agent %q", e.Session, e.Agent)
			}
			for _, x := range []*session{a, b} {
				if w.proven == x.view.SPIFFEID && (e.Session != x.view.Session || e.Agent != "base" || e.Sponsor != "acme") {
					t.Errorf("proven session attribution %+v", e)
				}
			}
			raw, _ := json.Marshal(e)
			for _, c := range append(credentials, req.Header.Get("DPoP")) {
				if c != "" && strings.Contains(string(raw), c) {
					t.Errorf("the event holds a credential: %s", raw)
				}
			}
		})
	}
}

// exchangeRequest is a token exchange request with a's proof.
func exchangeRequest(t testing.TB, a *session, body string) *http.Request {
	req := request("POST", "/v1/token", body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	proof, err := grant.NewProof(a.key, "POST", host+"/v1/token", a.view.Grant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("DPoP", proof)
	return req
}

// TestRefusalFlood: 100,000 refused requests from one source leave a bounded
// number of events, and after Close the counts add up.
func TestRefusalFlood(t *testing.T) {
	n := newNode(t)
	const total = 100_000
	before := n.n.Audit.Size()
	for range total {
		req := request("GET", "/v1/agents", "")
		req.Header.Set("Authorization", "Bearer guessing")
		req.RemoteAddr = "203.0.113.9:5555"
		if rec := n.serve(req); rec.Code != http.StatusUnauthorized {
			t.Fatalf("status %d", rec.Code)
		}
	}
	// At most two windows: the flood may straddle a window's end.
	if got := n.n.Audit.Size() - before; got > 2*(refusal.DefaultPerKey+1) {
		t.Fatalf("%d events for %d refusals from one source", got, total)
	}
	n.n.API.Close()
	count := 0
	for _, e := range n.events(before) {
		switch e.Type {
		case refusal.TypeRefusal:
			count++
		case refusal.TypeSummary:
			var d struct {
				Count  int    `json:"count"`
				Source string `json:"source"`
			}
			json.Unmarshal(e.Data, &d)
			if d.Source != "203.0.113.9" {
				t.Fatalf("summary %s", e.Data)
			}
			count += d.Count
		}
	}
	if count != total {
		t.Fatalf("events account for %d refusals, want %d", count, total)
	}
}

// panicky is a Runtime whose exec decision panics, as a bug reached by a
// malformed request would.
type panicky struct{}

func (panicky) DecideExec(ctx context.Context, session string, e policy.ExecRequest) (api.ExecDecision, error) {
	var m map[string]int
	m[e.Command]++ // assignment to entry in nil map
	return api.ExecDecision{}, nil
}

func (panicky) RecordRuntime(context.Context, store.Principal, store.Session, []api.RuntimeEvent) error {
	panic("runtime " + "secret-in-panic-value")
}

// TestPanicIsRecovered: a handler that panics gets 500 "internal error",
// the stack is logged without the panic's text (which may hold anything),
// a refusal of kind "panic" is recorded, and the node keeps serving.
func TestPanicIsRecovered(t *testing.T) {
	n := newNode(t)
	n.agent("base", "demo.*")
	s := n.start("base")
	lb := &logBuffer{}
	srv, err := api.New(api.Config{Authority: n.n.Auth, CA: n.n.CA, Store: n.n.Store, Gateway: n.n.Gateway, Guard: denyAll{},
		Proofs: grant.NewProofVerifier(grant.ProofVerifierConfig{}), Audit: n.n.Audit, Runtime: panicky{},
		Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	h := srv.Handler()
	for _, path := range []string{"/exec", "/runtime"} {
		body := `{"command":"/bin/true"}`
		if path == "/runtime" {
			body = `{"events":[{"kind":"start","detail":"x"}]}`
		}
		before := n.n.Audit.Size()
		req := request("POST", "/v1/sessions/"+s.view.Session+path, body)
		req.Header.Set("Authorization", "Bearer "+n.admin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e struct{ Error string }
		if rec.Code != http.StatusInternalServerError || json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, "internal error") {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		evs := n.events(before)
		if len(evs) != 1 || evs[0].Type != "refusal" || !strings.Contains(string(evs[0].Data), `"kind":"panic"`) || evs[0].Actor != "admin" {
			t.Fatalf("%s: events %+v", path, evs)
		}
	}
	logged := lb.String()
	if !strings.Contains(logged, "panic serving a request") || !strings.Contains(logged, "assignment to entry in nil map") ||
		!strings.Contains(logged, "goroutine") {
		t.Fatalf("log lacks the panic or its stack: %s", logged)
	}
	if strings.Contains(logged, "secret-in-panic-value") || strings.Contains(logged, n.admin) {
		t.Fatalf("log holds the panic's text or a credential: %s", logged)
	}
	// Still serving.
	rec := httptest.NewRecorder()
	req := request("GET", "/v1/agents", "")
	req.Header.Set("Authorization", "Bearer "+n.admin)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("after the panics: %d", rec.Code)
	}
}

// denyAll is a guard that decides nothing; the panic test never reaches it.
type denyAll struct{}

var errDenied = errors.New("denied")

func (denyAll) Filter(context.Context, *gateway.Caller, gateway.Kind, string, []gateway.Item) ([]bool, error) {
	return nil, errDenied
}
func (denyAll) Check(context.Context, *gateway.Caller, *gateway.Operation) (gateway.Verdict, error) {
	return gateway.Verdict{}, errDenied
}
func (denyAll) Observe(context.Context, *gateway.Caller, *gateway.Operation, gateway.Outcome) error {
	return errDenied
}
func (denyAll) Notice(context.Context, *gateway.Caller, string, string, json.RawMessage) error {
	return errDenied
}
func (denyAll) Answer(context.Context, *gateway.Caller, string, string, gateway.ClientAnswer) error {
	return errDenied
}
func (denyAll) Await(context.Context, *gateway.Caller, []string) (string, error) {
	return "", errDenied
}

// TestEndedSessionRefusalsAreItsOwn: a request signed with an ended
// session's grant and key proves who sent it (ward's signature and the
// session key's proof check out): its refusal names the session, so
// `ward audit search --session ID` finds it. An unverified claim still
// names nobody.
func TestEndedSessionRefusalsAreItsOwn(t *testing.T) {
	n := newNode(t, server.Upstream{Name: "demo", Builtin: "demo"})
	n.agent("base", "demo.*")
	a := n.start("base")
	n.must("POST", "/v1/sessions/"+a.view.Session+"/end", `{"reason":"done"}`, nil)
	before := n.n.Audit.Size()
	if rec := n.serve(a.sign(t, mcpRequest(initBody))); rec.Code != http.StatusUnauthorized {
		t.Fatalf("ended session: %d %s", rec.Code, rec.Body)
	}
	evs := n.events(before)
	// (The session's chain, sealed when it ended, is sealed again after it.)
	if len(evs) < 1 || evs[0].Type != "refusal" || evs[0].Session != a.view.Session || evs[0].Agent != "base" || evs[0].Actor != a.view.SPIFFEID {
		t.Fatalf("refusal of the ended session: %+v", evs)
	}
	if !strings.Contains(string(evs[0].Data), "ended") {
		t.Fatalf("the refusal does not say the session ended: %s", evs[0].Data)
	}
}
