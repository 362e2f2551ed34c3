package audit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

const (
	// MaxEntryBytes is the largest entry frame a reader accepts. A larger
	// length prefix is treated as corrupt framing.
	MaxEntryBytes = 64 << 20
	// MaxCheckpointBytes is the largest checkpoint record a reader accepts.
	MaxCheckpointBytes = 64 << 10

	entriesName     = "entries"
	checkpointsName = "checkpoints"
	lockName        = "lock"

	// schemaVersion is the Event.V this package writes. Version 1 entries
	// (no session chain) are still read.
	schemaVersion = 2

	// typePrefix starts the types of the log's own events; Append refuses
	// them from callers.
	typePrefix = "audit."
	// typeUnverifiedOpen is the type of the event recorded when a log that
	// failed verification is opened with AllowUnverified.
	typeUnverifiedOpen = "audit.unverified-open"
	// typeRecover is the type of the event recorded when Open moved an
	// unacknowledged tail aside.
	typeRecover = "audit.recover"
	// typeSeal is the type of a session's seal (see Log.Seal).
	typeSeal = "audit.seal"
	// typeFault is the type of the event recorded when the log writes
	// again after a write fault.
	typeFault = "audit.fault"
	// typeDamage is the type of the event recorded when a verification
	// pass of a running log found damage.
	typeDamage = "audit.damage"

	// damagedName is the file a verification pass that found damage
	// leaves in the log's directory: Open then verifies the whole log
	// instead of starting from the head.
	damagedName = "damaged"

	// maxReported bounds how many per-entry problems a VerifyError lists.
	maxReported = 5
)

var (
	// ErrTampered means the files do not match their signed checkpoints:
	// entries were altered, removed, reordered or a checkpoint is not
	// validly signed for the origin. A server should treat the log as
	// untrustworthy and alert; it is not a transient condition.
	ErrTampered = errors.New("audit log tampered")
	// ErrRollback means the log is behind a checkpoint it made durable and
	// published (ward's remembered head, or a checkpoint given to verify
	// against): it was rolled back, cut back, or replaced by an older copy.
	// Errors that match it also match ErrTampered. A server must not start
	// on it: restoring the log from a backup, or an explicit and recorded
	// override, are the ways out.
	ErrRollback = errors.New("audit log rolled back")
	// ErrCorrupt means a file's framing cannot be parsed within the part
	// covered by a checkpoint.
	ErrCorrupt = errors.New("audit log corrupt")
	// ErrTooLarge means an event's encoding exceeds Config.MaxEventSize.
	// The log is unaffected; an HTTP server should answer 413.
	ErrTooLarge = errors.New("audit event too large")
	// ErrClosed means the Log was closed.
	ErrClosed = errors.New("audit log closed")
)

var hasher = rfc6962.DefaultHasher

// rangeFactory makes every compact range of this package (ranges merge
// only with ranges of the same factory).
var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

func newRange() *compact.Range { return rangeFactory.NewEmptyRange(0) }

// cloneRange copies a compact range that starts at 0.
func cloneRange(r *compact.Range) *compact.Range {
	hs := r.Hashes()
	cp := make([][]byte, len(hs))
	for i, h := range hs {
		cp[i] = bytes.Clone(h)
	}
	c, err := rangeFactory.NewRange(r.Begin(), r.End(), cp)
	if err != nil {
		// Hashes of a valid range always form a valid range.
		panic("audit: clone compact range: " + err.Error())
	}
	return c
}

func rootOf(r *compact.Range) []byte {
	root, err := r.GetRootHash(nil)
	if err != nil || root == nil {
		return hasher.EmptyRoot()
	}
	return root
}

// VerifyError describes why a log failed verification. It wraps
// ErrTampered, ErrCorrupt, ErrRollback (with ErrTampered) or several.
type VerifyError struct {
	// First is the lowest entry position implicated, or -1 if none is known.
	First int64
	// Problems lists what was found, each saying where.
	Problems []string

	tampered, corrupt, rollback bool
}

func (e *VerifyError) Error() string {
	kind := ErrTampered.Error()
	switch {
	case e.rollback && !e.tampered:
		kind = ErrRollback.Error()
	case e.corrupt && !e.tampered && !e.rollback:
		kind = ErrCorrupt.Error()
	}
	return kind + ": " + strings.Join(e.Problems, "; ")
}

// Unwrap returns the sentinels the error matches.
func (e *VerifyError) Unwrap() []error {
	var errs []error
	if e.tampered || e.rollback {
		errs = append(errs, ErrTampered)
	}
	if e.rollback {
		errs = append(errs, ErrRollback)
	}
	if e.corrupt {
		errs = append(errs, ErrCorrupt)
	}
	return errs
}

type problemKind int

const (
	tampered problemKind = iota
	corrupt
	rolledBack
)

func (e *VerifyError) add(pos int64, kind problemKind, format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
	switch kind {
	case corrupt:
		e.corrupt = true
	case rolledBack:
		e.rollback = true
	default:
		e.tampered = true
	}
	if pos >= 0 && (e.First < 0 || pos < e.First) {
		e.First = pos
	}
}

// Report is the result of a successful verification.
type Report struct {
	// Size is the tree size of the latest checkpoint.
	Size uint64
	// Root is its root hash.
	Root []byte
	// Checkpoint is the latest signed checkpoint note.
	Checkpoint []byte
	// TailBytes counts bytes after the checkpointed entries, and
	// TailEntries the complete entries among them: a batch a running node
	// has not checkpointed yet, a crash mid-batch, or entries nobody signed.
	// They are not verified; Open moves them aside.
	TailBytes   int64
	TailEntries uint64
	// HeadFound says whether ward's remembered head was there to check
	// against; Head is its tree size.
	HeadFound bool
	Head      uint64
	// Anchors lists the checkpoints from outside the log files (the head,
	// checkpoints given to verify against) that the log was found to extend.
	Anchors []Anchor
	// Anomalies lists entry problems that predate an "audit.unverified-open"
	// event, i.e. that ward knowingly accepted when a log was opened with
	// AllowUnverified.
	Anomalies []string
}

// Anchor is a checkpoint from outside the log files that a log extends.
type Anchor struct {
	Source string
	Size   uint64
}

// checkpoint is one parsed, signature-checked checkpoint.
type checkpoint struct {
	source   string // where it is, for messages
	file     string // for an anchor, the file it is in
	unusable bool   // an anchor file that holds no usable checkpoint
	rec      int    // record number in the checkpoints file, or -1 for one from outside it
	size     uint64
	root     []byte
	signed   []byte
	checked  bool // the log holds size entries, and their root was compared
	matched  bool
	recEnd   int64     // for a record, where it ends in the checkpoints file
	front    *frontier // for ward's remembered head (version 2), what it says of the files
	entEnd   int64     // where the entries it covers end, once checked
	cpRecord bool      // for the head: its record is where front says
}

func (c *checkpoint) failing(entries uint64) bool {
	return c.size > entries || (c.checked && !c.matched)
}

// decodeCanonical reads b, the JSON form of an entry (see the package
// documentation), only if it is the canonical encoding of the event it
// reads as: encoding/json encodes that event to exactly b.
//
// It reads b with json.Unmarshal, which ignores members Event does not
// declare and matches names regardless of case: the re-encoding, compared
// byte for byte, refuses both (and whitespace, and trailing data), as a
// decoder refusing unknown fields and trailing data did, without copying b
// into a decoder's buffer first (FuzzDecodeCanonical compares the two).
func decodeCanonical(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("parse: %v", err)
	}
	again, err := json.Marshal(e)
	if err != nil || !bytes.Equal(again, b) {
		return Event{}, errors.New("not in canonical encoding")
	}
	return e, nil
}

// decodeEntry strictly decodes an entry: known fields only, a single JSON
// value, bytes identical to what Append writes for the decoded event, a
// supported schema version, and chain fields as that version has them.
func decodeEntry(b []byte) (Event, error) {
	e, err := decodeCanonical(b)
	if err != nil {
		return Event{}, err
	}
	switch {
	case e.V == 1:
		if e.Seq != 0 || e.Prev != nil {
			return Event{}, errors.New("schema version 1 has no seq or prev")
		}
	case e.V != schemaVersion:
		return Event{}, fmt.Errorf("unsupported schema version %d", e.V)
	case e.Session == "":
		if e.Seq != 0 || e.Prev != nil {
			return Event{}, errors.New("seq or prev without a session")
		}
	case e.Seq == 0:
		return Event{}, errors.New("session event without seq")
	case (e.Seq > 1) != (e.Prev != nil):
		return Event{}, errors.New("prev must be present exactly when seq > 1")
	case e.Prev != nil && *e.Prev >= e.Index:
		return Event{}, fmt.Errorf("prev %d is not before the entry", *e.Prev)
	}
	return e, nil
}

func appendFrame(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// chain is what the writer knows of one session within a batch: how many
// events it has, the index of the latest, and whether it is sealed.
type chain struct {
	seq      uint64
	last     uint64
	sealed   bool
	lastSeal bool // the latest event is a seal
}

// frames reads consecutive frames of a file.
type frames struct {
	br   *bufio.Reader
	size int64
	max  uint32
	end  int64 // offset after the last complete frame
	buf  []byte
	done bool
	bad  string // an invalid frame length stopped the reading
}

func newFrames(r io.ReaderAt, from, size int64, max uint32) *frames {
	return &frames{br: bufio.NewReaderSize(io.NewSectionReader(r, from, size-from), 1<<20), size: size, max: max, end: from}
}

// next returns the next complete frame's bytes (reused by the next call),
// or nil at the end: the end of the file, a torn frame or an invalid
// length (then bad says which).
func (f *frames) next() ([]byte, error) {
	if f.done {
		return nil, nil
	}
	var hdr [4]byte
	if _, err := io.ReadFull(f.br, hdr[:]); err != nil {
		f.done = true
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, nil
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > f.max {
		f.done = true
		f.bad = fmt.Sprintf("invalid frame length %d at offset %d", n, f.end)
		return nil, nil
	}
	if int64(n) > f.size-f.end-4 {
		f.done = true
		return nil, nil // torn
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n)
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.br, f.buf); err != nil {
		f.done = true
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, nil
		}
		return nil, err
	}
	f.end += 4 + int64(n)
	return f.buf, nil
}

// readFrames calls fn for each complete frame in r. It stops at a torn
// frame (returning its offset) or at an invalid length (returning a
// description). fn's buffer is reused.
func readFrames(r io.Reader, size int64, max uint32, fn func(off int64, b []byte) error) (end int64, bad string, err error) {
	f := &frames{br: bufio.NewReaderSize(r, 1<<20), size: size, max: max}
	for {
		off := f.end
		b, err := f.next()
		if err != nil {
			return f.end, "", err
		}
		if b == nil {
			return f.end, f.bad, nil
		}
		if err := fn(off, b); err != nil {
			return off, "", err
		}
	}
}
