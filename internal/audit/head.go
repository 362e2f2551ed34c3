package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/atomicfile"
)

// The head file is where a Log remembers the latest checkpoint it made
// durable, outside its directory, so that a log rolled back to an older
// state (its checkpoints file alone, or both of its files) is told from a
// log that lost an unacknowledged tail in a crash. See the package
// documentation for its layout.
const (
	headSlot  = 4096
	headMagic = "ward-audit-head\n"
	// headOverhead is what a slot holds besides the note.
	headOverhead = len(headMagic) + 8 + 4 + sha256.Size
)

// encodeHeadSlot lays out one slot.
func encodeHeadSlot(seq uint64, signed []byte) ([]byte, error) {
	if headOverhead+len(signed) > headSlot {
		return nil, fmt.Errorf("checkpoint of %d bytes does not fit the head file", len(signed))
	}
	b := make([]byte, 0, headSlot)
	b = append(b, headMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(signed)))
	b = append(b, signed...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	return b[:headSlot], nil
}

// decodeHeadSlot reads one slot strictly; ok is false for a slot that was
// never written or was torn.
func decodeHeadSlot(b []byte) (seq uint64, signed []byte, ok bool) {
	if len(b) != headSlot || !bytes.HasPrefix(b, []byte(headMagic)) {
		return 0, nil, false
	}
	p := len(headMagic)
	seq = binary.BigEndian.Uint64(b[p:])
	n := int(binary.BigEndian.Uint32(b[p+8:]))
	if seq == 0 || n == 0 || n > headSlot-headOverhead {
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
		if h = parseHead(b, path, v, origin); h.cp != nil || len(b) != 2*headSlot {
			break
		}
	}
	return h, nil
}

// parseHead judges a head file's contents.
func parseHead(b []byte, path string, v note.Verifier, origin string) headState {
	h := headState{found: true, kind: corrupt}
	if len(b) != 2*headSlot {
		h.problem = fmt.Sprintf("head file %s: %d bytes, want %d", path, len(b), 2*headSlot)
		return h
	}
	for i := range 2 {
		seq, signed, ok := decodeHeadSlot(b[i*headSlot : (i+1)*headSlot])
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
		if h.cp == nil || seq > h.seq {
			h.cp = &checkpoint{source: "ward's remembered head (" + path + ")", rec: -1, size: size, root: root, signed: signed}
			h.seq = seq
		}
	}
	if h.cp == nil {
		h.problem = fmt.Sprintf("head file %s: no readable slot", path)
	}
	return h
}

// head is an open head file, written by the log's writer alone.
type head struct {
	f   *os.File
	seq uint64
}

// createHead replaces the head file at path with one remembering signed.
func createHead(path string, seq uint64, signed []byte) (*head, error) {
	seq++
	slot, err := encodeHeadSlot(seq, signed)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 2*headSlot)
	copy(b[int(seq%2)*headSlot:], slot)
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write head %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open head %s: %w", path, err)
	}
	return &head{f: f, seq: seq}, nil
}

// openHead opens an existing, valid head file for writing.
func openHead(path string, seq uint64) (*head, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open head %s: %w", path, err)
	}
	return &head{f: f, seq: seq}, nil
}

// write makes signed the remembered checkpoint, durably. It overwrites the
// older slot, so a torn write leaves the newer one intact.
func (h *head) write(signed []byte) error {
	seq := h.seq + 1
	slot, err := encodeHeadSlot(seq, signed)
	if err != nil {
		return err
	}
	if _, err := h.f.WriteAt(slot, int64(seq%2)*headSlot); err != nil {
		return fmt.Errorf("write head: %w", err)
	}
	if err := datasync(h.f); err != nil {
		return fmt.Errorf("sync head: %w", err)
	}
	h.seq = seq
	return nil
}

func (h *head) close() error {
	if h == nil {
		return nil
	}
	return h.f.Close()
}
