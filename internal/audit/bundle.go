package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// TlogProofHeader starts a C2SP tlog-proof (https://c2sp.org/tlog-proof).
const TlogProofHeader = "c2sp.org/tlog-proof@v1"

// BundleFormat names ward's forensic bundle format.
const BundleFormat = "ward-audit-bundle/v1"

// maxBundle bounds a bundle accepted for verification.
const maxBundle = 64 << 20

// Bundle is a forensic export: the events of interest, each with a C2SP
// tlog-proof of its inclusion under one signed checkpoint, and the public
// key that verifies the checkpoint. It is checked offline, with no access
// to ward, by [VerifyBundle] or by anyone with an RFC 6962 and a signed-note
// implementation.
type Bundle struct {
	Format     string        `json:"format"`
	Origin     string        `json:"origin"`
	LogKey     string        `json:"log_key"`     // note verifier key of the log (pin it; do not trust it from the bundle alone)
	ReceiptKey string        `json:"receipt_key"` // PEM public key that verifies receipts, if any
	Checkpoint string        `json:"checkpoint"`
	Events     []BundleEvent `json:"events"`
}

// BundleEvent is one event and its proof.
type BundleEvent struct {
	Index uint64 `json:"index"`
	// Entry is the event's bytes exactly as hashed into the log (base64 in
	// JSON, so that no re-encoding of the bundle can change them).
	Entry []byte `json:"entry"`
	Proof string `json:"proof"` // C2SP tlog-proof text
}

// FormatTlogProof writes a C2SP tlog-proof.
func FormatTlogProof(index uint64, hashes [][]byte, checkpoint string) string {
	var b strings.Builder
	b.WriteString(TlogProofHeader + "\n")
	fmt.Fprintf(&b, "index %d\n", index)
	for _, h := range hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.WriteString(checkpoint)
	return b.String()
}

// ParseTlogProof reads a C2SP tlog-proof strictly: header, optional extra
// line, index without leading zeroes, 32-byte hashes, an empty line, the
// checkpoint.
func ParseTlogProof(text string) (index uint64, hashes [][]byte, checkpoint string, err error) {
	rest, ok := strings.CutPrefix(text, TlogProofHeader+"\n")
	if !ok {
		return 0, nil, "", errors.New("tlog-proof: missing header line")
	}
	if line, after, ok := strings.Cut(rest, "\n"); ok && strings.HasPrefix(line, "extra ") {
		if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "extra ")); err != nil {
			return 0, nil, "", errors.New("tlog-proof: extra is not base64")
		}
		rest = after
	}
	line, rest, ok := strings.Cut(rest, "\n")
	num, isIndex := strings.CutPrefix(line, "index ")
	if !ok || !isIndex || num == "" || (len(num) > 1 && num[0] == '0') {
		return 0, nil, "", errors.New("tlog-proof: missing or malformed index line")
	}
	index, err = strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, nil, "", fmt.Errorf("tlog-proof: index: %v", err)
	}
	for {
		line, after, ok := strings.Cut(rest, "\n")
		if !ok {
			return 0, nil, "", errors.New("tlog-proof: no empty line before the checkpoint")
		}
		rest = after
		if line == "" {
			break
		}
		h, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(h) != 32 {
			return 0, nil, "", errors.New("tlog-proof: a proof line is not a base64 SHA-256 hash")
		}
		if len(hashes) >= 64 {
			return 0, nil, "", errors.New("tlog-proof: more than 64 proof hashes")
		}
		hashes = append(hashes, h)
	}
	if rest == "" {
		return 0, nil, "", errors.New("tlog-proof: no checkpoint")
	}
	return index, hashes, rest, nil
}

// ExportBundle verifies the log in dir and bundles the events match
// selects, each with its inclusion proof against checkpoint at, or the
// latest checkpoint when at is nil. at may carry cosignatures (a witnessed
// checkpoint); it must be signed by v and commit to the log's first
// entries. Events after at's tree size are not in the bundle.
func ExportBundle(dir string, v note.Verifier, origin, logKey, receiptKey string, at []byte, match func(Event) bool) (*Bundle, error) {
	rep, err := Verify(dir, v, origin)
	if err != nil {
		return nil, err
	}
	size, cp := rep.Size, rep.Checkpoint
	entries, leaves, err := readLeaves(dir, rep.Size)
	if err != nil {
		return nil, err
	}
	if at != nil {
		atSize, atRoot, err := openCheckpoint(at, v, origin)
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
		size, cp, entries = atSize, at, entries[:atSize]
	}
	b := &Bundle{Format: BundleFormat, Origin: origin, LogKey: logKey, ReceiptKey: receiptKey, Checkpoint: string(cp), Events: []BundleEvent{}}
	for i, raw := range entries {
		e, err := decodeEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if !match(e) {
			continue
		}
		hashes, err := inclusion(leaves, uint64(i), size)
		if err != nil {
			return nil, err
		}
		b.Events = append(b.Events, BundleEvent{Index: uint64(i), Entry: raw, Proof: FormatTlogProof(uint64(i), hashes, string(cp))})
	}
	return b, nil
}

// BundleReport is what a verified bundle proves.
type BundleReport struct {
	TreeSize   uint64
	Checkpoint []byte // as in the bundle, cosignatures included
	Events     []Event
}

// VerifyBundle checks a bundle offline against the log key v (which the
// caller pins; the bundle's own log_key is only a convenience): the
// checkpoint's signature, and for every event that its tlog-proof names its
// index, commits to the same checkpoint, and proves its inclusion.
func VerifyBundle(raw []byte, v note.Verifier) (*BundleReport, error) {
	if len(raw) > maxBundle {
		return nil, fmt.Errorf("bundle: larger than %d bytes", maxBundle)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("bundle: %v", err)
	}
	if b.Format != BundleFormat {
		return nil, fmt.Errorf("bundle: format %q, want %q", b.Format, BundleFormat)
	}
	size, root, err := openCheckpoint([]byte(b.Checkpoint), v, b.Origin)
	if err != nil {
		return nil, fmt.Errorf("bundle checkpoint: %w", err)
	}
	rep := &BundleReport{TreeSize: size, Checkpoint: []byte(b.Checkpoint)}
	for i, be := range b.Events {
		index, hashes, cp, err := ParseTlogProof(be.Proof)
		if err != nil {
			return nil, fmt.Errorf("bundle event %d: %w", i, err)
		}
		if index != be.Index || cp != b.Checkpoint {
			return nil, fmt.Errorf("bundle event %d: its proof names index %d or another checkpoint", i, index)
		}
		if err := proof.VerifyInclusion(hasher, index, size, hasher.HashLeaf(be.Entry), hashes, root); err != nil {
			return nil, fmt.Errorf("bundle event %d (log index %d): not included in the checkpointed log: %w", i, index, err)
		}
		e, err := decodeEntry(be.Entry)
		if err != nil {
			return nil, fmt.Errorf("bundle event %d: %w", i, err)
		}
		if e.Index != index {
			return nil, fmt.Errorf("bundle event %d: entry says index %d, proof %d", i, e.Index, index)
		}
		rep.Events = append(rep.Events, e)
	}
	return rep, nil
}
