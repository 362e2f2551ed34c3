package store

import (
	"errors"
	"testing"
)

// testAuditHeads: a node's head only grows, keeps its origin and key,
// and is listed with the others.
func testAuditHeads(t *testing.T, b backend) {
	s, _ := b.open(t)
	ctx := t.Context()
	h := AuditHead{Node: "node-a", Origin: "td/audit/node-a", VKey: "td/audit/node-a+1234+AAAA", Size: 5, Checkpoint: "cp5", Updated: t0}
	mustNil(t, "first", s.PutAuditHead(ctx, h))
	h.Size, h.Checkpoint = 9, "cp9"
	mustNil(t, "grow", s.PutAuditHead(ctx, h))
	mustNil(t, "same size", s.PutAuditHead(ctx, h))
	shrunk := h
	shrunk.Size = 4
	if err := s.PutAuditHead(ctx, shrunk); !errors.Is(err, ErrConflict) {
		t.Fatalf("a smaller head: %v", err)
	}
	other := h
	other.VKey = "td/audit/node-a+9999+BBBB"
	if err := s.PutAuditHead(ctx, other); !errors.Is(err, ErrConflict) {
		t.Fatalf("another key: %v", err)
	}
	// A put that names the head it checked against does not replace
	// another one stored since.
	raced := h
	raced.Size, raced.Checkpoint, raced.Prev = 12, "cp12-fork", "cp5"
	if err := s.PutAuditHead(ctx, raced); !errors.Is(err, ErrConflict) {
		t.Fatalf("a head checked against one replaced since: %v", err)
	}
	raced.Size, raced.Checkpoint, raced.Prev = 9, "cp9", "cp9"
	mustNil(t, "checked against the stored head", s.PutAuditHead(ctx, raced))
	mustNil(t, "b", s.PutAuditHead(ctx, AuditHead{Node: "node-b", Origin: "td/audit/node-b", VKey: "k", Size: 1, Checkpoint: "x", Updated: t0}))
	got, ok, err := s.GetAuditHead(ctx, "node-a")
	if err != nil || !ok || got.Size != 9 || got.Checkpoint != "cp9" || !got.Updated.Equal(t0) {
		t.Fatalf("head: %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.GetAuditHead(ctx, "node-z"); ok {
		t.Fatal("an unknown node has a head")
	}
	all, err := s.ListAuditHeads(ctx)
	if err != nil || len(all) != 2 || all[0].Node != "node-a" || all[1].Node != "node-b" {
		t.Fatalf("heads: %+v %v", all, err)
	}
}

func TestSQLiteAuditHeads(t *testing.T) { testAuditHeads(t, sqliteBackend()) }

func TestPostgresAuditHeads(t *testing.T) { testAuditHeads(t, postgresBackend()) }
