package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

var demoOnly = []server.Upstream{{Name: "demo", Builtin: "demo"}}

// fsPolicy lets agents read (only) under the shared directory and forbids
// anything that writes.
func fsPolicy(t *testing.T, shared string) string {
	dir := t.TempDir()
	src := fmt.Sprintf(`
@id("fs-read-shared")
permit (principal, action == Action::"call_tool", resource in Server::"fs")
when { context.name like "read_*" || context.name == "list_directory" || context.name == "list_allowed_directories" };

@id("fs-only-shared-paths")
forbid (principal, action == Action::"call_tool", resource in Server::"fs")
when { context.arguments has path && !(context.arguments.path like "%s/*") };

@id("fs-never-write")
forbid (principal, action == Action::"call_tool", resource == Tool::"fs.write_file");
`, shared)
	if err := os.WriteFile(filepath.Join(dir, "fs.cedar"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fsNode(t *testing.T) (*testNode, string) {
	t.Helper()
	shared := t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "report.txt"), []byte("quarterly numbers: 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, server.Config{
		Policies:  []string{fsPolicy(t, shared)},
		Upstreams: []server.Upstream{{Name: "fs", Command: npmServer(t, "server-filesystem", shared)}},
	})
	n.setupAgent("reporter", []string{"analytics"}, map[string][]string{"tools": {"fs.*"}})
	return n, shared
}

// TestSVIDsValidateWithGoSPIFFE: both SVIDs a session receives validate with
// go-spiffe against the bundle ward publishes, for the session's exact ID.
func TestSVIDsValidateWithGoSPIFFE(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSession("reporter", "write the weekly report", nil, "")

	// The bundle is public: fetched without any credential.
	resp, err := n.tlsClient().Get(n.url + "/.well-known/spiffe-bundle")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	td := spiffeid.RequireTrustDomainFromString("test.ward")
	bundle, err := spiffebundle.Parse(td, raw)
	if err != nil {
		t.Fatalf("parse published bundle: %v", err)
	}
	want := "spiffe://test.ward/agent/reporter/session/" + v.Session
	if v.SPIFFEID != want {
		t.Fatalf("SPIFFE ID = %s, want %s", v.SPIFFEID, want)
	}
	id, _, err := x509svid.Verify(creds.SVID, bundle)
	if err != nil {
		t.Fatalf("X.509-SVID does not validate with go-spiffe: %v", err)
	}
	if id.String() != want {
		t.Fatalf("X.509-SVID ID = %s, want %s", id, want)
	}
	if !creds.SVID[0].PublicKey.(*ecdsa.PublicKey).Equal(creds.Key.Public()) {
		t.Fatal("X.509-SVID is not bound to the agent's own key")
	}
	svid, err := jwtsvid.ParseAndValidate(v.JWTSVID, bundle, []string{"ward"})
	if err != nil {
		t.Fatalf("JWT-SVID does not validate with go-spiffe: %v", err)
	}
	if svid.ID.String() != want {
		t.Fatalf("JWT-SVID ID = %s, want %s", svid.ID, want)
	}
	if ttl := time.Until(v.Expires); ttl <= 0 || ttl > 11*time.Minute {
		t.Fatalf("default session lifetime %v, want about 10m", ttl)
	}
	// The private key never went to the server: the response carries none.
	if strings.Contains(fmt.Sprint(v), "PRIVATE KEY") {
		t.Fatal("issuance response contains a private key")
	}
}

// TestFilesystemThroughGateway drives the real filesystem MCP server through
// the gateway with the official Go SDK client.
func TestFilesystemThroughGateway(t *testing.T) {
	n, shared := fsNode(t)
	creds, _ := n.startSession("reporter", "summarize the quarterly report", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := toolNames(tools.Tools)
	for _, want := range []string{"read_text_file", "list_directory"} {
		if !names[want] {
			t.Errorf("tools/list lacks allowed tool %s (got %v)", want, names)
		}
	}
	for _, hidden := range []string{"write_file", "edit_file", "move_file", "create_directory"} {
		if names[hidden] || names["fs."+hidden] {
			t.Errorf("tools/list shows %s, which policy never allows", hidden)
		}
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: map[string]any{"path": filepath.Join(shared, "report.txt")}})
	if err != nil {
		t.Fatalf("allowed read failed: %v", err)
	}
	if !strings.Contains(textOf(res), "quarterly numbers: 42") {
		t.Fatalf("read returned %q", textOf(res))
	}

	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.write_file", Arguments: map[string]any{"path": filepath.Join(shared, "x.txt"), "content": "pwned"}})
	if err == nil || !strings.Contains(err.Error(), "fs-never-write") {
		t.Fatalf("write: want a denial naming policy fs-never-write, got %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(shared, "x.txt")); statErr == nil {
		t.Fatal("denied write reached the filesystem")
	}

	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("s3cret"), 0o600)
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: map[string]any{"path": filepath.Join(outside, "secret.txt")}})
	if err == nil || !strings.Contains(err.Error(), "fs-only-shared-paths") {
		t.Fatalf("read outside the shared dir: want a denial naming fs-only-shared-paths, got %v", err)
	}

	// Every decision and result is in the audit log, and the log verifies.
	events := auditEvents(t, n)
	var allows, denies, results int
	for _, e := range events {
		if e.Type == "decision" {
			var d struct{ Decision string }
			json.Unmarshal(e.Data, &d)
			if d.Decision == "allow" {
				allows++
			} else {
				denies++
			}
		}
		if e.Type == "result" {
			results++
		}
	}
	if allows < 1 || denies < 2 || results < 1 {
		t.Fatalf("audit has %d allows, %d denies, %d results; want ≥1, ≥2, ≥1", allows, denies, results)
	}
}

func auditEvents(t *testing.T, n *testNode) []audit.Event {
	t.Helper()
	v, origin, err := server.AuditVerifier(n.data)
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint in the files over every event acknowledged so far
	// (the log signs them on its own cadence).
	if _, err := n.Audit.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(filepath.Join(n.data, "audit"), v, origin)
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	events, err := n.Audit.Read(0, rep.Size)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// TestMutualTLS: an agent may authenticate with its X.509-SVID instead of
// grant + DPoP.
func TestMutualTLS(t *testing.T) {
	n, shared := fsNode(t)
	creds, _ := n.startSession("reporter", "read the report over mTLS", nil, "")
	cs := n.connect(t, creds.HTTPClient(true), nil)
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: map[string]any{"path": filepath.Join(shared, "report.txt")}})
	if err != nil || !strings.Contains(textOf(res), "42") {
		t.Fatalf("mTLS call: %v %v", err, res)
	}
}

// mcpPost sends one raw JSON-RPC initialize to /mcp with the given headers.
func mcpPost(t *testing.T, n *testNode, hc *http.Client, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// TestBadCredentialsRefused: forged, expired, wrong-key, replayed, bearer and
// garbage credentials never reach the gateway.
func TestBadCredentialsRefused(t *testing.T) {
	n := startNode(t, server.Config{SessionTTL: time.Minute, Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSession("reporter", "probe authentication", nil, "")
	plain := n.tlsClient()
	htu := n.url + "/mcp"
	proof := func(key *ecdsa.PrivateKey, token string) string {
		p, err := grant.NewProof(key, "POST", htu, token, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	// A grant signed by a key that is not ward's.
	forger, _ := grant.NewIssuer(grant.IssuerConfig{Key: otherKey, TrustDomain: "test.ward"})
	forged, err := forger.Issue(grant.Claims{Session: v.Session, SPIFFEID: v.SPIFFEID, Subject: v.SPIFFEID, Agent: "reporter", Sponsor: "acme",
		JKT: mustThumb(t, &otherKey.PublicKey), Scope: grant.Scope{Tools: []string{"*"}}, Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	// A widened grant: the real grant with its payload edited.
	parts := strings.Split(v.Grant, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	widened := strings.Replace(string(payload), `"demo.*"`, `"*"`, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(widened)) + "." + parts[2]

	replayed := proof(creds.Key, v.Grant)
	if status, body := mcpPost(t, n, plain, initBody, map[string]string{"Authorization": "DPoP " + v.Grant, "DPoP": replayed}); status != http.StatusOK {
		t.Fatalf("the genuine grant and proof were refused: %d %s", status, body)
	}

	cases := []struct {
		name string
		hdr  map[string]string
	}{
		{"no credential", nil},
		{"garbage grant", map[string]string{"Authorization": "DPoP not.a.jwt", "DPoP": proof(creds.Key, "not.a.jwt")}},
		{"grant as bearer token", map[string]string{"Authorization": "Bearer " + v.Grant}},
		{"grant without proof", map[string]string{"Authorization": "DPoP " + v.Grant}},
		{"stolen grant, thief's key", map[string]string{"Authorization": "DPoP " + v.Grant, "DPoP": proof(otherKey, v.Grant)}},
		{"replayed proof", map[string]string{"Authorization": "DPoP " + v.Grant, "DPoP": replayed}},
		{"forged grant", map[string]string{"Authorization": "DPoP " + forged, "DPoP": proof(otherKey, forged)}},
		{"widened grant", map[string]string{"Authorization": "DPoP " + tampered, "DPoP": proof(creds.Key, tampered)}},
		{"admin credential", map[string]string{"Authorization": "Bearer " + n.admin}},
		{"foreign origin", map[string]string{"Authorization": "DPoP " + v.Grant, "DPoP": proof(creds.Key, v.Grant), "Origin": "http://evil.example"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := mcpPost(t, n, plain, initBody, tc.hdr)
			if status != http.StatusUnauthorized && status != http.StatusForbidden {
				t.Fatalf("status %d, want 401/403: %s", status, body)
			}
			if strings.Contains(body, v.Grant) {
				t.Fatal("error response echoes the grant")
			}
		})
	}

	// Expired: a session with a 1s lifetime, used after it ends.
	creds2, v2 := n.startSession("reporter", "short-lived", nil, "1s")
	time.Sleep(1500 * time.Millisecond)
	status, body := mcpPost(t, n, plain, initBody, map[string]string{"Authorization": "DPoP " + v2.Grant, "DPoP": proof(creds2.Key, v2.Grant)})
	if status != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Fatalf("expired session: %d %s", status, body)
	}

	// The server kept serving throughout.
	if status, _ := n.call("", "GET", "/healthz", nil); status != http.StatusOK {
		t.Fatalf("healthz after bad input: %d", status)
	}
}

func mustThumb(t *testing.T, pub *ecdsa.PublicKey) string {
	j, err := grant.Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// exchange performs RFC 8693 token exchange as parent for a new key.
func exchange(t *testing.T, n *testNode, parent *sessioncred.Credentials, form url.Values) (int, map[string]json.RawMessage, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := sessioncred.NewKey()
	csr, _ := sessioncred.CSR(key)
	form.Set("grant_type", api.GrantTypeTokenExchange)
	form.Set("subject_token", parent.Grant)
	form.Set("subject_token_type", api.TokenTypeGrant)
	form.Set("csr", base64.RawURLEncoding.EncodeToString(csr))
	req, _ := http.NewRequest("POST", n.url+"/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	proof, _ := grant.NewProof(parent.Key, "POST", n.url+"/v1/token", parent.Grant, time.Now())
	req.Header.Set("DPoP", proof)
	resp, err := n.tlsClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]json.RawMessage
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]json.RawMessage{"raw": json.RawMessage(fmt.Sprintf("%q", b))}
	}
	return resp.StatusCode, out, key
}

// TestDelegation: a sub-agent gets a narrower grant for its own key; widening
// and excessive depth are refused; ending the parent ends the child.
func TestDelegation(t *testing.T) {
	n := startNode(t, server.Config{MaxDepth: 2, Upstreams: demoOnly})
	n.setupAgent("planner", nil, map[string][]string{"tools": {"demo.*"}, "resources": {"note://*"}})
	parent, pv := n.startSession("planner", "plan the notes", map[string][]string{"tools": {"demo.echo", "demo.read_note"}}, "")

	status, out, _ := exchange(t, n, parent, url.Values{"scope": {"tool:demo.write_note"}})
	if status != http.StatusForbidden || !strings.Contains(string(out["error"]), "invalid_scope") || !strings.Contains(string(out["error_description"]), "demo.write_note") {
		t.Fatalf("widening: %d %v", status, out)
	}

	status, out, childKey := exchange(t, n, parent, url.Values{"scope": {"tool:demo.echo"}})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, out)
	}
	var cv api.IssuedView
	if err := json.Unmarshal(out["session"], &cv); err != nil {
		t.Fatal(err)
	}
	if cv.Parent != pv.Session || cv.Depth != 1 || cv.Act == nil || cv.Act.Sub != cv.SPIFFEID {
		t.Fatalf("child: parent %s depth %d act %+v", cv.Parent, cv.Depth, cv.Act)
	}
	var tokType string
	json.Unmarshal(out["token_type"], &tokType)
	if tokType != "DPoP" {
		t.Fatalf("token_type %q", tokType)
	}
	child := n.credentials(childKey, cv)

	// The child's grant works with the child's key only, for its narrower scope.
	cs := n.connect(t, child.HTTPClient(false), nil)
	ctx := ctxT(t)
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(tools.Tools); !got["echo"] || got["read_note"] || got["demo.read_note"] {
		t.Fatalf("child sees %v, want only echo", got)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}}); err == nil || !strings.Contains(err.Error(), "grant does not cover") {
		t.Fatalf("child calling outside its scope: %v", err)
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hi"}}); err != nil || textOf(r) != "hi" {
		t.Fatalf("child echo: %v", err)
	}

	// Depth: grandchild allowed (depth 2), great-grandchild refused.
	status, out, gkey := exchange(t, n, child, url.Values{})
	if status != http.StatusOK {
		t.Fatalf("grandchild: %d %v", status, out)
	}
	var gv api.IssuedView
	json.Unmarshal(out["session"], &gv)
	if gv.Act == nil || gv.Act.Act == nil || gv.Act.Act.Sub != cv.SPIFFEID {
		t.Fatalf("grandchild act chain %+v, want it to name the child as prior actor", gv.Act)
	}
	grandchild := n.credentials(gkey, gv)
	if status, out, _ := exchange(t, n, grandchild, url.Values{}); status != http.StatusForbidden || !strings.Contains(string(out["error_description"]), "depth") {
		t.Fatalf("depth 3: %d %v", status, out)
	}

	// Ending the parent revokes the whole chain, including the live MCP session.
	n.must("POST", "/v1/sessions/"+pv.Session+"/end", map[string]string{"reason": "task done"}, nil)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "still here?"}}); err == nil {
		t.Fatal("child's live MCP session still works after the parent ended")
	}
	for _, c := range []*sessioncred.Credentials{child, grandchild} {
		p, _ := grant.NewProof(c.Key, "POST", n.url+"/mcp", c.Grant, time.Now())
		if status, body := mcpPost(t, n, n.tlsClient(), initBody, map[string]string{"Authorization": "DPoP " + c.Grant, "DPoP": p}); status != http.StatusUnauthorized {
			t.Fatalf("revoked descendant %s: %d %s", c.Session, status, body)
		}
	}

	// The chain of custody: issuance, the session's objective attestation,
	// each exchange with its delegation chain, and the revocation.
	seen := map[string][]map[string]any{}
	for _, e := range auditEvents(t, n) {
		var d map[string]any
		json.Unmarshal(e.Data, &d)
		seen[e.Type] = append(seen[e.Type], d)
	}
	if len(seen["svid.issue"]) != 3 || len(seen["token.exchange"]) != 2 || len(seen["session.end"]) != 1 {
		t.Fatalf("audit: %d svid.issue, %d token.exchange, %d session.end", len(seen["svid.issue"]), len(seen["token.exchange"]), len(seen["session.end"]))
	}
	start := seen["session.start"][0]
	if start["objective_sha256"] != pv.ObjectiveID || start["scope_sha256"] == "" || start["attestation_sha256"] == "" {
		t.Fatalf("session.start does not attest objective and scope: %v", start)
	}
	if ended := seen["session.end"][0]["ended"].([]any); len(ended) != 3 {
		t.Fatalf("session.end recorded %v, want the parent and both descendants", ended)
	}
	if act := seen["token.exchange"][1]["act"].(map[string]any); act["sub"] != gv.SPIFFEID {
		t.Fatalf("exchange record act = %v", act)
	}
}

// TestAuditTamperDetected: altering, removing or reordering an entry makes
// verification fail loudly.
func TestAuditTamperDetected(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("reporter", "make some history", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	for i := 0; i < 3; i++ {
		if _, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	cs.Close()
	n.Close()
	v, origin, err := server.AuditVerifier(data)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "audit")
	if _, err := audit.Verify(dir, v, origin); err != nil {
		t.Fatalf("untouched log: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var entries string
	var biggest int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && !st.IsDir() && st.Size() > biggest {
			biggest, entries = st.Size(), f
		}
	}
	orig, _ := os.ReadFile(entries)
	alter := bytes.Replace(orig, []byte(`"echo"`), []byte(`"ECHO"`), 1)
	if bytes.Equal(alter, orig) {
		alter = append([]byte(nil), orig...)
		alter[len(alter)/2] ^= 0x20
	}
	os.WriteFile(entries, alter, 0o600)
	if _, err := audit.Verify(dir, v, origin); err == nil {
		t.Fatal("an altered entry passed verification")
	} else if !strings.Contains(err.Error(), "entr") {
		t.Fatalf("error does not say where: %v", err)
	}
	os.WriteFile(entries, orig, 0o600)
	if _, err := audit.Verify(dir, v, origin); err != nil {
		t.Fatalf("restored log: %v", err)
	}
	// A node starts from the audit log's remembered head without reading
	// old entries; the verification pass that follows finds the alteration
	// and the log refuses every event (and so every call); the next start
	// verifies the whole log and is refused.
	os.WriteFile(entries, alter, 0o600)
	n2, err := server.Open(ctxT(t), server.Config{Data: data, TrustDomain: "test.ward"})
	if err != nil {
		t.Fatalf("start from the head: %v", err)
	}
	if _, err := n2.Audit.Verify(ctxT(t)); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("verification pass: %v", err)
	}
	if _, err := n2.Audit.Append(ctxT(t), audit.Event{Type: "test"}); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("append after the pass found damage: %v", err)
	}
	n2.Close()
	if _, err := server.Open(ctxT(t), server.Config{Data: data, TrustDomain: "test.ward"}); err == nil || !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("ward reopened a tampered audit log: %v", err)
	}
}

// TestBadMCPInput: malformed JSON-RPC, oversized frames and unknown methods
// from an authenticated agent are refused with a clear error; the session
// keeps working and nothing recorded is lost.
func TestBadMCPInput(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("reporter", "send bad input", nil, "")
	hc := creds.HTTPClient(false)
	cs := n.connect(t, hc, nil)
	ctx := ctxT(t)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "before"}}); err != nil {
		t.Fatal(err)
	}
	sizeBefore := n.Audit.Size()
	sid := cs.ID()

	post := func(body string) (int, string) {
		return mcpPost(t, n, hc, body, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": cs.InitializeResult().ProtocolVersion})
	}
	cases := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"not JSON", `{"jsonrpc":"2.0","id":9,"method":`, http.StatusBadRequest, "-32700"},
		{"duplicate keys", `{"jsonrpc":"2.0","id":9,"method":"tools/call","method":"tools/list"}`, http.StatusBadRequest, "duplicate"},
		{"oversized frame", `{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"` + strings.Repeat("x", 5<<20) + `"}}`, http.StatusRequestEntityTooLarge, "larger than"},
		{"unknown method", `{"jsonrpc":"2.0","id":9,"method":"admin/grant_everything","params":{}}`, http.StatusOK, "does not forward"},
		{"tool name not a string", `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":["demo.echo"]}}`, http.StatusOK, "string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d body %.300s; want %d containing %q", status, body, tc.status, tc.want)
			}
		})
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "after"}}); err != nil || textOf(r) != "after" {
		t.Fatalf("session after bad input: %v", err)
	}
	events := auditEvents(t, n)
	if uint64(len(events)) <= sizeBefore {
		t.Fatalf("audit log lost events: %d before, %d after", sizeBefore, len(events))
	}
}

// TestSponsorCredentials: a sponsor authenticates with its own credential and
// acts only within its ceiling and on its own agents.
func TestSponsorCredentials(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	var alice, bob api.PrincipalView
	n.must("POST", "/v1/sponsors", map[string]any{"name": "alice", "kind": "human", "ceiling": map[string][]string{"tools": {"demo.*"}}}, &alice)
	n.must("POST", "/v1/sponsors", map[string]any{"name": "bob", "kind": "platform", "ceiling": map[string][]string{"tools": {"demo.echo"}}}, &bob)
	if alice.Credential == "" || alice.Credential == bob.Credential {
		t.Fatal("sponsors did not get their own credentials")
	}
	if status, b := n.call(alice.Credential, "POST", "/v1/agents", map[string]any{"name": "a1", "ceiling": map[string][]string{"tools": {"demo.read_note"}}}); status != http.StatusCreated {
		t.Fatalf("sponsor registering its own agent: %d %s", status, b)
	}
	if status, b := n.call(bob.Credential, "POST", "/v1/agents", map[string]any{"name": "b1", "ceiling": map[string][]string{"tools": {"demo.*"}}}); status != http.StatusForbidden || !strings.Contains(string(b), "ceiling") {
		t.Fatalf("agent above the sponsor's ceiling: %d %s", status, b)
	}
	if status, _ := n.call(bob.Credential, "POST", "/v1/agents", map[string]any{"name": "b2", "sponsor": "alice", "ceiling": map[string][]string{"tools": {"demo.echo"}}}); status != http.StatusForbidden {
		t.Fatalf("sponsor registering for another sponsor: %d", status)
	}
	if status, _ := n.call(bob.Credential, "GET", "/v1/agents/a1", nil); status != http.StatusNotFound {
		t.Fatalf("sponsor reading another sponsor's agent: %d", status)
	}
	if status, _ := n.call(bob.Credential, "GET", "/v1/sponsors", nil); status != http.StatusForbidden {
		t.Fatalf("sponsor listing sponsors: %d", status)
	}
	key, _ := sessioncred.NewKey()
	csr, _ := sessioncred.CSR(key)
	body := map[string]any{"agent": "a1", "objective": "read notes", "csr": base64.RawURLEncoding.EncodeToString(csr)}
	if status, _ := n.call(bob.Credential, "POST", "/v1/sessions", body); status != http.StatusForbidden {
		t.Fatalf("sponsor starting another sponsor's agent: %d", status)
	}
	if status, b := n.call(alice.Credential, "POST", "/v1/sessions", body); status != http.StatusCreated {
		t.Fatalf("sponsor starting its agent: %d %s", status, b)
	}
	body["scope"] = map[string][]string{"tools": {"demo.write_note"}}
	if status, b := n.call(alice.Credential, "POST", "/v1/sessions", body); status != http.StatusForbidden || !strings.Contains(string(b), "ceiling") {
		t.Fatalf("session scope above the agent's ceiling: %d %s", status, b)
	}
	if status, _ := n.call("ward_"+strings.Repeat("A", 43), "GET", "/v1/agents", nil); status != http.StatusUnauthorized {
		t.Fatalf("unknown credential: %d", status)
	}
	if status, _ := n.call("", "GET", "/v1/agents", nil); status != http.StatusUnauthorized {
		t.Fatalf("no credential: %d", status)
	}
}

// TestResourcesAndPromptsAuthorized: reading a resource and getting a prompt
// are decided like tool calls.
func TestResourcesAndPromptsAuthorized(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("toolsonly", nil, map[string][]string{"tools": {"demo.*"}})
	n.setupAgent("reader", nil, map[string][]string{"tools": {"demo.*"}, "resources": {"note://*"}, "prompts": {"demo.*"}})
	ctx := ctxT(t)

	creds, _ := n.startSession("toolsonly", "use tools only", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "note://welcome"}); err == nil || !strings.Contains(err.Error(), "grant does not cover resource") {
		t.Fatalf("resource outside the grant: %v", err)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "demo.summarize_notes"}); err == nil || !strings.Contains(err.Error(), "grant does not cover prompt") {
		t.Fatalf("prompt outside the grant: %v", err)
	}
	if tl, err := cs.ListResourceTemplates(ctx, nil); err != nil || len(tl.ResourceTemplates) != 0 {
		t.Fatalf("templates listed outside the grant: %v %v", err, tl)
	}

	creds, _ = n.startSession("reader", "read the notes", nil, "")
	cs = n.connect(t, creds.HTTPClient(false), nil)
	r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "note://welcome"})
	if err != nil || len(r.Contents) == 0 || !strings.Contains(r.Contents[0].Text, "gateway") {
		t.Fatalf("resource within grant and policy: %v", err)
	}
	if p, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "demo.summarize_notes"}); err != nil || len(p.Messages) == 0 {
		t.Fatalf("prompt within grant and policy: %v", err)
	}
	// The default policy lets only group "writers" change notes.
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "x", "text": "y"}}); err == nil || !strings.Contains(err.Error(), "default deny") {
		t.Fatalf("write by a non-writer: %v", err)
	}
}

// TestPolicyErrors: a node refuses to start on a policy it cannot parse and
// says where; a reload with a broken file keeps the policies in force.
func TestPolicyErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ok.cedar"), []byte(`permit (principal, action == Action::"call_tool", resource in Server::"demo");`), 0o600)
	os.WriteFile(filepath.Join(dir, "bad.cedar"), []byte("permit (principal, action, resource)\n  when { context.x == };\n"), 0o600)
	_, err := server.Open(ctxT(t), server.Config{Data: t.TempDir(), Policies: []string{dir}, Upstreams: demoOnly})
	if err == nil || !strings.Contains(err.Error(), "bad.cedar:2:") {
		t.Fatalf("bad policy at start: %v", err)
	}
	if _, err := server.Open(ctxT(t), server.Config{Data: t.TempDir(), Policies: []string{filepath.Join(dir, "nope")}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing policy path: %v", err)
	}
	os.Remove(filepath.Join(dir, "bad.cedar"))
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly})
	if n.Policies().Len() != 1 {
		t.Fatalf("%d policies", n.Policies().Len())
	}
	os.WriteFile(filepath.Join(dir, "bad.cedar"), []byte("forbid (principal, action, resource) when {"), 0o600)
	if _, err := n.ReloadPolicies(); err == nil {
		t.Fatal("reload accepted a broken file")
	}
	if n.Policies().Len() != 1 {
		t.Fatal("a failed reload replaced the policies in force")
	}
	os.WriteFile(filepath.Join(dir, "bad.cedar"), []byte(`forbid (principal, action, resource == Tool::"demo.echo");`), 0o600)
	if got, err := n.ReloadPolicies(); err != nil || got != 2 {
		t.Fatalf("good reload: %d %v", got, err)
	}
}

// TestGuardEndpointsRefuseForgery: the endpoints `ward mcp wrap` uses cannot
// touch the node's own upstreams or decide one thing while recording another.
func TestGuardEndpointsRefuseForgery(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("wrapper", nil, map[string][]string{"tools": {"*"}})
	creds, _ := n.startSession("wrapper", "wrap a local server", nil, "")
	hc := creds.HTTPClient(false)
	post := func(path string, body any) (int, string) {
		b, _ := json.Marshal(body)
		resp, err := hc.Post(n.url+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	def := json.RawMessage(`{"name":"echo","description":"evil"}`)
	cases := []struct {
		name, path string
		body       any
		want       string
	}{
		{"node's own server", "/v1/guard/filter", map[string]any{"kind": "tool", "server": "demo", "items": []map[string]any{{"name": "demo.echo", "upstream": "echo", "definition": def}}}, "served by ward's gateway"},
		{"name mismatch", "/v1/guard/filter", map[string]any{"kind": "tool", "server": "local", "items": []map[string]any{{"name": "local.read", "upstream": "write", "definition": def}}}, "name must be"},
		{"action mismatch", "/v1/guard/check", map[string]any{"operation": map[string]any{"method": "tools/call", "action": "read_resource", "server": "local", "name": "local.x", "upstream": "x"}}, "cannot be decided as"},
		{"unknown kind", "/v1/guard/filter", map[string]any{"kind": "secret", "server": "local", "items": []any{}}, "unknown kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(tc.path, tc.body)
			if status != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	// The node's pins are untouched.
	var pins []api.PinView
	n.must("GET", "/v1/tools?server=demo", nil, &pins)
	for _, p := range pins {
		if strings.Contains(string(p.Definition), "evil") {
			t.Fatalf("an agent rewrote pin %s", p.Name)
		}
	}
}

// TestForeignClientCertificateRecorded: a client certificate from another
// CA, or expired, is refused by the API with 401 and recorded, rather than
// dropped in the TLS handshake without a trace.
func TestForeignClientCertificateRecorded(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := url.Parse("spiffe://test.ward/agent/mallory/session/forged")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), URIs: []*url.URL{id}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}}
	status, body := mcpPost(t, n, hc, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`, nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("forged certificate: %d %s, want 401", status, body)
	}
	found := false
	for _, e := range auditEvents(t, n) {
		if strings.HasPrefix(e.Type, "refusal") && strings.Contains(string(e.Data), "client certificate") && strings.Contains(string(e.Data), "forged") {
			found = true
		}
	}
	if !found {
		t.Fatal("the refused certificate left no record")
	}
}
