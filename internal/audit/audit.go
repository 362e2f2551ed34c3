package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

const (
	// DefaultMaxEventSize is the default Config.MaxEventSize: 1 MiB of
	// encoded JSON.
	DefaultMaxEventSize = 1 << 20

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
	Verifier note.Verifier
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
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	cfg    Config
	ent    *os.File
	cps    *os.File
	unlock func() error
	notice string

	reqs    chan *request
	quit    chan struct{}
	stopped chan struct{}

	closeOnce sync.Once
	closeErr  error

	size atomic.Uint64 // acknowledged entries

	mu         sync.RWMutex
	closed     bool
	offsets    []int64 // offsets[i] is where entry i starts; offsets[size] the end
	tree       tree    // subtree hashes of the entries in offsets
	checkpoint []byte

	// Owned by the writer goroutine.
	head   *head
	rng    *compact.Range
	chains map[string]chain
	entEnd int64
	cpEnd  int64
	failed error
	wbuf   []byte
}

type request struct {
	body    []byte // entry JSON with "index":0 and no seq or prev
	session string
	seal    bool
	done    chan result
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
// and e.Prev. It returns only once the event, a signed checkpoint covering
// it and the remembered head are durable on disk. Types beginning with
// "audit." are the log's own and are refused.
//
// If ctx is done while Append waits, it returns ctx.Err(); the event may
// still be written and acknowledged in the log later. If writing fails, the
// error is returned to every append of the batch and to all later appends:
// the log fails closed until reopened. After Close, Append returns
// ErrClosed. An event whose encoding is larger than Config.MaxEventSize is
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

func (l *Log) append(ctx context.Context, e Event, seal bool) (uint64, error) {
	select {
	case <-l.quit:
		return 0, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	body, err := l.encode(e)
	if err != nil {
		return 0, err
	}
	r := &request{body: body, session: strings.ToValidUTF8(e.Session, "\uFFFD"), seal: seal, done: make(chan result, 1)}
	select {
	case l.reqs <- r:
	case <-l.quit:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.index, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.stopped:
		select {
		case res := <-r.done:
			return res.index, res.err
		default:
			return 0, ErrClosed
		}
	}
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
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("append %s event: %w", e.Type, err)
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

// run is the single writer: it batches queued appends into group commits.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*request, 0, 64)
	for {
		select {
		case <-l.quit:
			return
		case r := <-l.reqs:
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
	var first uint64
	if l.failed == nil {
		first, l.failed = l.write(batch)
	}
	if l.failed != nil {
		for _, r := range batch {
			r.done <- result{err: l.failed}
		}
		return
	}
	for i, r := range batch {
		r.done <- result{index: first + uint64(i)}
	}
}

// write makes batch durable, each sealed session it touches sealed again
// after it, then its checkpoint and the head, then publishes them. It
// returns the index of the batch's first entry.
func (l *Log) write(batch []*request) (uint64, error) {
	base := uint64(len(l.offsets) - 1)
	buf := l.wbuf[:0]
	offs := make([]int64, 0, len(batch))
	end := l.entEnd
	var entry []byte
	leaves := make([][]byte, 0, len(batch))
	var touched []string // sessions of the batch, in order of appearance
	seen := map[string]bool{}
	add := func(body []byte, session string, seal bool) error {
		index := base + uint64(len(leaves))
		c := l.chains[session]
		entry = fillIn(entry[:0], body, index, session, c)
		buf = appendFrame(buf, entry)
		leaf := hasher.HashLeaf(entry)
		leaves = append(leaves, leaf)
		if err := l.rng.Append(leaf, nil); err != nil {
			return fmt.Errorf("audit log failed closed: hash entry %d: %w", index, err)
		}
		end += 4 + int64(len(entry))
		offs = append(offs, end)
		if session != "" {
			if !seen[session] {
				seen[session] = true
				touched = append(touched, session)
			}
			c.seq, c.last, c.lastSeal = c.seq+1, index, seal
			c.sealed = c.sealed || seal
			l.chains[session] = c
		}
		return nil
	}
	for _, r := range batch {
		if err := add(r.body, r.session, r.seal); err != nil {
			return 0, err
		}
	}
	for _, s := range touched {
		if c := l.chains[s]; c.sealed && !c.lastSeal {
			body, err := l.encode(Event{Type: typeSeal, Actor: "ward", Session: s})
			if err != nil {
				return 0, fmt.Errorf("audit log failed closed: seal session %q: %w", s, err)
			}
			if err := add(body, s, true); err != nil {
				return 0, err
			}
		}
	}
	last := base + uint64(len(leaves)) - 1
	if len(buf) <= 1<<20 {
		l.wbuf = buf
	}
	if _, err := l.ent.WriteAt(buf, l.entEnd); err != nil {
		return 0, fmt.Errorf("audit log failed closed: write entries %d..%d: %w", base, last, err)
	}
	if err := l.ent.Sync(); err != nil {
		return 0, fmt.Errorf("audit log failed closed: sync entries %d..%d: %w", base, last, err)
	}
	l.entEnd = end
	l.mu.Lock()
	l.offsets = append(l.offsets, offs...)
	for _, leaf := range leaves {
		l.tree.append(leaf)
	}
	l.mu.Unlock()
	if err := l.writeCheckpoint(); err != nil {
		return 0, fmt.Errorf("audit log failed closed: %w", err)
	}
	return base, nil
}

// writeCheckpoint signs the tree over l.offsets and appends it durably,
// makes it the remembered head, then publishes the new size.
func (l *Log) writeCheckpoint() error {
	size := l.rng.End()
	signed, err := note.Sign(&note.Note{Text: checkpointText(l.cfg.Origin, size, rootOf(l.rng))}, l.cfg.Signer)
	if err != nil {
		return fmt.Errorf("sign checkpoint at size %d: %w", size, err)
	}
	if len(signed) > MaxCheckpointBytes {
		return fmt.Errorf("sign checkpoint at size %d: note too large", size)
	}
	rec := appendFrame(make([]byte, 0, 4+len(signed)), signed)
	if _, err := l.cps.WriteAt(rec, l.cpEnd); err != nil {
		return fmt.Errorf("write checkpoint at size %d: %w", size, err)
	}
	if err := l.cps.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint at size %d: %w", size, err)
	}
	l.cpEnd += int64(len(rec))
	if err := l.rememberHead(signed); err != nil {
		return fmt.Errorf("remember checkpoint at size %d: %w", size, err)
	}
	l.mu.Lock()
	l.checkpoint = signed
	l.mu.Unlock()
	l.size.Store(size)
	return nil
}

// rememberHead makes signed, which is durable in the checkpoints file, the
// remembered head.
func (l *Log) rememberHead(signed []byte) error {
	if l.head != nil {
		return l.head.write(signed)
	}
	h, err := createHead(l.cfg.Head, 0, signed)
	if err != nil {
		return err
	}
	l.head = h
	return nil
}

// Size returns the number of acknowledged entries (the latest checkpoint's
// tree size).
func (l *Log) Size() uint64 { return l.size.Load() }

// Checkpoint returns the latest signed checkpoint note.
func (l *Log) Checkpoint() []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return bytes.Clone(l.checkpoint)
}

// Read returns the acknowledged events at positions [from, to). It reads
// them all into memory; callers page through large ranges.
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
	start, end := l.offsets[from], l.offsets[to]
	buf := make([]byte, end-start)
	if _, err := l.ent.ReadAt(buf, start); err != nil {
		return nil, fmt.Errorf("read audit log [%d, %d): %w", from, to, err)
	}
	events := make([]Event, 0, to-from)
	for i := from; i < to; i++ {
		b := buf[l.offsets[i]-start+4 : l.offsets[i+1]-start]
		e, err := decodeEntry(b)
		if err != nil {
			return nil, fmt.Errorf("read audit log entry %d: %v: %w", i, err, ErrCorrupt)
		}
		events = append(events, e)
	}
	return events, nil
}

// Close stops the writer after the batch in progress, fails appends still
// queued with ErrClosed, and closes the files.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.stopped
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.closeErr = errors.Join(l.ent.Close(), l.cps.Close(), l.head.close(), l.unlock())
		if l.closeErr != nil {
			l.closeErr = fmt.Errorf("close audit log: %w", l.closeErr)
		}
	})
	return l.closeErr
}
