package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/receipt"
	"github.com/ward-dev/ward/internal/server"
)

// TestReceiptsBackClaims: an agent's calls through the gateway get signed
// receipts; a true claim checks out against the receipt and the audit log
// offline, and a false one, another session's receipt or an altered receipt
// does not.
func TestReceiptsBackClaims(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSession("reporter", "read the welcome note", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}}); err != nil {
		t.Fatal(err)
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "missing"}}); err != nil || !r.IsError {
		t.Fatalf("a tool error was expected: %v", err)
	}
	other, _ := n.startSession("reporter", "another task", nil, "")
	cs2 := n.connect(t, other.HTTPClient(false), nil)
	if _, err := cs2.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatal(err)
	}

	fetch := func(c *http.Client, session string) []json.RawMessage {
		t.Helper()
		resp, err := c.Get(n.url + "/v1/receipts?session=" + session)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("receipts: %d %s", resp.StatusCode, b)
		}
		var envs []json.RawMessage
		json.Unmarshal(b, &envs)
		return envs
	}
	mine := fetch(creds.HTTPClient(false), v.Session)
	if len(mine) != 2 {
		t.Fatalf("%d receipts, want 2", len(mine))
	}
	theirs := fetch(other.HTTPClient(false), other.Session)
	// A session may not fetch another session's receipts.
	resp, _ := creds.HTTPClient(false).Get(n.url + "/v1/receipts?session=" + other.Session)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign receipts: %d", resp.StatusCode)
	}
	resp.Body.Close()

	pub, err := server.ReceiptKey(data)
	if err != nil {
		t.Fatal(err)
	}
	verifier, origin, _ := server.AuditVerifier(data)
	logDir := filepath.Join(data, "audit")
	check := func(c receipt.Claim, env []byte) error {
		_, err := receipt.CheckClaim(c, env, pub, logDir, verifier, origin)
		return err
	}
	if err := check(receipt.Claim{Session: v.Session, Tool: "demo.read_note", Outcome: receipt.OutcomeSuccess}, mine[0]); err != nil {
		t.Fatalf("true claim: %v", err)
	}
	if err := check(receipt.Claim{Session: v.Session, Tool: "demo.read_note", Outcome: receipt.OutcomeSuccess}, mine[1]); err == nil || !strings.Contains(err.Error(), "tool_error") {
		t.Fatalf("claiming success for a failed call: %v", err)
	}
	if err := check(receipt.Claim{Session: v.Session, Tool: "demo.echo", Outcome: receipt.OutcomeSuccess}, theirs[0]); err == nil || !strings.Contains(err.Error(), "session") {
		t.Fatalf("another session's receipt: %v", err)
	}
	var env receipt.Envelope
	json.Unmarshal(mine[0], &env)
	env.Payload = strings.Replace(env.Payload, env.Payload[10:14], "AAAA", 1)
	altered, _ := json.Marshal(env)
	if err := check(receipt.Claim{Session: v.Session, Tool: "demo.read_note", Outcome: receipt.OutcomeSuccess}, altered); err == nil {
		t.Fatal("an altered receipt was accepted")
	}
}

// TestAgentRecords: the agent framework posts prompts and responses into the
// audit log, attributed to its session; bad records are refused.
func TestAgentRecords(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	key := sessioncredKey(t)
	v := n.startSessionWith(key, map[string]any{"agent": "reporter", "objective": "summarize", "model": "example-model-1", "agent_version": "1.2.3"})
	hc := n.credentials(key, v).HTTPClient(false)
	post := func(body string) (int, string) {
		resp, err := hc.Post(n.url+"/v1/records", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, b := post(`{"kind":"prompt","content":{"messages":[{"role":"user","text":"summarize Q3"}]}}`); status != http.StatusCreated {
		t.Fatalf("record: %d %s", status, b)
	}
	for body, want := range map[string]string{
		`{"kind":"secret","content":"x"}`:         "kind",
		`{"kind":"note"}`:                         "content is required",
		`{"kind":"note","content":"x","extra":1}`: `unknown member \"/extra\"`,
	} {
		if status, b := post(body); status != http.StatusBadRequest || !strings.Contains(b, want) {
			t.Errorf("%s: %d %s", body, status, b)
		}
	}
	var recorded, attested bool
	for _, e := range auditEvents(t, n) {
		if e.Type == "agent.record" && e.Session == v.Session && strings.Contains(string(e.Data), "summarize Q3") {
			recorded = true
		}
		if e.Type == "session.start" && e.Session == v.Session && strings.Contains(string(e.Data), `"model":"example-model-1"`) && strings.Contains(string(e.Data), `"agent_version":"1.2.3"`) {
			attested = true
		}
	}
	if !recorded || !attested {
		t.Fatalf("record in log: %v; model and version attested at session start: %v", recorded, attested)
	}
}

// TestAuditSearch: the query index finds events by session, tool and
// decision, for admins across sponsors and for a sponsor only its own, and
// it survives a restart.
func TestAuditSearch(t *testing.T) {
	data := t.TempDir()
	cfg := server.Config{Data: data, Upstreams: demoOnly}
	n := startNode(t, cfg)
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSession("reporter", "search me", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "x"}})
	cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "a", "text": "b"}})
	var got []struct {
		Index uint64
		Type  string
		Data  json.RawMessage
	}
	n.must("GET", "/v1/audit/events?session="+v.Session+"&type=decision&decision=deny", nil, &got)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "demo.write_note") {
		t.Fatalf("denied decisions of the session: %+v", got)
	}
	n.must("GET", "/v1/audit/events?tool=demo.echo&type=result", nil, &got)
	if len(got) != 1 {
		t.Fatalf("results of demo.echo: %d", len(got))
	}
	var other struct{ Credential string }
	n.must("POST", "/v1/sponsors", map[string]any{"name": "zed", "kind": "human"}, &other)
	status, b := n.call(other.Credential, "GET", "/v1/audit/events?session="+v.Session, nil)
	if status != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("another sponsor searching: %d %s", status, b)
	}
	admin := n.admin
	n.Close()
	n2 := startNode(t, cfg)
	n2.admin = admin
	n2.must("GET", "/v1/audit/events?session="+v.Session+"&type=decision", nil, &got)
	if len(got) != 2 {
		t.Fatalf("after restart: %d decisions", len(got))
	}
}
