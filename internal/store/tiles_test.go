package store

import (
	"bytes"
	"testing"
)

// testAuditTiles: a tile is kept at its widest; malformed tiles are
// refused; an unknown tile is nil.
func testAuditTiles(t *testing.T, b backend) {
	s, _ := b.open(t)
	ctx := t.Context()
	full := bytes.Repeat([]byte{7}, 32*3)
	mustNil(t, "put", s.PutAuditTiles(ctx, "node-a", map[Tile][]byte{{0, 0}: full[:64], {1, 0}: full[:32]}))
	mustNil(t, "wider", s.PutAuditTiles(ctx, "node-a", map[Tile][]byte{{0, 0}: full}))
	mustNil(t, "narrower", s.PutAuditTiles(ctx, "node-a", map[Tile][]byte{{0, 0}: full[:32]}))
	if got, err := s.GetAuditTile(ctx, "node-a", Tile{0, 0}); err != nil || !bytes.Equal(got, full) {
		t.Fatalf("tile 0/0: %d bytes, %v", len(got), err)
	}
	if n, err := s.AuditTiled(ctx, "node-a"); err != nil || n != 3 {
		t.Fatalf("tiled: %d %v", n, err)
	}
	mustNil(t, "next", s.PutAuditTiles(ctx, "node-a", map[Tile][]byte{{0, 1}: full[:64]}))
	if n, err := s.AuditTiled(ctx, "node-a"); err != nil || n != 256+2 {
		t.Fatalf("tiled: %d %v", n, err)
	}
	if n, err := s.AuditTiled(ctx, "node-b"); err != nil || n != 0 {
		t.Fatalf("tiled of a node without tiles: %d %v", n, err)
	}
	if got, err := s.GetAuditTile(ctx, "node-b", Tile{0, 0}); err != nil || got != nil {
		t.Fatalf("another node's tile: %d bytes, %v", len(got), err)
	}
	for _, bad := range [][]byte{nil, full[:33], bytes.Repeat([]byte{1}, 32*257)} {
		if err := s.PutAuditTiles(ctx, "node-a", map[Tile][]byte{{0, 1}: bad}); err == nil {
			t.Errorf("a tile of %d bytes was kept", len(bad))
		}
	}
}

func TestSQLiteAuditTiles(t *testing.T) { testAuditTiles(t, sqliteBackend()) }

func TestPostgresAuditTiles(t *testing.T) { testAuditTiles(t, postgresBackend()) }
