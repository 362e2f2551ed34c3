package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

const (
	// DefaultMaxEventSize is the default Config.MaxEventSize: 1 MiB of
	// encoded JSON.
	DefaultMaxEventSize = 1 << 20

	// DefaultUnsyncedDelay is the default Config.UnsyncedDelay: an event
	// appended unsynced is durable within about this long (plus a sync)
	// even if no durable append comes to share its sync. Long enough for
	// a quick tool call's result to arrive and make its decision durable
	// with it; short enough that the window in which a crash of the
	// machine (not of the process) could lose the decision of a forwarded
	// call stays a few milliseconds.
	DefaultUnsyncedDelay = 2 * time.Millisecond

	// maxBatchEvents and maxBatchBytes bound one group commit.
	maxBatchEvents = 4096
	maxBatchBytes  = 16 << 20
	// queueLen is how many appends may wait for the writer.
	queueLen = 4096
	// maxFilledIn is how much longer an entry gets when the writer fills
	// in its index, seq and prev.
	maxFilledIn = 3 * (len(`,"prev":`) + 20)
)

// Event is one structured, versioned audit record.
type Event struct {
	V     int    `json:"v"`     // schema version, currently 2 (set by Append if 0)
	Index uint64 `json:"index"` // position in the log, set by Append
	// Seq and Prev chain the events of one session (set by Append when
	// Session is set): Seq is the event's position among its session's
	// events, from 1; Prev is the log index of the session's previous
	// event, present exactly when Seq > 1.
	Seq     uint64          `json:"seq,omitempty"`
	Prev    *uint64         `json:"prev,omitempty"`
	Time    time.Time       `json:"time"`              // set by Append if zero (UTC)
	Type    string          `json:"type"`              // e.g. "session.start", "svid.issue", "token.exchange", "session.end", "decision", "result", "tool.pin", "server.start"
	Actor   string          `json:"actor,omitempty"`   // who did it: SPIFFE ID or principal name
	Session string          `json:"session,omitempty"` // session ID
	Agent   string          `json:"agent,omitempty"`   // agent name
	Sponsor string          `json:"sponsor,omitempty"` // accountable human or team
	Data    json.RawMessage `json:"data,omitempty"`    // type-specific payload
}

// Config configures Open.
type Config struct {
	// Dir holds the log files. It is created with mode 0700.
	Dir string
	// Origin is the checkpoint origin line, e.g. "ward.local/audit".
	Origin string
	// Signer signs checkpoints (from note.NewSigner).
	Signer note.Signer
	// Verifier is the Signer's verifier; it checks existing checkpoints.
	// During and after a rotation of the log's key it is a [Keyring]
	// of the keys that signed the log, the Signer's first.
	Verifier note.Verifier
	// Signers are more keys every checkpoint is signed with after the
	// Signer's (a rotation's overlap: see keys.go); Verifier must hold
	// them.
	Signers []note.Signer
	// MaxEventSize bounds an event's JSON encoding; larger events are
	// refused with ErrTooLarge. Zero means DefaultMaxEventSize.
	MaxEventSize int
	// Head is the file where the log remembers the latest checkpoint it
	// made durable; it must be outside Dir. Empty means DefaultHead(Dir).
	Head string
	// Anchors are files that may hold a checkpoint this log published, such
	// as the witness-cosigned one (see VerifyConfig.Anchors); Open refuses a
	// log that does not extend every one that exists.
	Anchors []string
	// AllowUnverified opens a log that fails verification, or that is
	// behind its remembered head or an anchor, instead of refusing it. The
	// problems are then accepted: complete entries are kept as they are,
	// bytes that cannot be framed are moved to "entries.unverified-<unix
	// nanos>", the old checkpoints file is renamed to
	// "checkpoints.unverified-<unix nanos>", the old head file is copied to
	// "<head>.unverified-<unix nanos>", anchor files the log does not extend
	// are renamed to "<anchor>.unverified-<unix nanos>" (they describe the
	// history left behind), and an "audit.unverified-open" event recording
	// the verification error, the remembered head and where the evidence is
	// is appended and signed. Verify afterwards tolerates entry problems
	// before that event and lists them in Report.Anomalies.
	AllowUnverified bool
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// OnAppend, if set, is told how long each successful Append or Seal
	// took from its call to its event being durable (for metrics). It runs
	// on the appender's goroutine and must not block.
	OnAppend func(took time.Duration)
	// OnCommit, if set, is told of every durable group commit: how many
	// events it made durable and how long writing and syncing them took.
	// It runs on the single writer and must not block.
	OnCommit func(events int, took time.Duration)
	// UnsyncedDelay is how long an event appended with
	// [Log.AppendUnsynced] may wait, written but not synced, for a batch
	// that must be durable (whose sync makes it durable too) before the
	// writer syncs it on its own. Zero means DefaultUnsyncedDelay.
	UnsyncedDelay time.Duration

	// journalKey authenticates the journal's records this log writes;
	// Open derives it from the last of Signer and Signers (the newest
	// key). journalKeys are the keys a record to replay may be
	// authenticated with: those derived from Signer and Signers.
	journalKey  []byte
	journalKeys [][]byte
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	cfg  Config
	keys atomic.Pointer[logKeys] // what signs and verifies checkpoints now (keys.go)
	// journalKey, when set, is the journal's new MAC key, which the
	// writer takes before its next record (Rotate).
	journalKey atomic.Pointer[[]byte]
	ent        *os.File
	cps        *os.File
	idx        *index
	unlock     func() error
	notice     string
	// fromHead says Open started from the remembered head, reading only
	// what came after the index's durable part.
	fromHead bool

	reqs        chan *request
	quit        chan struct{}
	stopped     chan struct{}
	syncStopped chan struct{}
	// flushStopped is closed when the checkpointer has stopped.
	flushStopped chan struct{}
	kick         chan struct{}

	closeOnce sync.Once
	closeErr  error

	size    atomic.Uint64 // acknowledged entries
	faults  atomic.Uint64 // write failures so far (a verification pass beside one may misread the files)
	written atomic.Uint64 // entries whose index records are all written
	durable atomic.Uint64 // entries whose index records are durable
	// syncFailed is set once syncing the index failed: from then on what
	// a later sync reports cannot be trusted (the kernel may have dropped
	// the pages), so the durable index size stays where it was.
	syncFailed atomic.Bool

	mu     sync.RWMutex
	closed bool
	// checkpoint is the latest published checkpoint (durable, signed
	// over signedSize entries with root); cpNext is closed when the
	// checkpointer has made an attempt since (cpErr says if it failed).
	checkpoint []byte
	root       []byte
	signedSize uint64
	cpErr      error
	cpNext     chan struct{}
	// cpKick asks the checkpointer for a checkpoint now; ckMu serializes
	// making checkpoints (the checkpointer, the writer's write-through
	// and recovery, Close).
	cpKick chan struct{}
	ckMu   sync.Mutex

	errMu    sync.Mutex
	faultErr error // the write fault in force, if any
	damage   error // what a verification pass found, if anything

	// Owned by the writer goroutine.
	head        *head
	headSeq     uint64 // the head's write number, when head is nil
	headIndexed uint64 // the index size the head last said
	headDirty   bool   // a head write failed: its slot may say anything

	headSize uint64     // the tree size the head last said
	headMu   sync.Mutex // guards the head and the fields above: the writer and the checkpointer write it

	// cpMu guards writes to the checkpoints file, cpEnd and cpSize.
	cpMu   sync.Mutex
	cpSize uint64    // tree size of the checkpoints file's last record
	ack    *ackState // the latest acknowledged state (under mu)
	jr     *journal  // the journal (the writer's)
	// throughs counts the batches written through the files (three syncs
	// each) rather than the journal (one).
	throughs uint64
	// unsynced are the requests of batches written to the journal but not
	// yet synced (see AppendUnsynced), and unsyncedSt the state they
	// leave the log in; the writer's.
	unsynced   []*request
	unsyncedSt *ackState
	rng        *compact.Range
	chains     *chains
	entEnd     int64
	cpEnd      int64
	fault      *fault
	// The writer's buffers, kept from batch to batch.
	wbuf, offBuf, nodeBuf, entryBuf []byte
}

type request struct {
	body    []byte // entry JSON with "index":0 and no seq or prev
	session string
	seal    bool
	// unsynced: acknowledge the event once it is written (its index),
	// then again once it is durable. done then holds up to two results;
	// an error ends it.
	unsynced bool
	done     chan result
}

type result struct {
	index uint64
	err   error
}

// NewNoteKey generates an Ed25519 note key pair named origin, for the server
// to persist. skey is secret.
func NewNoteKey(origin string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("generate note key: %w", err)
	}
	return skey, vkey, nil
}

// Notice describes, in one line, what Open did besides opening: an
// unacknowledged tail moved aside, or a log accepted although it failed
// verification. It is empty otherwise. A server should log it.
func (l *Log) Notice() string { return l.notice }

// Append adds e to the log and returns its index. It sets e.V to 2 if zero,
// e.Time to now (UTC) if zero, e.Index, and, when e.Session is set, e.Seq
// and e.Prev. It returns only once the event is durable on disk (one
// fdatasync, shared by the appends of its batch), with its index. A
// signed checkpoint covering it follows on the log's cadence, within
// about checkpointInterval (see Checkpoint, Sync, NextCheckpoint). Types
// beginning with "audit." are the log's own and are refused.
//
// If ctx is done while Append waits, it returns ctx.Err(); the event may
// still be written and acknowledged in the log later. If writing fails, the
// error is returned to every append of the batch and the log fails closed:
// later appends are refused with that error, without touching the disk,
// while the log retries with backoff (see Err); the first write that
// succeeds records an "audit.fault" event saying what failed and how many
// appends were refused. After Close, Append returns ErrClosed. An event whose encoding is larger than Config.MaxEventSize is
// refused with ErrTooLarge and does not affect the log.
func (l *Log) Append(ctx context.Context, e Event) (uint64, error) {
	if strings.HasPrefix(e.Type, typePrefix) {
		return 0, fmt.Errorf("append %s event: types beginning with %q are the audit log's own", e.Type, typePrefix)
	}
	return l.append(ctx, e, false)
}

// Seal appends an "audit.seal" event to session's chain: a statement,
// covered by the next checkpoint, that the chain ending at it holds every
// event of the session logged so far. From then on the log keeps the
// session sealed: a later event of the session is followed, in the same
// batch, by a new seal. A server seals a session when it ends; a forensic
// bundle proves a session complete by its seal. Seal returns the seal's
// index.
func (l *Log) Seal(ctx context.Context, session string) (uint64, error) {
	if session == "" {
		return 0, errors.New("seal: empty session")
	}
	return l.append(ctx, Event{Type: typeSeal, Actor: "ward", Session: session}, true)
}

func (l *Log) append(ctx context.Context, e Event, seal bool) (_ uint64, err error) {
	if l.cfg.OnAppend != nil {
		start := time.Now()
		defer func() {
			if err == nil {
				l.cfg.OnAppend(time.Since(start))
			}
		}()
	}
	r, err := l.enqueue(ctx, e, seal, false)
	if err != nil {
		return 0, err
	}
	res := l.await(ctx, r)
	return res.index, res.err
}

// enqueue hands e to the writer.
func (l *Log) enqueue(ctx context.Context, e Event, seal, unsynced bool) (*request, error) {
	select {
	case <-l.quit:
		return nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body, err := l.encode(e)
	if err != nil {
		return nil, err
	}
	r := &request{body: body, session: strings.ToValidUTF8(e.Session, "\uFFFD"), seal: seal, unsynced: unsynced, done: make(chan result, 2)}
	select {
	case l.reqs <- r:
	case <-l.quit:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r, nil
}

// await returns the writer's next answer to r.
func (l *Log) await(ctx context.Context, r *request) result {
	select {
	case res := <-r.done:
		return res
	case <-ctx.Done():
		return result{err: ctx.Err()}
	case <-l.stopped:
		select {
		case res := <-r.done:
			return res
		default:
			return result{err: ErrClosed}
		}
	}
}

// AppendUnsynced appends e as Append does, but returns as soon as the
// event is written, before it is durable: it has its index and its place
// in the tree, and its record is in the journal, written with write(2)
// and not yet synced. From then on a crash of the process (kill -9, a
// panic) does not lose it: Open replays the journal, and the kernel
// keeps what was written. A crash of the machine (power, kernel) before
// the record is synced may lose it. The writer syncs it with the next
// batch that must be durable (an Append's, or a Pending's Durable being
// due), or on its own after Config.UnsyncedDelay: one sync then makes
// both the unsynced event and that batch durable. [Pending.Durable]
// waits for that sync.
//
// Until it is durable the event is not readable (Size, Read) and no
// checkpoint is published over it. Its index is never reused: if the
// sync fails, the log fails closed until it is reopened (as when a
// checkpoint's sync fails), and Open replays what the journal holds.
//
// ward's gateway appends a call's decision this way and forwards the
// call at once; it answers the agent only once the decision and the
// result are both durable (see the package documentation, "Durability").
func (l *Log) AppendUnsynced(ctx context.Context, e Event) (*Pending, error) {
	if strings.HasPrefix(e.Type, typePrefix) {
		return nil, fmt.Errorf("append %s event: types beginning with %q are the audit log's own", e.Type, typePrefix)
	}
	start := time.Now()
	r, err := l.enqueue(ctx, e, false, true)
	if err != nil {
		return nil, err
	}
	res := l.await(ctx, r)
	if res.err != nil {
		return nil, res.err
	}
	return &Pending{l: l, r: r, index: res.index, start: start}, nil
}

// Pending is an event written to the log and perhaps not yet durable
// (see [Log.AppendUnsynced]).
type Pending struct {
	l     *Log
	r     *request
	index uint64
	start time.Time

	mu   sync.Mutex
	done bool
	err  error
}

// Index is the event's index in the log.
func (p *Pending) Index() uint64 { return p.index }

// Durable waits until the event is durable and returns nil then, or the
// error that keeps it from being so (a failed sync; ErrClosed if the log
// closed first without making it durable), or ctx's error if ctx ends
// first (it may still become durable). Once it returned nil or a sync's
// error, it returns the same at once.
func (p *Pending) Durable(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return p.err
	}
	res := p.l.await(ctx, p.r)
	if res.err != nil && (res.err == ctx.Err()) {
		return res.err
	}
	p.done, p.err = true, res.err
	if res.err == nil && p.l.cfg.OnAppend != nil {
		p.l.cfg.OnAppend(time.Since(p.start))
	}
	return p.err
}

// indexPrefix is how every encoded entry starts; the writer replaces the 0
// and adds seq and prev after it.
const indexPrefix = `{"v":2,"index":0`

// encode validates e and returns its canonical JSON with index 0 and no
// seq or prev.
func (l *Log) encode(e Event) ([]byte, error) {
	if e.V == 0 {
		e.V = schemaVersion
	}
	if e.V != schemaVersion {
		return nil, fmt.Errorf("append event: unsupported schema version %d", e.V)
	}
	if e.Type == "" {
		return nil, errors.New("append event: empty type")
	}
	if e.Time.IsZero() {
		e.Time = l.cfg.Now()
	}
	e.Time = e.Time.UTC()
	e.Index, e.Seq, e.Prev = 0, 0, nil
	// encoding/json would write invalid UTF-8 as \ufffd escapes, which do
	// not read back to the same bytes; replace it first.
	for _, s := range []*string{&e.Type, &e.Actor, &e.Session, &e.Agent, &e.Sponsor} {
		*s = strings.ToValidUTF8(*s, "\uFFFD")
	}
	b, plain := appendPlain(make([]byte, 0, 256+len(e.Data)), &e)
	if !plain {
		var err error
		if b, err = json.Marshal(e); err != nil {
			return nil, fmt.Errorf("append %s event: %w", e.Type, err)
		}
	}
	if len(b) > l.cfg.MaxEventSize {
		return nil, fmt.Errorf("append %s event: %d bytes, limit %d: %w", e.Type, len(b), l.cfg.MaxEventSize, ErrTooLarge)
	}
	// What is written must read back exactly; Verify insists on it.
	if _, err := decodeCanonical(b); err != nil || !bytes.HasPrefix(b, []byte(indexPrefix+`,"time":`)) {
		return nil, fmt.Errorf("append %s event: encoding does not round-trip", e.Type)
	}
	return b, nil
}

// fillIn writes body as entry index of its session's chain c to dst.
func fillIn(dst, body []byte, index uint64, session string, c chain) []byte {
	dst = append(dst, indexPrefix[:len(indexPrefix)-1]...)
	dst = strconv.AppendUint(dst, index, 10)
	if session != "" {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, c.seq+1, 10)
		if c.seq > 0 {
			dst = append(dst, `,"prev":`...)
			dst = strconv.AppendUint(dst, c.last, 10)
		}
	}
	return append(dst, body[len(indexPrefix):]...)
}

// Size returns the number of acknowledged entries. They are durable and
// readable; the latest checkpoint may cover fewer of them until the
// checkpointer signs the next one (see Sync).
func (l *Log) Size() uint64 { return l.size.Load() }

// Checkpoint returns the latest signed checkpoint note. It is durable (in
// the checkpoints file and the head) and covers every entry acknowledged
// up to checkpointInterval (200 ms) before it was signed, or more; Sync
// returns one that covers every entry acknowledged before its call.
func (l *Log) Checkpoint() []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return bytes.Clone(l.checkpoint)
}

// proveWait bounds how long Prove waits for a checkpoint that covers the
// event it proves.
const proveWait = 10 * time.Second

// covers says whether the latest checkpoint covers entry index.
func (l *Log) covers(index uint64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.checkpoint != nil && index < l.signedSize
}

// Sync returns a signed, durable checkpoint that covers every entry
// acknowledged before it was called: the latest one if it does, or else
// the next one, which it asks the checkpointer to make now rather than on
// its cadence. A caller that hands out an entry's index for others to
// prove at once (a receipt) calls it first. It returns ctx.Err() if ctx
// ends first, ErrClosed if the log is closed first, and the checkpointer's
// error if an attempt fails (the log is then failing closed, see Err).
func (l *Log) Sync(ctx context.Context) ([]byte, error) {
	target := l.size.Load()
	for {
		l.mu.RLock()
		cp, n, next, closed := l.checkpoint, l.signedSize, l.cpNext, l.closed
		l.mu.RUnlock()
		if closed {
			return nil, ErrClosed
		}
		if cp != nil && n >= target {
			return bytes.Clone(cp), nil
		}
		l.kickCheckpoint()
		select {
		case <-next:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.quit:
			return nil, ErrClosed
		}
		l.mu.RLock()
		cp, n, err := l.checkpoint, l.signedSize, l.cpErr
		l.mu.RUnlock()
		if (cp == nil || n < target) && err != nil {
			return nil, fmt.Errorf("audit log: sign a checkpoint over %d entries: %w", target, err)
		}
	}
}

// NextCheckpoint waits for a signed, durable checkpoint of a tree larger
// than after entries and returns it (at once if the latest is). It does
// not ask for one: checkpoints come on the log's cadence, every
// checkpointInterval while entries are appended. A witness, or a node
// publishing its heads, loops on it with the size of the one it last
// handled. It returns ctx.Err() or ErrClosed if either comes first.
func (l *Log) NextCheckpoint(ctx context.Context, after uint64) ([]byte, error) {
	for {
		l.mu.RLock()
		cp, n, next, closed := l.checkpoint, l.signedSize, l.cpNext, l.closed
		l.mu.RUnlock()
		if closed {
			return nil, ErrClosed
		}
		if cp != nil && n > after {
			return bytes.Clone(cp), nil
		}
		select {
		case <-next:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.quit:
			return nil, ErrClosed
		}
	}
}

// Err says whether the log accepts appends: nil when it does. Otherwise it
// is ErrClosed after Close; the write error while a write fault persists (a
// full disk, say: the log retries by itself, with backoff, and Err is nil
// again once a write succeeds); or, after Verify found damage, an error
// wrapping ErrTampered or ErrCorrupt, until the log is reopened (and Open
// then verifies it in full). Errors caused by the disk wrap the system's
// error (errors.Is(err, syscall.ENOSPC) on a full disk).
func (l *Log) Err() error {
	select {
	case <-l.quit:
		return ErrClosed
	default:
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.damage != nil {
		return l.damage
	}
	return l.faultErr
}

// MinFreeBytes is the free space below which Writable says the log's
// file system is full: a batch of appends may need a few megabytes.
const MinFreeBytes = 4 << 20

// Writable is Err, and, when Err is nil, whether the log's file system
// still has MinFreeBytes free: a readiness check calls it, so that a full
// disk shows before an append fails on it (the error then wraps
// syscall.ENOSPC). It changes nothing: appends go on while they fit.
func (l *Log) Writable() error {
	if err := l.Err(); err != nil {
		return err
	}
	free, err := freeSpace(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("audit log: measure the free space of %s: %w", l.cfg.Dir, err)
	}
	if free < MinFreeBytes {
		return fmt.Errorf("audit log: %d bytes free on the file system of %s, less than %d: appends are about to fail: %w", free, l.cfg.Dir, MinFreeBytes, syscall.ENOSPC)
	}
	return nil
}

// Read returns the acknowledged events at positions [from, to). It reads
// them all into memory; callers page through large ranges. It finds them
// through the index and checks each against it (its frame, its encoding,
// its index field): a damaged index is an error wrapping ErrCorrupt,
// never another event.
func (l *Log) Read(from, to uint64) ([]Event, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	size := l.size.Load()
	if from > to || to > size {
		return nil, fmt.Errorf("read audit log [%d, %d): out of range, size %d", from, to, size)
	}
	if from == to {
		return nil, nil
	}
	starts, ends, err := l.idx.span(from, to)
	if err != nil {
		return nil, fmt.Errorf("read audit log [%d, %d): %w", from, to, err)
	}
	base := starts[0]
	buf := make([]byte, ends[len(ends)-1]-base)
	if _, err := l.ent.ReadAt(buf, base); err != nil {
		return nil, fmt.Errorf("read audit log [%d, %d): %w", from, to, err)
	}
	events := make([]Event, 0, to-from)
	for k := range ends {
		i := from + uint64(k)
		e, err := entryAt(buf[starts[k]-base:ends[k]-base], i)
		if err != nil {
			return nil, fmt.Errorf("read audit log entry %d: %v: %w", i, err, ErrCorrupt)
		}
		events = append(events, e)
	}
	return events, nil
}

// entryAt decodes the frame b that the index says is entry i.
func entryAt(b []byte, i uint64) (Event, error) {
	if len(b) < 5 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return Event{}, errors.New("the index does not point at a frame")
	}
	e, err := decodeEntry(b[4:])
	if err != nil {
		return Event{}, err
	}
	if e.Index != i {
		return Event{}, fmt.Errorf("the index points at entry %d", e.Index)
	}
	return e, nil
}

// Close stops the writer after the batch in progress, fails appends still
// queued with ErrClosed, makes the index durable (so that the next Open
// replays nothing) and closes the files.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.stopped
		<-l.syncStopped
		<-l.flushStopped
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		var errs []error
		if l.fault == nil && l.damaged() == nil {
			// The files and the head take what only the journal holds, so
			// that a closed log needs no replay.
			if w := l.written.Load(); w > l.headIndexed && !l.syncFailed.Load() && l.idx.sync() == nil {
				l.durable.Store(w)
			}
			err := l.flushTo(l.acked())
			if err == nil {
				err = l.jr.clear()
			}
			errs = append(errs, err)
		}
		errs = append(errs, l.ent.Close(), l.cps.Close(), l.idx.close(), l.head.close(), l.jr.close(), l.unlock())
		if l.closeErr = errors.Join(errs...); l.closeErr != nil {
			l.closeErr = fmt.Errorf("close audit log: %w", l.closeErr)
		}
	})
	return l.closeErr
}
