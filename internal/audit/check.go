package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/ward-dev/ward/internal/atomicfile"
)

// errPassDisturbed says a verification pass cannot conclude.
var errPassDisturbed = errors.New("verify audit log: a write failed while the pass read the log, so what it read proves nothing; run it again once the log writes")

const (
	// maxIndexProblems bounds the index problems a verification pass lists.
	maxIndexProblems = 5
	// scratchPrefix names the directories of verification passes' scratch
	// session tables, in the index.
	scratchPrefix = "verify-"
)

// Verify checks the whole log as VerifyLog does (every checkpoint record's
// signature, every entry's encoding and chain, the tree at every
// checkpoint's size, against the head and the anchors) and that the index
// agrees with the entries. A server runs it in the background after Open,
// which checks only what came after the head's durable index.
//
// It first has the log sign a checkpoint over every entry acknowledged
// (Sync), then reads the files beside the running log (appends go on),
// follows the
// sessions' chains in a scratch session table on disk (so its memory does
// not grow with the log) and stops when ctx is done or the log is closed.
//
// If it finds damage, the log records an "audit.damage" event saying
// what, then fails closed: Append and Err return the damage until the log
// is reopened. It also leaves a mark ("damaged") in the log's directory,
// so that the next Open verifies the whole log instead of starting from
// the head: Open then refuses a damaged log, as it always has, or, if only
// the index was damaged, rebuilds it. Verify returns the report; or the
// damage, an error wrapping ErrTampered, ErrRollback or ErrCorrupt; or an
// I/O or context error, which says nothing about the log.
func (l *Log) Verify(ctx context.Context) (*Report, error) {
	faults := l.faults.Load()
	size := l.Size()
	select {
	case <-l.quit:
		return nil, ErrClosed
	default:
	}
	// The files then hold a checkpoint over every entry acknowledged so
	// far (checkpoints follow appends on the log's cadence).
	if _, err := l.Sync(ctx); err != nil {
		if errors.Is(err, ErrClosed) || ctx.Err() != nil || l.damaged() != nil {
			return nil, fmt.Errorf("verify audit log: %w", err)
		}
		// A write fault: the log retries by itself.
		return nil, errPassDisturbed
	}
	scratch := filepath.Join(l.cfg.Dir, indexDirName, scratchPrefix+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	defer os.RemoveAll(scratch)
	t, err := openSessions(scratch, true)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	defer t.close()

	s := newScan()
	s.chains = diskChains{newChains(t)}
	s.stop = func() error {
		select {
		case <-l.quit:
			return ErrClosed
		default:
			return ctx.Err()
		}
	}
	v := l.keys.Load().verifier
	anchors, err := loadAnchors(l.cfg.Anchors, v, l.cfg.Origin, s.v)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	hs, err := readHead(l.cfg.Head, v, l.cfg.Origin)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	switch {
	case hs.problem != "":
		s.v.add(-1, hs.kind, "%s", hs.problem)
	case !hs.found:
		s.v.add(-1, rolledBack, "ward's remembered head %s is missing", l.cfg.Head)
	}
	if hs.cp != nil {
		s.anchors = append(s.anchors, hs.cp)
	}
	s.anchors = append(s.anchors, usable(anchors)...)
	ic, err := newIndexCheck(filepath.Join(l.cfg.Dir, indexDirName), size)
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	defer ic.close()
	s.onEntry, s.visit = ic.entry, ic.node
	if err := s.readFiles(l.cfg.Dir, v, l.cfg.Origin); err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	if ic.err != nil {
		return nil, fmt.Errorf("verify audit log: %w", ic.err)
	}
	if s.n < size {
		// The scan ended early: the entries do not reach what was
		// acknowledged (the verdict says how).
		ic.problem("the entries end after %d of the %d acknowledged", s.n, size)
	}
	// A write that failed while the pass read may have left, then cut, a
	// checkpoint whose entries the pass did not find: what the pass saw
	// says nothing then.
	inconclusive := func() bool { return l.faults.Load() != faults }
	rep, err := s.report()
	if err != nil {
		if inconclusive() {
			return nil, errPassDisturbed
		}
		// (The index, derived from damaged entries, would only add noise.)
		l.markDamaged(err)
		return nil, err
	}
	if err := ic.sessions(t, size); err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	if len(ic.problems) > 0 && inconclusive() {
		return nil, errPassDisturbed
	}
	if len(ic.problems) > 0 {
		ve := &VerifyError{First: -1}
		for _, p := range ic.problems {
			ve.add(-1, corrupt, "index: %s", p)
		}
		err := fmt.Errorf("verify audit log: %w", ve)
		l.markDamaged(err)
		return nil, err
	}
	rep.HeadFound = hs.found
	if hs.cp != nil {
		rep.Head = hs.cp.size
	}
	return rep, nil
}

// markDamaged records what a verification pass found, then fails the log
// closed and marks its directory.
func (l *Log) markDamaged(err error) {
	data, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{err.Error()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := l.append(ctx, Event{Type: typeDamage, Actor: "ward", Data: data}, false); err == nil {
		// The event under a checkpoint before the log fails closed (the
		// checkpointer stops then): the next Open finds it signed in
		// the files rather than replaying it from the journal.
		_, _ = l.Sync(ctx)
	}
	cancel()
	_ = atomicfile.Write(filepath.Join(l.cfg.Dir, damagedName), []byte(err.Error()+"\n"), 0o600)
	l.errMu.Lock()
	if l.damage == nil {
		l.damage = fmt.Errorf("audit log failed closed: a verification pass found damage: %w (restart ward: it then verifies the whole log and refuses it until DATA/audit is restored from a backup, or rebuilds a damaged index)", err)
	}
	l.errMu.Unlock()
}

// indexCheck compares the index with what a scan computes, below the size
// acknowledged when the pass began.
type indexCheck struct {
	size     uint64
	offsets  *os.File
	hashes   *os.File
	offR     *bufio.Reader
	hashR    *bufio.Reader
	nodes    int64 // nodes seen
	problems []string
	more     int
	err      error // an I/O error
}

func newIndexCheck(dir string, size uint64) (*indexCheck, error) {
	ic := &indexCheck{size: size}
	var err error
	if ic.offsets, err = os.Open(filepath.Join(dir, offsetsName)); err != nil {
		return nil, err
	}
	if ic.hashes, err = os.Open(filepath.Join(dir, hashesName)); err != nil {
		ic.offsets.Close()
		return nil, err
	}
	ic.offR = bufio.NewReaderSize(io.NewSectionReader(ic.offsets, 0, 8*int64(size)), 1<<16)
	ic.hashR = bufio.NewReaderSize(io.NewSectionReader(ic.hashes, 0, 32*nodesIn(size)), 1<<16)
	return ic, nil
}

func (ic *indexCheck) close() {
	ic.offsets.Close()
	ic.hashes.Close()
}

func (ic *indexCheck) problem(format string, args ...any) {
	if ic.more > 0 || len(ic.problems) == maxIndexProblems {
		if ic.more++; ic.more == 1 {
			ic.problems = append(ic.problems, "more problems not listed")
		}
		return
	}
	ic.problems = append(ic.problems, fmt.Sprintf(format, args...))
}

func (ic *indexCheck) read(r *bufio.Reader, b []byte, what string) bool {
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			ic.problem("%s end early", what)
		} else if ic.err == nil {
			ic.err = err
		}
		return false
	}
	return true
}

func (ic *indexCheck) entry(i uint64, end int64, _ []byte) error {
	if i >= ic.size {
		return nil
	}
	var b [8]byte
	if ic.read(ic.offR, b[:], "the offsets") {
		if got := binary.BigEndian.Uint64(b[:]); got != uint64(end) {
			ic.problem("entry %d ends at byte %d, the index says %d", i, end, got)
		}
	}
	return nil
}

func (ic *indexCheck) node(id compact.NodeID, h []byte) {
	pos := ic.nodes
	ic.nodes++
	if pos >= nodesIn(ic.size) {
		return
	}
	var b [32]byte
	if ic.read(ic.hashR, b[:], "the hashes") && !bytes.Equal(b[:], h) {
		ic.problem("the hash of node %d/%d is not the index's", id.Level, id.Index)
	}
}

// sessions compares the live session table with the chains the pass
// followed: every session whose latest event is below size must be there
// with that state (a session with a later event has moved on).
func (ic *indexCheck) sessions(scratch *sessionTable, size uint64) error {
	live, err := openSessions(filepath.Dir(ic.offsets.Name()), false)
	if err != nil {
		ic.problem("the session table: %v", err)
		return nil
	}
	defer live.close()
	return scratch.each(func(id [16]byte, st chainState) error {
		if st.last >= size {
			return nil
		}
		var got chainState
		var found bool
		// A slot read while the writer rewrites it may be torn: read again.
		for range 3 {
			var err error
			if _, got, found, err = live.lookup(keyOfID(id)); err != nil {
				return err
			}
			if found && (got == st || got.last >= size) {
				return nil
			}
		}
		if !found {
			ic.problem("a session whose latest event is %d is not in the session table", st.last)
		} else {
			ic.problem("the session table says a session's latest event is %d (seq %d), the log says %d (seq %d)", got.last, got.seq, st.last, st.seq)
		}
		return nil
	})
}
