package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/strictjson"
)

// TlogProofHeader starts a C2SP tlog-proof (https://c2sp.org/tlog-proof).
const TlogProofHeader = "c2sp.org/tlog-proof@v1"

// BundleFormat names ward's forensic bundle format.
const BundleFormat = "ward-audit-bundle/v2"

// maxBundle bounds a bundle accepted for verification.
const maxBundle = 64 << 20

// maxProofHashes bounds a tlog-proof's hashes: an RFC 6962 audit path in a
// tree of at most 2^64 leaves has at most 64.
const maxProofHashes = 64

// ErrIncomplete means a bundle does not prove that it holds every event of
// its sessions: events are missing from it (the error names them), or a
// session is not sealed under its checkpoint.
var ErrIncomplete = errors.New("bundle incomplete")

// Bundle is a forensic export: every event of some sessions, each with a
// C2SP tlog-proof of its inclusion under one signed checkpoint, and the
// public key that verifies the checkpoint. The events of a session carry
// their chain (Event.Seq, Event.Prev) and, once the session is sealed, end
// with its seal, so a bundle proves that it holds all of them. It is checked
// offline, with no access to ward, by [VerifyBundle] or by anyone with an
// RFC 6962 and a signed-note implementation.
type Bundle struct {
	Format     string `json:"format"`
	Origin     string `json:"origin"`
	LogKey     string `json:"log_key"`     // note verifier key of the log (pin it; do not trust it from the bundle alone)
	ReceiptKey string `json:"receipt_key"` // PEM public key that verifies receipts, if any
	Checkpoint string `json:"checkpoint"`
	// Sessions lists the sessions whose events the bundle holds, every one
	// under the checkpoint; the session it was exported for comes first.
	Sessions []string      `json:"sessions"`
	Events   []BundleEvent `json:"events"` // in ascending index order
}

// BundleEvent is one event and its proof.
type BundleEvent struct {
	Index uint64 `json:"index"`
	// Entry is the event's bytes exactly as hashed into the log (base64 in
	// JSON, so that no re-encoding of the bundle can change them).
	Entry []byte `json:"entry"`
	Proof string `json:"proof"` // C2SP tlog-proof text
}

// TlogProof is a parsed C2SP tlog-proof.
type TlogProof struct {
	Extra      []byte // optional opaque data; nil when absent
	Index      uint64
	Hashes     [][]byte
	Checkpoint string
}

// String formats p in its one encoding.
func (p *TlogProof) String() string {
	var b strings.Builder
	b.WriteString(TlogProofHeader + "\n")
	if p.Extra != nil {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Extra) + "\n")
	}
	fmt.Fprintf(&b, "index %d\n", p.Index)
	for _, h := range p.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.WriteString(p.Checkpoint)
	return b.String()
}

// FormatTlogProof writes a C2SP tlog-proof without extra data.
func FormatTlogProof(index uint64, hashes [][]byte, checkpoint string) string {
	return (&TlogProof{Index: index, Hashes: hashes, Checkpoint: checkpoint}).String()
}

// ParseTlogProof reads a C2SP tlog-proof in its one encoding: the header, an
// optional "extra" line of non-empty canonical base64, the index without
// leading zeroes, at most 64 hashes of 32 bytes in canonical base64, an
// empty line, a non-empty checkpoint. Whatever it accepts, String gives
// back byte for byte.
func ParseTlogProof(text string) (*TlogProof, error) {
	rest, ok := strings.CutPrefix(text, TlogProofHeader+"\n")
	if !ok {
		return nil, errors.New("tlog-proof: missing header line")
	}
	p := &TlogProof{}
	if line, after, ok := strings.Cut(rest, "\n"); ok && strings.HasPrefix(line, "extra ") {
		extra, err := decodeBase64(strings.TrimPrefix(line, "extra "))
		if err != nil || len(extra) == 0 {
			return nil, errors.New("tlog-proof: extra is not non-empty canonical base64")
		}
		p.Extra, rest = extra, after
	}
	line, rest, ok := strings.Cut(rest, "\n")
	num, isIndex := strings.CutPrefix(line, "index ")
	if !ok || !isIndex {
		return nil, errors.New("tlog-proof: missing index line")
	}
	index, err := parseDecimal(num)
	if err != nil {
		return nil, errors.New("tlog-proof: malformed index")
	}
	p.Index = index
	for {
		line, after, ok := strings.Cut(rest, "\n")
		if !ok {
			return nil, errors.New("tlog-proof: no empty line before the checkpoint")
		}
		rest = after
		if line == "" {
			break
		}
		h, err := decodeBase64(line)
		if err != nil || len(h) != hasher.Size() {
			return nil, errors.New("tlog-proof: a proof line is not a SHA-256 hash in canonical base64")
		}
		if len(p.Hashes) == maxProofHashes {
			return nil, fmt.Errorf("tlog-proof: more than %d proof hashes", maxProofHashes)
		}
		p.Hashes = append(p.Hashes, h)
	}
	if rest == "" {
		return nil, errors.New("tlog-proof: no checkpoint")
	}
	p.Checkpoint = rest
	return p, nil
}

// ExportConfig configures Export.
type ExportConfig struct {
	Verifier   note.Verifier
	Origin     string
	LogKey     string // the log's note verifier key, as in DATA/keys/audit.pub
	ReceiptKey string // PEM public key of receipts, if any
	// At is the checkpoint to prove under, possibly cosigned by witnesses;
	// nil means the log's latest. It must be signed by Verifier and be a
	// checkpoint of the log's first entries.
	At []byte
	// Sessions are the sessions to bundle, the one the bundle is for first.
	// Those with no event under the checkpoint are left out.
	Sessions []string
}

// Export verifies the log in dir and bundles every event, under the
// checkpoint, of the sessions cfg names.
func Export(dir string, cfg ExportConfig) (*Bundle, error) {
	return exportSessions(dir, cfg, func([]Event) ([]string, error) { return cfg.Sessions, nil })
}

// ExportBundle verifies the log in dir and bundles every event, under the
// checkpoint at (nil: the latest), of the sessions of the events match
// selects. A bundle holds whole sessions: a matched event without a session
// is an error.
func ExportBundle(dir string, v note.Verifier, origin, logKey, receiptKey string, at []byte, match func(Event) bool) (*Bundle, error) {
	cfg := ExportConfig{Verifier: v, Origin: origin, LogKey: logKey, ReceiptKey: receiptKey, At: at}
	return exportSessions(dir, cfg, func(events []Event) ([]string, error) {
		var sessions []string
		seen := map[string]bool{}
		for _, e := range events {
			if !match(e) || seen[e.Session] {
				continue
			}
			if e.Session == "" {
				return nil, fmt.Errorf("export: event %d has no session; a bundle holds whole sessions", e.Index)
			}
			seen[e.Session] = true
			sessions = append(sessions, e.Session)
		}
		return sessions, nil
	})
}

func exportSessions(dir string, cfg ExportConfig, pick func([]Event) ([]string, error)) (*Bundle, error) {
	rep, err := Verify(dir, cfg.Verifier, cfg.Origin)
	if err != nil {
		return nil, err
	}
	size, cp := rep.Size, rep.Checkpoint
	entries, leaves, err := readLeaves(dir, rep.Size)
	if err != nil {
		return nil, err
	}
	if cfg.At != nil {
		atSize, atRoot, err := openCosigned(cfg.At, cfg.Verifier, cfg.Origin)
		if err != nil {
			return nil, fmt.Errorf("export at checkpoint: %w", err)
		}
		if atSize > rep.Size {
			return nil, fmt.Errorf("export at checkpoint: its tree size %d is beyond the log's %d", atSize, rep.Size)
		}
		r := newRange()
		for _, l := range leaves[:atSize] {
			if err := r.Append(l, nil); err != nil {
				return nil, err
			}
		}
		if !bytes.Equal(rootOf(r), atRoot) {
			return nil, fmt.Errorf("export at checkpoint: its root is not the root of the log's first %d entries", atSize)
		}
		size, cp, entries = atSize, cfg.At, entries[:atSize]
	}
	events := make([]Event, len(entries))
	for i, raw := range entries {
		if events[i], err = decodeEntry(raw); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	sessions, err := pick(events)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, s := range sessions {
		if s == "" {
			return nil, errors.New("export: empty session id")
		}
		want[s] = true
	}
	b := &Bundle{Format: BundleFormat, Origin: cfg.Origin, LogKey: cfg.LogKey, ReceiptKey: cfg.ReceiptKey, Checkpoint: string(cp), Events: []BundleEvent{}}
	has := map[string]bool{}
	for i, e := range events {
		if !want[e.Session] {
			continue
		}
		has[e.Session] = true
		hashes, err := inclusion(leaves, uint64(i), size)
		if err != nil {
			return nil, err
		}
		b.Events = append(b.Events, BundleEvent{Index: uint64(i), Entry: entries[i], Proof: FormatTlogProof(uint64(i), hashes, string(cp))})
	}
	for _, s := range sessions {
		if has[s] && !slices.Contains(b.Sessions, s) {
			b.Sessions = append(b.Sessions, s)
		}
	}
	if len(b.Sessions) == 0 {
		return nil, fmt.Errorf("export: no event of %s under the checkpoint of size %d", strings.Join(sessions, ", "), size)
	}
	return b, nil
}

// BundleCheck says what a bundle is verified against.
type BundleCheck struct {
	// Verifier is the log's key, pinned by the caller: the bundle's own
	// log_key is only a convenience, and must be this key if present.
	Verifier note.Verifier
	// Session, if set, must be the session the bundle was exported for
	// (the first it lists).
	Session string
	// AllowUnsealed accepts a session whose chain does not end in a seal
	// (it was open at the checkpoint): its events are then proven with none
	// missing between its first and its last in the bundle, but later ones
	// are not proven absent. Events missing in between are refused anyway.
	AllowUnsealed bool
}

// BundleReport is what a verified bundle proves.
type BundleReport struct {
	Origin     string
	TreeSize   uint64
	Checkpoint []byte // as in the bundle, cosignatures included
	Sessions   []BundleSession
	Events     []Event
}

// BundleSession is what a bundle proves of one session.
type BundleSession struct {
	ID     string
	Events int    // how many of its events the bundle holds
	Last   uint64 // log index of its last event in the bundle
	// Sealed says the session's last event in the bundle is its seal: the
	// bundle holds every event the session had when the checkpoint was
	// signed.
	Sealed bool
}

// wireBundle is a bundle as read: the entry's base64 is checked strictly.
type wireBundle struct {
	Format     string   `json:"format"`
	Origin     string   `json:"origin"`
	LogKey     string   `json:"log_key"`
	ReceiptKey string   `json:"receipt_key"`
	Checkpoint string   `json:"checkpoint"`
	Sessions   []string `json:"sessions"`
	Events     []struct {
		Index uint64 `json:"index"`
		Entry string `json:"entry"`
		Proof string `json:"proof"`
	} `json:"events"`
}

// VerifyBundle checks a bundle offline against the pinned log key v, as
// VerifyBundleWith does with nothing else set.
func VerifyBundle(raw []byte, v note.Verifier) (*BundleReport, error) {
	return VerifyBundleWith(raw, BundleCheck{Verifier: v})
}

// VerifyBundleWith checks a bundle offline: strictly parsed (one JSON
// reading, every value in its one encoding), the checkpoint signed by the
// pinned key, the bundle's own log_key (if any) that same key, and every
// event in ascending index order, once, with a tlog-proof that names its
// index, commits to the same checkpoint and proves its inclusion. Then,
// for every session the bundle lists, that its events form an unbroken
// chain from its first event (errors name each missing event by its log
// index where the chain tells it) and, unless AllowUnsealed, end in its
// seal. Missing events and unsealed sessions give errors wrapping
// ErrIncomplete.
func VerifyBundleWith(raw []byte, c BundleCheck) (*BundleReport, error) {
	if c.Verifier == nil {
		return nil, errors.New("bundle: no pinned log key")
	}
	if len(raw) > maxBundle {
		return nil, fmt.Errorf("bundle: larger than %d bytes", maxBundle)
	}
	var b wireBundle
	if err := strictjson.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("bundle: %v", err)
	}
	if b.Format != BundleFormat {
		return nil, fmt.Errorf("bundle: format %q, want %q (an older bundle cannot prove that it holds every event: export it again)", b.Format, BundleFormat)
	}
	if b.Origin != c.Verifier.Name() {
		return nil, fmt.Errorf("bundle: of the log %q, but the pinned key is %q's", b.Origin, c.Verifier.Name())
	}
	if b.LogKey != "" {
		bv, err := ParseVerifierKey(b.LogKey)
		if err != nil {
			return nil, fmt.Errorf("bundle log_key: %w", err)
		}
		if bv.Name() != c.Verifier.Name() || bv.KeyHash() != c.Verifier.KeyHash() {
			return nil, fmt.Errorf("bundle: it names the log key %s+%08x, not the pinned %s+%08x", bv.Name(), bv.KeyHash(), c.Verifier.Name(), c.Verifier.KeyHash())
		}
		if _, _, err := openCosigned([]byte(b.Checkpoint), bv, b.Origin); err != nil {
			return nil, fmt.Errorf("bundle: its log_key is not the pinned key: %w", err)
		}
	}
	size, root, err := openCosigned([]byte(b.Checkpoint), c.Verifier, b.Origin)
	if err != nil {
		return nil, fmt.Errorf("bundle checkpoint: %w", err)
	}
	if len(b.Sessions) == 0 {
		return nil, errors.New("bundle: lists no session")
	}
	listed := map[string]int{}
	for i, s := range b.Sessions {
		if _, dup := listed[s]; dup || s == "" {
			return nil, fmt.Errorf("bundle: session %q listed twice or empty", s)
		}
		listed[s] = i
	}
	if c.Session != "" && b.Sessions[0] != c.Session {
		return nil, fmt.Errorf("bundle: it is of session %q, not %q", b.Sessions[0], c.Session)
	}
	rep := &BundleReport{Origin: b.Origin, TreeSize: size, Checkpoint: []byte(b.Checkpoint)}
	bySession := make([][]Event, len(b.Sessions))
	for i, be := range b.Events {
		if i > 0 && be.Index <= b.Events[i-1].Index {
			if be.Index == b.Events[i-1].Index {
				return nil, fmt.Errorf("bundle: the event at log index %d appears twice", be.Index)
			}
			return nil, fmt.Errorf("bundle: events out of order (log index %d after %d)", be.Index, b.Events[i-1].Index)
		}
		entry, err := decodeBase64(be.Entry)
		if err != nil {
			return nil, fmt.Errorf("bundle event %d: entry is not canonical base64", be.Index)
		}
		p, err := ParseTlogProof(be.Proof)
		if err != nil {
			return nil, fmt.Errorf("bundle event %d: %w", be.Index, err)
		}
		if p.Index != be.Index || p.Checkpoint != b.Checkpoint || p.Extra != nil {
			return nil, fmt.Errorf("bundle event %d: its proof names index %d, another checkpoint or extra data", be.Index, p.Index)
		}
		if err := proof.VerifyInclusion(hasher, p.Index, size, hasher.HashLeaf(entry), p.Hashes, root); err != nil {
			return nil, fmt.Errorf("bundle event %d: not included in the checkpointed log: %w", be.Index, err)
		}
		e, err := decodeEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("bundle event %d: %w", be.Index, err)
		}
		if e.Index != be.Index {
			return nil, fmt.Errorf("bundle event %d: entry says index %d", be.Index, e.Index)
		}
		k, ok := listed[e.Session]
		if !ok {
			return nil, fmt.Errorf("bundle event %d: of session %q, which the bundle does not list", be.Index, e.Session)
		}
		bySession[k] = append(bySession[k], e)
		rep.Events = append(rep.Events, e)
	}
	var missing, unsealed []string
	for k, id := range b.Sessions {
		s, m, u := checkChain(id, bySession[k], size)
		rep.Sessions = append(rep.Sessions, s)
		missing = append(missing, m...)
		if u != "" {
			unsealed = append(unsealed, u)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrIncomplete, strings.Join(missing, "; "))
	}
	if len(unsealed) > 0 && !c.AllowUnsealed {
		return nil, fmt.Errorf("%w: %s", ErrIncomplete, strings.Join(unsealed, "; "))
	}
	return rep, nil
}

// checkChain follows a session's events (in index order, each proven in
// the log) along their chain. It returns what is missing from the bundle,
// and why the session is not proven complete if it is not sealed.
func checkChain(id string, events []Event, size uint64) (s BundleSession, missing []string, unsealed string) {
	s = BundleSession{ID: id, Events: len(events)}
	if len(events) == 0 {
		return s, []string{fmt.Sprintf("session %q is listed but none of its events is in the bundle", id)}, ""
	}
	prev := Event{}
	for i, e := range events {
		if e.V < schemaVersion {
			return s, nil, fmt.Sprintf("session %q: event %d was logged before sessions were chained; the bundle cannot prove that none is missing", id, e.Index)
		}
		switch {
		case i == 0 && e.Seq > 1:
			missing = append(missing, gap(id, 1, e.Seq-1, *e.Prev, fmt.Sprintf("before its event at log index %d", e.Index)))
		case i > 0 && e.Seq > prev.Seq+1:
			missing = append(missing, gap(id, prev.Seq+1, e.Seq-1, *e.Prev, fmt.Sprintf("between log indices %d and %d", prev.Index, e.Index)))
		case i > 0 && (e.Seq <= prev.Seq || *e.Prev != prev.Index):
			missing = append(missing, fmt.Sprintf("session %q: the log's chain is broken at log index %d (seq %d after %d)", id, e.Index, e.Seq, prev.Seq))
		}
		prev = e
	}
	s.Last = prev.Index
	s.Sealed = prev.Type == typeSeal
	if !s.Sealed {
		unsealed = fmt.Sprintf("session %q is not sealed under the checkpoint of size %d: its last event in the bundle is its event %d (log index %d); it was still open then, or its later events were removed from the bundle (export it again once it has ended)", id, size, prev.Seq, prev.Index)
	}
	return s, missing, unsealed
}

// gap names the events a..b of a session that a bundle lacks; last is the
// log index of event b, named by the event after it.
func gap(id string, a, b, last uint64, where string) string {
	if a == b {
		return fmt.Sprintf("session %q: its event %d (log index %d) is missing %s", id, a, last, where)
	}
	return fmt.Sprintf("session %q: its events %d..%d are missing %s; the last of them is log index %d", id, a, b, where, last)
}
