package audit

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// chainStore is where a scan follows sessions' chains: in memory (a
// verifier's own process) or in a session table on disk (a pass inside a
// running node, whose memory must not grow with the log).
type chainStore interface {
	get(session string) (chainState, bool, error)
	put(session string, st chainState) error
}

// memChains keeps chains in memory.
type memChains map[string]chainState

func (m memChains) get(s string) (chainState, bool, error) {
	st, ok := m[s]
	return st, ok, nil
}

func (m memChains) put(s string, st chainState) error {
	m[s] = st
	return nil
}

// diskChains keeps chains in a session table.
type diskChains struct{ c *chains }

func (d diskChains) get(s string) (chainState, bool, error) {
	e, err := d.c.get(s)
	return e.st, e.found, err
}

func (d diskChains) put(s string, st chainState) error {
	e, err := d.c.get(s)
	if err != nil {
		return err
	}
	return d.c.put(s, e, st)
}

// maxEntryProblems bounds the entry problems a scan keeps.
const maxEntryProblems = 1 << 12

// scan is what reading a log's files found. It reads the checkpoints file
// and the entries file side by side, each once, in order: it keeps the
// latest checkpoint, the anchors and what narrowing down damage needs, not
// every record or entry, so that its memory does not grow with the log
// (but for the chains, which a chainStore keeps).
type scan struct {
	anchors []*checkpoint // checkpoints from outside the files: the head first, if any
	pending []*checkpoint // anchors not yet checked, by size

	cpFrames int   // complete checkpoint records, valid or not
	cpValid  int   // validly signed ones
	cpEnd    int64 // offset after the last complete checkpoint record
	cpSize   int64 // checkpoints file size
	latest   *checkpoint

	n         uint64 // complete entries read
	entEnd    int64  // offset after the last complete entry
	entSize   int64  // entries file size
	frameBad  string // invalid frame header after the complete entries
	latestEnt int64  // where the entries the latest checkpoint covers end
	all       *compact.Range
	ef        *frames

	chains chainStore
	// visit sees every node of every perfect subtree as entries are added;
	// onEntry every entry (a verification pass checks the index with them).
	visit   compact.VisitFn
	onEntry func(i uint64, end int64, leaf []byte) error
	// stop, if set, is polled every few thousand entries.
	stop func() error

	// Narrowing down damage: checkpoints are judged in ascending size.
	bad          *checkpoint // the smallest that the entries fail
	good         *checkpoint // the largest below bad that they match
	best         *checkpoint // the largest matched so far
	bestLess     *checkpoint // the largest matched so far below best
	maxFirst     *checkpoint // the first of the largest
	rewrittenRec *checkpoint // a record above bad that matches

	v *VerifyError
	// entry problems, kept apart so those before an unverified-open event
	// can be tolerated.
	entryProblems []entryProblem
	moreProblems  int
	unverified    int64 // position of the last valid unverified-open event, or -1
	shift         int64 // index field minus position of the last entry decoded
}

type entryProblem struct {
	pos int64
	msg string
}

func newScan() *scan {
	return &scan{v: &VerifyError{First: -1}, unverified: -1, chains: memChains{}}
}

func (s *scan) entries() uint64 { return s.n }

func (s *scan) latestSize() uint64 {
	if s.latest != nil {
		return s.latest.size
	}
	return 0
}

// fresh reports whether the files hold nothing that was ever acknowledged:
// no entry bytes at all, and at most a torn first checkpoint record (a crash
// while the log was being created). Anything else, however damaged, goes
// through verification, so damage is refused (or quarantined), never
// silently wiped.
func (s *scan) fresh() bool {
	return s.entSize == 0 && s.cpFrames == 0 && s.frameBad == "" && s.cpSize <= MaxCheckpointBytes+4
}

// empty reports whether the log never held an entry: no entry bytes, and
// only valid checkpoints of size 0.
func (s *scan) empty() bool {
	return s.entSize == 0 && s.cpFrames == s.cpValid && s.latestSize() == 0 && len(s.v.Problems) == 0
}

// read reads both files: the checkpoints in file order and, alongside, the
// entries up to each checkpoint's size (and each anchor's), comparing
// roots; then the rest of the entries.
func (s *scan) read(cps io.ReaderAt, cpSize int64, ent io.ReaderAt, entSize int64, v note.Verifier, origin string) error {
	s.cpSize, s.entSize = cpSize, entSize
	s.all = newRange()
	s.ef = newFrames(ent, 0, entSize, MaxEntryBytes)
	s.pending = slices.Clone(s.anchors)
	slices.SortStableFunc(s.pending, func(a, b *checkpoint) int { return cmp.Compare(a.size, b.size) })

	// Runs of records with the same problem (every record re-signed by
	// another key, say) are reported once.
	runFrom, runTo, runMsg := 0, -1, ""
	flush := func() {
		switch {
		case runTo < 0:
		case runTo == runFrom:
			s.v.add(-1, tampered, "checkpoint record %d: %s", runFrom, runMsg)
		default:
			s.v.add(-1, tampered, "checkpoint records %d..%d: %s", runFrom, runTo, runMsg)
		}
		runTo = -1
	}
	cf := newFrames(cps, 0, cpSize, MaxCheckpointBytes)
	for {
		b, err := cf.next()
		if err != nil {
			return fmt.Errorf("read %s: %w", checkpointsName, err)
		}
		if b == nil {
			break
		}
		rec := s.cpFrames
		s.cpFrames++
		for _, a := range s.anchors {
			if a.front != nil && a.front.cpEnd == cf.end {
				a.cpRecord = bytes.Equal(b, a.signed)
			}
		}
		size, root, err := openCheckpoint(b, v, origin)
		if err != nil {
			if runTo == rec-1 && runMsg == err.Error() {
				runTo = rec
			} else {
				flush()
				runFrom, runTo, runMsg = rec, rec, err.Error()
			}
			continue
		}
		flush()
		if l := s.latest; l != nil && size < l.size {
			s.v.add(int64(size), tampered, "checkpoint record %d: tree size %d smaller than %d in record %d (rolled back?)", rec, size, l.size, l.rec)
			continue
		}
		c := &checkpoint{source: fmt.Sprintf("checkpoint record %d", rec), rec: rec, size: size, root: root, signed: bytes.Clone(b), recEnd: cf.end}
		if err := s.anchorsBelow(size); err != nil {
			return err
		}
		if err := s.check(c); err != nil {
			return err
		}
		s.latest = c
		s.cpValid++
		if s.n == size {
			s.latestEnt = s.entEnd
		}
	}
	flush()
	s.cpEnd = cf.end
	if cf.bad != "" {
		s.v.add(-1, corrupt, "checkpoints: %s", cf.bad)
	}
	if err := s.anchorsBelow(math.MaxUint64); err != nil {
		return err
	}
	if err := s.advance(math.MaxUint64); err != nil {
		return err
	}
	if s.ef.bad != "" {
		s.frameBad = fmt.Sprintf("entry %d: %s", s.n, s.ef.bad)
	}
	return nil
}

// anchorsBelow checks the anchors smaller than size.
func (s *scan) anchorsBelow(size uint64) error {
	for len(s.pending) > 0 && s.pending[0].size < size {
		a := s.pending[0]
		s.pending = s.pending[1:]
		if err := s.check(a); err != nil {
			return err
		}
		if s.n == a.size {
			a.entEnd = s.entEnd
		}
	}
	return nil
}

// check reads the entries up to c's size and compares the root there.
func (s *scan) check(c *checkpoint) error {
	if err := s.advance(c.size); err != nil {
		return err
	}
	if s.n == c.size {
		c.checked = true
		c.matched = bytes.Equal(rootOf(s.all), c.root)
	}
	s.judge(c)
	return nil
}

// judge notes c, judged in ascending size, for narrow.
func (s *scan) judge(c *checkpoint) {
	if !c.checked || !c.matched {
		if s.bad == nil {
			s.bad = c
			switch {
			case s.best != nil && s.best.size < c.size:
				s.good = s.best
			case s.bestLess != nil && s.bestLess.size < c.size:
				s.good = s.bestLess
			}
		}
	} else {
		if s.bad != nil && c.size > s.bad.size && c.rec >= 0 && s.rewrittenRec == nil {
			s.rewrittenRec = c
		}
		switch {
		case s.best == nil:
			s.best = c
		case c.size > s.best.size:
			s.bestLess, s.best = s.best, c
		}
	}
	if s.maxFirst == nil || c.size > s.maxFirst.size {
		s.maxFirst = c
	}
}

// advance reads entries until there are size of them or the file ends.
func (s *scan) advance(size uint64) error {
	for s.n < size {
		b, err := s.ef.next()
		if err != nil {
			return fmt.Errorf("read %s: %w", entriesName, err)
		}
		if b == nil {
			return nil
		}
		i := s.n
		leaf := hasher.HashLeaf(b)
		if err := s.all.Append(leaf, s.visit); err != nil {
			return err
		}
		s.n++
		s.entEnd = s.ef.end
		if err := s.checkEntry(int64(i), b); err != nil {
			return err
		}
		if s.onEntry != nil {
			if err := s.onEntry(i, s.entEnd, leaf); err != nil {
				return err
			}
		}
		if s.stop != nil && i%4096 == 4095 {
			if err := s.stop(); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkEntry decodes entry i and checks its index and session chain
// fields, recording problems and following the chain. Only the chain
// store's errors are returned.
func (s *scan) checkEntry(i int64, b []byte) error {
	problem := func(format string, args ...any) {
		if len(s.entryProblems) == maxEntryProblems {
			s.moreProblems++
			return
		}
		s.entryProblems = append(s.entryProblems, entryProblem{i, fmt.Sprintf("entry %d: ", i) + fmt.Sprintf(format, args...)})
	}
	e, err := decodeEntry(b)
	if err != nil {
		problem("%v", err)
		return nil
	}
	// Report where the offset between position and index field changes,
	// not every entry a removal shifted.
	shift := int64(e.Index) - i
	switch k := shift - max(s.shift, 0); {
	case shift == 0 || shift == s.shift:
	case k == 1:
		problem("index field says %d: entry %d was removed, or entries reordered", e.Index, e.Index-1)
	case k > 1:
		problem("index field says %d: entries %d..%d were removed, or entries reordered", e.Index, int64(e.Index)-k, e.Index-1)
	default:
		problem("index field says %d: an entry was inserted or duplicated before it, or entries reordered", e.Index)
	}
	s.shift = shift
	if e.Type == typeUnverifiedOpen && shift == 0 {
		s.unverified = i
	}
	if e.Session == "" {
		if e.Type == typeSeal {
			problem("a seal without a session")
		}
		return nil
	}
	c, _, err := s.chains.get(e.Session)
	if err != nil {
		return err
	}
	next := c.seq + 1
	if e.V >= 2 {
		prevOK := (c.seq == 0 && e.Prev == nil) || (c.seq > 0 && e.Prev != nil && *e.Prev == c.last)
		switch {
		case e.Seq == next && prevOK:
		case e.Seq > next && c.seq == 0:
			problem("session %q's event %d is the first of it in the log: its events 1..%d are missing, the last of them log index %d", e.Session, e.Seq, e.Seq-1, *e.Prev)
		case e.Seq > next:
			problem("session %q's event %d follows its event %d (log index %d): its events %d..%d are missing, the last of them log index %d", e.Session, e.Seq, c.seq, c.last, next, e.Seq-1, *e.Prev)
		default:
			prev := "none"
			if e.Prev != nil {
				prev = fmt.Sprint(*e.Prev)
			}
			problem("session %q's chain: seq %d, prev %s, but its previous event in the log is %d at log index %d (reordered or duplicated?)", e.Session, e.Seq, prev, c.seq, c.last)
		}
		next = max(next, e.Seq)
	}
	return s.chains.put(e.Session, chainState{last: uint64(i), seq: next, seal: e.Type == typeSeal})
}

// scanLog reads a log's contents, anchors given, with its chains in
// memory.
func scanLog(ent io.ReaderAt, entSize int64, cps io.ReaderAt, cpSize int64, v note.Verifier, origin string, anchors ...*checkpoint) (*scan, error) {
	s := newScan()
	s.anchors = anchors
	if err := s.read(cps, cpSize, ent, entSize, v, origin); err != nil {
		return nil, err
	}
	return s, nil
}

// verdict judges the scan against its latest checkpoint and its anchors.
// It returns the anomalies tolerated because of a later unverified-open
// event.
func (s *scan) verdict() (anomalies []string, err error) {
	v := s.v
	l := s.latest
	n := s.n
	lsize := s.latestSize()
	covered := lsize
	for _, a := range s.anchors {
		covered = max(covered, a.size)
	}
	if l == nil {
		if s.fresh() && covered == 0 {
			v.add(-1, corrupt, "no checkpoint")
			return nil, v
		}
		if n > 0 || s.entSize > 0 {
			v.add(0, tampered, "no checkpoint in the checkpoints file is signed by the log key, but it has %d entries (%d bytes)", n, s.entSize)
		}
	}
	if n < covered && s.frameBad != "" {
		v.add(int64(n), corrupt, "%s", s.frameBad)
	}
	for _, a := range s.anchors {
		if a.front == nil || a.size > n {
			continue
		}
		if a.entEnd != a.front.entEnd {
			v.add(-1, tampered, "%s says the %d entries it covers end at byte %d of %s, but they end at byte %d", a.source, a.size, a.front.entEnd, entriesName, a.entEnd)
		}
		if !a.cpRecord && a.size <= lsize {
			v.add(-1, tampered, "%s says its checkpoint's record ends at byte %d of %s, but no record there is that checkpoint", a.source, a.front.cpEnd, checkpointsName)
		}
	}
	// Entry problems among acknowledged entries. Those before an
	// unverified-open event that is itself checkpointed were accepted then.
	tolerateBelow := int64(-1)
	if s.unverified >= 0 && uint64(s.unverified) < lsize {
		tolerateBelow = s.unverified
	}
	reported := 0
	for _, p := range s.entryProblems {
		if uint64(p.pos) >= covered {
			break
		}
		if p.pos < tolerateBelow {
			anomalies = append(anomalies, p.msg)
			continue
		}
		if reported == maxReported {
			v.add(-1, tampered, "more entry problems not listed")
			break
		}
		reported++
		v.add(p.pos, tampered, "%s", p.msg)
	}
	if s.moreProblems > 0 && reported < maxReported {
		v.add(-1, tampered, "%d more entry problems not listed", s.moreProblems)
	}
	s.narrow(n, lsize)
	if len(v.Problems) > 0 {
		return anomalies, v
	}
	return anomalies, nil
}

// narrow takes the smallest checkpoint (in the file or an anchor) that the
// entries fail, the largest below it that they match, and says where the
// damage is from the two: entries between them.
func (s *scan) narrow(n, lsize uint64) {
	bad := s.bad
	if bad == nil {
		// Every entry is where its checkpoints say; the file may still
		// have fallen behind an anchor.
		for _, a := range s.anchors {
			if a.size > lsize {
				s.v.add(int64(lsize), rolledBack, "the checkpoints file was rolled back: its latest record covers %d entries but %s covers %d; the entries it covers are all there and match it", lsize, a.source, a.size)
				return
			}
		}
		return
	}
	good := s.good
	most := bad
	if s.maxFirst != nil && s.maxFirst.size > most.size {
		most = s.maxFirst
	}
	from := uint64(0)
	if good != nil {
		from = good.size
	}
	var msg strings.Builder
	switch {
	case bad.size > n && from == n:
		// Every entry left matches; entries are gone from the end.
		fmt.Fprintf(&msg, "the log holds %d entries but %s covers %d: %s removed", n, most.source, most.size, entryRange(n, most.size-1, "was", "were"))
		if good != nil {
			fmt.Fprintf(&msg, " (the %d left match %s)", n, good.source)
		}
	default:
		if bad.size > n {
			fmt.Fprintf(&msg, "the log holds %d entries but %s covers %d, so at least %d were removed", n, most.source, most.size, most.size-n)
		} else {
			fmt.Fprintf(&msg, "%s (tree size %d) does not match the entries", bad.source, bad.size)
			if most.size > n {
				fmt.Fprintf(&msg, ", and the log holds %d entries but %s covers %d, so at least %d were removed", n, most.source, most.size, most.size-n)
			}
		}
		if good != nil {
			fmt.Fprintf(&msg, "; %s (tree size %d) still matches", good.source, good.size)
		}
		if bad.size-from == 1 {
			fmt.Fprintf(&msg, ": entry %d was altered or removed", from)
		} else {
			fmt.Fprintf(&msg, ": the first alteration or removal is in entries %d..%d", from, bad.size-1)
		}
	}
	kind := tampered
	if bad.rec < 0 && bad.size > lsize {
		kind = rolledBack
		msg.WriteString(" (the log is behind a checkpoint ward made durable: rolled back, cut back or replaced by an older copy)")
	}
	s.v.add(int64(from), kind, "%s", msg.String())
	rewritten := s.rewrittenRec
	if rewritten == nil {
		for _, a := range s.anchors {
			if a.checked && a.matched && a.size > bad.size {
				rewritten = a
				break
			}
		}
	}
	if rewritten != nil {
		s.v.add(-1, tampered, "%s (tree size %d) matches the log though %s does not (history rewritten?)", rewritten.source, rewritten.size, bad.source)
	}
}

// report judges a scan for Verify.
func (s *scan) report() (*Report, error) {
	anomalies, err := s.verdict()
	if err != nil {
		return nil, fmt.Errorf("verify audit log: %w", err)
	}
	l := s.latest
	rep := &Report{
		Size:        l.size,
		Root:        l.root,
		Checkpoint:  l.signed,
		TailBytes:   s.entSize - s.latestEnt,
		TailEntries: s.n - l.size,
		Anomalies:   anomalies,
	}
	for _, a := range s.anchors {
		rep.Anchors = append(rep.Anchors, Anchor{Source: a.source, Size: a.size})
	}
	return rep, nil
}

// entryRange names entries a..b, with the verb for one or for several.
func entryRange(a, b uint64, one, several string) string {
	if a == b {
		return fmt.Sprintf("entry %d %s", a, one)
	}
	return fmt.Sprintf("entries %d..%d %s", a, b, several)
}
