package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/server"
)

// TestSwarmBudget is the swarm that agreed with itself: fifty agents of one
// group, each allowed to make the change, all make it at once. The group's
// budget holds exactly; the excess calls wait for a human, and an approved
// one goes through.
func TestSwarmBudget(t *testing.T) {
	const agents, budget = 50, 5
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("shard-owners-index") permit (principal in Group::"shards", action == Action::"call_tool", resource == Tool::"demo.write_note");
`), 0o600)
	dba, _ := policy.ParseApproval("1 of group:dba")
	n := startNode(t, server.Config{
		Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: -1,
		Limits: []quota.Limit{{ID: "schema-changes", Scope: quota.ScopeGroup, Key: "shards",
			Match: quota.Matcher{Tools: []string{"demo.write_note"}}, Window: time.Hour, Max: budget, OnExceed: quota.OnExceedEscalate}},
		LimitApprovers: map[string]policy.Approval{"schema-changes": dba},
		ApproverGroups: map[string][]string{"dba": {"dana"}},
	})
	var sessions []*mcp.ClientSession
	for i := range agents {
		name := fmt.Sprintf("shard-%02d", i)
		n.setupAgent(name, []string{"shards"}, map[string][]string{"tools": {"demo.*"}})
		creds, _ := n.startSession(name, "add the index on my shard", nil, "")
		sessions = append(sessions, n.connect(t, creds.HTTPClient(false), nil))
	}
	var wg sync.WaitGroup
	results := make([]error, agents)
	start := make(chan struct{})
	for i, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, results[i] = cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "index-on-user-id", "text": fmt.Sprint(i)}})
		}()
	}
	close(start)
	wg.Wait()
	ok, pending := 0, 0
	waiting := -1
	for i, err := range results {
		switch {
		case err == nil:
			ok++
		case strings.Contains(err.Error(), "for approval") && strings.Contains(err.Error(), "schema-changes"):
			pending++
			waiting = i
		default:
			t.Errorf("agent %d: unexpected %v", i, err)
		}
	}
	if ok != budget || pending != agents-budget {
		t.Fatalf("%d calls went through and %d wait for approval; want exactly %d and %d", ok, pending, budget, agents-budget)
	}

	var reqs []approval.Request
	n.must("GET", "/v1/approvals?state=pending", nil, &reqs)
	if len(reqs) != agents-budget {
		t.Fatalf("%d pending approval requests, want %d", len(reqs), agents-budget)
	}
	var dana struct{ Credential string }
	n.must("POST", "/v1/sponsors", map[string]any{"name": "dana", "kind": "human"}, &dana)
	target := ""
	for _, r := range reqs {
		var args map[string]any
		json.Unmarshal(r.Arguments, &args)
		if args["text"] == fmt.Sprint(waiting) {
			target = r.ID
		}
	}
	if status, b := n.call(dana.Credential, "POST", "/v1/approvals/"+target+"/approve", map[string]string{"reason": "this shard really needs it"}); status != http.StatusOK {
		t.Fatalf("approve: %d %s", status, b)
	}
	if _, err := sessions[waiting].CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "index-on-user-id", "text": fmt.Sprint(waiting)}}); err != nil {
		t.Fatalf("approved excess call: %v", err)
	}
	// The budget still holds for everyone else.
	other := (waiting + 1) % agents
	if results[other] != nil {
		if _, err := sessions[other].CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "x", "text": "y"}}); err == nil {
			t.Fatal("budget did not hold after one approval")
		}
	}
}

// TestCountersInPolicy: a policy reads how much of a collective limit is
// used and escalates before the budget runs out.
func TestCountersInPolicy(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("writers") permit (principal, action == Action::"call_tool", resource == Tool::"demo.write_note");
@id("slow-down") @escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.write_note")
when { context.counters has "note-writes" && context.counters["note-writes"] >= 2 };
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: -1,
		Limits: []quota.Limit{{ID: "note-writes", Scope: quota.ScopeGroup, Match: quota.Matcher{Tools: []string{"demo.write_note"}}, Window: time.Hour, Max: 100}}})
	n.setupAgent("scribe", []string{"scribes"}, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("scribe", "write notes", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	write := func(i int) error {
		_, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": fmt.Sprint(i), "text": "x"}})
		return err
	}
	for i := 0; i < 2; i++ {
		if err := write(i); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := write(2); err == nil || !strings.Contains(err.Error(), "slow-down") {
		t.Fatalf("third write: %v", err)
	}
}
