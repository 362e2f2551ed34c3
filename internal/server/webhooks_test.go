package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/webhook"
)

// TestApprovalWebhook: an escalated call is pushed to the approvers'
// webhook as "approval.pending", signed with the endpoint's secret; a
// receiver that fails first is retried; the delivery's outcome is in the
// audit log, naming the endpoint and not its URL.
func TestApprovalWebhook(t *testing.T) {
	secret := []byte("a-webhook-secret-of-some-length")
	got := make(chan map[string]any, 8)
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header.Get("Ward-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("unsigned delivery: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if attempts.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // retried
			return
		}
		var msg map[string]any
		json.Unmarshal(body, &msg)
		got <- msg
		io.WriteString(w, `{"received":true}`)
	}))
	defer srv.Close()

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("deletes-need-a-dba") @escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: -1,
		ApproverGroups: map[string][]string{"dba": {"dana"}},
		Webhooks:       []webhook.Endpoint{{Name: "approvers", URL: srv.URL + "/hook?token=abc123", Secret: secret, Events: []string{"approval.*"}}}})
	n.setupAgent("janitor", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("janitor", "clean up notes", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	if _, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}}); err == nil {
		t.Fatal("escalated call went through")
	}
	msg := <-got
	data, _ := msg["data"].(map[string]any)
	if msg["event"] != "approval.pending" || data["name"] != "demo.delete_note" || data["session"] != creds.Session || data["state"] != "pending" {
		t.Fatalf("webhook message %v", msg)
	}
	// The held call is waiting in the queue, and /metrics says so.
	if m := sample(scrape(t, n, ""), "ward_approvals_waiting", map[string]string{}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("ward_approvals_waiting = %v, want 1", m)
	}
	n.Close() // waits for the delivery's record
	v, origin, err := server.AuditVerifier(n.data)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(filepath.Join(n.data, "audit"), v, origin)
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	events, err := audit.ReadDir(filepath.Join(n.data, "audit"), 0, rep.Size)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range events {
		if e.Type != "webhook.delivery" {
			continue
		}
		found = true
		if s := string(e.Data); !strings.Contains(s, `"endpoint":"approvers"`) || !strings.Contains(s, `"delivered":true`) || !strings.Contains(s, `"attempts":2`) || strings.Contains(s, "abc123") {
			t.Fatalf("delivery record %s", s)
		}
	}
	if !found {
		t.Fatal("no webhook.delivery event")
	}
}
