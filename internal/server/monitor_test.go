package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/monitor"
	"github.com/ward-dev/ward/internal/server"
)

// TestPlaybookQuarantinesOnDrift: a session that declared it works on
// notes calls a destructive tool outside that objective; the drift signal's
// playbook quarantines the agent (its sessions end, its grants are revoked)
// and preserves a forensic bundle, all recorded; the call itself is denied
// and revocation is in force when it returns.
func TestPlaybookQuarantinesOnDrift(t *testing.T) {
	mc := monitor.DefaultConfig()
	mc.Categories = map[string][]string{"demo.*": {"notes"}, "demo.delete_note": {"destructive"}}
	mc.Playbooks = []monitor.Playbook{{Name: "contain-drift", Signals: []string{monitor.SignalDrift}, Actions: []string{"quarantine", "preserve"}}}
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly, Monitor: &mc})
	n.setupAgent("tidy", []string{"writers"}, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSessionWithTags("tidy", "tidy the notes", []string{"notes"})
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.list_notes", Arguments: map[string]any{}}); err != nil {
		t.Fatalf("call inside the objective: %v", err)
	}
	start := time.Now()
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}})
	inForce := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "quarantined by playbook") {
		t.Fatalf("drifting call: %v", err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.list_notes", Arguments: map[string]any{}}); err == nil {
		t.Fatal("the quarantined agent's session still works")
	}
	t.Logf("signal to revocation in force at the gateway: %v (the drifting call's round trip)", inForce)

	var agent struct {
		Status string
		Trust  int
	}
	n.must("GET", "/v1/agents/tidy", nil, &agent)
	if agent.Status != "quarantined" || agent.Trust >= 50 {
		t.Fatalf("agent status %q, trust %d (the drift should have cost trust, kept in the store)", agent.Status, agent.Trust)
	}
	events, err := n.Audit.Read(0, n.Audit.Size())
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range events {
		switch e.Type {
		case "signal", "response":
			var d struct {
				Kind   string `json:"kind"`
				Signal struct{ Kind string }
			}
			json.Unmarshal(e.Data, &d)
			seen = append(seen, e.Type+":"+d.Kind)
		case "agent.quarantine", "session.end":
			seen = append(seen, e.Type)
		}
	}
	if got := strings.Join(seen, " "); !strings.Contains(got, "signal:drift response:quarantine agent.quarantine session.end response:preserve") {
		t.Fatalf("recorded: %s", got)
	}
	// The bundle is written in the background.
	deadline := time.Now().Add(20 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(data, "forensics", v.Session+"-*.json"))
		if len(files) == 1 {
			b, _ := os.ReadFile(files[0])
			if !strings.Contains(string(b), "c2sp.org/tlog-proof") {
				t.Fatal("forensic bundle without proofs")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no forensic bundle preserved")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
