package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Open creates the log in cfg.Dir or opens the existing one. An existing
// log is opened from its remembered head: Open checks what the head's
// signed checkpoint authenticates and replays the entries after the
// index's durable part, in time and memory that do not grow with the log
// (see the package documentation); Log.Verify checks the rest. When it
// cannot (no usable version 2 head, no index, a damage mark, AllowUnverified,
// or a check failed) it verifies the whole log as VerifyLog does, against
// the remembered head and the anchors, and rebuilds the index. A log that
// fails is refused with an error wrapping ErrTampered, ErrRollback or
// ErrCorrupt, unless cfg.AllowUnverified. Complete entries after the
// latest checkpoint, which no checkpoint ward made durable ever covered (a
// crash mid-batch), are moved to a file beside the log, never deleted, and
// an "audit.recover" event records where.
func Open(cfg Config) (*Log, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open audit log: empty Dir")
	}
	if !validOrigin(cfg.Origin) {
		return nil, fmt.Errorf("open audit log: invalid origin %q", cfg.Origin)
	}
	if cfg.Signer == nil || cfg.Verifier == nil {
		return nil, errors.New("open audit log: Signer and Verifier are required")
	}
	if cfg.Signer.Name() != cfg.Verifier.Name() || cfg.Signer.KeyHash() != cfg.Verifier.KeyHash() {
		return nil, errors.New("open audit log: Signer and Verifier are not the same key")
	}
	if err := checkSigners(cfg.Verifier, append([]note.Signer{cfg.Signer}, cfg.Signers...)); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if cfg.MaxEventSize == 0 {
		cfg.MaxEventSize = DefaultMaxEventSize
	}
	if cfg.MaxEventSize < 0 || cfg.MaxEventSize > MaxEntryBytes-maxFilledIn {
		return nil, fmt.Errorf("open audit log: MaxEventSize %d out of range", cfg.MaxEventSize)
	}
	if cfg.Head == "" {
		cfg.Head = DefaultHead(cfg.Dir)
	}
	if rel, err := filepath.Rel(filepath.Clean(cfg.Dir), filepath.Clean(cfg.Head)); err == nil && !strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("open audit log: the head file %s must be outside %s", cfg.Head, cfg.Dir)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var err error
	// Records are written under the newest signer's key (the one that
	// outlives a rotation's overlap: see keys.go) and replay under any.
	for _, s := range append([]note.Signer{cfg.Signer}, cfg.Signers...) {
		k, err := journalKey(s)
		if err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		cfg.journalKeys = append(cfg.journalKeys, k)
		cfg.journalKey = k
	}
	l, ev, err := openFiles(cfg)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", cfg.Dir, err)
	}
	if l.ack != nil {
		// The head names the log's state: records extend it.
		l.jr.restart()
	}
	go l.run()
	go l.syncIndex()
	go l.checkpointer()
	if ev != nil {
		if _, err := l.append(context.Background(), *ev, false); err != nil {
			l.Close()
			return nil, fmt.Errorf("open audit log %s: record %s: %w", cfg.Dir, ev.Type, err)
		}
	}
	return l, nil
}

// unverifiedOpen is the data of an "audit.unverified-open" event.
type unverifiedOpen struct {
	Error       string   `json:"error"`
	Entries     uint64   `json:"entries"`
	Checkpoint  string   `json:"checkpoint,omitempty"` // latest validly signed checkpoint found
	Remembered  string   `json:"remembered,omitempty"` // the head it was checked against
	Quarantined []string `json:"quarantined,omitempty"`
}

// recovery is the data of an "audit.recover" event.
type recovery struct {
	Entries         uint64   `json:"unacknowledged_entries"`
	EntryBytes      int64    `json:"entry_bytes"`
	CheckpointBytes int64    `json:"checkpoint_bytes"`
	KeptIn          []string `json:"kept_in"`
}

func newLog(cfg Config, unlock func() error) *Log {
	l := &Log{
		cfg:          cfg,
		unlock:       unlock,
		reqs:         make(chan *request, queueLen),
		quit:         make(chan struct{}),
		stopped:      make(chan struct{}),
		syncStopped:  make(chan struct{}),
		flushStopped: make(chan struct{}),
		kick:         make(chan struct{}, 1),
		cpKick:       make(chan struct{}, 1),
		cpNext:       make(chan struct{}),
	}
	l.keys.Store(&logKeys{signers: append([]note.Signer{cfg.Signer}, cfg.Signers...), verifier: cfg.Verifier})
	return l
}

// publish sets the state a log starts from: size acknowledged entries
// whose index is durable, under checkpoint signed with root (nil for a
// log opened with AllowUnverified, whose first batch checkpoints them).
func (l *Log) publish(size uint64, signed, root []byte) {
	l.checkpoint, l.root, l.signedSize = signed, root, size
	l.size.Store(size)
	l.written.Store(size)
	l.durable.Store(size)
}

func openFiles(cfg Config) (l *Log, ev *Event, err error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, nil, err
	}
	unlock, err := lockDir(filepath.Join(cfg.Dir, lockName))
	if err != nil {
		return nil, nil, err
	}
	var ent, cps *os.File
	var hd *head
	var ix *index
	defer func() {
		if err != nil {
			for _, f := range []*os.File{ent, cps} {
				if f != nil {
					f.Close()
				}
			}
			ix.close()
			hd.close()
			unlock()
		}
	}()
	s := newScan()
	anchors, err := loadAnchors(cfg.Anchors, cfg.Verifier, cfg.Origin, s.v)
	if err != nil {
		return nil, nil, err
	}
	hs, err := readHead(cfg.Head, cfg.Verifier, cfg.Origin)
	if err != nil {
		return nil, nil, err
	}
	// Acknowledged batches only the journal holds go back into the files
	// first; what follows finds them there.
	if err := replayJournal(cfg, hs); err != nil {
		return nil, nil, err
	}
	jr, err := openJournal(journalPath(cfg.Head), cfg.journalKey)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			jr.close()
		}
	}()
	// The usual start: from the remembered head, reading only what came
	// after the index's durable part.
	if l, ev, err := openFast(cfg, hs, anchors, unlock); l != nil || err != nil {
		if l != nil {
			l.jr = jr
		}
		return l, ev, err
	}
	if hs.cp != nil {
		s.anchors = append(s.anchors, hs.cp)
	}
	s.anchors = append(s.anchors, usable(anchors)...)
	ent, err = os.OpenFile(filepath.Join(cfg.Dir, entriesName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	cps, err = os.OpenFile(filepath.Join(cfg.Dir, checkpointsName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	cst, err := cps.Stat()
	if err != nil {
		return nil, nil, err
	}
	est, err := ent.Stat()
	if err != nil {
		return nil, nil, err
	}
	if err := s.read(cps, cst.Size(), ent, est.Size(), cfg.Verifier, cfg.Origin); err != nil {
		return nil, nil, err
	}
	l = newLog(cfg, unlock)
	l.ent = ent
	stamp := strconv.FormatInt(cfg.Now().UnixNano(), 10)
	// A log that never held an entry may lack its head: a crash while it
	// was being created.
	switch {
	case hs.problem != "":
		s.v.add(-1, hs.kind, "%s", hs.problem)
	case !hs.found && !s.fresh() && !s.empty():
		s.v.add(-1, rolledBack, "ward remembers no checkpoint of this log: %s is missing (a log written by a ward before the head file existed has none; so has one rolled back or replaced together with it)", cfg.Head)
	}
	// Nothing was ever acknowledged, and nothing outside the files says
	// otherwise: create the log.
	create := s.fresh() && len(s.v.Problems) == 0
	for _, a := range s.anchors {
		create = create && a.size == 0
	}
	var verr error
	if !create {
		_, verr = s.verdict()
	}
	// A head of version 1 is replaced, not written in place.
	l.headSeq = hs.seq
	if hs.found && hs.cp != nil && hs.front != nil {
		if hd, err = openHead(cfg.Head, hs.seq); err != nil {
			return nil, nil, err
		}
	}

	switch {
	case create:
		// Torn bytes of a first checkpoint record are kept aside.
		if s.cpSize > 0 {
			name := checkpointsName + ".tail-" + stamp
			if err := moveTail(cps, 0, s.cpSize, filepath.Join(cfg.Dir, name)); err != nil {
				return nil, nil, err
			}
		}
		if ix, err = createIndex(cfg.Dir); err != nil {
			return nil, nil, err
		}
		l.cps, l.idx, l.head = cps, ix, hd
		l.rng = newRange()
		if err := l.firstCheckpoint(); err != nil {
			return nil, nil, err
		}
		if err := syncDir(cfg.Dir); err != nil {
			return nil, nil, err
		}

	case verr == nil:
		c := s.latest
		l.cps = cps
		l.head = hd
		l.entEnd = s.latestEnt
		l.cpEnd = s.cpEnd
		rec := recovery{Entries: s.entries() - c.size, EntryBytes: s.entSize - l.entEnd, CheckpointBytes: s.cpSize - s.cpEnd}
		if rec.EntryBytes > 0 {
			name := entriesName + ".tail-" + stamp
			if err := moveTail(ent, l.entEnd, s.entSize, filepath.Join(cfg.Dir, name)); err != nil {
				return nil, nil, err
			}
			rec.KeptIn = append(rec.KeptIn, name)
		}
		if rec.CheckpointBytes > 0 {
			name := checkpointsName + ".tail-" + stamp
			if err := moveTail(cps, l.cpEnd, s.cpSize, filepath.Join(cfg.Dir, name)); err != nil {
				return nil, nil, err
			}
			rec.KeptIn = append(rec.KeptIn, name)
		}
		if len(rec.KeptIn) > 0 {
			if err := syncDir(cfg.Dir); err != nil {
				return nil, nil, err
			}
			data, _ := json.Marshal(rec)
			ev = &Event{Type: typeRecover, Actor: "ward", Data: data}
			l.notice = fmt.Sprintf("the log's unacknowledged tail (%d complete entries, %d bytes, and %d bytes of checkpoint) was moved to %s in %s", rec.Entries, rec.EntryBytes, rec.CheckpointBytes, strings.Join(rec.KeptIn, " and "), cfg.Dir)
		}
		if ix, l.rng, err = rebuildIndex(cfg.Dir, ent, c.size, l.entEnd); err != nil {
			return nil, nil, err
		}
		if !bytes.Equal(rootOf(l.rng), c.root) {
			return nil, nil, fmt.Errorf("rebuild index: the root of %d entries is not the verified checkpoint's", c.size)
		}
		l.idx = ix
		l.publish(c.size, c.signed, c.root)
		// The head may lag the checkpoints file after a crash between the
		// two (it never leads it), and it records the rebuilt index.
		if err := l.rememberHead(c.signed); err != nil {
			return nil, nil, err
		}

	case !cfg.AllowUnverified:
		return nil, nil, verr

	default:
		// Accept what is there, keep the evidence, re-anchor.
		n := s.entries()
		uo := &unverifiedOpen{Error: verr.Error(), Entries: n}
		if c := s.latest; c != nil {
			uo.Checkpoint = string(c.signed)
		}
		if hs.cp != nil {
			uo.Remembered = string(hs.cp.signed)
		}
		end := s.entEnd
		if s.entSize > end {
			name := entriesName + ".unverified-" + stamp
			if err := moveTail(ent, end, s.entSize, filepath.Join(cfg.Dir, name)); err != nil {
				return nil, nil, err
			}
			uo.Quarantined = append(uo.Quarantined, name)
		}
		name := checkpointsName + ".unverified-" + stamp
		if err := os.Rename(filepath.Join(cfg.Dir, checkpointsName), filepath.Join(cfg.Dir, name)); err != nil {
			return nil, nil, err
		}
		uo.Quarantined = append(uo.Quarantined, name)
		cps.Close()
		cps, err = os.OpenFile(filepath.Join(cfg.Dir, checkpointsName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, err
		}
		if hs.found {
			aside := cfg.Head + ".unverified-" + stamp
			if err := copyFile(cfg.Head, aside); err != nil {
				return nil, nil, err
			}
			uo.Quarantined = append(uo.Quarantined, aside)
		}
		// Anchors the log does not extend describe a history the
		// operator chose to leave; they are set aside, or every later
		// start would be refused again.
		aside := map[string]bool{}
		for _, a := range anchors {
			if a.unusable || a.failing(n) || a.size > n {
				aside[a.file] = true
			}
		}
		for _, path := range slices.Sorted(maps.Keys(aside)) {
			to := path + ".unverified-" + stamp
			if err := os.Rename(path, to); err != nil {
				return nil, nil, err
			}
			if err := syncDir(filepath.Dir(path)); err != nil {
				return nil, nil, err
			}
			uo.Quarantined = append(uo.Quarantined, to)
		}
		if err := syncDir(cfg.Dir); err != nil {
			return nil, nil, err
		}
		l.cps = cps
		l.head = hd
		l.entEnd = end
		if ix, l.rng, err = rebuildIndex(cfg.Dir, ent, n, end); err != nil {
			return nil, nil, err
		}
		l.idx = ix
		// Entries not yet covered by any checkpoint; the first batch's
		// checkpoint covers them with the unverified-open event.
		l.publish(n, nil, nil)
		data, _ := json.Marshal(uo)
		ev = &Event{Type: typeUnverifiedOpen, Actor: "ward", Data: data}
		l.notice = fmt.Sprintf("the log was opened although it failed verification (%v); the evidence is kept in %s", verr, strings.Join(uo.Quarantined, ", "))
	}
	l.chains = newChains(l.idx.sessions)
	l.jr = jr
	// The whole log was verified (or knowingly accepted): a damage mark a
	// verification pass left has been dealt with.
	if err := removeDamaged(cfg.Dir); err != nil {
		return nil, nil, err
	}
	return l, ev, nil
}

// firstCheckpoint signs and writes the checkpoint of a new, empty log,
// then remembers and publishes it.
func (l *Log) firstCheckpoint() error {
	root := rootOf(l.rng)
	signed, err := note.Sign(&note.Note{Text: checkpointText(l.cfg.Origin, 0, root)}, l.keys.Load().signers...)
	if err != nil {
		return fmt.Errorf("sign checkpoint at size 0: %w", err)
	}
	rec := appendFrame(nil, signed)
	if _, err := l.cps.WriteAt(rec, 0); err != nil {
		return fmt.Errorf("write checkpoint at size 0: %w", err)
	}
	if err := l.cps.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint at size 0: %w", err)
	}
	l.cpEnd = int64(len(rec))
	l.publish(0, signed, root)
	if err := l.rememberHead(signed); err != nil {
		return fmt.Errorf("remember checkpoint at size 0: %w", err)
	}
	return nil
}

// removeDamaged removes the damage mark of a verification pass, durably.
func removeDamaged(dir string) error {
	err := os.Remove(filepath.Join(dir, damagedName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// moveTail keeps the bytes [from, to) of f in a new file at path, durably,
// and only then cuts them from f.
func moveTail(f *os.File, from, to int64, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, from, to-from)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := f.Truncate(from); err != nil {
		return err
	}
	return f.Sync()
}

// copyFile copies a small file durably to a new path.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
