package server_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// BenchmarkClusterAuditSearch: node B answers a search of 1,000 of node
// A's events (of 10,000), each proven against A's head from the tiles in
// the store. It reports, once, the time A took to index and tile its
// 10,000 events (index_tile_ms).
func BenchmarkClusterAuditSearch(b *testing.B) {
	nodes := clusterNodes(b, server.Config{}, 2)
	a, n2 := nodes[0], nodes[1]
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Go(func() {
			for i := range 500 {
				if _, err := a.Audit.Append(ctx, audit.Event{Type: "bench.search", Actor: "bench", Agent: "scribe", Data: json.RawMessage(`{"name":"demo.echo","decision":"allow","w":` + strconv.Itoa(w) + `,"i":` + strconv.Itoa(i) + `}`)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	start := time.Now()
	if err := a.Cosign(ctx); err != nil {
		b.Fatal(err)
	}
	shared := time.Since(start)
	for range 2 {
		n2.Cosign(ctx)
		a.Cosign(ctx)
	}
	q := store.AuditQuery{Type: "bench.search", Node: a.NodeID(), Limit: 1000}
	b.ResetTimer()
	for b.Loop() {
		evs, err := n2.SearchAuditSystem(ctx, q)
		if err != nil || len(evs) != 1000 {
			b.Fatalf("%d events: %v", len(evs), err)
		}
	}
	b.ReportMetric(float64(shared.Milliseconds()), "index_tile_ms")
}
