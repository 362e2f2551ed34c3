package server_test

import (
	"fmt"
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

// TestClusterBudget: one group's budget over three nodes, many calls at
// once on every node: exactly the budget is allowed in total, and every
// other call is refused as over the limit.
func TestClusterBudget(t *testing.T) {
	const budget, perNode, sessions, calls = 30, 3, 3, 10
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("swarm-notes") permit (principal in Group::"swarm", action == Action::"call_tool", resource == Tool::"demo.write_note");
`), 0o600)
	nodes := clusterNodes(t, server.Config{Policies: []string{dir}, Limits: []quota.Limit{{ID: "notes", Scope: quota.ScopeGroup,
		Match: quota.Matcher{Tools: []string{"demo.write_note"}}, Window: time.Hour, Max: budget}}}, perNode)
	nodes[0].setupAgent("worker", []string{"swarm"}, map[string][]string{"tools": {"demo.*"}})
	var allowed, refused atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for ni, n := range nodes {
		for si := range sessions {
			creds, _ := nodes[0].startSession("worker", "write notes", nil, "")
			cs := n.connect(t, creds.HTTPClient(false), nil)
			wg.Go(func() {
				<-start
				for ci := range calls {
					res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.write_note",
						Arguments: map[string]any{"name": fmt.Sprintf("n%d-%d-%d", ni, si, ci), "text": "x"}})
					switch {
					case err == nil && !res.IsError:
						allowed.Add(1)
					case err != nil && strings.Contains(err.Error(), `limit "notes"`):
						refused.Add(1)
					default:
						t.Errorf("node %d: %v %+v", ni, err, res)
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if allowed.Load() != budget || refused.Load() != perNode*sessions*calls-budget {
		t.Fatalf("%d calls allowed and %d refused over three nodes; the budget is %d", allowed.Load(), refused.Load(), budget)
	}
}
