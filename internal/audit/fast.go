package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// maxTailCheckpoints bounds the checkpoint records after the head's that
// the fast path adopts: those a crash left between a checkpoint's record
// and the head naming it, and the one Open's replay of the journal signed
// (a few; the bound is generous).
const maxTailCheckpoints = 1 << 14

// openFast opens the log from its remembered head, in time that does not
// depend on the log's length: it trusts nothing it reads from the log's
// directory that the head's signed checkpoint does not authenticate.
//
//   - The head's frontier is the compact range of the checkpoint's tree
//     (parseHead checked that it roots to the signed root).
//   - The checkpoint's record is where the head says.
//   - The entries after the index's durable part (frontier.indexed) are
//     hashed onto the range the index gives for that part; together they
//     must give the head's frontier, which authenticates both. Records
//     after the head's (a crash before the head was written) must be
//     validly signed and match the entries after it: they are adopted.
//   - Every anchor must be consistent with the authenticated tree (a
//     consistency proof from the index, checked against the roots), and
//     the last entry before the replay must be proven included from the
//     index's offsets and hashes.
//
// Older entries are not read: a background pass (Log.Verify) and ward
// audit verify check them. Open takes this path only when nothing asks
// for more (no AllowUnverified, no damage mark, a version 2 head). It
// changes nothing until every check has passed. When one fails it
// returns nil, nil, nil and Open verifies the whole log instead.
func openFast(cfg Config, hs headState, anchors []*checkpoint, unlock func() error) (*Log, *Event, error) {
	if hs.cp == nil || hs.front == nil || hs.problem != "" || cfg.AllowUnverified {
		return nil, nil, nil
	}
	for _, a := range anchors {
		if a.unusable {
			return nil, nil, nil
		}
	}
	if _, err := os.Lstat(filepath.Join(cfg.Dir, damagedName)); !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	f := &fastOpen{cfg: cfg, hs: hs, anchors: anchors}
	ok, err := f.check()
	if err != nil || !ok {
		f.close()
		return nil, nil, nil
	}
	l, ev, err := f.accept(unlock)
	if err != nil {
		f.close()
		return nil, nil, err
	}
	return l, ev, nil
}

// fastOpen is the state of openFast.
type fastOpen struct {
	cfg     Config
	hs      headState
	anchors []*checkpoint

	ent, cps         *os.File
	ix               *index
	entSize, cpSize  int64
	rngD             *compact.Range // the index's range at frontier.indexed
	startD           int64          // where entry frontier.indexed starts
	target           *checkpoint    // the checkpoint the log opens at
	targetEnt        int64          // where the entries it covers end
	tailEntries      uint64         // complete entries after them
	tailBytes        int64
	head             *head
	movedEnt, movedC string
}

func (f *fastOpen) close() {
	for _, c := range []*os.File{f.ent, f.cps} {
		if c != nil {
			c.Close()
		}
	}
	f.ix.close()
	f.head.close()
}

// check makes every check; it writes nothing.
func (f *fastOpen) check() (bool, error) {
	cp, fr := f.hs.cp, f.hs.front
	d := fr.indexed
	var err error
	if f.ix, err = openIndex(filepath.Join(f.cfg.Dir, indexDirName), d, false); err != nil {
		return false, err
	}
	if f.ent, err = os.OpenFile(filepath.Join(f.cfg.Dir, entriesName), os.O_RDWR, 0); err != nil {
		return false, err
	}
	if f.cps, err = os.OpenFile(filepath.Join(f.cfg.Dir, checkpointsName), os.O_RDWR, 0); err != nil {
		return false, err
	}
	for _, c := range []struct {
		f    *os.File
		size *int64
	}{{f.ent, &f.entSize}, {f.cps, &f.cpSize}} {
		st, err := c.f.Stat()
		if err != nil {
			return false, err
		}
		*c.size = st.Size()
	}
	if f.cpSize < fr.cpEnd || f.entSize < fr.entEnd {
		return false, nil
	}
	// The head's checkpoint is the record that ends where it says.
	want := appendFrame(nil, cp.signed)
	got := make([]byte, len(want))
	if _, err := f.cps.ReadAt(got, fr.cpEnd-int64(len(want))); err != nil || !bytes.Equal(got, want) {
		return false, err
	}
	if f.rngD, err = f.ix.rangeAt(d); err != nil {
		return false, err
	}
	if d > 0 {
		e, err := f.ix.ends(d-1, d)
		if err != nil {
			return false, err
		}
		f.startD = e[0]
	}
	if f.startD > fr.entEnd {
		return false, nil
	}
	// Records after the head's: a batch whose head write a crash lost.
	f.target = &checkpoint{source: cp.source, size: cp.size, root: cp.root, signed: cp.signed, recEnd: fr.cpEnd}
	var tails []*checkpoint
	cf := newFrames(f.cps, fr.cpEnd, f.cpSize, MaxCheckpointBytes)
	for {
		b, err := cf.next()
		if err != nil {
			return false, err
		}
		if b == nil {
			break
		}
		size, root, err := openCheckpoint(b, f.cfg.Verifier, f.cfg.Origin)
		if err != nil || size < f.target.size || len(tails) == maxTailCheckpoints {
			return false, nil
		}
		f.target = &checkpoint{size: size, root: root, signed: bytes.Clone(b), recEnd: cf.end}
		tails = append(tails, f.target)
	}
	if cf.bad != "" {
		return false, nil
	}
	for _, a := range f.anchors {
		if a.size > f.target.size {
			return false, nil
		}
	}
	// Hash the entries from the index's durable part on; compare the tree
	// with the head, the adopted records and the anchors at their sizes.
	rng := cloneRange(f.rngD)
	at := func(n uint64, end int64) bool {
		if n == cp.size && (end != fr.entEnd || !sameHashes(rng.Hashes(), fr.hashes)) {
			return false
		}
		for _, c := range tails {
			if c.size == n && !bytes.Equal(rootOf(rng), c.root) {
				return false
			}
		}
		for _, a := range f.anchors {
			if a.size == n && !bytes.Equal(rootOf(rng), a.root) {
				return false
			}
		}
		return true
	}
	if !at(d, f.startD) {
		return false, nil
	}
	ef := newFrames(f.ent, f.startD, f.entSize, MaxEntryBytes)
	for i := d; i < f.target.size; i++ {
		b, err := ef.next()
		if err != nil || b == nil {
			return false, err
		}
		if _, _, ok := entryState(b, i); !ok {
			return false, nil
		}
		if err := rng.Append(hasher.HashLeaf(b), nil); err != nil {
			return false, err
		}
		if !at(i+1, ef.end) {
			return false, nil
		}
	}
	f.targetEnt = ef.end
	for {
		b, err := ef.next()
		if err != nil {
			return false, err
		}
		if b == nil {
			break
		}
		f.tailEntries++
	}
	f.tailBytes = f.entSize - f.targetEnt
	// rngD is now authenticated (it and the entries after it make the
	// signed tree): prove the anchors below it consistent with it, and
	// the index's last durable entry included in it.
	rootD := rootOf(f.rngD)
	for _, a := range f.anchors {
		switch {
		case a.size >= d:
		case a.size == 0:
			if !bytes.Equal(a.root, hasher.EmptyRoot()) {
				return false, nil
			}
		default:
			nodes, err := proof.Consistency(a.size, d)
			if err != nil {
				return false, err
			}
			hs, err := f.ix.proofHashes(nodes)
			if err != nil {
				return false, err
			}
			if proof.VerifyConsistency(hasher, a.size, d, hs, a.root, rootD) != nil {
				return false, nil
			}
		}
	}
	if d > 0 {
		ok, err := f.ix.proveEntry(f.ent, d-1, d, rootD)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// accept indexes the replayed entries, moves the unacknowledged tail
// aside and opens the log.
func (f *fastOpen) accept(unlock func() error) (*Log, *Event, error) {
	fr, t := f.hs.front, f.target
	if err := f.ix.cut(fr.indexed); err != nil {
		return nil, nil, err
	}
	f.ix.sessions.close()
	var err error
	if f.ix.sessions, err = openSessions(f.ix.dir, true); err != nil {
		return nil, nil, err
	}
	// Scratch tables of verification passes a crash interrupted.
	if old, err := filepath.Glob(filepath.Join(f.ix.dir, scratchPrefix+"*")); err == nil {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	rng, err := indexEntries(f.ix, f.ent, fr.indexed, f.startD, cloneRange(f.rngD), t.size, f.targetEnt, false)
	if err != nil {
		return nil, nil, err
	}
	var ev *Event
	stamp := strconv.FormatInt(f.cfg.Now().UnixNano(), 10)
	rec := recovery{Entries: f.tailEntries, EntryBytes: f.tailBytes, CheckpointBytes: f.cpSize - t.recEnd}
	if rec.EntryBytes > 0 {
		name := entriesName + ".tail-" + stamp
		if err := moveTail(f.ent, f.targetEnt, f.entSize, filepath.Join(f.cfg.Dir, name)); err != nil {
			return nil, nil, err
		}
		rec.KeptIn = append(rec.KeptIn, name)
	}
	if rec.CheckpointBytes > 0 {
		name := checkpointsName + ".tail-" + stamp
		if err := moveTail(f.cps, t.recEnd, f.cpSize, filepath.Join(f.cfg.Dir, name)); err != nil {
			return nil, nil, err
		}
		rec.KeptIn = append(rec.KeptIn, name)
	}
	l := newLog(f.cfg, unlock)
	if len(rec.KeptIn) > 0 {
		if err := syncDir(f.cfg.Dir); err != nil {
			return nil, nil, err
		}
		data, _ := json.Marshal(rec)
		ev = &Event{Type: typeRecover, Actor: "ward", Data: data}
		l.notice = fmt.Sprintf("the log's unacknowledged tail (%d complete entries, %d bytes, and %d bytes of checkpoint) was moved to %s in %s", rec.Entries, rec.EntryBytes, rec.CheckpointBytes, strings.Join(rec.KeptIn, " and "), f.cfg.Dir)
	}
	if f.head, err = openHead(f.cfg.Head, f.hs.seq); err != nil {
		return nil, nil, err
	}
	l.ent, l.cps, l.idx, l.head = f.ent, f.cps, f.ix, f.head
	l.rng, l.entEnd, l.cpEnd = rng, f.targetEnt, t.recEnd
	l.chains = newChains(f.ix.sessions)
	l.fromHead = true
	l.publish(t.size, t.signed, t.root)
	if err := l.rememberHead(t.signed); err != nil {
		return nil, nil, err
	}
	return l, ev, nil
}

func sameHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// entryState decodes entry i as the log wrote it and returns its session
// and the session's chain state after it.
func entryState(b []byte, i uint64) (session string, st chainState, ok bool) {
	e, err := decodeEntry(b)
	if err != nil || e.Index != i || e.V != schemaVersion {
		return "", chainState{}, false
	}
	return e.Session, chainState{last: i, seq: e.Seq, seal: e.Type == typeSeal}, true
}

// proveEntry checks entry i of the tree of size n against root with the
// index alone: its offsets point at a frame whose leaf hash, with the
// index's hashes as the audit path, gives root.
func (ix *index) proveEntry(ent *os.File, i, n uint64, root []byte) (bool, error) {
	starts, ends, err := ix.span(i, i+1)
	if err != nil {
		return false, err
	}
	b := make([]byte, ends[0]-starts[0])
	if _, err := ent.ReadAt(b, starts[0]); err != nil {
		return false, err
	}
	if _, err := entryAt(b, i); err != nil {
		return false, nil
	}
	nodes, err := proof.Inclusion(i, n)
	if err != nil {
		return false, err
	}
	hs, err := ix.proofHashes(nodes)
	if err != nil {
		return false, err
	}
	return proof.VerifyInclusion(hasher, i, n, hasher.HashLeaf(b[4:]), hs, root) == nil, nil
}

// indexEntries writes the index of entries [from, to), which start at
// byte start and must end at byte end, onto rng (the range at from), and
// syncs it. Chains follow each entry's own seq; lenient (a log being
// rebuilt after a full verification, which may have accepted damage)
// follows them as Verify does and skips entries that do not decode.
func indexEntries(ix *index, ent *os.File, from uint64, start int64, rng *compact.Range, to uint64, end int64, lenient bool) (*compact.Range, error) {
	st, err := ent.Stat()
	if err != nil {
		return nil, err
	}
	w := ix.appendFrom(from, rng)
	ch := newChains(ix.sessions)
	ef := newFrames(ent, start, st.Size(), MaxEntryBytes)
	for i := from; i < to; i++ {
		b, err := ef.next()
		if err != nil {
			return nil, fmt.Errorf("index entry %d: %w", i, err)
		}
		if b == nil {
			return nil, fmt.Errorf("index entry %d: the entries end before it", i)
		}
		if err := w.add(ef.end, hasher.HashLeaf(b)); err != nil {
			return nil, fmt.Errorf("index entry %d: %w", i, err)
		}
		var session string
		var next chainState
		var prev cached
		if lenient {
			e, err := decodeEntry(b)
			if err != nil || e.Session == "" {
				continue
			}
			session = e.Session
			if prev, err = ch.get(session); err != nil {
				return nil, err
			}
			seq := prev.st.seq + 1
			if e.V >= 2 {
				seq = max(seq, e.Seq)
			}
			next = chainState{last: i, seq: seq, seal: e.Type == typeSeal}
		} else {
			var ok bool
			if session, next, ok = entryState(b, i); !ok {
				return nil, fmt.Errorf("index entry %d: not an entry this log wrote", i)
			}
			if session == "" {
				continue
			}
			if prev, err = ch.get(session); err != nil {
				return nil, err
			}
		}
		if err := ch.put(session, prev, next); err != nil {
			return nil, err
		}
	}
	if ef.end != end && to > from {
		return nil, fmt.Errorf("index entries [%d, %d): they end at byte %d, not %d", from, to, ef.end, end)
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	if err := ix.sync(); err != nil {
		return nil, err
	}
	return w.rng, nil
}

// rebuildIndex replaces the index of the log in dir with one of its first
// n entries, which end at byte end.
func rebuildIndex(dir string, ent *os.File, n uint64, end int64) (*index, *compact.Range, error) {
	ix, err := createIndex(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("create index: %w", err)
	}
	rng, err := indexEntries(ix, ent, 0, 0, newRange(), n, end, true)
	if err != nil {
		ix.close()
		return nil, nil, err
	}
	return ix, rng, nil
}
