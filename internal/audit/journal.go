package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// The journal is what makes a batch durable with one sync: the writer
// appends one record per batch to it (the batch's entry frames,
// authenticated with a key only the holder of the log's signing key can
// derive) and fdatasyncs it alone, then acknowledges the batch. No
// checkpoint is signed on that path: the entries file gets the same frames
// in the same batch, not synced, and a signed checkpoint over the durable
// entries, the checkpoints file and the head follow on their own cadence
// (see checkpointer). Open replays the records the head does not cover
// into the files and signs a checkpoint over them before anything else
// (see replayJournal). See the package documentation for the layout.
const (
	// journalSize is the journal file's size, allocated (written with
	// zeros) when it is created so that a record's fdatasync never has to
	// change the file's size or extents. A batch whose record does not fit
	// in what is left is made durable the way every batch used to be
	// (entries, a checkpoint signed over them and the head each synced)
	// and the next record goes to offset 0.
	journalSize = 4 << 20
	// journalMagic starts the records this package writes (their MAC
	// authenticates them); journalMagicV1 starts those of earlier
	// versions, which held a checkpoint signed over their entries instead
	// (and a plain SHA-256): Open still replays them.
	journalMagic   = "wjr2"
	journalMagicV1 = "wjr1"
	// journalFixed is a record's size besides its entries.
	journalFixed = len(journalMagic) + 4 + 8 + 8 + 8 + 4 + sha256.Size
	// journalFixedV1 is a version 1 record's size besides its entries and
	// checkpoint.
	journalFixedV1 = len(journalMagicV1) + 4 + 8 + 8 + 8 + 4 + 4 + sha256.Size

	// checkpointInterval is how often, at most, the checkpointer signs a
	// checkpoint over the acknowledged entries and makes it, the
	// checkpoints file and the head durable (and so how much Open may
	// have to replay from the journal after a crash); checkpointEvery
	// entries acknowledged since the latest checkpoint trigger one
	// sooner, and so does Sync.
	checkpointInterval = 200 * time.Millisecond
	checkpointEvery    = 4096

	// journalKeyMessage is what the log's key signs to derive the
	// journal's MAC key. note.Sign signs only texts that end in a
	// newline, so no note the key signs (a checkpoint) has this text, and
	// its signature is never written anywhere.
	journalKeyMessage = "ward-audit-journal-key/v1"
)

// journalKey derives the key that authenticates the journal's records
// from the log's signer: the SHA-256 of its signature of
// journalKeyMessage. Whoever can write the journal but does not hold the
// signing key cannot make a record Open replays (and then signs a
// checkpoint over), as with records signed one by one. The signer must be
// deterministic (Ed25519, as note.NewSigner's, is); Open refuses one that
// is not, for its records would not be read back.
func journalKey(s note.Signer) ([]byte, error) {
	a, err := s.Sign([]byte(journalKeyMessage))
	if err != nil {
		return nil, fmt.Errorf("derive the journal's key: %w", err)
	}
	b, err := s.Sign([]byte(journalKeyMessage))
	if err != nil {
		return nil, fmt.Errorf("derive the journal's key: %w", err)
	}
	if !bytes.Equal(a, b) {
		return nil, errors.New("derive the journal's key: the signer's signatures are not deterministic (use an Ed25519 key from note.NewSigner)")
	}
	k := sha256.Sum256(append([]byte(journalKeyMessage+"\x00"), a...))
	return k[:], nil
}

// journalPath is where the journal of a log whose head file is head lives:
// beside the head, outside the log's directory.
func journalPath(head string) string { return head + ".journal" }

// journal is the open journal file, written by the writer alone.
type journal struct {
	f   *os.File
	off int64 // where the next record goes
	// ok says that the head, with the records in [0, off), covers every
	// acknowledged entry, so a record appended at off extends them. It is
	// false until the head names the log's state (an unverified open).
	ok  bool
	buf []byte
	mac hash.Hash // HMAC-SHA256 with the journal's key
	// syncs counts the journal's fdatasyncs: one per durable batch, which
	// also makes durable the unsynced batches written before it.
	syncs uint64
}

// openJournal opens the journal at path, creating it (durably, of
// journalSize zero bytes) if it is missing or of another size; its records
// are authenticated with key.
func openJournal(path string, key []byte) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if st.Size() != journalSize {
		// Zeros written, not a hole or a preallocated extent: the first
		// lap's syncs then need no metadata either.
		if _, err := f.WriteAt(make([]byte, journalSize), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("allocate journal %s: %w", path, err)
		}
		if err := f.Truncate(journalSize); err != nil {
			f.Close()
			return nil, fmt.Errorf("allocate journal %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("allocate journal %s: %w", path, err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("allocate journal %s: %w", path, err)
		}
	}
	return &journal{f: f, mac: newJournalMAC(key)}, nil
}

// newJournalMAC returns the MAC of the journal's records: HMAC-SHA256
// with key.
func newJournalMAC(key []byte) hash.Hash { return hmac.New(sha256.New, key) }

// fits says whether a record of n entry bytes can be appended.
func (j *journal) fits(n int) bool {
	return j != nil && j.ok && j.off+int64(journalFixed+n) <= journalSize
}

// write writes the record of a batch, unsynced: entries (frames, as in
// the entries file, from entStart there) move the tree from size start to
// end. It returns where the record ends; the caller makes that the next
// record's place (off) once the batch is acknowledged, so that after a
// failure the next record overwrites what this one left. Written, the
// record is in the kernel's page cache: a crash of the process no longer
// loses it (Open reads it back), a crash of the machine may, until sync.
func (j *journal) write(start, end uint64, entStart int64, entries []byte) (int64, error) {
	b := j.buf[:0]
	b = append(b, journalMagic...)
	b = binary.BigEndian.AppendUint32(b, 0) // body length, set below
	b = binary.BigEndian.AppendUint64(b, start)
	b = binary.BigEndian.AppendUint64(b, end)
	b = binary.BigEndian.AppendUint64(b, uint64(entStart))
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	b = append(b, entries...)
	binary.BigEndian.PutUint32(b[len(journalMagic):], uint32(len(b)-len(journalMagic)-4))
	j.mac.Reset()
	j.mac.Write(b)
	b = j.mac.Sum(b)
	if len(b) <= 1<<20 {
		j.buf = b
	}
	if _, err := j.f.WriteAt(b, j.off); err != nil {
		return 0, fmt.Errorf("write journal: %w", err)
	}
	return j.off + int64(len(b)), nil
}

// sync makes every record written so far durable: one fdatasync (the
// file's size and extents never change, so it writes no metadata).
func (j *journal) sync() error {
	if err := datasync(j.f); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	j.syncs++
	return nil
}

// restart makes the next record go to offset 0: the head covers every
// acknowledged entry.
func (j *journal) restart() {
	if j != nil {
		j.off, j.ok = 0, true
	}
}

func (j *journal) close() error {
	if j == nil {
		return nil
	}
	return j.f.Close()
}

// journalRecord is one parsed record.
type journalRecord struct {
	start, end uint64
	entStart   int64
	entries    []byte
	// signed is the checkpoint at end of a version 1 record (nil in the
	// records this package writes).
	signed []byte
}

// readJournal returns the records of the journal r (of size bytes) that
// end after the tree size after, reading from offset 0 on as long as each
// record extends the one before (its start is the previous record's end,
// in the tree and in the entries file). Records ending at or before after
// are skipped by their headers, unread; the others must be whole and
// authentic (their MAC with key matches; a version 1 record's sum, its
// checkpoint being checked by the caller). Records of an earlier lap,
// after the current one's, do not extend it; a record torn by a crash
// does not match its MAC.
func readJournal(r io.ReaderAt, size int64, after uint64, keys [][]byte) []journalRecord {
	var out []journalRecord
	var hdr [len(journalMagic) + 4 + 8 + 8 + 8 + 4]byte
	var prevEnd uint64
	var prevEntEnd int64
	for p, first := int64(0), true; p+int64(len(hdr)) <= size; first = false {
		if _, err := r.ReadAt(hdr[:], p); err != nil {
			return out
		}
		fixed := journalFixed
		switch string(hdr[:len(journalMagic)]) {
		case journalMagic:
		case journalMagicV1:
			fixed = journalFixedV1
		default:
			return out
		}
		q := len(journalMagic)
		n := int64(binary.BigEndian.Uint32(hdr[q:]))
		total := int64(q) + 4 + n + sha256.Size
		start := binary.BigEndian.Uint64(hdr[q+4:])
		end := binary.BigEndian.Uint64(hdr[q+12:])
		entStart := int64(binary.BigEndian.Uint64(hdr[q+20:]))
		entLen := int64(binary.BigEndian.Uint32(hdr[q+28:]))
		if total < int64(fixed) || p+total > size || end <= start || entStart < 0 || entLen > n {
			return out
		}
		if !first && (start != prevEnd || entStart != prevEntEnd) {
			return out
		}
		if end > after {
			b := make([]byte, total)
			if _, err := r.ReadAt(b, p); err != nil {
				return out
			}
			rec, ok := parseJournalRecord(b, keys)
			if !ok {
				return out
			}
			out = append(out, rec)
		}
		prevEnd, prevEntEnd = end, entStart+entLen
		p += total
	}
	return out
}

// parseJournalRecord reads one whole record: one this package writes,
// authenticated by its MAC with one of keys, or a version 1 record (its
// sum).
func parseJournalRecord(rec []byte, keys [][]byte) (journalRecord, bool) {
	total := len(rec)
	v1 := string(rec[:len(journalMagicV1)]) == journalMagicV1
	if v1 {
		if sum := sha256.Sum256(rec[:total-sha256.Size]); !bytes.Equal(sum[:], rec[total-sha256.Size:]) {
			return journalRecord{}, false
		}
	} else {
		authentic := false
		for _, key := range keys {
			m := newJournalMAC(key)
			m.Write(rec[:total-sha256.Size])
			authentic = authentic || hmac.Equal(m.Sum(nil), rec[total-sha256.Size:])
		}
		if !authentic {
			return journalRecord{}, false
		}
	}
	body := rec[len(journalMagic)+4 : total-sha256.Size]
	r := journalRecord{
		start:    binary.BigEndian.Uint64(body),
		end:      binary.BigEndian.Uint64(body[8:]),
		entStart: int64(binary.BigEndian.Uint64(body[16:])),
	}
	q := 24
	ne := int(binary.BigEndian.Uint32(body[q:]))
	q += 4
	if !v1 {
		if ne != len(body)-q {
			return journalRecord{}, false
		}
		r.entries = body[q:]
		return r, true
	}
	if ne > len(body)-q-4 {
		return journalRecord{}, false
	}
	r.entries = body[q : q+ne]
	q += ne
	nc := int(binary.BigEndian.Uint32(body[q:]))
	q += 4
	if nc != len(body)-q {
		return journalRecord{}, false
	}
	r.signed = body[q:]
	return r, true
}

// clear marks the journal empty (its first record's magic zeroed,
// durably): a log closed with its head covering everything needs none,
// and the next Open then reads a few bytes of it.
func (j *journal) clear() error {
	if j == nil {
		return nil
	}
	if _, err := j.f.WriteAt(make([]byte, len(journalMagic)), 0); err != nil {
		return fmt.Errorf("clear journal: %w", err)
	}
	if err := datasync(j.f); err != nil {
		return fmt.Errorf("clear journal: %w", err)
	}
	j.off = 0
	return nil
}

// replayJournal writes the acknowledged batches the head does not cover
// back into the log's files, from the journal beside the head: each
// record must be authentic (its MAC; a version 1 record's checkpoint,
// validly signed by the log's key over the record's entries hashed onto
// the head's frontier) and extend the head's tree, and it goes exactly
// where the writer put it. The entries are synced, then a checkpoint over
// them all is signed and appended to the checkpoints file after the
// valid records there (torn bytes after them are moved aside, as a
// crash's tail is) and synced; the head is left to the open that follows,
// which adopts that record as it adopts any checkpoint after the head's.
// Records that do not extend the head are ignored, never adopted.
// replayJournal changes nothing when the head is unusable or the files
// are shorter than it says (a rollback: Open refuses it), and nothing when
// there is nothing to replay.
func replayJournal(cfg Config, hs headState) error {
	if hs.cp == nil || hs.front == nil || hs.problem != "" {
		return nil
	}
	jf, err := os.Open(journalPath(cfg.Head))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	defer jf.Close()
	jst, err := jf.Stat()
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	fr := hs.front
	size, entEnd := hs.cp.size, fr.entEnd
	rng, err := rangeFactory.NewRange(0, size, fr.hashes)
	if err != nil {
		return nil
	}
	var apply []journalRecord
	for _, r := range readJournal(jf, jst.Size(), size, cfg.journalKeys) {
		if r.end <= size {
			continue
		}
		if r.start != size || r.entStart != entEnd {
			break
		}
		next, ok := extendWith(cfg, rng, r)
		if !ok {
			break
		}
		apply = append(apply, r)
		rng, size, entEnd = next, r.end, entEnd+int64(len(r.entries))
	}
	if len(apply) == 0 {
		return nil
	}
	ent, err := os.OpenFile(filepath.Join(cfg.Dir, entriesName), os.O_RDWR, 0)
	if err != nil {
		return nil // no log here: Open judges
	}
	defer ent.Close()
	cps, err := os.OpenFile(filepath.Join(cfg.Dir, checkpointsName), os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	defer cps.Close()
	est, err := ent.Stat()
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	cst, err := cps.Stat()
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	if est.Size() < fr.entEnd || cst.Size() < fr.cpEnd {
		return nil
	}
	// The checkpoint records after the head's: written on the cadence
	// from entries synced first, so at most the journal's last.
	pos, last := fr.cpEnd, hs.cp.size
	cf := newFrames(cps, fr.cpEnd, cst.Size(), MaxCheckpointBytes)
	for {
		c, err := cf.next()
		if err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
		if c == nil {
			break
		}
		n, _, err := openCheckpoint(c, cfg.Verifier, cfg.Origin)
		if err != nil || n < last {
			break
		}
		if n > size {
			return nil // beyond what the journal holds: Open judges
		}
		pos, last = cf.end, n
	}
	for _, r := range apply {
		if _, err := ent.WriteAt(r.entries, r.entStart); err != nil {
			return fmt.Errorf("replay journal: write entries %d..%d: %w", r.start, r.end-1, err)
		}
	}
	if err := ent.Sync(); err != nil {
		return fmt.Errorf("replay journal: sync entries: %w", err)
	}
	if pos < cst.Size() {
		name := checkpointsName + ".tail-" + strconv.FormatInt(cfg.Now().UnixNano(), 10)
		if err := moveTail(cps, pos, cst.Size(), filepath.Join(cfg.Dir, name)); err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
	}
	if last < size {
		final, err := note.Sign(&note.Note{Text: checkpointText(cfg.Origin, size, rootOf(rng))}, append([]note.Signer{cfg.Signer}, cfg.Signers...)...)
		if err != nil {
			return fmt.Errorf("replay journal: sign checkpoint at size %d: %w", size, err)
		}
		if _, err := cps.WriteAt(appendFrame(nil, final), pos); err != nil {
			return fmt.Errorf("replay journal: write checkpoint at size %d: %w", size, err)
		}
		if err := cps.Sync(); err != nil {
			return fmt.Errorf("replay journal: sync checkpoint at size %d: %w", size, err)
		}
	}
	return nil
}

// extendWith hashes a record's entries onto rng and checks each entry's
// index, and a version 1 record's checkpoint against the result.
func extendWith(cfg Config, rng *compact.Range, r journalRecord) (*compact.Range, bool) {
	var root []byte
	if r.signed != nil {
		n, rt, err := openCheckpoint(r.signed, cfg.Verifier, cfg.Origin)
		if err != nil || n != r.end {
			return nil, false
		}
		root = rt
	}
	next := cloneRange(rng)
	fs := newFrames(bytes.NewReader(r.entries), 0, int64(len(r.entries)), MaxEntryBytes)
	for i := r.start; i < r.end; i++ {
		e, err := fs.next()
		if err != nil || e == nil {
			return nil, false
		}
		if _, _, ok := entryState(e, i); !ok {
			return nil, false
		}
		if err := next.Append(hasher.HashLeaf(e), nil); err != nil {
			return nil, false
		}
	}
	if fs.end != int64(len(r.entries)) || (root != nil && !bytes.Equal(rootOf(next), root)) {
		return nil, false
	}
	if e, _ := fs.next(); e != nil {
		return nil, false
	}
	return next, true
}
