package server

// Audit search across the nodes of a system.
//
// Who did what, across nodes, is one code path (SearchSystem) with two
// sources of verified events:
//
//   - ward audit search --system (cmd/ward) reads each node's log from
//     its data directory (or a copy), verified in full against the keys
//     of the operator's system file;
//   - a node's API (GET /v1/audit/events on a node of several) reads its
//     own events from its log, and another node's from the store: the
//     entry kept in the audit index row, proven in that node's log by an
//     RFC 6962 inclusion proof against the head it published, computed
//     from the tiles it keeps in the store (store/tiles.go) and checked
//     against the head's root by tlog.TileHashReader. The head is checked
//     with the newest log key this node pinned for the peer when it
//     cosigned it (cosign.go): nothing the store says is trusted.
//
// Either way the query index (in the shared store) says which events
// match; an event that does not match the row that named it is an error
// that says to reindex, never an answer. A node publishes, every
// auditHeadEvery, its index rows, and its tiles then its head
// (auditheads.go): another node's events appear in a search once it
// indexed them and its head covers them, a few seconds after they were
// appended.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/store"
)

// NodeEvent is an audit event and the node whose log holds it.
type NodeEvent = api.NodeEvent

// AuditSource reads indexed events of one node's log, each verified in
// that log. Read returns the events at idx (ascending); an event it
// cannot read yet (beyond what the node published) is left out, and
// anything wrong is an error.
type AuditSource interface {
	Read(ctx context.Context, node string, idx []uint64) (map[uint64]audit.Event, error)
}

// SearchSystem answers q over every node's events (q.Node: one node's):
// the query index names them, src reads each from its node's log, and
// each must match q. Events are ordered by time, oldest first.
func SearchSystem(ctx context.Context, st *store.Store, q store.AuditQuery, src AuditSource) ([]NodeEvent, error) {
	hits, err := st.SearchAuditNodes(ctx, q)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]uint64{}
	for _, h := range hits {
		byNode[h.Node] = append(byNode[h.Node], h.Index)
	}
	events := map[string]map[uint64]audit.Event{}
	for _, node := range slicesSorted(byNode) {
		idx := byNode[node]
		slices.Sort(idx)
		if events[node], err = src.Read(ctx, node, idx); err != nil {
			return nil, fmt.Errorf("node %s: %w", node, err)
		}
	}
	out := make([]NodeEvent, 0, len(hits))
	for _, h := range hits {
		e, ok := events[h.Node][h.Index]
		if !ok {
			continue
		}
		if !MatchesQuery(q, e) {
			return nil, fmt.Errorf("%w: the index names event %d of node %s for this search, but the event does not match it: run ward audit reindex", store.ErrConflict, h.Index, h.Node)
		}
		out = append(out, NodeEvent{Node: h.Node, Event: e})
	}
	return out, nil
}

func slicesSorted(m map[string][]uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// MatchesQuery says whether e is an event q asks for, derived as the
// index derives its rows (AuditRows).
func MatchesQuery(q store.AuditQuery, e audit.Event) bool {
	r := AuditRows([]audit.Event{e})[0]
	for _, c := range [][2]string{{q.Type, r.Type}, {q.Session, r.Session}, {q.Agent, r.Agent}, {q.Sponsor, r.Sponsor}, {q.Name, r.Name}, {q.Decision, r.Decision}} {
		if c[0] != "" && c[0] != c[1] {
			return false
		}
	}
	return (q.Since.IsZero() || !e.Time.Before(q.Since)) && (q.Until.IsZero() || e.Time.Before(q.Until))
}

// SearchAuditSystem is GET /v1/audit/events on a node of several: q over
// every node's events (see SearchSystem), this node's read from its log,
// the others' proven from the store. It fails on a node alone.
func (n *Node) SearchAuditSystem(ctx context.Context, q store.AuditQuery) ([]NodeEvent, error) {
	if n.nodeID == "" || n.cosign == nil {
		return nil, errors.New("audit search across nodes: this node is alone on its store")
	}
	if err := n.IndexAudit(ctx); err != nil {
		return nil, err
	}
	return SearchSystem(ctx, n.Store, q, nodeSource{n})
}

// nodeSource is a node's AuditSource.
type nodeSource struct{ n *Node }

func (s nodeSource) Read(ctx context.Context, node string, idx []uint64) (map[uint64]audit.Event, error) {
	out := map[uint64]audit.Event{}
	if node == s.n.nodeID {
		size := s.n.Audit.Size()
		for _, i := range idx {
			if i >= size {
				return nil, fmt.Errorf("the index names event %d, but this node's log holds %d: run ward audit reindex", i, size)
			}
			evs, err := s.n.Audit.Read(i, i+1)
			if err != nil {
				return nil, err
			}
			out[i] = evs[0]
		}
		return out, nil
	}
	h, ok, err := s.n.Store.GetAuditHead(ctx, node)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: the index names its events, but it published no head", store.ErrConflict)
	}
	pins, err := s.n.cosign.loadPins()
	if err != nil {
		return nil, err
	}
	keys := pins[h.Origin]
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: this node has not learnt the key of log %s yet (it does when it first cosigns it, within a second of its head): try again", authority.ErrUnavailable, h.Origin)
	}
	newest, err := note.NewVerifier(keys[len(keys)-1])
	if err != nil {
		return nil, err
	}
	if _, err := note.Open([]byte(h.Checkpoint), note.VerifierList(newest)); err != nil {
		return nil, fmt.Errorf("%w: its head is not signed by %s, the newest key this node pinned for it (a rotation this node has not seen yet, or a head forged in the store): %v", store.ErrConflict, keyName(keys[len(keys)-1]), err)
	}
	body, err := parseCheckpoint([]byte(h.Checkpoint))
	if err != nil || body.origin != h.Origin {
		return nil, fmt.Errorf("%w: its head is not a checkpoint of its log", store.ErrConflict)
	}
	tree := tlog.Tree{N: int64(body.size), Hash: tlog.Hash(body.root)}
	thr := tlog.TileHashReader(tree, &storeTiles{ctx: ctx, st: s.n.Store, node: node, cache: map[store.Tile][]byte{}})
	var want []uint64
	for _, i := range idx {
		if i < body.size {
			want = append(want, i)
		}
	}
	if len(want) == 0 {
		return out, nil
	}
	rows, err := s.n.Store.AuditEntries(ctx, node, want)
	if err != nil {
		return nil, err
	}
	// The leaf hashes of every hit, read from tiles that TileHashReader
	// checks against the head's root (each tile once): an entry whose
	// hash is its leaf's is proven in the log.
	leaves := make([]int64, len(want))
	for k, i := range want {
		leaves[k] = tlog.StoredHashIndex(0, int64(i))
	}
	hs, err := thr.ReadHashes(leaves)
	switch {
	case errors.Is(err, errTileMissing):
		hs = nil // one at a time: those not tiled yet are left out
	case err != nil:
		return nil, fmt.Errorf("%w: its log's tiles in the store do not prove its head at %d events (altered in the store?): %v; run ward audit verify --system", store.ErrConflict, body.size, err)
	}
	for k, i := range want {
		entry, ok := rows[i]
		if !ok || entry == "" {
			return nil, fmt.Errorf("%w: the index holds no entry of its event %d: run ward audit reindex", store.ErrConflict, i)
		}
		var leaf tlog.Hash
		if hs != nil {
			leaf = hs[k]
		} else {
			one, err := thr.ReadHashes(leaves[k : k+1])
			if errors.Is(err, errTileMissing) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%w: its log's tiles in the store do not prove its head at %d events (altered in the store?): %v; run ward audit verify --system", store.ErrConflict, body.size, err)
			}
			leaf = one[0]
		}
		if tlog.RecordHash([]byte(entry)) != leaf {
			return nil, fmt.Errorf("%w: its event %d as the query index holds it is not proven in its log at %d events (altered in the store?); run ward audit verify --system and ward audit reindex", store.ErrConflict, i, body.size)
		}
		e, err := entryEvent([]byte(entry), i)
		if err != nil {
			return nil, fmt.Errorf("%w: its event %d: %v", store.ErrConflict, i, err)
		}
		out[i] = e
	}
	return out, nil
}

// entryEvent reads the event of log entry i: its bytes must be exactly
// what the log writes for it (see internal/audit's doc).
func entryEvent(entry []byte, i uint64) (audit.Event, error) {
	var e audit.Event
	if err := json.Unmarshal(entry, &e); err != nil {
		return e, fmt.Errorf("entry: %w", err)
	}
	if b, err := json.Marshal(e); err != nil || !bytes.Equal(b, entry) || e.Index != i {
		return e, errors.New("the entry is not the log's encoding of an event at its index")
	}
	return e, nil
}

// errTileMissing is a tile a node has not kept in the store yet: a head
// it published when it started covers events it then tiles on its
// cadence. Those events are left out of a search until it did.
var errTileMissing = errors.New("not in the store yet")

// storeTiles is a tlog.TileReader of a node's tiles in the store.
type storeTiles struct {
	ctx   context.Context
	st    *store.Store
	node  string
	cache map[store.Tile][]byte
}

func (r *storeTiles) Height() int { return store.TileHeight }

func (r *storeTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		k := store.Tile{Level: t.L, N: t.N}
		data, ok := r.cache[k]
		if !ok || len(data) < 32*t.W {
			var err error
			if data, err = r.st.GetAuditTile(r.ctx, r.node, k); err != nil {
				return nil, err
			}
			r.cache[k] = data
		}
		if len(data) < 32*t.W {
			return nil, fmt.Errorf("%w: tile %s of node %s", errTileMissing, t.Path(), r.node)
		}
		out[i] = data[:32*t.W]
	}
	return out, nil
}

func (r *storeTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// publishTiles keeps in the store the tiles of the node's log up to
// size (the checkpoint it is about to publish), from where it kept them
// last.
func (n *Node) publishTiles(ctx context.Context, size uint64) error {
	n.tilesMu.Lock()
	defer n.tilesMu.Unlock()
	from := n.tilesAt
	if from == 0 {
		var err error
		if from, err = n.Store.AuditTiled(ctx, n.nodeID); err != nil {
			return err
		}
	}
	// A step at a time, each kept: a long log's first publication
	// progresses across passes that each end on their deadline.
	for from < size {
		to := min(size, from+tileStep)
		batch := map[store.Tile][]byte{}
		for _, t := range tlog.NewTiles(store.TileHeight, int64(from), int64(to)) {
			data, err := tlog.ReadTileData(t, n.Audit)
			if err != nil {
				return fmt.Errorf("audit tile %s: %w", t.Path(), err)
			}
			batch[store.Tile{Level: t.L, N: t.N}] = data
		}
		if err := n.Store.PutAuditTiles(ctx, n.nodeID, batch); err != nil {
			return err
		}
		from, n.tilesAt = to, to
	}
	return nil
}

// tileStep is how many events' tiles one store write keeps (at most a
// few hundred tiles).
const tileStep = 1 << 16
