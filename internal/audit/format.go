package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
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

	// schemaVersion is the only Event.V this package writes and accepts.
	schemaVersion = 1

	// typeUnverifiedOpen is the type of the event recorded when a log that
	// failed verification is opened with AllowUnverified.
	typeUnverifiedOpen = "audit.unverified-open"
	// typeRecover is the type of the event recorded when Open truncated
	// unacknowledged bytes.
	typeRecover = "audit.recover"

	// maxReported bounds how many per-entry problems a VerifyError lists.
	maxReported = 5
)

var (
	// ErrTampered means the files do not match their signed checkpoints:
	// entries were altered, removed, reordered or a checkpoint is not
	// validly signed for the origin. A server should treat the log as
	// untrustworthy and alert; it is not a transient condition.
	ErrTampered = errors.New("audit log tampered")
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

func newRange() *compact.Range {
	f := compact.RangeFactory{Hash: hasher.HashChildren}
	return f.NewEmptyRange(0)
}

// cloneRange copies a compact range that starts at 0.
func cloneRange(r *compact.Range) *compact.Range {
	hs := r.Hashes()
	cp := make([][]byte, len(hs))
	for i, h := range hs {
		cp[i] = bytes.Clone(h)
	}
	f := compact.RangeFactory{Hash: hasher.HashChildren}
	c, err := f.NewRange(r.Begin(), r.End(), cp)
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

// VerifyError describes why a log failed verification. It wraps ErrTampered,
// ErrCorrupt or both.
type VerifyError struct {
	// First is the lowest entry position implicated, or -1 if none is known.
	First int64
	// Problems lists what was found, each saying where.
	Problems []string

	tampered, corrupt bool
}

func (e *VerifyError) Error() string {
	kind := ErrTampered.Error()
	if e.corrupt && !e.tampered {
		kind = ErrCorrupt.Error()
	}
	return kind + ": " + strings.Join(e.Problems, "; ")
}

// Unwrap returns the sentinels the error matches.
func (e *VerifyError) Unwrap() []error {
	var errs []error
	if e.tampered {
		errs = append(errs, ErrTampered)
	}
	if e.corrupt {
		errs = append(errs, ErrCorrupt)
	}
	return errs
}

func (e *VerifyError) add(pos int64, corrupt bool, format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
	if corrupt {
		e.corrupt = true
	} else {
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
	// TailBytes counts bytes after the checkpointed entries (a crash
	// mid-write, or bytes nobody signed). They are not verified; Open
	// truncates them.
	TailBytes int64
	// Anomalies lists entry problems that predate an "audit.unverified-open"
	// event, i.e. that ward knowingly accepted when a log was opened with
	// AllowUnverified.
	Anomalies []string
}

// checkpoint is one parsed, signature-checked checkpoint record.
type checkpoint struct {
	rec     int // record number in the checkpoints file, from 0
	size    uint64
	root    []byte
	signed  []byte
	checked bool // root compared with the entries
	matched bool
}

// checkpointText is the C2SP tlog-checkpoint body.
func checkpointText(origin string, size uint64, root []byte) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root) + "\n"
}

// parseCheckpoint strictly parses a checkpoint body written by this package.
func parseCheckpoint(text, origin string) (size uint64, root []byte, err error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return 0, nil, errors.New("checkpoint must have exactly three lines")
	}
	if got := strings.TrimSuffix(lines[0], "\n"); got != origin {
		return 0, nil, fmt.Errorf("origin %q, want %q", got, origin)
	}
	s := strings.TrimSuffix(lines[1], "\n")
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, nil, errors.New("malformed tree size")
	}
	size, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, nil, errors.New("malformed tree size")
	}
	r := strings.TrimSuffix(lines[2], "\n")
	root, err = base64.StdEncoding.Strict().DecodeString(r)
	if err != nil || len(root) != hasher.Size() || base64.StdEncoding.EncodeToString(root) != r {
		return 0, nil, errors.New("malformed root hash")
	}
	return size, root, nil
}

// openCheckpoint verifies a signed checkpoint note and parses its body.
func openCheckpoint(signed []byte, v note.Verifier, origin string) (uint64, []byte, error) {
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return 0, nil, errors.New("not signed by the log key")
		}
		return 0, nil, fmt.Errorf("signature: %v", err)
	}
	return parseCheckpoint(n.Text, origin)
}

// decodeEntry strictly decodes an entry: known fields only, a single JSON
// value, supported schema version, and bytes identical to what Append
// writes for the decoded event.
func decodeEntry(b []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("parse: %v", err)
	}
	if dec.InputOffset() != int64(len(b)) {
		return Event{}, errors.New("parse: trailing data")
	}
	if e.V != schemaVersion {
		return Event{}, fmt.Errorf("unsupported schema version %d", e.V)
	}
	again, err := json.Marshal(e)
	if err != nil || !bytes.Equal(again, b) {
		return Event{}, errors.New("not in canonical encoding")
	}
	return e, nil
}

func appendFrame(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// scan is what reading a log directory found.
type scan struct {
	cps      []*checkpoint // validly signed records, in file order
	cpEnd    int64         // offset after the last complete checkpoint record
	cpSize   int64         // checkpoints file size
	cpFrames int           // complete checkpoint records, valid or not

	offsets  []int64 // offsets[i] is where entry i starts; offsets[len-1] is the end of the last complete frame
	entSize  int64   // entries file size
	frameBad string  // invalid frame header found at offsets[len-1]

	atLatest *compact.Range // tree over the first latest.size entries, if that many exist
	all      *compact.Range // tree over all complete entries
	tree     tree           // every complete subtree of all complete entries

	v *VerifyError
	// entry problems, kept apart so those before an unverified-open event
	// can be tolerated.
	entryProblems []entryProblem
	unverified    int64 // position of the last valid unverified-open event, or -1
}

type entryProblem struct {
	pos int64
	msg string
}

func (s *scan) entries() uint64 { return uint64(len(s.offsets) - 1) }

func (s *scan) latest() *checkpoint {
	if len(s.cps) == 0 {
		return nil
	}
	return s.cps[len(s.cps)-1]
}

// fresh reports whether the files hold nothing that was ever acknowledged:
// no entry bytes at all, and at most a torn first checkpoint record (a crash
// while the log was being created). Anything else, however damaged, goes
// through verification, so damage is refused (or quarantined), never
// silently wiped.
func (s *scan) fresh() bool {
	return s.entSize == 0 && s.cpFrames == 0 && s.frameBad == "" && s.cpSize <= MaxCheckpointBytes+4
}

// readFrames calls fn for each complete frame in r. It stops at a torn
// frame (returning its offset) or at an invalid length (returning a
// description). fn's buffer is reused.
func readFrames(r io.Reader, size int64, max uint32, fn func(off int64, b []byte) error) (end int64, bad string, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return end, "", nil
			}
			return end, "", err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > max {
			return end, fmt.Sprintf("invalid frame length %d at offset %d", n, end), nil
		}
		if int64(n) > size-end-4 {
			return end, "", nil // torn
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return end, "", nil
			}
			return end, "", err
		}
		if err := fn(end, buf); err != nil {
			return end, "", err
		}
		end += 4 + int64(n)
	}
}

// scanFiles reads both files. Its error is an I/O error; what the files
// contain is judged by verdict.
func scanFiles(ent, cps *os.File, v note.Verifier, origin string) (*scan, error) {
	est, err := ent.Stat()
	if err != nil {
		return nil, err
	}
	cst, err := cps.Stat()
	if err != nil {
		return nil, err
	}
	return scanLog(ent, est.Size(), cps, cst.Size(), v, origin)
}

// scanLog reads the entries and checkpoints contents.
func scanLog(ent io.ReaderAt, entSize int64, cps io.ReaderAt, cpSize int64, v note.Verifier, origin string) (*scan, error) {
	s := &scan{v: &VerifyError{First: -1}, unverified: -1}
	s.cpSize = cpSize
	end, bad, err := readFrames(io.NewSectionReader(cps, 0, s.cpSize), s.cpSize, MaxCheckpointBytes, func(_ int64, b []byte) error {
		rec := s.cpFrames
		s.cpFrames++
		size, root, err := openCheckpoint(b, v, origin)
		if err != nil {
			s.v.add(-1, false, "checkpoint record %d: %v", rec, err)
			return nil
		}
		if l := s.latest(); l != nil && size < l.size {
			s.v.add(int64(size), false, "checkpoint record %d: tree size %d smaller than %d in record %d (rolled back?)", rec, size, l.size, l.rec)
			return nil
		}
		s.cps = append(s.cps, &checkpoint{rec: rec, size: size, root: root, signed: bytes.Clone(b)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", checkpointsName, err)
	}
	s.cpEnd = end
	if bad != "" {
		s.v.add(-1, true, "checkpoints: %s", bad)
	}

	bySize := make(map[uint64][]*checkpoint, len(s.cps))
	for _, c := range s.cps {
		bySize[c.size] = append(bySize[c.size], c)
	}
	check := func(size uint64, r *compact.Range) {
		cs := bySize[size]
		if len(cs) == 0 {
			return
		}
		root := rootOf(r)
		for _, c := range cs {
			c.checked = true
			c.matched = bytes.Equal(root, c.root)
		}
	}
	latestSize := uint64(0)
	if l := s.latest(); l != nil {
		latestSize = l.size
	}

	s.entSize = entSize
	s.all = newRange()
	s.offsets = append(s.offsets, 0)
	check(0, s.all)
	if latestSize == 0 {
		s.atLatest = newRange()
	}
	end, bad, err = readFrames(io.NewSectionReader(ent, 0, s.entSize), s.entSize, MaxEntryBytes, func(off int64, b []byte) error {
		i := int64(len(s.offsets) - 1)
		leaf := hasher.HashLeaf(b)
		if err := s.all.Append(leaf, nil); err != nil {
			return err
		}
		s.tree.append(leaf)
		s.offsets = append(s.offsets, off+4+int64(len(b)))
		n := uint64(i + 1)
		check(n, s.all)
		if n == latestSize {
			s.atLatest = cloneRange(s.all)
		}
		e, err := decodeEntry(b)
		switch {
		case err != nil:
			s.entryProblems = append(s.entryProblems, entryProblem{i, fmt.Sprintf("entry %d: %v", i, err)})
		case e.Index != uint64(i):
			s.entryProblems = append(s.entryProblems, entryProblem{i, fmt.Sprintf("entry %d: index field says %d (reordered or removed?)", i, e.Index)})
		case e.Type == typeUnverifiedOpen:
			s.unverified = i
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", entriesName, err)
	}
	if bad != "" {
		s.frameBad = fmt.Sprintf("entry %d: %s", len(s.offsets)-1, bad)
	}
	return s, nil
}

// verdict judges the scan against its latest checkpoint. It returns the
// anomalies tolerated because of a later unverified-open event.
func (s *scan) verdict() (anomalies []string, err error) {
	v := s.v
	l := s.latest()
	n := s.entries()
	if l == nil {
		if s.fresh() {
			v.add(-1, true, "no checkpoint")
		} else {
			v.add(0, false, "no validly signed checkpoint but %d entries (%d bytes)", n, s.entSize)
		}
		return nil, v
	}
	if n < l.size {
		if s.frameBad != "" {
			v.add(int64(n), true, "%s", s.frameBad)
		}
		v.add(int64(n), false, "tree size %d in checkpoint but %d entries in log (entry removed?)", l.size, n)
	}
	// Entry problems among checkpointed entries. Those before an
	// unverified-open event that is itself checkpointed were accepted then.
	tolerateBelow := int64(-1)
	if s.unverified >= 0 && uint64(s.unverified) < l.size {
		tolerateBelow = s.unverified
	}
	reported := 0
	for _, p := range s.entryProblems {
		if uint64(p.pos) >= l.size {
			break
		}
		if p.pos < tolerateBelow {
			anomalies = append(anomalies, p.msg)
			continue
		}
		if reported == maxReported {
			v.add(-1, false, "more entry problems not listed")
			break
		}
		reported++
		v.add(p.pos, false, "%s", p.msg)
	}
	// Roots. The latest checkpoint decides; the history narrows.
	if l.checked && !l.matched {
		msg := fmt.Sprintf("root hash mismatch at size %d: entries altered", l.size)
		first := int64(0)
		for i, c := range s.cps {
			if c.checked && !c.matched {
				prev := uint64(0)
				for _, p := range s.cps[:i] {
					if p.matched && p.size > prev {
						prev = p.size
					}
				}
				first = int64(prev)
				msg += fmt.Sprintf("; first checkpoint that no longer matches is record %d (size %d), so the alteration is in entries %d..%d", c.rec, c.size, prev, c.size-1)
				break
			}
		}
		v.add(first, false, "%s", msg)
	} else if l.checked {
		for _, c := range s.cps {
			if c.checked && !c.matched {
				v.add(-1, false, "checkpoint record %d (size %d) no longer matches the log though the latest does (history rewritten?)", c.rec, c.size)
				break
			}
		}
	}
	if len(v.Problems) > 0 {
		return anomalies, v
	}
	return anomalies, nil
}

// Verify checks the log in dir offline, without opening it for writing. It
// checks every complete checkpoint record's signature (with v) and origin,
// recomputes the RFC 6962 root over the entries at every checkpointed size,
// and checks that each checkpointed entry parses and carries its position as
// its index. The latest checkpoint must match; earlier ones narrow where an
// alteration is. Errors are a *VerifyError wrapping ErrTampered or
// ErrCorrupt and say where the problem is, or an I/O error.
//
// Verify may run while a Log is appending: a batch not yet checkpointed is
// reported as Report.TailBytes.
func Verify(dir string, v note.Verifier, origin string) (*Report, error) {
	if v == nil {
		return nil, errors.New("verify audit log: nil verifier")
	}
	ent, err := os.Open(filepath.Join(dir, entriesName))
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	defer ent.Close()
	cps, err := os.Open(filepath.Join(dir, checkpointsName))
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	defer cps.Close()
	s, err := scanFiles(ent, cps, v, origin)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	return s.report()
}

// report judges a scan for Verify.
func (s *scan) report() (*Report, error) {
	anomalies, err := s.verdict()
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	l := s.latest()
	return &Report{
		Size:       l.size,
		Root:       l.root,
		Checkpoint: l.signed,
		TailBytes:  s.entSize - s.offsets[l.size],
		Anomalies:  anomalies,
	}, nil
}

// validOrigin reports whether origin can be a checkpoint's first line.
func validOrigin(origin string) bool {
	if origin == "" || !utf8.ValidString(origin) {
		return false
	}
	for _, r := range origin {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
