package audit

import (
	"context"
	"encoding/json"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memTiles is a tlog.TileReader over tiles kept in memory, at their
// widest (a narrower tile is a prefix).
type memTiles map[[2]int64][]byte

func (m memTiles) Height() int { return 8 }

func (m memTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = m[[2]int64{int64(t.L), t.N}][:32*t.W]
	}
	return out, nil
}

func (m memTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestReadHashesTiles: the log's stored hashes are tlog's layout, so
// tiles made from them (tlog.ReadTileData over Log.ReadHashes) prove
// every entry, as its JSON encoding, against the signed checkpoint's root
// with golang.org/x/mod/sumdb/tlog alone — tiles kept a step at a time,
// each step's partial tiles widened by the next. Hashes beyond the
// checkpoint are not read.
func TestReadHashesTiles(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, "test")
	l := mustOpen(t, testConfig(dir, k))
	defer l.Close()
	tiles := memTiles{}
	var size uint64
	for _, step := range []int{3, 250, 300} {
		for i := range step {
			if _, err := l.Append(context.Background(), testEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
		cp, err := l.Sync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n, root := checkpointRoot(t, string(cp), k.verifier)
		for _, tile := range tlog.NewTiles(8, int64(size), int64(n)) {
			data, err := tlog.ReadTileData(tile, l)
			if err != nil {
				t.Fatal(err)
			}
			tiles[[2]int64{int64(tile.L), tile.N}] = data
		}
		size = n
		tree := tlog.Tree{N: int64(n), Hash: tlog.Hash(root)}
		thr := tlog.TileHashReader(tree, tiles)
		evs, err := l.Read(0, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			entry, _ := json.Marshal(e)
			p, err := tlog.ProveRecord(tree.N, int64(e.Index), thr)
			if err != nil {
				t.Fatalf("size %d, event %d: %v", n, e.Index, err)
			}
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, int64(e.Index), tlog.RecordHash(entry)); err != nil {
				t.Fatalf("size %d, event %d: %v", n, e.Index, err)
			}
			if e.Index == 1 {
				entry[len(entry)-2] ^= 1
				if tlog.CheckRecord(p, tree.N, tree.Hash, 1, tlog.RecordHash(entry)) == nil {
					t.Fatal("an altered entry was proven")
				}
			}
		}
	}
	if _, err := l.ReadHashes([]int64{tlog.StoredHashCount(int64(size))}); err == nil {
		t.Fatal("a hash beyond the checkpoint was read")
	}
}
