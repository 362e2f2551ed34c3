package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/server"
)

// TestEscalationToApproval: a call a policy escalates is held, then answered
// "approval pending" with the request id; a quorum of the named group
// approves through the API; the agent's retry of the exact same call goes
// through once; the sponsor cannot approve its own agent's call, a
// non-member cannot vote, and every step is in the audit log.
func TestEscalationToApproval(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("deletes-need-a-dba") @escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: 300 * time.Millisecond,
		ApproverGroups: map[string][]string{"dba": {"dana", "acme"}}})
	n.setupAgent("janitor", nil, map[string][]string{"tools": {"demo.*"}})
	var dana, eve api.PrincipalView
	n.must("POST", "/v1/sponsors", map[string]any{"name": "dana", "kind": "human"}, &dana)
	n.must("POST", "/v1/sponsors", map[string]any{"name": "eve", "kind": "human"}, &eve)
	creds, _ := n.startSession("janitor", "clean up notes", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)
	del := &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}}

	_, err := cs.CallTool(ctx, del)
	if err == nil || !strings.Contains(err.Error(), "holding tools/call demo.delete_note for approval") || !strings.Contains(err.Error(), "1 of group:dba") {
		t.Fatalf("escalated call: %v", err)
	}
	var pending []approval.Request
	n.must("GET", "/v1/approvals?state=pending", nil, &pending)
	if len(pending) != 1 || pending[0].Name != "demo.delete_note" || pending[0].Session != creds.Session || pending[0].Objective != "clean up notes" {
		t.Fatalf("pending approvals: %+v", pending)
	}
	id := pending[0].ID
	if !strings.Contains(err.Error(), id) {
		t.Fatalf("the pending error does not name request %s: %v", id, err)
	}
	// Retrying before approval escalates again to the same request.
	if _, err := cs.CallTool(ctx, del); err == nil || !strings.Contains(err.Error(), id) {
		t.Fatalf("retry while pending: %v", err)
	}

	// The sponsor of the agent (in group dba here) may not approve its own agent's call.
	adminAsSponsor := "acme"
	_ = adminAsSponsor
	status, body := n.call(eve.Credential, "POST", "/v1/approvals/"+id+"/approve", map[string]string{"reason": "sure"})
	if status != http.StatusForbidden || !strings.Contains(body2s(body), "not eligible") {
		t.Fatalf("non-member vote: %d %s", status, body)
	}
	status, body = n.call(dana.Credential, "POST", "/v1/approvals/"+id+"/approve", map[string]string{"reason": "stale note"})
	if status != http.StatusOK {
		t.Fatalf("dba approval: %d %s", status, body)
	}
	if status, _ := n.call(dana.Credential, "POST", "/v1/approvals/"+id+"/approve", nil); status != http.StatusConflict {
		t.Fatalf("second vote on a decided request: %d", status)
	}

	// A different call (other arguments) is not covered by the approval.
	other := &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "other"}}
	if _, err := cs.CallTool(ctx, other); err == nil || strings.Contains(err.Error(), id) {
		t.Fatalf("approval leaked to other arguments: %v", err)
	}
	// The exact call now goes through, once.
	if r, err := cs.CallTool(ctx, del); err != nil || !strings.Contains(textOf(r), "deleted welcome") {
		t.Fatalf("approved retry: %v", err)
	}
	if _, err := cs.CallTool(ctx, del); err == nil || !strings.Contains(err.Error(), "approval") {
		t.Fatalf("approval was reusable: %v", err)
	}

	seen := map[string]int{}
	for _, e := range auditEvents(t, n) {
		seen[e.Type]++
		if e.Type == "decision" {
			var d struct{ Decision string }
			json.Unmarshal(e.Data, &d)
			seen["decision."+d.Decision]++
		}
	}
	if seen["approval.pending"] < 2 || seen["approval.approved"] < 1 || seen["approval.used"] < 1 || seen["decision.escalate"] < 3 || seen["decision.allow"] < 1 {
		t.Fatalf("audit trail of the escalation: %v", seen)
	}
}

// TestEscalationSelfApproval: the agent's sponsor cannot approve its own
// agent's escalated call, even when it is in the approver group.
func TestEscalationSelfApproval(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("writes-need-review") @escalate("1 of group:reviewers")
permit (principal, action == Action::"call_tool", resource == Tool::"demo.write_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: -1,
		ApproverGroups: map[string][]string{"reviewers": {"acme"}}})
	n.setupAgent("writer", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("writer", "write a note", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	_, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "n", "text": "t"}})
	if err == nil || !strings.Contains(err.Error(), "approval") {
		t.Fatalf("escalated permit: %v", err)
	}
	var pending []approval.Request
	n.must("GET", "/v1/approvals", nil, &pending)
	var acme api.PrincipalView
	n.must("POST", "/v1/sponsors/acme/credentials", struct{}{}, &acme)
	var cred map[string]string
	_, b := n.call(n.admin, "POST", "/v1/sponsors/acme/credentials", struct{}{})
	json.Unmarshal(b, &cred)
	status, body := n.call(cred["credential"], "POST", "/v1/approvals/"+pending[0].ID+"/approve", nil)
	if status != http.StatusForbidden || !strings.Contains(body2s(body), "self-approval") {
		t.Fatalf("sponsor approving its own agent: %d %s", status, body)
	}
}

func body2s(b []byte) string { return string(b) }

// TestReviewerAgent: a reviewer agent (a webhook) approves an escalated call
// while it is held, and the call goes through in the same request.
func TestReviewerAgent(t *testing.T) {
	var asked int
	var mu sync.Mutex
	reviewer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req approval.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name != "demo.delete_note" {
			http.Error(w, "bad request", 400)
			return
		}
		mu.Lock()
		asked++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"approve": true, "reason": "the note is stale"}`))
	}))
	defer reviewer.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("deletes-need-review") @escalate("1 of group:reviewers")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: 10 * time.Second,
		Reviewers: []server.Reviewer{{Name: "risk-bot", URL: reviewer.URL, Groups: []string{"reviewers"}}}})
	n.setupAgent("janitor", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("janitor", "clean up", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	r, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}})
	if err != nil || !strings.Contains(textOf(r), "deleted") {
		t.Fatalf("held call approved by the reviewer agent: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked != 1 {
		t.Fatalf("reviewer asked %d times", asked)
	}
}

// TestApprovalsSurviveRestart: a pending approval request is still there
// after the node restarts, and the approval granted then lets the call
// through.
func TestApprovalsSurviveRestart(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("writes-need-review") @escalate("1 of group:dba")
permit (principal, action == Action::"call_tool", resource == Tool::"demo.write_note");
`), 0o600)
	cfg := server.Config{Data: data, Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: -1,
		ApproverGroups: map[string][]string{"dba": {"admin"}}}
	n := startNode(t, cfg)
	n.setupAgent("writer", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("writer", "write", nil, "1h")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	call := &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "n", "text": "t"}}
	if _, err := cs.CallTool(ctxT(t), call); err == nil {
		t.Fatal("escalated call went through")
	}
	cs.Close()
	admin := n.admin
	n.Close()

	n2 := startNode(t, cfg)
	n2.admin = admin
	var pending []approval.Request
	n2.must("GET", "/v1/approvals?state=pending", nil, &pending)
	if len(pending) != 1 {
		t.Fatalf("after restart: %d pending approvals, want 1", len(pending))
	}
	n2.must("POST", "/v1/approvals/"+pending[0].ID+"/approve", map[string]string{"reason": "ok"}, nil)
	creds.Server = n2.url
	cs2 := n2.connect(t, creds.HTTPClient(false), nil)
	if _, err := cs2.CallTool(ctxT(t), call); err != nil {
		t.Fatalf("approved call after restart: %v", err)
	}
}

// TestHeldCallReportsProgress: while an escalated call is held, a client
// that asked for progress hears about it, and an approval given during the
// hold lets the same request finish.
func TestHeldCallReportsProgress(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("writes-need-review") @escalate("1 of group:dba")
permit (principal, action == Action::"call_tool", resource == Tool::"demo.write_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: 50 * time.Second,
		ApproverGroups: map[string][]string{"dba": {"admin"}}})
	n.setupAgent("writer", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("writer", "write", nil, "")
	var mu sync.Mutex
	var messages []string
	cs := n.connect(t, creds.HTTPClient(false), &mcp.ClientOptions{ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		messages = append(messages, req.Params.Message)
		mu.Unlock()
	}})
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "n", "text": "t"},
			Meta: mcp.Meta{"progressToken": "hold-1"}})
		done <- err
	}()
	var pending []approval.Request
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n.must("GET", "/v1/approvals?state=pending", nil, &pending)
	}
	if len(pending) == 0 {
		t.Fatal("no approval request appeared")
	}
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(messages)
		mu.Unlock()
		if got > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if len(messages) == 0 || !strings.Contains(messages[0], pending[0].ID) {
		t.Fatalf("progress while held: %v", messages)
	}
	mu.Unlock()
	n.must("POST", "/v1/approvals/"+pending[0].ID+"/approve", map[string]string{"reason": "fine"}, nil)
	if err := <-done; err != nil {
		t.Fatalf("held call after approval: %v", err)
	}
}

// TestVetoHoldsForTheCall: after an approver denies a held call, the
// agent's identical retry is denied (naming the veto) instead of going to
// the approvers again; a call with other arguments is escalated as usual.
func TestVetoHoldsForTheCall(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("deletes-need-a-dba") @escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: -1,
		ApproverGroups: map[string][]string{"dba": {"dana"}}})
	n.setupAgent("janitor", nil, map[string][]string{"tools": {"demo.*"}})
	var dana api.PrincipalView
	n.must("POST", "/v1/sponsors", map[string]any{"name": "dana", "kind": "human"}, &dana)
	creds, _ := n.startSession("janitor", "clean up notes", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)
	del := &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}}
	if _, err := cs.CallTool(ctx, del); err == nil || !strings.Contains(err.Error(), "for approval") {
		t.Fatalf("escalated call: %v", err)
	}
	var pending []approval.Request
	n.must("GET", "/v1/approvals?state=pending", nil, &pending)
	if len(pending) != 1 {
		t.Fatalf("pending: %+v", pending)
	}
	if status, body := n.call(dana.Credential, "POST", "/v1/approvals/"+pending[0].ID+"/deny", map[string]string{"reason": "keep the welcome note"}); status != http.StatusOK {
		t.Fatalf("deny: %d %s", status, body)
	}
	for range 3 {
		_, err := cs.CallTool(ctx, del)
		if err == nil || !strings.Contains(err.Error(), "vetoed by dana") || !strings.Contains(err.Error(), "keep the welcome note") {
			t.Fatalf("retry after a veto: %v", err)
		}
	}
	n.must("GET", "/v1/approvals?state=pending", nil, &pending)
	if len(pending) != 0 {
		t.Fatalf("the vetoed call went back to the approvers: %+v", pending)
	}
	other := &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "other"}}
	if _, err := cs.CallTool(ctx, other); err == nil || !strings.Contains(err.Error(), "for approval") {
		t.Fatalf("another call after a veto: %v", err)
	}
}
