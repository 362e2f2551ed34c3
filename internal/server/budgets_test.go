package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/server"
)

// TestBudgetsSurviveRestarts: a group budget once allowed a whole budget
// more after every restart. Usage is now rebuilt from a snapshot and the
// audit log: after a clean restart, after the snapshot is lost, and after
// a crash that left an old snapshot behind (the log's later decisions are
// applied again), the budget allows exactly what is left. A call that
// reached its upstream counts even if the upstream failed it.
func TestBudgetsSurviveRestarts(t *testing.T) {
	// An upstream whose tools always fail: they were called all the same.
	up := mcp.NewServer(&mcp.Implementation{Name: "flaky", Version: "1"}, nil)
	for _, name := range []string{"fail", "fail2"} {
		up.AddTool(&mcp.Tool{Name: name, Description: "Fails.", InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return nil, errors.New("down")
			})
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	t.Cleanup(srv.Close)

	data := t.TempDir()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`@id("all") permit (principal, action == Action::"call_tool", resource);`), 0o600)
	// One budget per way of restarting, each of 10 calls of its tools.
	limit := func(id string, tools ...string) quota.Limit {
		return quota.Limit{ID: id, Scope: quota.ScopeGroup, Window: time.Hour, Max: 10, Match: quota.Matcher{Tools: tools}}
	}
	cfg := server.Config{Data: data, Policies: []string{dir},
		Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}, {Name: "flaky", URL: srv.URL}},
		Limits: []quota.Limit{limit("clean", "demo.echo", "flaky.fail"), limit("crash", "demo.add", "flaky.fail2"),
			limit("lost", "demo.list_notes")}}
	n := startNode(t, cfg)
	n.setupAgent("worker", []string{"crew"}, map[string][]string{"tools": {"demo.*", "flaky.*"}})
	admin := n.admin

	// calls makes k concurrent calls of tool from a fresh session and
	// counts those ward let through (a refused call is a CodeDenied error;
	// a flaky tool's own failure is not a refusal).
	calls := func(n *testNode, tool string, k int) (allowed int) {
		creds, _ := n.startSession("worker", "work", nil, "")
		cs := n.connect(t, creds.HTTPClient(false), nil)
		var ok atomic.Int64
		var wg sync.WaitGroup
		for i := range k {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"text": fmt.Sprint(i)}})
				switch {
				case err == nil, strings.Contains(tool, "flaky") && strings.Contains(err.Error(), "down"):
					ok.Add(1)
				case strings.Contains(err.Error(), "is used up"):
				default:
					t.Errorf("%s: %v", tool, err)
				}
			}()
		}
		wg.Wait()
		return int(ok.Load())
	}
	expect := func(what string, got, want int) {
		t.Helper()
		if t.Failed() {
			for _, e := range auditEvents(t, n) {
				if strings.HasPrefix(e.Type, "tool") {
					t.Logf("%d %s %s", e.Index, e.Type, e.Data)
				}
			}
			t.FailNow()
		}
		if got != want {
			t.Fatalf("%s: %d calls let through, want %d", what, got, want)
		}
	}
	restart := func(prep func()) {
		n.Close()
		if prep != nil {
			prep()
		}
		n = startNode(t, cfg)
		n.admin = admin
	}

	// Used before the restarts: clean 6 + 3 failed, crash 3, lost 7.
	expect("clean, first", calls(n, "demo.echo", 6), 6)
	expect("clean, failing", calls(n, "flaky.fail", 3), 3)
	expect("crash, first", calls(n, "demo.add", 3), 3)
	expect("lost, first", calls(n, "demo.list_notes", 7), 7)
	restart(nil)
	snapshot, err := os.ReadFile(filepath.Join(data, "budgets.json"))
	if err != nil {
		t.Fatalf("no budgets snapshot: %v", err)
	}
	// After the snapshot above, crash 4 + 2 failed: in the log only once
	// the old snapshot is put back, as a kill -9 would leave it.
	expect("crash, second", calls(n, "demo.add", 4), 4)
	expect("crash, failing", calls(n, "flaky.fail2", 2), 2)
	restart(func() { os.WriteFile(filepath.Join(data, "budgets.json"), snapshot, 0o600) })
	expect("clean, after a clean restart", calls(n, "demo.echo", 10), 1)
	expect("crash, after a crash", calls(n, "demo.add", 10), 1)
	restart(func() { os.Remove(filepath.Join(data, "budgets.json")) })
	expect("lost, after losing the snapshot", calls(n, "demo.list_notes", 10), 3)
	restart(nil)
	for _, tool := range []string{"demo.echo", "demo.add", "demo.list_notes"} {
		expect(tool+", used up, after another restart", calls(n, tool, 5), 0)
	}
}
