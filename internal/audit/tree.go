package audit

import (
	"fmt"

	"github.com/transparency-dev/merkle/proof"
)

// tree keeps the hash of every complete subtree of the log's Merkle tree:
// level 0 holds the leaf hashes, level k+1 the parents of pairs at level k.
// Every node an RFC 6962 proof names is a complete subtree, so a proof
// costs O(log n) lookups instead of rehashing the log. It takes about 64
// bytes of memory per entry.
type tree struct {
	levels [][][32]byte
}

// append adds a leaf hash and the complete subtrees it closes.
func (t *tree) append(leaf []byte) {
	h := [32]byte(leaf)
	for k := 0; ; k++ {
		if k == len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		t.levels[k] = append(t.levels[k], h)
		n := len(t.levels[k])
		if n%2 == 1 {
			return
		}
		h = [32]byte(hasher.HashChildren(t.levels[k][n-2][:], t.levels[k][n-1][:]))
	}
}

// size is the number of leaves.
func (t *tree) size() uint64 {
	if len(t.levels) == 0 {
		return 0
	}
	return uint64(len(t.levels[0]))
}

// hashes resolves a proof's nodes against a tree of at least size leaves.
func (t *tree) hashes(nodes proof.Nodes, size uint64) ([][]byte, error) {
	if size > t.size() {
		return nil, fmt.Errorf("proof for tree size %d: the log has %d entries", size, t.size())
	}
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if int(id.Level) >= len(t.levels) || id.Index >= uint64(len(t.levels[id.Level])) {
			return nil, fmt.Errorf("proof node %d/%d is beyond the log", id.Level, id.Index)
		}
		h := t.levels[id.Level][id.Index]
		hs[i] = h[:]
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// inclusion is the audit path of leaf index in the tree of size leaves.
func (t *tree) inclusion(index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return t.hashes(nodes, size)
}

// consistency is the proof that the tree of size1 leaves is a prefix of
// the tree of size2 leaves.
func (t *tree) consistency(size1, size2 uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return t.hashes(nodes, size2)
}
