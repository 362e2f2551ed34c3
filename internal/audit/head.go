package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/atomicfile"
)

// The head file is where a Log remembers the latest checkpoint it made
// durable, outside its directory, so that a log rolled back to an older
// state (its checkpoints file alone, or both of its files) is told from a
// log that lost an unacknowledged tail in a crash. Next to the checkpoint
// it keeps the tree's frontier (its compact range), where the covered
// entries and the checkpoint's record end, and how much of the derived
// index is durable, so that Open starts from it without reading the log.
// See the package documentation for its layout.
const (
	headSlot  = 8192
	headMagic = "ward-audit-head2"
	// headFixed is what a slot holds besides the note and the hashes.
	headFixed = len(headMagic) + 8 + 4 + 8 + 8 + 8 + 1 + sha256.Size

	// Version 1 slots (no frontier) are still read; the next write
	// replaces the file with version 2.
	headSlotV1     = 4096
	headMagicV1    = "ward-audit-head\n"
	headOverheadV1 = len(headMagicV1) + 8 + 4 + sha256.Size

	// maxRangeHashes is the most hashes a compact range [0, n) has.
	maxRangeHashes = 64
)

// frontier is what a version 2 head keeps besides the checkpoint: the state
// of the tree and the files at the checkpoint's size.
type frontier struct {
	entEnd  int64    // where the entries the checkpoint covers end in the entries file
	cpEnd   int64    // where the checkpoint's record ends in the checkpoints file
	indexed uint64   // entries whose index records are durable (index/)
	hashes  [][]byte // the compact range [0, size): roots of its perfect subtrees, left to right
}

// encodeHeadSlot lays out one version 2 slot.
func encodeHeadSlot(seq uint64, signed []byte, f *frontier) ([]byte, error) {
	if headFixed+len(signed)+32*len(f.hashes) > headSlot || len(f.hashes) > maxRangeHashes {
		return nil, fmt.Errorf("checkpoint of %d bytes does not fit the head file", len(signed))
	}
	b := make([]byte, 0, headSlot)
	b = append(b, headMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(signed)))
	b = append(b, signed...)
	b = binary.BigEndian.AppendUint64(b, uint64(f.entEnd))
	b = binary.BigEndian.AppendUint64(b, uint64(f.cpEnd))
	b = binary.BigEndian.AppendUint64(b, f.indexed)
	b = append(b, byte(len(f.hashes)))
	for _, h := range f.hashes {
		b = append(b, h...)
	}
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	return b[:headSlot], nil
}

// decodeHeadSlot reads one slot of the given size strictly; ok is false
// for a slot that was never written or was torn. f is nil for a version 1
// slot.
func decodeHeadSlot(b []byte) (seq uint64, signed []byte, f *frontier, ok bool) {
	switch len(b) {
	case headSlotV1:
		seq, signed, ok = decodeHeadSlotV1(b)
		return seq, signed, nil, ok
	case headSlot:
	default:
		return 0, nil, nil, false
	}
	if !bytes.HasPrefix(b, []byte(headMagic)) {
		return 0, nil, nil, false
	}
	p := len(headMagic)
	seq = binary.BigEndian.Uint64(b[p:])
	n := int(binary.BigEndian.Uint32(b[p+8:]))
	p += 12
	if seq == 0 || n == 0 || n > headSlot-headFixed {
		return 0, nil, nil, false
	}
	signed = b[p : p+n]
	p += n
	if p+25 > headSlot {
		return 0, nil, nil, false
	}
	entEnd := binary.BigEndian.Uint64(b[p:])
	cpEnd := binary.BigEndian.Uint64(b[p+8:])
	indexed := binary.BigEndian.Uint64(b[p+16:])
	k := int(b[p+24])
	p += 25
	if k > maxRangeHashes || p+32*k+sha256.Size > headSlot || entEnd > 1<<62 || cpEnd > 1<<62 {
		return 0, nil, nil, false
	}
	hashes := make([][]byte, k)
	for i := range hashes {
		hashes[i] = bytes.Clone(b[p : p+32])
		p += 32
	}
	sum := sha256.Sum256(b[:p])
	if !bytes.Equal(sum[:], b[p:p+sha256.Size]) || bytes.ContainsFunc(b[p+sha256.Size:], func(r rune) bool { return r != 0 }) {
		return 0, nil, nil, false
	}
	return seq, bytes.Clone(signed), &frontier{entEnd: int64(entEnd), cpEnd: int64(cpEnd), indexed: indexed, hashes: hashes}, true
}

// decodeHeadSlotV1 reads one version 1 slot (no frontier).
func decodeHeadSlotV1(b []byte) (seq uint64, signed []byte, ok bool) {
	if len(b) != headSlotV1 || !bytes.HasPrefix(b, []byte(headMagicV1)) {
		return 0, nil, false
	}
	p := len(headMagicV1)
	seq = binary.BigEndian.Uint64(b[p:])
	n := int(binary.BigEndian.Uint32(b[p+8:]))
	if seq == 0 || n == 0 || n > headSlotV1-headOverheadV1 {
		return 0, nil, false
	}
	end := p + 12 + n
	sum := sha256.Sum256(b[:end])
	if !bytes.Equal(sum[:], b[end:end+sha256.Size]) || bytes.ContainsFunc(b[end+sha256.Size:], func(r rune) bool { return r != 0 }) {
		return 0, nil, false
	}
	return seq, bytes.Clone(b[p+12 : end]), true
}

// headState is what reading a head file found.
type headState struct {
	found   bool        // the file exists
	cp      *checkpoint // the remembered checkpoint; nil if none is usable
	seq     uint64      // its write number
	front   *frontier   // its frontier; nil in a version 1 file
	problem string      // why the file is unusable, if it is
	kind    problemKind // what kind of problem: corrupt (torn, unreadable) or tampered (forged)
}

// readHead reads the head file at path. A missing file is not an error; an
// unreadable or forged one is described in problem. Only I/O errors are
// returned.
func readHead(path string, v note.Verifier, origin string) (headState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return headState{}, nil
	}
	if err != nil {
		return headState{}, fmt.Errorf("read head %s: %w", path, err)
	}
	defer f.Close()
	// A running log may be writing one slot while this reads: read both in
	// one call, and read again if neither was whole (the writer syncs
	// between slots, so a second read finds the one it finished).
	var h headState
	for range 3 {
		st, err := f.Stat()
		if err != nil {
			return headState{}, fmt.Errorf("read head %s: %w", path, err)
		}
		b := make([]byte, min(st.Size(), 2*headSlot+1))
		if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
			return headState{}, fmt.Errorf("read head %s: %w", path, err)
		}
		if h = parseHead(b, path, v, origin); h.cp != nil || (len(b) != 2*headSlot && len(b) != 2*headSlotV1) {
			break
		}
	}
	return h, nil
}

// parseHead judges a head file's contents: two version 2 slots, or two
// version 1 slots.
func parseHead(b []byte, path string, v note.Verifier, origin string) headState {
	h := headState{found: true, kind: corrupt}
	slot := headSlot
	switch len(b) {
	case 2 * headSlot:
	case 2 * headSlotV1:
		slot = headSlotV1
	default:
		h.problem = fmt.Sprintf("head file %s: %d bytes, want %d", path, len(b), 2*headSlot)
		return h
	}
	for i := range 2 {
		seq, signed, front, ok := decodeHeadSlot(b[i*slot : (i+1)*slot])
		if !ok {
			continue // never written, or torn by a crash
		}
		if seq%2 != uint64(i) {
			h.problem = fmt.Sprintf("head file %s: write %d in slot %d", path, seq, i)
			return h
		}
		size, root, err := openCheckpoint(signed, v, origin)
		if err != nil {
			h.problem, h.kind = fmt.Sprintf("head file %s: slot %d: %v", path, i, err), tampered
			return h
		}
		if front != nil {
			if msg := front.check(size, root, len(signed)); msg != "" {
				h.problem, h.kind = fmt.Sprintf("head file %s: slot %d: %s", path, i, msg), tampered
				return h
			}
		}
		if h.cp == nil || seq > h.seq {
			h.cp = &checkpoint{source: "ward's remembered head (" + path + ")", rec: -1, size: size, root: root, signed: signed, front: front}
			h.seq = seq
			h.front = front
		}
	}
	if h.cp == nil {
		h.problem = fmt.Sprintf("head file %s: no readable slot", path)
	}
	return h
}

// check says what is wrong with a frontier remembered with a checkpoint of
// size entries and root, or "" if nothing is: its hashes must be the
// compact range of the checkpoint's tree (then they are its hashes: the
// root commits to them), and the offsets must be possible.
func (f *frontier) check(size uint64, root []byte, signedLen int) string {
	if len(f.hashes) != bits.OnesCount64(size) {
		return fmt.Sprintf("the frontier has %d hashes, a tree of %d entries %d", len(f.hashes), size, bits.OnesCount64(size))
	}
	r, err := rangeFactory.NewRange(0, size, f.hashes)
	if err != nil || !bytes.Equal(rootOf(r), root) {
		return "the frontier is not the tree of its checkpoint"
	}
	if f.indexed > size {
		return fmt.Sprintf("index size %d is beyond the checkpoint's %d entries", f.indexed, size)
	}
	if f.cpEnd < int64(4+signedLen) || f.entEnd < 0 || (size > 0 && f.entEnd < 5*int64(size)) {
		return "impossible file offsets"
	}
	return ""
}

// head is an open head file, written by the log's writer alone.
type head struct {
	f   *os.File
	seq uint64
	// dirty is how much of each slot may hold non-zero bytes: a write
	// covers its slot's content and the zeros up to there, not the whole
	// slot (one page, not two, to sync).
	dirty [2]int
}

// createHead replaces the head file at path with one remembering signed;
// seq is the previous write number.
func createHead(path string, seq uint64, signed []byte, f *frontier) (*head, error) {
	seq++
	slot, err := encodeHeadSlot(seq, signed, f)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 2*headSlot)
	copy(b[int(seq%2)*headSlot:], slot)
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write head %s: %w", path, err)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open head %s: %w", path, err)
	}
	h := &head{f: fh, seq: seq}
	h.dirty[seq%2] = slotUsed(slot)
	return h, nil
}

// openHead opens an existing, valid version 2 head file for writing.
func openHead(path string, seq uint64) (*head, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open head %s: %w", path, err)
	}
	return &head{f: f, seq: seq, dirty: [2]int{headSlot, headSlot}}, nil
}

// slotUsed is where a slot's zeros begin.
func slotUsed(slot []byte) int {
	return len(bytes.TrimRight(slot, "\x00"))
}

// write makes signed the remembered checkpoint, durably. It overwrites the
// older slot, so a torn write leaves the newer one intact. If it fails, the
// slot it wrote may or may not be durable: the caller must write again
// (the same slot) before it cuts back what the checkpoint covers.
func (h *head) write(signed []byte, f *frontier) error {
	seq := h.seq + 1
	slot, err := encodeHeadSlot(seq, signed, f)
	if err != nil {
		return err
	}
	i := seq % 2
	used := slotUsed(slot)
	n := max(used, h.dirty[i])
	if _, err := h.f.WriteAt(slot[:n], int64(i)*headSlot); err != nil {
		h.dirty[i] = headSlot // unknown now
		return fmt.Errorf("write head: %w", err)
	}
	if err := datasync(h.f); err != nil {
		h.dirty[i] = headSlot
		return fmt.Errorf("sync head: %w", err)
	}
	h.dirty[i] = used
	h.seq = seq
	return nil
}

func (h *head) close() error {
	if h == nil {
		return nil
	}
	return h.f.Close()
}
