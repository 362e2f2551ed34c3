package server_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// BenchmarkClusterRevocation measures how long a revocation takes to be
// enforced on another node: each iteration ends on node A a session that
// node B has just served (and cached), and waits until B refuses it. It
// reports the propagation time's p50, p99 and max, from the revocation's
// request on A (which records it in A's audit log and commits it to
// PostgreSQL) to B's refusal, and from A's commit to B's refusal.
//
//	go test -run '^$' -bench BenchmarkClusterRevocation -benchtime 1000x ./internal/server
func BenchmarkClusterRevocation(b *testing.B) {
	na, nb := twoNodes(b, server.Config{})
	na.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	ctx := b.Context()
	admin, err := na.Auth.Authenticate(ctx, na.admin)
	if err != nil {
		b.Fatal(err)
	}
	var fromRequest, fromCommit []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		id := fmt.Sprintf("bench-%d", i)
		i++
		if err := na.Store.CreateSession(ctx, store.Session{ID: id, Agent: "scribe", SPIFFEID: "spiffe://test.ward/agent/scribe/session/" + id,
			Objective: "bench", ObjectiveHash: "h", JKT: "k", GrantID: "g-" + id, Expires: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		if _, err := nb.Auth.Caller(ctx, id); err != nil {
			b.Fatalf("B does not serve the session: %v", err)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := na.Auth.EndSession(ctx, admin, id, "bench"); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		for {
			if _, err := nb.Auth.Caller(ctx, id); err != nil {
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
}
