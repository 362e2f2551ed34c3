package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// The index (the directory "index" in the log's directory) is derived from
// the entries: it can be deleted, and Open then rebuilds it after verifying
// the whole log. It holds
//
//	offsets      8 bytes per entry: big-endian, where entry i ends in the entries file
//	hashes       32 bytes per node of every perfect subtree, in post-order
//	sessions.<k> the session table (see sessions.go)
//
// Post-order is the order in which appending leaves completes subtrees: the
// leaf, then each parent it completes. The node at level l with index i,
// covering leaves [i·2^l, (i+1)·2^l), is node number 2m − popcount(m) + l,
// where m = (i+1)·2^l − 1 is its last leaf, and a tree of n leaves has
// 2n − popcount(n) of them.
//
// The writer appends to offsets and hashes before a batch's entries are
// written, and updates the session table after the batch is remembered in
// the head; it never syncs them. A background syncer does, and the head
// says up to which entry they are durable (frontier.indexed); Open replays
// the entries after that point, so a crash costs a short replay, not a
// rebuild.
const (
	indexDirName    = "index"
	offsetsName     = "offsets"
	hashesName      = "hashes"
	indexTmpDirName = "index.tmp"
)

// nodePos is the post-order position of a node.
func nodePos(id compact.NodeID) int64 {
	m := (id.Index+1)<<id.Level - 1
	return int64(2*m) - int64(bits.OnesCount64(m)) + int64(id.Level)
}

// nodesIn is how many nodes a tree of n leaves has.
func nodesIn(n uint64) int64 { return int64(2*n) - int64(bits.OnesCount64(n)) }

// index is the open index of a log.
type index struct {
	dir      string
	offsets  *os.File
	hashes   *os.File
	sessions *sessionTable
}

// openIndex opens the index in dir. It checks that it holds at least n
// entries' offsets and hashes; with cut, it cuts what follows them
// (written for entries a crash lost, or not durable: the caller replays
// from n) and opens the session table for writing, else it changes
// nothing and the session table is only read.
func openIndex(dir string, n uint64, cut bool) (*index, error) {
	ix := &index{dir: dir}
	var err error
	if ix.offsets, err = os.OpenFile(filepath.Join(dir, offsetsName), os.O_RDWR, 0); err != nil {
		return nil, err
	}
	if ix.hashes, err = os.OpenFile(filepath.Join(dir, hashesName), os.O_RDWR, 0); err != nil {
		ix.close()
		return nil, err
	}
	for _, c := range []struct {
		f    *os.File
		want int64
	}{{ix.offsets, 8 * int64(n)}, {ix.hashes, 32 * nodesIn(n)}} {
		st, err := c.f.Stat()
		if err != nil {
			ix.close()
			return nil, err
		}
		if st.Size() < c.want {
			ix.close()
			return nil, fmt.Errorf("index %s: %d bytes, need %d", filepath.Base(c.f.Name()), st.Size(), c.want)
		}
		if cut && st.Size() > c.want {
			if err := c.f.Truncate(c.want); err != nil {
				ix.close()
				return nil, err
			}
		}
	}
	if ix.sessions, err = openSessions(dir, cut); err != nil {
		ix.close()
		return nil, err
	}
	if len(ix.sessions.files()) == 0 {
		ix.close()
		return nil, errors.New("index: no session table")
	}
	return ix, nil
}

// createIndex makes an empty index in dir (replacing whatever was there),
// durably.
func createIndex(logDir string) (*index, error) {
	dir := filepath.Join(logDir, indexDirName)
	tmp := filepath.Join(logDir, indexTmpDirName)
	for _, d := range []string{tmp, dir} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, err
	}
	for _, name := range []string{offsetsName, hashesName} {
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		f.Close()
	}
	t, err := openSessions(tmp, true)
	if err != nil {
		return nil, err
	}
	t.close()
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	if err := syncDir(logDir); err != nil {
		return nil, err
	}
	return openIndex(dir, 0, true)
}

func (ix *index) close() error {
	if ix == nil {
		return nil
	}
	var errs []error
	for _, f := range []*os.File{ix.offsets, ix.hashes} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	errs = append(errs, ix.sessions.close())
	return errors.Join(errs...)
}

// sync makes what was written to the index durable.
func (ix *index) sync() error {
	if err := ix.offsets.Sync(); err != nil {
		return err
	}
	if err := ix.hashes.Sync(); err != nil {
		return err
	}
	return ix.sessions.sync()
}

// cut cuts the offsets and hashes back to n entries.
func (ix *index) cut(n uint64) error {
	if err := ix.offsets.Truncate(8 * int64(n)); err != nil {
		return fmt.Errorf("cut index offsets: %w", err)
	}
	if err := ix.hashes.Truncate(32 * nodesIn(n)); err != nil {
		return fmt.Errorf("cut index hashes: %w", err)
	}
	return nil
}

// ends returns where entries [from, to) end.
func (ix *index) ends(from, to uint64) ([]int64, error) {
	b := make([]byte, 8*(to-from))
	if _, err := ix.offsets.ReadAt(b, 8*int64(from)); err != nil {
		return nil, fmt.Errorf("read index offsets [%d, %d): %w", from, to, err)
	}
	out := make([]int64, to-from)
	for i := range out {
		v := binary.BigEndian.Uint64(b[8*i:])
		if v > 1<<62 {
			return nil, fmt.Errorf("index offset of entry %d out of range: %w", from+uint64(i), ErrCorrupt)
		}
		out[i] = int64(v)
	}
	return out, nil
}

// span returns where entries [from, to) start and end.
func (ix *index) span(from, to uint64) (starts, ends []int64, err error) {
	lo := from
	if from > 0 {
		lo = from - 1
	}
	e, err := ix.ends(lo, to)
	if err != nil {
		return nil, nil, err
	}
	if from > 0 {
		starts = e[:len(e)-1]
		ends = e[1:]
	} else {
		starts = append([]int64{0}, e[:len(e)-1]...)
		ends = e
	}
	for i := range ends {
		if ends[i] < starts[i]+5 {
			return nil, nil, fmt.Errorf("index offsets of entry %d out of order: %w", from+uint64(i), ErrCorrupt)
		}
	}
	return starts, ends, nil
}

// node reads one node's hash.
func (ix *index) node(id compact.NodeID) ([]byte, error) {
	h := make([]byte, 32)
	if _, err := ix.hashes.ReadAt(h, 32*nodePos(id)); err != nil {
		return nil, fmt.Errorf("read index hash %d/%d: %w", id.Level, id.Index, err)
	}
	return h, nil
}

// rangeAt reads the compact range [0, n).
func (ix *index) rangeAt(n uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, n, nil)
	hs := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := ix.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return rangeFactory.NewRange(0, n, hs)
}

// proofHashes reads and rehashes the nodes of a proof.
func (ix *index) proofHashes(nodes proof.Nodes) ([][]byte, error) {
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := ix.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// indexWriter appends the offsets and hashes of consecutive entries.
type indexWriter struct {
	off, hs *bufio.Writer
	rng     *compact.Range
	visit   compact.VisitFn
	err     error
}

// appendFrom returns a writer that appends after n entries whose range is
// rng (which it extends).
func (ix *index) appendFrom(n uint64, rng *compact.Range) *indexWriter {
	w := &indexWriter{
		off: bufio.NewWriterSize(io.NewOffsetWriter(ix.offsets, 8*int64(n)), 1<<16),
		hs:  bufio.NewWriterSize(io.NewOffsetWriter(ix.hashes, 32*nodesIn(n)), 1<<16),
		rng: rng,
	}
	w.visit = func(_ compact.NodeID, h []byte) {
		if w.err == nil {
			_, w.err = w.hs.Write(h)
		}
	}
	return w
}

// add appends one entry: where it ends, and its leaf hash.
func (w *indexWriter) add(end int64, leaf []byte) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(end))
	if _, err := w.off.Write(b[:]); err != nil {
		return err
	}
	if err := w.rng.Append(leaf, w.visit); err != nil {
		return err
	}
	return w.err
}

func (w *indexWriter) flush() error {
	if err := w.off.Flush(); err != nil {
		return err
	}
	return w.hs.Flush()
}
