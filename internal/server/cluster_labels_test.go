package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// TestClusterTaint: a session that read untrusted content through node A
// carries the label on node B, whose policy then refuses the sink it
// would otherwise allow.
func TestClusterTaint(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("no-writes-after-untrusted") forbid (principal, action == Action::"call_tool", resource == Tool::"demo.write_note")
  when { context.taint.contains("untrusted") };
`), 0o600)
	a, b := twoNodes(t, server.Config{Policies: []string{dir}})
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, view := a.startSession("scribe", "take notes", nil, "")
	onB := b.connect(t, creds.HTTPClient(false), nil)
	write := &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "n", "text": "t"}}
	if res, err := onB.CallTool(ctxT(t), write); err != nil || res.IsError {
		t.Fatalf("a write on B before anything was read: %v %+v", err, res)
	}
	onA := a.connect(t, creds.HTTPClient(false), nil)
	if res, err := onA.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}}); err != nil || res.IsError {
		t.Fatalf("read on A: %v %+v", err, res)
	}
	if !slices.Contains(a.SessionLabels(view.Session), "untrusted") {
		t.Fatalf("A's labels: %v", a.SessionLabels(view.Session))
	}
	waitApplied(t, a.Store, b)
	if !slices.Contains(b.SessionLabels(view.Session), "untrusted") {
		t.Fatalf("B's labels after A's: %v", b.SessionLabels(view.Session))
	}
	if _, err := onB.CallTool(ctxT(t), write); err == nil || !strings.Contains(err.Error(), "no-writes-after-untrusted") {
		t.Fatalf("a write on B after reading untrusted content on A: %v", err)
	}
}

// TestClusterResync: a node that fell behind the change feed past what
// the store kept resyncs from the store's state: a session ended and a
// label given meanwhile on another node are enforced once it follows
// the feed again.
func TestClusterResync(t *testing.T) {
	a, b := twoNodes(t, server.Config{})
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	ended, endedView := a.startSession("scribe", "one", nil, "")
	_, labelled := a.startSession("scribe", "two", nil, "")
	if status, body := whoami(t, b, ended.HTTPClient(false)); status != http.StatusOK {
		t.Fatalf("B before: %d %s", status, body)
	}
	b.PauseFeed(true)
	a.must("POST", "/v1/sessions/"+endedView.Session+"/end", map[string]string{"reason": "done"}, nil)
	if err := a.Store.AddSessionLabels(t.Context(), labelled.Session, "untrusted"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.PruneChanges(t.Context(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.PauseFeed(false)
	waitApplied(t, a.Store, b)
	if status, _ := whoami(t, b, ended.HTTPClient(false)); status != http.StatusUnauthorized {
		t.Fatalf("B after resync serves the ended session: %d", status)
	}
	if !slices.Contains(b.SessionLabels(labelled.Session), "untrusted") {
		t.Fatalf("B after resync: labels %v", b.SessionLabels(labelled.Session))
	}
}
