package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

const (
	// minRetry and maxRetry bound the wait between attempts to write after
	// a write failed: it doubles from minRetry up to maxRetry, so that a
	// full disk is not hammered, and a freed one is used again within
	// maxRetry.
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second

	// indexSyncInterval is how often the index is synced (and so how much
	// Open may have to replay after a crash); indexSyncEvery entries
	// written since the last sync trigger one sooner.
	indexSyncInterval = time.Second
	indexSyncEvery    = 1 << 15
)

// fault is the writer's state after a write failed.
type fault struct {
	first    error // what failed first
	last     error // what failed last (returned to appends)
	since    time.Time
	refused  int // appends refused since
	attempts int
	wait     time.Duration
	next     time.Time // no attempt before

	// What must be done before the next write.
	headRepair bool         // a head write failed: make the head name the last good checkpoint again
	cut        bool         // cut the files back to the last good state
	slots      []slotUpdate // session table updates of a durable batch not yet written
	kept       []string     // files keeping what failed batches wrote
}

// faultRecord is the data of an "audit.fault" event.
type faultRecord struct {
	Error    string    `json:"error"`
	Since    time.Time `json:"since"`
	Refused  int       `json:"refused_appends"`
	Attempts int       `json:"attempts"`
	KeptIn   []string  `json:"kept_in,omitempty"`
}

// afterDurable is a failure after the batch was made durable and
// remembered: the batch is acknowledged, the log fails until the rest is
// written.
type afterDurable struct{ err error }

func (e *afterDurable) Error() string { return e.err.Error() }
func (e *afterDurable) Unwrap() error { return e.err }

// slotUpdate is a session's new state, for its slot.
type slotUpdate struct {
	loc slotLoc
	key sessKey
	st  chainState
}

// run is the single writer: it batches queued appends into group commits,
// syncs batches written unsynced (AppendUnsynced) with the next durable
// one or after Config.UnsyncedDelay, and retries after a failure.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*request, 0, 64)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	delay := l.cfg.UnsyncedDelay
	if delay <= 0 {
		delay = DefaultUnsyncedDelay
	}
	syncT := time.NewTimer(time.Hour)
	syncT.Stop()
	var syncC <-chan time.Time // syncT's channel while unsynced batches wait
	for {
		if l.fault != nil {
			retry.Reset(max(time.Until(l.fault.next), 0))
		}
		switch {
		case len(l.unsynced) > 0 && syncC == nil:
			syncT.Reset(delay)
			syncC = syncT.C
		case len(l.unsynced) == 0 && syncC != nil:
			syncT.Stop()
			syncC = nil
		}
		select {
		case <-l.quit:
			l.syncUnsynced()
			return
		case <-syncC:
			syncC = nil
			l.syncUnsynced()
		case <-retry.C:
			l.commit(nil)
		case r := <-l.reqs:
			retry.Stop()
			batch = append(batch[:0], r)
			n := len(r.body)
		drain:
			for len(batch) < maxBatchEvents && n < maxBatchBytes {
				select {
				case r := <-l.reqs:
					batch = append(batch, r)
					n += len(r.body)
				default:
					break drain
				}
			}
			l.commit(batch)
			clear(batch)
		}
	}
}

func (l *Log) commit(batch []*request) {
	if err := l.damaged(); err != nil {
		for _, r := range batch {
			r.done <- result{err: err}
		}
		return
	}
	var record *request
	if f := l.fault; f != nil {
		if time.Now().Before(f.next) {
			f.refused += len(batch)
			for _, r := range batch {
				r.done <- result{err: f.last}
			}
			return
		}
		f.attempts++
		if err := l.recover(); err != nil {
			l.failed(err, false, false)
			f.refused += len(batch)
			for _, r := range batch {
				r.done <- result{err: f.last}
			}
			return
		}
		data, _ := json.Marshal(faultRecord{Error: f.first.Error(), Since: f.since.UTC(), Refused: f.refused, Attempts: f.attempts, KeptIn: f.kept})
		body, err := l.encode(Event{Type: typeFault, Actor: "ward", Data: data})
		if err == nil {
			record = &request{body: body, done: make(chan result, 1)}
			batch = append([]*request{record}, batch...)
		}
	}
	if len(batch) == 0 {
		return
	}
	// One request that must be durable makes the batch synced, and with
	// it every batch written unsynced before it.
	durable := false
	for _, r := range batch {
		durable = durable || !r.unsynced
	}
	start := time.Now()
	first, synced, err := l.write(batch, durable)
	if l.cfg.OnCommit != nil && (err == nil || errors.As(err, new(*afterDurable))) {
		l.cfg.OnCommit(len(batch), time.Since(start))
	}
	var after *afterDurable
	switch {
	case err == nil:
		l.fault = nil
		l.setFault(nil)
	case errors.As(err, &after):
		// Durable and remembered: acknowledged, but the next batch must
		// wait for the rest.
		l.fault = nil
		l.failed(after.err, false, false)
	default:
		l.failed(err, true, errors.Is(err, errHead))
		n := len(batch)
		if record != nil {
			n--
		}
		l.fault.refused += n
		for _, r := range batch {
			r.done <- result{err: l.fault.last}
		}
		return
	}
	for i, r := range batch {
		res := result{index: first + uint64(i)}
		r.done <- res // written; durable too unless the request is unsynced
		if r.unsynced {
			if synced {
				r.done <- res
			} else {
				l.unsynced = append(l.unsynced, r)
			}
		}
	}
	if synced {
		l.ackUnsynced()
	}
}

// syncUnsynced makes the batches written unsynced durable (one sync of
// the journal) and acknowledges them so.
func (l *Log) syncUnsynced() {
	if len(l.unsynced) == 0 {
		return
	}
	if err := l.jr.sync(); err != nil {
		l.failUnsynced(fmt.Errorf("audit log failed closed: %w", err))
		return
	}
	l.acknowledge(l.unsyncedSt)
	l.ackUnsynced()
}

// ackUnsynced tells the requests written unsynced that they are durable:
// a sync (or a write through the files) since covered them.
func (l *Log) ackUnsynced() {
	for _, r := range l.unsynced {
		r.done <- result{}
	}
	clear(l.unsynced)
	l.unsynced, l.unsyncedSt = l.unsynced[:0], nil
}

// failUnsynced is a failed sync of the journal while batches written
// unsynced wait for one: their indexes were handed out (their calls may
// have been forwarded), so they are never cut back; the kernel may have
// dropped their pages, so a later sync's success would not prove them.
// The log fails closed until it is reopened (Open replays the journal),
// and their waiters get the error.
func (l *Log) failUnsynced(err error) {
	if len(l.unsynced) == 0 {
		return
	}
	l.errMu.Lock()
	if l.damage == nil {
		l.damage = fmt.Errorf("%w (reopen the log: it replays its journal)", err)
	}
	l.errMu.Unlock()
	for _, r := range l.unsynced {
		r.done <- result{err: err}
	}
	clear(l.unsynced)
	l.unsynced, l.unsyncedSt = l.unsynced[:0], nil
}

// failed records a write failure and schedules the next attempt.
func (l *Log) failed(err error, cut, headRepair bool) {
	l.faults.Add(1)
	now := time.Now()
	f := l.fault
	if f == nil {
		f = &fault{first: err, since: now, wait: minRetry}
		l.fault = f
	} else {
		f.wait = min(2*f.wait, maxRetry)
	}
	f.last = err
	f.next = now.Add(f.wait)
	f.cut = f.cut || cut
	f.headRepair = f.headRepair || headRepair
	var p *slotsPending
	if errors.As(err, &p) {
		f.slots = append(f.slots, p.pending...)
	}
	l.setFault(err)
}

func (l *Log) setFault(err error) {
	l.errMu.Lock()
	l.faultErr = err
	l.errMu.Unlock()
}

func (l *Log) damaged() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.damage
}

// slotsPending carries the session table updates a durable batch could not
// write.
type slotsPending struct {
	err     error
	pending []slotUpdate
}

func (e *slotsPending) Error() string { return e.err.Error() }
func (e *slotsPending) Unwrap() error { return e.err }

// recover brings the files back to the last acknowledged state after a
// failure, in an order that is safe at every step if the process dies:
// first the head names the last good checkpoint again (durably), then the
// checkpoints and the entries are cut back (nothing after the last good
// checkpoint was acknowledged), then the index; then pending session
// table updates are written.
func (l *Log) recover() error {
	f := l.fault
	// The head names the last acknowledged state (a failed head write may
	// have left a slot naming the failed batch), whose checkpoint record
	// is written (a failed record write may have left it out).
	if err := l.flushTo(l.acked()); err != nil {
		return fmt.Errorf("audit log failed closed: restore the head: %w", err)
	}
	f.headRepair = false
	if f.cut {
		// What the failed batch left is kept beside the log, as a crash's
		// tail is: copied and synced, then cut.
		l.cpMu.Lock()
		defer l.cpMu.Unlock()
		for _, c := range []struct {
			name string
			f    *os.File
			to   int64
		}{{checkpointsName, l.cps, l.cpEnd}, {entriesName, l.ent, l.entEnd}} {
			st, err := c.f.Stat()
			if err != nil {
				return fmt.Errorf("audit log failed closed: cut %s back to %d bytes: %w", c.name, c.to, err)
			}
			if st.Size() > c.to {
				name := c.name + ".fault-" + strconv.FormatInt(time.Now().UnixNano(), 10)
				if err := moveTail(c.f, c.to, st.Size(), filepath.Join(l.cfg.Dir, name)); err != nil {
					os.Remove(filepath.Join(l.cfg.Dir, name))
					return fmt.Errorf("audit log failed closed: keep what the failed batch wrote to %s: %w", c.name, err)
				}
				f.kept = append(f.kept, name)
				continue
			}
			if err := c.f.Truncate(c.to); err != nil {
				return fmt.Errorf("audit log failed closed: cut %s back to %d bytes: %w", c.name, c.to, err)
			}
		}
		if err := l.idx.cut(l.rng.End()); err != nil {
			return fmt.Errorf("audit log failed closed: %w", err)
		}
		f.cut = false
	}
	for len(f.slots) > 0 {
		u := f.slots[0]
		if err := l.idx.sessions.write(u.loc, u.key, u.st); err != nil {
			return fmt.Errorf("audit log failed closed: %w", err)
		}
		f.slots = f.slots[1:]
	}
	l.written.Store(l.size.Load())
	return nil
}

// errHead marks a failure to remember a checkpoint in the head.
var errHead = errors.New("head")

// batchChain is a session touched by a batch.
type batchChain struct {
	e cached
	c chain
}

// write writes batch (its journal record), each sealed session it touches
// sealed again after it, and with sync makes it durable: the journal's
// sync, which makes the batches written unsynced before it durable too.
// The checkpointer signs a checkpoint over it later (or, when the journal
// cannot take it, writeThrough makes it and everything before it durable
// now, synced or not). It returns the index of the batch's first entry
// and whether the batch is durable. Until the batch is written (and, with
// sync, synced), nothing in memory changes, so a failure leaves the log
// as it was once the files are cut back; after it, the batch is
// acknowledged whatever fails (an *afterDurable error).
func (l *Log) write(batch []*request, sync bool) (uint64, bool, error) {
	base := l.rng.End()
	// A range's hashes are never changed in place (its appends replace
	// them), so the batch's range shares them with the log's.
	rng, err := rangeFactory.NewRange(l.rng.Begin(), base, slices.Clone(l.rng.Hashes()))
	if err != nil {
		return 0, false, fmt.Errorf("audit log failed closed: %w", err)
	}
	buf := l.wbuf[:0]
	offs := l.offBuf[:0]
	nodes := l.nodeBuf[:0]
	visit := func(_ compact.NodeID, h []byte) { nodes = append(nodes, h...) }
	end := l.entEnd
	entry := l.entryBuf[:0]
	n := uint64(0)
	touched := map[string]*batchChain{}
	var order []string // sessions of the batch, in order of appearance
	add := func(body []byte, session string, seal bool) error {
		index := base + n
		var bc *batchChain
		if session != "" {
			if bc = touched[session]; bc == nil {
				e, err := l.chains.get(session)
				if err != nil {
					return fmt.Errorf("audit log failed closed: session %q: %w", session, err)
				}
				bc = &batchChain{e: e}
				if e.found {
					bc.c = chain{seq: e.st.seq, last: e.st.last, sealed: e.st.seal, lastSeal: e.st.seal}
				}
				touched[session] = bc
				order = append(order, session)
			}
		}
		var c chain
		if bc != nil {
			c = bc.c
		}
		entry = fillIn(entry[:0], body, index, session, c)
		buf = appendFrame(buf, entry)
		if err := rng.Append(hasher.HashLeaf(entry), visit); err != nil {
			return fmt.Errorf("audit log failed closed: hash entry %d: %w", index, err)
		}
		end += 4 + int64(len(entry))
		offs = binary.BigEndian.AppendUint64(offs, uint64(end))
		n++
		if bc != nil {
			bc.c.seq, bc.c.last, bc.c.lastSeal = c.seq+1, index, seal
			bc.c.sealed = c.sealed || seal
		}
		return nil
	}
	for _, r := range batch {
		if err := add(r.body, r.session, r.seal); err != nil {
			return 0, false, err
		}
	}
	for _, s := range order {
		if c := touched[s].c; c.sealed && !c.lastSeal {
			body, err := l.encode(Event{Type: typeSeal, Actor: "ward", Session: s})
			if err != nil {
				return 0, false, fmt.Errorf("audit log failed closed: seal session %q: %w", s, err)
			}
			if err := add(body, s, true); err != nil {
				return 0, false, err
			}
		}
	}
	// Places for the batch's new sessions (a new generation of the table
	// is made durable here, before anything of the batch is written).
	taken := map[slotLoc]bool{}
	updates := make([]slotUpdate, 0, len(order))
	for _, s := range order {
		bc := touched[s]
		k := keyOf(s)
		if !bc.e.found {
			loc, err := l.chains.placeNew(k, taken)
			if err != nil {
				return 0, false, fmt.Errorf("audit log failed closed: session %q: %w", s, err)
			}
			taken[loc] = true
			bc.e.loc = loc
		}
		updates = append(updates, slotUpdate{loc: bc.e.loc, key: k, st: chainState{last: bc.c.last, seq: bc.c.seq, seal: bc.c.lastSeal}})
	}
	last := base + n - 1
	size := base + n
	if len(buf) <= 1<<20 {
		l.wbuf, l.offBuf, l.nodeBuf, l.entryBuf = buf, offs, nodes, entry
	}
	// The index first: it is only read below the published size.
	if _, err := l.idx.offsets.WriteAt(offs, 8*int64(base)); err != nil {
		return 0, false, fmt.Errorf("audit log failed closed: write index of entries %d..%d: %w", base, last, err)
	}
	if _, err := l.idx.hashes.WriteAt(nodes, 32*nodesIn(base)); err != nil {
		return 0, false, fmt.Errorf("audit log failed closed: write index of entries %d..%d: %w", base, last, err)
	}
	if _, err := l.ent.WriteAt(buf, l.entEnd); err != nil {
		return 0, false, fmt.Errorf("audit log failed closed: write entries %d..%d: %w", base, last, err)
	}
	// The frontier's hashes are never changed in place (a range's appends
	// replace them), so a copy of the slice keeps them.
	st := &ackState{size: size, entEnd: end, hashes: slices.Clone(rng.Hashes())}
	if k := l.journalKey.Swap(nil); k != nil {
		l.jr.mac = newJournalMAC(*k) // a rotation of the log's key (keys.go)
	}
	if l.jr.fits(len(buf)) {
		// One sync, or none yet: the journal's record holds the entries.
		// No checkpoint is signed here; the checkpointer signs one over
		// them on its cadence.
		next, err := l.jr.write(base, size, l.entEnd, buf)
		if err != nil {
			return 0, false, fmt.Errorf("audit log failed closed: journal entries %d..%d: %w", base, last, err)
		}
		if sync {
			if err := l.jr.sync(); err != nil {
				err = fmt.Errorf("audit log failed closed: journal entries %d..%d: %w", base, last, err)
				l.failUnsynced(err)
				return 0, false, err
			}
		}
		l.jr.off = next
	} else {
		// The journal is full (or not yet usable): the files and the head
		// take the batch directly, under a checkpoint signed over it
		// (and over the batches written unsynced before it, whose
		// entries the same sync makes durable), and the journal starts
		// again.
		if err := l.writeThrough(st); err != nil {
			return 0, false, fmt.Errorf("audit log failed closed: %w", err)
		}
		l.jr.restart()
		sync = true
	}
	// Written (and, with sync, durable): from here on the batch is
	// acknowledged.
	l.rng, l.entEnd = rng, end
	for _, s := range order {
		bc := touched[s]
		l.chains.remember(s, cached{loc: bc.e.loc, st: chainState{last: bc.c.last, seq: bc.c.seq, seal: bc.c.lastSeal}, found: true})
	}
	var afterErr error
	for i, u := range updates {
		if err := l.idx.sessions.write(u.loc, u.key, u.st); err != nil {
			afterErr = &afterDurable{&slotsPending{fmt.Errorf("audit log failed closed: %w", err), updates[i:]}}
			break
		}
	}
	if sync {
		l.acknowledge(st)
	} else {
		l.unsyncedSt = st
	}
	if afterErr != nil {
		return base, sync, afterErr
	}
	l.written.Store(size)
	if size-l.durable.Load() >= indexSyncEvery {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return base, sync, nil
}

// acknowledge makes st, a durable state, the log's acknowledged one: what
// Size and Read see and what the checkpointer signs.
func (l *Log) acknowledge(st *ackState) {
	l.mu.Lock()
	l.ack = st
	due := st.size-l.signedSize >= checkpointEvery
	l.mu.Unlock()
	l.size.Store(st.size)
	if due {
		l.kickCheckpoint()
	}
}

// ackState is the log's state after an acknowledged batch: what the next
// checkpoint covers and the head names once it is brought up to date.
type ackState struct {
	size   uint64
	entEnd int64    // where the entries end
	hashes [][]byte // the compact range [0, size)
}

// acked returns the latest acknowledged state (nil before the first batch
// of a log opened unverified).
func (l *Log) acked() *ackState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ack
}

// signedAt returns the published checkpoint and its root if it is at
// size, else nil.
func (l *Log) signedAt(size uint64) (signed, root []byte) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.checkpoint != nil && l.signedSize == size {
		return l.checkpoint, l.root
	}
	return nil, nil
}

// sign signs the checkpoint of st (or returns the published one if it is
// at st's size).
func (l *Log) sign(st *ackState) (signed, root []byte, err error) {
	if signed, root = l.signedAt(st.size); signed != nil {
		return signed, root, nil
	}
	rng, err := rangeFactory.NewRange(0, st.size, st.hashes)
	if err != nil {
		return nil, nil, fmt.Errorf("sign checkpoint at size %d: %w", st.size, err)
	}
	root = rootOf(rng)
	signed, err = note.Sign(&note.Note{Text: checkpointText(l.cfg.Origin, st.size, root)}, l.keys.Load().signers...)
	if err != nil {
		return nil, nil, fmt.Errorf("sign checkpoint at size %d: %w", st.size, err)
	}
	if len(signed) > MaxCheckpointBytes {
		return nil, nil, fmt.Errorf("sign checkpoint at size %d: note too large", st.size)
	}
	return signed, root, nil
}

// published makes signed, a durable checkpoint at size with root, the
// log's latest (Checkpoint, Prove) unless a later one is, and wakes those
// waiting for one.
func (l *Log) published(size uint64, signed, root []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.checkpoint != nil && size <= l.signedSize {
		return
	}
	l.checkpoint, l.root, l.signedSize = signed, root, size
	l.cpErr = nil
	close(l.cpNext)
	l.cpNext = make(chan struct{})
}

// writeRecord appends signed, the checkpoint at size, to the checkpoints
// file, unsynced, unless its last record is at size already, and returns
// where the record ends. A failed write leaves cpEnd where it was: the
// next write overwrites what it left.
func (l *Log) writeRecord(size uint64, signed []byte) (int64, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if size == l.cpSize && l.cpEnd > 0 {
		return l.cpEnd, nil
	}
	if size < l.cpSize {
		return 0, fmt.Errorf("write checkpoint at size %d: the file is at %d", size, l.cpSize)
	}
	rec := appendFrame(make([]byte, 0, 4+len(signed)), signed)
	if _, err := l.cps.WriteAt(rec, l.cpEnd); err != nil {
		return 0, fmt.Errorf("write checkpoint at size %d: %w", size, err)
	}
	l.cpEnd += int64(len(rec))
	l.cpSize = size
	return l.cpEnd, nil
}

// writeThrough makes the batch st durable without the journal, in the
// order that needs no journal: its entries synced, then a checkpoint
// signed over them, its record written and synced, then the head names
// it; then the checkpoint is published. Before the head is written
// nothing the log relies on changes (cpEnd moves only at the end); a
// failed head write wraps errHead, for its slot may be durable.
func (l *Log) writeThrough(st *ackState) error {
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.throughs++
	signed, root, err := l.sign(st)
	if err != nil {
		return err
	}
	if err := l.ent.Sync(); err != nil {
		return fmt.Errorf("sync entries: %w", err)
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if st.size < l.cpSize {
		return fmt.Errorf("write checkpoint at size %d: the file is at %d", st.size, l.cpSize)
	}
	rec := appendFrame(make([]byte, 0, 4+len(signed)), signed)
	if _, err := l.cps.WriteAt(rec, l.cpEnd); err != nil {
		return fmt.Errorf("write checkpoint at size %d: %w", st.size, err)
	}
	if err := l.cps.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint at size %d: %w", st.size, err)
	}
	cpEnd := l.cpEnd + int64(len(rec))
	if err := l.headTo(st, signed, cpEnd); err != nil {
		return err
	}
	l.cpEnd, l.cpSize = cpEnd, st.size
	l.published(st.size, signed, root)
	return nil
}

// flushTo makes st, an acknowledged state, the state of the files and the
// head, under a signed checkpoint: unless the head is at st (or a later
// state) already, a checkpoint over st is signed (the published one, if
// it is at st's size), its record written if it is missing, the entries
// and the checkpoints synced, the head made to name it (with how much of
// the index is durable), and the checkpoint published. The checkpointer
// calls it on its cadence, the writer's recovery and Close when they
// must.
func (l *Log) flushTo(st *ackState) error {
	if st == nil {
		return nil
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	if l.headAt(st) {
		return nil
	}
	signed, root, err := l.sign(st)
	if err != nil {
		return err
	}
	cpEnd, err := l.writeRecord(st.size, signed)
	if err != nil {
		return err
	}
	if err := l.ent.Sync(); err != nil {
		return fmt.Errorf("sync entries: %w", err)
	}
	if err := l.cps.Sync(); err != nil {
		return fmt.Errorf("sync checkpoints: %w", err)
	}
	if err := l.headTo(st, signed, cpEnd); err != nil {
		return err
	}
	l.published(st.size, signed, root)
	return nil
}

// headAt says whether the head names st (or a later state) already, with
// as much of the index as is durable: then there is nothing to flush.
func (l *Log) headAt(st *ackState) bool {
	l.headMu.Lock()
	defer l.headMu.Unlock()
	indexed := min(l.durable.Load(), st.size)
	return l.head != nil && !l.headDirty && (st.size < l.headSize || st.size == l.headSize && indexed <= l.headIndexed)
}

// headTo makes the head name signed, the checkpoint of st, whose entries
// and checkpoint record are durable, unless it names a later state (or
// the same one, with the same index size) already. A failed write wraps
// errHead and lets the next write go to the same slot whatever it names.
func (l *Log) headTo(st *ackState, signed []byte, cpEnd int64) error {
	l.headMu.Lock()
	defer l.headMu.Unlock()
	indexed := min(l.durable.Load(), st.size)
	if l.head != nil && !l.headDirty && (st.size < l.headSize || st.size == l.headSize && indexed <= l.headIndexed) {
		return nil
	}
	front := &frontier{entEnd: st.entEnd, cpEnd: cpEnd, indexed: indexed, hashes: st.hashes}
	if err := l.writeHead(signed, front); err != nil {
		return fmt.Errorf("remember checkpoint at size %d: %w: %w", st.size, errHead, err)
	}
	l.headSize = st.size
	return nil
}

// kickCheckpoint asks the checkpointer for a checkpoint now.
func (l *Log) kickCheckpoint() {
	select {
	case l.cpKick <- struct{}{}:
	default:
	}
}

// checkpointer signs a checkpoint over the acknowledged entries and makes
// it, the checkpoints file and the head durable (flushTo), then publishes
// it: every checkpointInterval, when checkpointEvery entries were
// acknowledged since the latest checkpoint, and when Sync asks. Signed
// checkpoints are so produced and published from durable entries on their
// own cadence, as transparency logs such as Tessera do, while an append
// waits for one sync and no signature. While a write fault is in force the
// writer's recovery does it instead. A failed sync makes the log fail
// closed until it is reopened (the kernel may have dropped the pages, so a
// later sync's success would not prove them; Open replays them from the
// journal). A failed write is tried again on the next tick. Every attempt
// wakes the waiters of Sync and NextCheckpoint (with its error, if it
// failed).
func (l *Log) checkpointer() {
	defer close(l.flushStopped)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		case <-l.cpKick:
		}
		err := l.Err()
		if err == nil {
			if err = l.flushTo(l.acked()); err != nil && isSyncErr(err) {
				l.errMu.Lock()
				if l.damage == nil {
					l.damage = fmt.Errorf("audit log failed closed: bring the checkpoints up to date: %w (reopen the log: it replays its journal)", err)
				}
				l.errMu.Unlock()
			}
		}
		l.mu.Lock()
		l.cpErr = err
		close(l.cpNext)
		l.cpNext = make(chan struct{})
		l.mu.Unlock()
	}
}

// isSyncErr says whether err is a failed fsync (rather than a failed
// write, which a later write may retry).
func isSyncErr(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && pe.Op == "sync"
}

// writeHead remembers signed with its frontier.
func (l *Log) writeHead(signed []byte, front *frontier) error {
	if l.head != nil {
		if err := l.head.write(signed, front); err != nil {
			l.headDirty = true
			return err
		}
	} else {
		h, err := createHead(l.cfg.Head, l.headSeq, signed, front)
		if err != nil {
			return err
		}
		l.head = h
	}
	l.headIndexed, l.headDirty = front.indexed, false
	return nil
}

// rememberHead makes signed, the latest checkpoint (durable, the last
// record of the checkpoints file), the remembered head, with the current
// frontier; the journal then starts again. Open calls it once the files
// are the log's state.
func (l *Log) rememberHead(signed []byte) error {
	size := l.rng.End()
	st := &ackState{size: size, entEnd: l.entEnd, hashes: cloneRange(l.rng).Hashes()}
	l.headMu.Lock()
	err := l.writeHead(signed, &frontier{entEnd: l.entEnd, cpEnd: l.cpEnd, indexed: min(l.durable.Load(), size), hashes: st.hashes})
	if err == nil {
		l.headSize = size
	}
	l.headMu.Unlock()
	if err != nil {
		return err
	}
	l.cpSize = size
	l.mu.Lock()
	l.ack = st
	l.mu.Unlock()
	l.jr.restart()
	return nil
}

// syncIndex is the index's syncer: it makes what the writer wrote to the
// index durable, so that the next head can say so.
func (l *Log) syncIndex() {
	defer close(l.syncStopped)
	t := time.NewTicker(indexSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		case <-l.kick:
		}
		w := l.written.Load()
		if w <= l.durable.Load() || l.syncFailed.Load() {
			continue
		}
		if err := l.idx.sync(); err != nil {
			l.syncFailed.Store(true)
			continue
		}
		l.durable.Store(w)
	}
}
