package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// BenchmarkClusterRevocation measures how long a revocation takes to be
// enforced on another node: each iteration ends on node A a session that
// node B has just served (and cached), and waits until B refuses it. It
// reports the time until B refuses (because it applied the revocation,
// or, counted as stale-refusals, because it could not confirm it knows
// the revocations made elsewhere): p50, p99 and max, from the revocation's
// request on A (which records it in A's audit log and commits it to
// PostgreSQL) to B's refusal, and from A's commit to B's refusal.
//
// In "poll", B ignores PostgreSQL's notifications: the time a lost
// notification costs.
//
//	go test -run '^$' -bench BenchmarkClusterRevocation -benchtime 1000x ./internal/server
func BenchmarkClusterRevocation(b *testing.B) {
	b.Run("notify", func(b *testing.B) { benchRevocation(b, false) })
	b.Run("poll", func(b *testing.B) { benchRevocation(b, true) })
}

func benchRevocation(b *testing.B, poll bool) {
	na, nb := twoNodes(b, server.Config{})
	if poll {
		nb.IgnoreNotifications()
	}
	na.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	ctx := b.Context()
	admin, err := na.Auth.Authenticate(ctx, na.admin)
	if err != nil {
		b.Fatal(err)
	}
	var fromRequest, fromCommit []time.Duration
	stale := 0
	i := 0
	for b.Loop() {
		b.StopTimer()
		id := fmt.Sprintf("bench-%d", i)
		i++
		if err := na.Store.CreateSession(ctx, store.Session{ID: id, Agent: "scribe", SPIFFEID: "spiffe://test.ward/agent/scribe/session/" + id,
			Objective: "bench", ObjectiveHash: "h", JKT: "k", GrantID: "g-" + id, Expires: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		for {
			_, err := nb.Auth.Caller(ctx, id)
			if err == nil {
				break
			}
			if !errors.Is(err, authority.ErrUnavailable) {
				b.Fatalf("B does not serve the session: %v", err)
			}
			time.Sleep(time.Millisecond) // B is catching up with the feed
		}
		b.StartTimer()
		start := time.Now()
		if _, err := na.Auth.EndSession(ctx, admin, id, "bench"); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		for {
			_, err := nb.Auth.Caller(ctx, id)
			if errors.Is(err, authority.ErrUnavailable) {
				stale++ // refused as stale before the revocation arrived
			}
			if err != nil {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
		done := time.Now()
		fromRequest = append(fromRequest, done.Sub(start))
		fromCommit = append(fromCommit, done.Sub(committed))
	}
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, name+"-p99-ms")
		b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, name+"-max-ms")
	}
	report("request", fromRequest)
	report("commit", fromCommit)
	b.ReportMetric(float64(stale), "stale-refusals")
}

// BenchmarkClusterToolCall: a tool call through a node alone on SQLite,
// through the second node of two on PostgreSQL (following the change
// feed, checking freshness on every call), and the same with a group
// budget every call is charged to (spent from the node's lease).
//
//	go test -run '^$' -bench BenchmarkClusterToolCall -benchmem ./internal/server
func BenchmarkClusterToolCall(b *testing.B) {
	url := benchUpstream(b)
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`permit (principal, action == Action::"call_tool", resource in Server::"up");`), 0o600)
	cfg := server.Config{Policies: []string{dir}, Upstreams: []server.Upstream{{Name: "up", URL: url}}}
	through := func(b *testing.B, start, serve *testNode) {
		start.setupAgent("bench", []string{"swarm"}, map[string][]string{"tools": {"up.*"}})
		creds, _ := start.startSession("bench", "benchmark", nil, "1h")
		loopCalls(b, serve.connect(b, creds.HTTPClient(false), nil), "up.echo")
	}
	b.Run("sqlite-one-node", func(b *testing.B) {
		n := startNode(b, cfg)
		through(b, n, n)
	})
	b.Run("postgres-two-nodes", func(b *testing.B) {
		a, other := twoNodes(b, cfg)
		through(b, a, other)
	})
	b.Run("postgres-two-nodes-budget", func(b *testing.B) {
		c := cfg
		c.Limits = []quota.Limit{{ID: "calls", Scope: quota.ScopeGroup, Window: time.Hour, Max: 1e9}}
		a, other := twoNodes(b, c)
		through(b, a, other)
	})
}

// BenchmarkClusterThroughput: eight sessions calling at once, spread over
// 1, 2 and 3 nodes on one PostgreSQL schema, every call charged to one
// group budget. It reports calls/s. All nodes share this process and its
// two cores, so more nodes add no capacity here: it shows what spreading
// one swarm over several nodes costs, not what it gains on several
// machines.
//
//	go test -run '^$' -bench BenchmarkClusterThroughput -benchtime 2000x ./internal/server
func BenchmarkClusterThroughput(b *testing.B) {
	url := benchUpstream(b)
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`permit (principal, action == Action::"call_tool", resource in Server::"up");`), 0o600)
	cfg := server.Config{Policies: []string{dir}, Upstreams: []server.Upstream{{Name: "up", URL: url}},
		Limits: []quota.Limit{{ID: "calls", Scope: quota.ScopeGroup, Window: time.Hour, Max: 1e9}}}
	const sessions = 8
	for _, k := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes-%d", k), func(b *testing.B) {
			nodes := clusterNodes(b, cfg, k)
			nodes[0].setupAgent("bench", []string{"swarm"}, map[string][]string{"tools": {"up.*"}})
			var clients []*mcp.ClientSession
			for i := range sessions {
				creds, _ := nodes[0].startSession("bench", "benchmark", nil, "1h")
				clients = append(clients, nodes[i%k].connect(b, creds.HTTPClient(false), nil))
			}
			params := &mcp.CallToolParams{Name: "up.echo", Arguments: map[string]any{"text": "hello"}}
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for _, cs := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := cs.CallTool(context.Background(), params); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
		})
	}
}
