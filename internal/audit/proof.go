package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// InclusionProof is the evidence that one event is in the log: its entry
// bytes, the RFC 6962 audit path to the root of a tree of Size leaves, and
// the signed checkpoint that commits to that root. Anyone can check it with
// github.com/transparency-dev/merkle/proof.VerifyInclusion and
// golang.org/x/mod/sumdb/note, without ward.
type InclusionProof struct {
	Index      uint64          `json:"index"`
	Size       uint64          `json:"tree_size"`
	Entry      json.RawMessage `json:"entry"`     // the event exactly as hashed
	LeafHash   []byte          `json:"leaf_hash"` // RFC 6962 leaf hash of Entry
	Hashes     [][]byte        `json:"hashes"`    // the audit path
	Checkpoint string          `json:"checkpoint"`
}

// Prove verifies the log in dir and returns an inclusion proof for the
// event at index, against the log's latest checkpoint. It reads the files
// only, so it works on a copy of the directory or while a node runs (whose
// latest checkpoint may not cover its latest events yet: the log signs
// them on its own cadence).
func Prove(dir string, v note.Verifier, origin string, index uint64) (*InclusionProof, error) {
	rep, err := Verify(dir, v, origin)
	if err != nil {
		return nil, err
	}
	if index >= rep.Size {
		if index < rep.Size+rep.TailEntries {
			return nil, fmt.Errorf("prove event %d: the log's latest checkpoint covers %d events and no checkpoint covers this one yet (a running node signs one within a fraction of a second; try again)", index, rep.Size)
		}
		return nil, fmt.Errorf("prove event %d: the log's checkpoint covers %d events", index, rep.Size)
	}
	entries, leaves, err := readLeaves(dir, rep.Size)
	if err != nil {
		return nil, err
	}
	hashes, err := inclusion(leaves, index, rep.Size)
	if err != nil {
		return nil, err
	}
	return &InclusionProof{Index: index, Size: rep.Size, Entry: entries[index], LeafHash: leaves[index],
		Hashes: hashes, Checkpoint: string(rep.Checkpoint)}, nil
}

// ConsistencyProof returns the RFC 6962 proof that the tree of size1 is a
// prefix of the tree of size2 (size1 ≤ size2 ≤ the verified size).
func ConsistencyProof(dir string, v note.Verifier, origin string, size1, size2 uint64) ([][]byte, error) {
	rep, err := Verify(dir, v, origin)
	if err != nil {
		return nil, err
	}
	if size1 > size2 || size2 > rep.Size {
		return nil, fmt.Errorf("consistency %d→%d: sizes must satisfy size1 ≤ size2 ≤ %d", size1, size2, rep.Size)
	}
	_, leaves, err := readLeaves(dir, size2)
	if err != nil {
		return nil, err
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return rehash(nodes, leaves)
}

// readLeaves returns the first n entries and their leaf hashes.
func readLeaves(dir string, n uint64) ([]json.RawMessage, [][]byte, error) {
	f, err := os.Open(filepath.Join(dir, entriesName))
	if err != nil {
		return nil, nil, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	entries := make([]json.RawMessage, 0, n)
	leaves := make([][]byte, 0, n)
	_, _, err = readFrames(f, st.Size(), MaxEntryBytes, func(_ int64, b []byte) error {
		if uint64(len(leaves)) < n {
			entries = append(entries, append(json.RawMessage(nil), b...))
			leaves = append(leaves, hasher.HashLeaf(b))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read audit log: %w", err)
	}
	if uint64(len(leaves)) < n {
		return nil, nil, fmt.Errorf("read audit log: %d entries, the checkpoint says %d", len(leaves), n)
	}
	return entries, leaves, nil
}

func inclusion(leaves [][]byte, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return rehash(nodes, leaves)
}

// rehash computes the hashes of a proof's nodes from the leaves. A node at
// level l and index i covers leaves [i<<l, (i+1)<<l); proofs only name
// complete subtrees, so the range is always full.
func rehash(nodes proof.Nodes, leaves [][]byte) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Index<<id.Level, (id.Index+1)<<id.Level
		if end > uint64(len(leaves)) {
			return nil, fmt.Errorf("proof node %d/%d is beyond the log", id.Level, id.Index)
		}
		hs[i] = subtree(leaves[begin:end])
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// subtree hashes a complete subtree of leaf hashes (its length is a power
// of two).
func subtree(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	mid := len(leaves) / 2
	return hasher.HashChildren(subtree(leaves[:mid]), subtree(leaves[mid:]))
}

// Prove returns an inclusion proof for the event at index against the
// log's latest checkpoint. Unlike the package-level [Prove] it reads
// O(log n) hashes from the index and the entry itself, not the log. It
// checks the proof against the checkpoint before returning it: a damaged
// index is an error wrapping ErrCorrupt, never a false proof. An
// acknowledged event that no checkpoint covers yet (checkpoints follow
// appends on their own cadence) is proven against the next one, which
// Prove asks for (see Sync) and waits for, at most proveWait.
func (l *Log) Prove(index uint64) (*InclusionProof, error) {
	if index < l.size.Load() && !l.covers(index) {
		ctx, cancel := context.WithTimeout(context.Background(), proveWait)
		_, err := l.Sync(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("prove event %d: no checkpoint covers it yet: %w", index, err)
		}
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	size, cp, root := l.signedSize, l.checkpoint, l.root
	if index >= size || root == nil {
		return nil, fmt.Errorf("prove event %d: the log's checkpoint covers %d events", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("prove event %d: %w", index, err)
	}
	hashes, err := l.idx.proofHashes(nodes)
	if err != nil {
		return nil, fmt.Errorf("prove event %d: %w", index, err)
	}
	starts, ends, err := l.idx.span(index, index+1)
	if err != nil {
		return nil, fmt.Errorf("prove event %d: %w", index, err)
	}
	b := make([]byte, ends[0]-starts[0])
	if _, err := l.ent.ReadAt(b, starts[0]); err != nil {
		return nil, fmt.Errorf("prove event %d: %w", index, err)
	}
	if _, err := entryAt(b, index); err != nil {
		return nil, fmt.Errorf("prove event %d: %v: %w", index, err, ErrCorrupt)
	}
	entry := b[4:]
	leaf := hasher.HashLeaf(entry)
	if err := proof.VerifyInclusion(hasher, index, size, leaf, hashes, root); err != nil {
		return nil, fmt.Errorf("prove event %d: the index's hashes do not prove it: %w", index, ErrCorrupt)
	}
	return &InclusionProof{Index: index, Size: size, Entry: entry, LeafHash: leaf, Hashes: hashes, Checkpoint: string(cp)}, nil
}

// ConsistencyProof returns the RFC 6962 proof that the log's tree of size1
// entries is a prefix of its tree of size2 entries (size1 ≤ size2 ≤ the
// latest checkpoint's size).
// It reads the hashes from the index and checks the proof against the
// latest checkpoint's root before returning it.
func (l *Log) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	size, root := l.signedSize, l.root
	if size1 > size2 || size2 > size || root == nil {
		return nil, fmt.Errorf("consistency %d→%d: sizes must satisfy size1 ≤ size2 ≤ %d", size1, size2, size)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	hashes, err := l.idx.proofHashes(nodes)
	if err != nil {
		return nil, fmt.Errorf("consistency %d→%d: %w", size1, size2, err)
	}
	if size1 == 0 || size1 == size2 {
		return hashes, nil
	}
	// Check it: size2's root is the checkpoint's, or proven consistent
	// with it; size1's root is then what the proof says it is.
	root2 := root
	if size2 < size {
		r2, err := l.idx.rangeAt(size2)
		if err != nil {
			return nil, fmt.Errorf("consistency %d→%d: %w", size1, size2, err)
		}
		root2 = rootOf(r2)
		nodes, err := proof.Consistency(size2, size)
		if err != nil {
			return nil, err
		}
		to, err := l.idx.proofHashes(nodes)
		if err != nil {
			return nil, fmt.Errorf("consistency %d→%d: %w", size1, size2, err)
		}
		if proof.VerifyConsistency(hasher, size2, size, to, root2, root) != nil {
			return nil, fmt.Errorf("consistency %d→%d: the index's hashes do not match the checkpoint: %w", size1, size2, ErrCorrupt)
		}
	}
	r1, err := l.idx.rangeAt(size1)
	if err != nil {
		return nil, fmt.Errorf("consistency %d→%d: %w", size1, size2, err)
	}
	if proof.VerifyConsistency(hasher, size1, size2, hashes, rootOf(r1), root2) != nil {
		return nil, fmt.Errorf("consistency %d→%d: the index's hashes do not match the checkpoint: %w", size1, size2, ErrCorrupt)
	}
	return hashes, nil
}

// ReadHashes reads stored hashes of the log's tree by their index in
// golang.org/x/mod/sumdb/tlog's layout (tlog.StoredHashIndex), which is
// the layout of the index's hashes: it is a tlog.HashReader, from which
// tlog.ReadTileData makes the C2SP tlog-tiles of the log for others to
// prove its entries with (ward's nodes keep them in their shared store).
// Only hashes of the tree the latest checkpoint signs are read.
func (l *Log) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	limit := tlog.StoredHashCount(int64(l.signedSize))
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= limit {
			return nil, fmt.Errorf("read hash %d: the log's checkpoint covers %d hashes", x, limit)
		}
		if _, err := l.idx.hashes.ReadAt(out[i][:], 32*x); err != nil {
			return nil, fmt.Errorf("read hash %d: %w", x, err)
		}
	}
	return out, nil
}
