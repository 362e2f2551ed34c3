package server_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/authority"
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
