package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// maxIndexDigits is how much longer an entry gets when its index is
	// filled in.
	maxIndexDigits = 20
)

// Event is one structured, versioned audit record.
type Event struct {
	V       int             `json:"v"`                 // schema version, currently 1 (set by Append if 0)
	Index   uint64          `json:"index"`             // position in the log, set by Append
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
	// AllowUnverified opens a log that fails verification instead of
	// refusing it. The problems are then accepted: complete entries are kept
	// as they are, bytes that cannot be framed are moved to
	// "entries.unverified-<unix nanos>", the old checkpoints file is renamed
	// to "checkpoints.unverified-<unix nanos>", and an "audit.unverified-open"
	// event recording the verification error is appended and signed. Verify
	// afterwards tolerates entry problems before that event and lists them
	// in Report.Anomalies.
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
	rng    *compact.Range
	entEnd int64
	cpEnd  int64
	failed error
	wbuf   []byte
}

type request struct {
	body []byte // entry JSON with "index":0
	done chan result
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

// Open creates the log in cfg.Dir or opens the existing one. An existing
// log is verified as Verify does; unacknowledged bytes after the latest
// checkpoint are truncated (and an "audit.recover" event records it). A log
// that fails verification is refused with an error wrapping ErrTampered or
// ErrCorrupt, unless cfg.AllowUnverified.
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
	if cfg.MaxEventSize == 0 {
		cfg.MaxEventSize = DefaultMaxEventSize
	}
	if cfg.MaxEventSize < 0 || cfg.MaxEventSize > MaxEntryBytes-maxIndexDigits {
		return nil, fmt.Errorf("open audit log: MaxEventSize %d out of range", cfg.MaxEventSize)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l, unverified, dropped, err := openFiles(cfg)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", cfg.Dir, err)
	}
	go l.run()

	var ev *Event
	switch {
	case unverified != nil:
		data, _ := json.Marshal(unverified)
		ev = &Event{Type: typeUnverifiedOpen, Data: data}
	case dropped > 0:
		data, _ := json.Marshal(map[string]int64{"dropped_bytes": dropped})
		ev = &Event{Type: typeRecover, Data: data}
	}
	if ev != nil {
		if _, err := l.Append(context.Background(), *ev); err != nil {
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
	Quarantined []string `json:"quarantined,omitempty"`
}

func openFiles(cfg Config) (l *Log, unverified *unverifiedOpen, dropped int64, err error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, nil, 0, err
	}
	unlock, err := lockDir(filepath.Join(cfg.Dir, lockName))
	if err != nil {
		return nil, nil, 0, err
	}
	var ent, cps *os.File
	defer func() {
		if err != nil {
			for _, f := range []*os.File{ent, cps} {
				if f != nil {
					f.Close()
				}
			}
			unlock()
		}
	}()
	ent, err = os.OpenFile(filepath.Join(cfg.Dir, entriesName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, 0, err
	}
	cps, err = os.OpenFile(filepath.Join(cfg.Dir, checkpointsName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, 0, err
	}
	s, err := scanFiles(ent, cps, cfg.Verifier, cfg.Origin)
	if err != nil {
		return nil, nil, 0, err
	}
	l = &Log{
		cfg:     cfg,
		ent:     ent,
		unlock:  unlock,
		reqs:    make(chan *request, queueLen),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}

	switch _, verr := s.verdict(); {
	case s.fresh():
		if err := truncate(ent, 0); err != nil {
			return nil, nil, 0, err
		}
		if err := truncate(cps, 0); err != nil {
			return nil, nil, 0, err
		}
		l.cps = cps
		l.rng = newRange()
		l.offsets = []int64{0}
		if err := l.writeCheckpoint(); err != nil {
			return nil, nil, 0, err
		}
		if err := syncDir(cfg.Dir); err != nil {
			return nil, nil, 0, err
		}

	case verr == nil:
		c := s.latest()
		l.cps = cps
		l.rng = s.atLatest
		l.offsets = s.offsets[:c.size+1]
		l.tree = s.tree
		for k := range l.tree.levels {
			l.tree.levels[k] = l.tree.levels[k][:c.size>>k]
		}
		l.entEnd = l.offsets[c.size]
		l.cpEnd = s.cpEnd
		l.checkpoint = c.signed
		l.size.Store(c.size)
		dropped = (s.entSize - l.entEnd) + (s.cpSize - s.cpEnd)
		if err := truncate(ent, l.entEnd); err != nil {
			return nil, nil, 0, err
		}
		if err := truncate(cps, l.cpEnd); err != nil {
			return nil, nil, 0, err
		}

	case !cfg.AllowUnverified:
		return nil, nil, 0, verr

	default:
		// Accept what is there, keep the evidence, re-anchor.
		n := s.entries()
		unverified = &unverifiedOpen{Error: verr.Error(), Entries: n}
		if c := s.latest(); c != nil {
			unverified.Checkpoint = string(c.signed)
		}
		stamp := strconv.FormatInt(cfg.Now().UnixNano(), 10)
		end := s.offsets[n]
		if s.entSize > end {
			name := entriesName + ".unverified-" + stamp
			if err := copyTail(ent, end, s.entSize, filepath.Join(cfg.Dir, name)); err != nil {
				return nil, nil, 0, err
			}
			unverified.Quarantined = append(unverified.Quarantined, name)
			if err := truncate(ent, end); err != nil {
				return nil, nil, 0, err
			}
		}
		name := checkpointsName + ".unverified-" + stamp
		if err := os.Rename(filepath.Join(cfg.Dir, checkpointsName), filepath.Join(cfg.Dir, name)); err != nil {
			return nil, nil, 0, err
		}
		unverified.Quarantined = append(unverified.Quarantined, name)
		cps.Close()
		cps, err = os.OpenFile(filepath.Join(cfg.Dir, checkpointsName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, 0, err
		}
		if err := syncDir(cfg.Dir); err != nil {
			return nil, nil, 0, err
		}
		l.cps = cps
		l.rng = s.all
		l.offsets = s.offsets
		l.tree = s.tree
		l.entEnd = end
		// Entries not yet covered by any checkpoint; the first batch's
		// checkpoint covers them with the unverified-open event.
		l.size.Store(n)
	}
	return l, unverified, dropped, nil
}

func truncate(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == size {
		return nil
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

func copyTail(f *os.File, from, to int64, path string) error {
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
	return out.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append adds e to the log and returns its index. It sets e.V to 1 if zero,
// e.Time to now (UTC) if zero, and e.Index. It returns only once the event
// and a signed checkpoint covering it are durable on disk.
//
// If ctx is done while Append waits, it returns ctx.Err(); the event may
// still be written and acknowledged in the log later. If writing fails, the
// error is returned to every append of the batch and to all later appends:
// the log fails closed until reopened. After Close, Append returns
// ErrClosed. An event whose encoding is larger than Config.MaxEventSize is
// refused with ErrTooLarge and does not affect the log.
func (l *Log) Append(ctx context.Context, e Event) (uint64, error) {
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
	r := &request{body: body, done: make(chan result, 1)}
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

// indexPrefix is how every encoded entry starts; the writer replaces the 0.
const indexPrefix = `{"v":1,"index":0,`

// encode validates e and returns its canonical JSON with index 0.
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
	e.Index = 0
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
	if _, err := decodeEntry(b); err != nil || !bytes.HasPrefix(b, []byte(indexPrefix)) {
		return nil, fmt.Errorf("append %s event: encoding does not round-trip", e.Type)
	}
	return b, nil
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
	if l.failed == nil {
		l.failed = l.write(batch)
	}
	if l.failed != nil {
		for _, r := range batch {
			r.done <- result{err: l.failed}
		}
		return
	}
	first := l.size.Load() - uint64(len(batch))
	for i, r := range batch {
		r.done <- result{index: first + uint64(i)}
	}
}

// write makes batch durable, then its checkpoint, then publishes both.
func (l *Log) write(batch []*request) error {
	base := uint64(len(l.offsets) - 1)
	buf := l.wbuf[:0]
	offs := make([]int64, 0, len(batch))
	end := l.entEnd
	var entry []byte
	leaves := make([][]byte, 0, len(batch))
	for i, r := range batch {
		entry = append(entry[:0], indexPrefix[:len(indexPrefix)-2]...)
		entry = strconv.AppendUint(entry, base+uint64(i), 10)
		entry = append(entry, r.body[len(indexPrefix)-2+1:]...)
		buf = appendFrame(buf, entry)
		leaf := hasher.HashLeaf(entry)
		leaves = append(leaves, leaf)
		if err := l.rng.Append(leaf, nil); err != nil {
			return fmt.Errorf("audit log failed closed: hash entry %d: %w", base+uint64(i), err)
		}
		end += 4 + int64(len(entry))
		offs = append(offs, end)
	}
	if len(buf) <= 1<<20 {
		l.wbuf = buf
	}
	if _, err := l.ent.WriteAt(buf, l.entEnd); err != nil {
		return fmt.Errorf("audit log failed closed: write entries %d..%d: %w", base, base+uint64(len(batch))-1, err)
	}
	if err := l.ent.Sync(); err != nil {
		return fmt.Errorf("audit log failed closed: sync entries %d..%d: %w", base, base+uint64(len(batch))-1, err)
	}
	l.entEnd = end
	l.mu.Lock()
	l.offsets = append(l.offsets, offs...)
	for _, leaf := range leaves {
		l.tree.append(leaf)
	}
	l.mu.Unlock()
	if err := l.writeCheckpoint(); err != nil {
		return fmt.Errorf("audit log failed closed: %w", err)
	}
	return nil
}

// writeCheckpoint signs the tree over l.offsets and appends it durably,
// then publishes the new size.
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
	l.mu.Lock()
	l.checkpoint = signed
	l.mu.Unlock()
	l.size.Store(size)
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
		l.closeErr = errors.Join(l.ent.Close(), l.cps.Close(), l.unlock())
		if l.closeErr != nil {
			l.closeErr = fmt.Errorf("close audit log: %w", l.closeErr)
		}
	})
	return l.closeErr
}
