package audit

import (
	"bytes"
	"context"
	"crypto/rand"
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

// Open creates the log in cfg.Dir or opens the existing one. An existing
// log is verified as VerifyLog does, against the remembered head and the
// anchors. A log that fails is refused with an error wrapping ErrTampered,
// ErrRollback or ErrCorrupt, unless cfg.AllowUnverified. Complete entries
// after the latest checkpoint, which no checkpoint ward made durable ever
// covered (a crash mid-batch), are moved to a file beside the log, never
// deleted, and an "audit.recover" event records where.
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
	l, ev, err := openFiles(cfg)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", cfg.Dir, err)
	}
	go l.run()
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
	defer func() {
		if err != nil {
			for _, f := range []*os.File{ent, cps} {
				if f != nil {
					f.Close()
				}
			}
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
	if err := s.readCheckpoints(cps, cst.Size(), cfg.Verifier, cfg.Origin); err != nil {
		return nil, nil, err
	}
	est, err := ent.Stat()
	if err != nil {
		return nil, nil, err
	}
	if err := s.readEntries(ent, est.Size()); err != nil {
		return nil, nil, err
	}
	l = &Log{
		cfg:     cfg,
		ent:     ent,
		unlock:  unlock,
		reqs:    make(chan *request, queueLen),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
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
	if hs.found && hs.cp != nil {
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
		l.cps = cps
		l.head = hd
		l.rng = newRange()
		l.chains = map[string]chain{}
		l.offsets = []int64{0}
		if err := l.writeCheckpoint(); err != nil {
			return nil, nil, err
		}
		if err := syncDir(cfg.Dir); err != nil {
			return nil, nil, err
		}

	case verr == nil:
		c := s.latest()
		l.cps = cps
		l.head = hd
		l.rng = s.atLatest
		l.chains = s.chainsAtLatest
		l.offsets = s.offsets[:c.size+1]
		l.tree = s.tree
		for k := range l.tree.levels {
			l.tree.levels[k] = l.tree.levels[k][:c.size>>k]
		}
		l.entEnd = l.offsets[c.size]
		l.cpEnd = s.cpEnd
		l.checkpoint = c.signed
		l.size.Store(c.size)
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
		// The head may lag the checkpoints file after a crash between the
		// two; it never leads it.
		if hd == nil || hs.cp.size < c.size {
			if err := l.rememberHead(c.signed); err != nil {
				return nil, nil, err
			}
		}

	case !cfg.AllowUnverified:
		return nil, nil, verr

	default:
		// Accept what is there, keep the evidence, re-anchor.
		n := s.entries()
		uo := &unverifiedOpen{Error: verr.Error(), Entries: n}
		if c := s.latest(); c != nil {
			uo.Checkpoint = string(c.signed)
		}
		if hs.cp != nil {
			uo.Remembered = string(hs.cp.signed)
		}
		end := s.offsets[n]
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
			if hs.cp == nil {
				// Unusable: the first checkpoint replaces the file.
				hd.close()
				hd = nil
			}
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
		l.rng = s.all
		l.chains = s.chains
		l.offsets = s.offsets
		l.tree = s.tree
		l.entEnd = end
		// Entries not yet covered by any checkpoint; the first batch's
		// checkpoint covers them with the unverified-open event.
		l.size.Store(n)
		data, _ := json.Marshal(uo)
		ev = &Event{Type: typeUnverifiedOpen, Actor: "ward", Data: data}
		l.notice = fmt.Sprintf("the log was opened although it failed verification (%v); the evidence is kept in %s", verr, strings.Join(uo.Quarantined, ", "))
	}
	return l, ev, nil
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
