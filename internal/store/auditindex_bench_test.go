package store

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkIndexAuditPostgres(b *testing.B) {
	s := openPostgres(b, newPostgresSchema(b))
	rows := make([]AuditRow, 1000)
	base := 0
	b.ResetTimer()
	for b.Loop() {
		for i := range rows {
			rows[i] = AuditRow{Index: uint64(base + i), Time: time.Now(), Type: "decision", Session: "s", Agent: "a", Sponsor: "sp", Name: "demo.echo", Decision: "allow",
				Entry: fmt.Sprintf(`{"v":2,"index":%d,"time":"2026-12-07T18:00:00Z","type":"decision","actor":"spiffe://x/agent/a","data":{"name":"demo.echo","decision":"allow","reasons":["p1"]}}`, base+i)}
		}
		if err := s.IndexAudit(b.Context(), rows); err != nil {
			b.Fatal(err)
		}
		base += len(rows)
	}
}
