package store

import (
	"fmt"
	"strings"
	"testing"
)

// testAuditHandovers: hand-overs are kept per node, oldest first; a
// second hand-over to the same key keeps the first; a node's hand-overs
// are bounded.
func testAuditHandovers(t *testing.T, b backend) {
	s, _ := b.open(t)
	ctx := t.Context()
	h := AuditHandover{Node: "node-a", Old: "k0", New: "k1", Size: 7, Checkpoint: "cp7", Created: t0}
	mustNil(t, "first", s.PutAuditHandover(ctx, h))
	again := h
	again.Size, again.Checkpoint = 9, "cp9"
	mustNil(t, "again", s.PutAuditHandover(ctx, again))
	mustNil(t, "second", s.PutAuditHandover(ctx, AuditHandover{Node: "node-a", Old: "k1", New: "k2", Size: 20, Checkpoint: "cp20", Created: t0}))
	mustNil(t, "other node", s.PutAuditHandover(ctx, AuditHandover{Node: "node-b", Old: "x0", New: "x1", Size: 3, Checkpoint: "cp3", Created: t0}))
	got, err := s.ListAuditHandovers(ctx, "node-a")
	if err != nil || len(got) != 2 || got[0].New != "k1" || got[0].Checkpoint != "cp7" || got[0].Size != 7 || got[1].New != "k2" || !got[1].Created.Equal(t0) {
		t.Fatalf("hand-overs of node-a: %+v %v", got, err)
	}
	if err := s.PutAuditHandover(ctx, AuditHandover{Node: "node-a", Old: "k2", New: "k2", Checkpoint: "x"}); err == nil {
		t.Fatal("a hand-over to the same key was kept")
	}
	for i := range MaxHandovers {
		err := s.PutAuditHandover(ctx, AuditHandover{Node: "node-c", Old: fmt.Sprint("c", i), New: fmt.Sprint("c", i+1), Size: uint64(i), Checkpoint: "cp"})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutAuditHandover(ctx, AuditHandover{Node: "node-c", Old: "c64", New: "c65", Size: 99, Checkpoint: "cp"}); err == nil || !strings.Contains(err.Error(), "kept already") {
		t.Fatalf("hand-over %d: %v", MaxHandovers+1, err)
	}
}

func TestSQLiteAuditHandovers(t *testing.T) { testAuditHandovers(t, sqliteBackend()) }

func TestPostgresAuditHandovers(t *testing.T) { testAuditHandovers(t, postgresBackend()) }
