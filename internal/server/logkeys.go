package server

// Rotation of the audit log's checkpoint key.
//
// The log's key is each node's own (DATA/keys/audit.key). Rotating it
// never stops the node:
//
//  1. RotateLogKey makes a new key (DATA/keys/audit.next.key) and the
//     log signs every checkpoint from then on with both, the old key's
//     signature first (audit.Log.Rotate): the overlap. Verifiers that
//     trust either key accept those checkpoints; a peer that pinned the
//     old key learns the new one from them (cosign.go), and the head in
//     the store names the new key.
//  2. The overlap ends by itself (finishLogKey, on the cosigning cadence
//     or at the next RotateLogKey) once the new key is safe to sign
//     alone: on a node alone, once a checkpoint signed by both is the
//     log's; on a node of several, once every other node has cosigned
//     such a checkpoint (so each pinned the new key), or, when a peer
//     has not (it is offline), once the overlap has lasted
//     Config.LogKeyOverlap (DefaultLogKeyOverlap). On a node of several
//     the node first keeps the hand-over in the store for good
//     (store.PutAuditHandover: a checkpoint signed by both keys); a peer
//     that comes back later learns the new key from it, its pinned key
//     vouching for the new one, and checks that the head it cosigns
//     extends it (cosign.go). The old key then stops signing: its public
//     half goes to DATA/keys/audit.retired, one verifier key a line, and
//     keeps verifying what it signed; the new key becomes
//     DATA/keys/audit.key.
//
// The .key files are the truth, their .pub files derived copies written
// at start; each step replaces one file atomically, and a start after a
// crash between two steps reads a consistent set (a key both retired and
// current is current; a next key equal to the current one is done).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/store"
)

// maxRetiredKeys bounds DATA/keys/audit.retired.
const maxRetiredKeys = store.MaxHandovers

// DefaultLogKeyOverlap is how long, at most, a rotation's overlap waits
// for every other node to cosign a checkpoint signed by both keys before
// it ends anyway (Config.LogKeyOverlap): a peer offline that long learns
// the new key from the hand-over the node keeps in the store.
const DefaultLogKeyOverlap = time.Hour

// auditKeys are the audit log's keys as DATA/keys holds them.
type auditKeys struct {
	current, next   string    // note signer keys; next is "" outside an overlap
	curPub, nextPub string    // their verifier keys
	retired         []string  // verifier keys that signed before, newest first
	since           time.Time // when the overlap began (the next key's file was written)
}

// signers are the keys the log signs with: the current one, then the
// next during an overlap.
func (k auditKeys) signers() ([]note.Signer, error) {
	var out []note.Signer
	for _, s := range []string{k.current, k.next} {
		if s == "" {
			continue
		}
		signer, err := note.NewSigner(s)
		if err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		out = append(out, signer)
	}
	return out, nil
}

// verifier verifies every checkpoint the log's keys ever signed: the
// current key first.
func (k auditKeys) verifier() (note.Verifier, error) {
	var vs []note.Verifier
	for _, p := range append([]string{k.curPub, k.nextPub}, k.retired...) {
		if p == "" {
			continue
		}
		v, err := audit.ParseVerifierKey(p)
		if err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		vs = append(vs, v)
	}
	return audit.Keyring(vs...)
}

// newest is the verifier key of the newest key that signs: the one the
// node's head names.
func (k auditKeys) newest() string {
	if k.nextPub != "" {
		return k.nextPub
	}
	return k.curPub
}

// all are every verifier key of the log.
func (k auditKeys) all() []string {
	out := []string{k.curPub}
	if k.nextPub != "" {
		out = append(out, k.nextPub)
	}
	return append(out, k.retired...)
}

// loadLogKeys reads (creating the first key if there is none) the log's
// keys in dir, for a log of origin name.
func loadLogKeys(dir, name string) (auditKeys, error) {
	var k auditKeys
	cur, _, err := noteKeys(dir, "audit", name)
	if err != nil {
		return k, fmt.Errorf("audit key: %w", err)
	}
	if k.curPub, err = vkeyOf(cur); err != nil {
		return k, fmt.Errorf("audit key %s: %w", filepath.Join(dir, "audit.key"), err)
	}
	k.current = cur
	next, err := os.ReadFile(filepath.Join(dir, "audit.next.key"))
	if err == nil {
		fi, serr := os.Stat(filepath.Join(dir, "audit.next.key"))
		if serr != nil {
			return k, fmt.Errorf("audit key: %w", serr)
		}
		k.since = fi.ModTime()
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return k, fmt.Errorf("audit key: %w", err)
	default:
		k.next = strings.TrimSpace(string(next))
		if k.nextPub, err = vkeyOf(k.next); err != nil {
			return k, fmt.Errorf("audit key %s: %w", filepath.Join(dir, "audit.next.key"), err)
		}
		if k.nextPub == k.curPub {
			// A retirement that crashed after making the next key current.
			k.next, k.nextPub = "", ""
			if err := os.Remove(filepath.Join(dir, "audit.next.key")); err != nil {
				return k, fmt.Errorf("audit key: %w", err)
			}
		}
	}
	retired, err := readRetired(dir)
	if err != nil {
		return k, err
	}
	for _, r := range retired {
		if r != k.curPub && r != k.nextPub && !slices.Contains(k.retired, r) {
			k.retired = append(k.retired, r)
		}
	}
	for _, r := range k.all() {
		if v, err := audit.ParseVerifierKey(r); err != nil || v.Name() != name {
			return k, fmt.Errorf("audit key %s is not a key of the log %s", keyName(r), name)
		}
	}
	// The public halves, derived: written again if they differ.
	for _, f := range []struct{ path, key string }{{"audit.pub", k.curPub}, {"audit.next.pub", k.nextPub}} {
		path := filepath.Join(dir, f.path)
		if f.key == "" {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return k, err
			}
			continue
		}
		if b, err := os.ReadFile(path); err != nil || strings.TrimSpace(string(b)) != f.key {
			if err := atomicfile.Write(path, []byte(f.key+"\n"), 0o644); err != nil {
				return k, fmt.Errorf("audit key: %w", err)
			}
		}
	}
	return k, nil
}

func readRetired(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "audit.retired"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("retired audit keys: %w", err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > maxRetiredKeys {
		return nil, fmt.Errorf("retired audit keys: more than %d", maxRetiredKeys)
	}
	return out, sc.Err()
}

// vkeyOf derives the verifier key of an Ed25519 note signer key
// ("PRIVATE+KEY+name+hash+base64(0x01 || seed)").
func vkeyOf(skey string) (string, error) {
	f := strings.SplitN(skey, "+", 5) // base64 may hold '+'
	if len(f) != 5 || f[0] != "PRIVATE" || f[1] != "KEY" {
		return "", errors.New("not a note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey := f[2] + "+" + f[3] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, pub...))
	v, err := audit.ParseVerifierKey(vkey)
	if err != nil {
		return "", err
	}
	s, err := note.NewSigner(skey)
	if err != nil || s.KeyHash() != v.KeyHash() {
		return "", errors.New("the key's hash does not match the key")
	}
	return vkey, nil
}

// LogKeyStatus says where a rotation of the audit log's key stands.
type LogKeyStatus struct {
	// Key is the key that signs (with Next during an overlap).
	Key  string `json:"key"`
	Next string `json:"next,omitempty"`
	// Retired are the keys that signed before, newest first: they still
	// verify what they signed.
	Retired []string `json:"retired,omitempty"`
	// Waiting, during an overlap, says what its end waits for.
	Waiting string `json:"waiting,omitempty"`
}

func (k auditKeys) status(waiting string) LogKeyStatus {
	return LogKeyStatus{Key: k.curPub, Next: k.nextPub, Retired: k.retired, Waiting: waiting}
}

// RotateLogKey rotates the audit log's checkpoint key without stopping
// the node: it starts an overlap with a new key (both sign from now on),
// or, during one, ends it if that is safe (else says what it waits for).
// by is who asked, for the audit event.
func (n *Node) RotateLogKey(ctx context.Context, by string) (LogKeyStatus, error) {
	n.logKeysMu.Lock()
	defer n.logKeysMu.Unlock()
	dir := filepath.Join(n.cfg.Data, "keys")
	k, err := loadLogKeys(dir, n.auditName())
	if err != nil {
		return LogKeyStatus{}, err
	}
	if k.next != "" {
		return n.finishLogKey(ctx, k, by)
	}
	if len(k.retired) >= maxRetiredKeys {
		return LogKeyStatus{}, fmt.Errorf("the audit log's key was rotated %d times: no more", maxRetiredKeys)
	}
	skey, vkey, err := audit.NewNoteKey(n.auditName())
	if err != nil {
		return LogKeyStatus{}, err
	}
	if err := atomicfile.Write(filepath.Join(dir, "audit.next.key"), []byte(skey+"\n"), 0o600); err != nil {
		return LogKeyStatus{}, fmt.Errorf("rotate the audit key: %w", err)
	}
	k.next, k.nextPub, k.since = skey, vkey, time.Now()
	if err := atomicfile.Write(filepath.Join(dir, "audit.next.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return LogKeyStatus{}, fmt.Errorf("rotate the audit key: %w", err)
	}
	if err := n.installLogKeys(k); err != nil {
		return LogKeyStatus{}, err
	}
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "keys.rotate", Actor: by, Data: jsonData(map[string]any{
		"kind": "log", "phase": "overlap", "key": keyName(k.curPub), "next": keyName(vkey), "node": n.nodeID})}); err != nil {
		return LogKeyStatus{}, fmt.Errorf("the audit key's rotation started (%s signs with %s) but could not be recorded: %w", keyName(vkey), keyName(k.curPub), err)
	}
	n.cfg.Logger.Info("audit log: key rotation started: checkpoints carry both keys' signatures until the old key retires", "key", keyName(k.curPub), "next", keyName(vkey))
	return k.status(fmt.Sprintf("a checkpoint signed by both keys, cosigned by every other node (at most until %s)", k.since.Add(n.logKeyOverlap()).UTC().Format(time.RFC3339))), nil
}

// logKeyOverlap is the longest a rotation's overlap waits for the peers.
func (n *Node) logKeyOverlap() time.Duration {
	if n.cfg.LogKeyOverlap > 0 {
		return n.cfg.LogKeyOverlap
	}
	return DefaultLogKeyOverlap
}

// installLogKeys puts k in force in the open log.
func (n *Node) installLogKeys(k auditKeys) error {
	signers, err := k.signers()
	if err != nil {
		return err
	}
	v, err := k.verifier()
	if err != nil {
		return err
	}
	if err := n.Audit.Rotate(v, signers...); err != nil {
		return err
	}
	n.logKeys.Store(&k)
	return nil
}

// finishLogKey ends the overlap of k if the new key may sign alone.
// The caller holds logKeysMu.
func (n *Node) finishLogKey(ctx context.Context, k auditKeys, by string) (LogKeyStatus, error) {
	waiting, absent, err := n.overlapWaits(ctx, k)
	if err != nil || waiting != "" {
		return k.status(waiting), err
	}
	// The journal's records under the old key (from before the overlap)
	// replay only with it: the head must cover them before it goes.
	cp, err := n.Audit.Sync(ctx)
	if err != nil {
		return k.status("the log's head to cover what was appended"), err
	}
	var handover uint64
	if n.nodeID != "" {
		// The hand-over is kept before the old key goes: without it, a
		// peer that did not cosign during the overlap could never learn
		// the new key.
		if handover, err = n.keepHandover(ctx, k, cp); err != nil {
			return k.status("the hand-over kept in the store"), err
		}
	}
	dir := filepath.Join(n.cfg.Data, "keys")
	retired := append([]string{k.curPub}, k.retired...)
	if err := atomicfile.Write(filepath.Join(dir, "audit.retired"), []byte(strings.Join(retired, "\n")+"\n"), 0o644); err != nil {
		return LogKeyStatus{}, fmt.Errorf("retire the audit key: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "audit.key"), []byte(k.next+"\n"), 0o600); err != nil {
		return LogKeyStatus{}, fmt.Errorf("retire the audit key: %w", err)
	}
	old := k.curPub
	nk, err := loadLogKeys(dir, n.auditName()) // removes the next key's files
	if err != nil {
		return LogKeyStatus{}, err
	}
	if err := n.installLogKeys(nk); err != nil {
		return LogKeyStatus{}, err
	}
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "keys.rotate", Actor: by, Data: jsonData(map[string]any{
		"kind": "log", "phase": "retired", "key": keyName(nk.curPub), "retired": keyName(old), "node": n.nodeID,
		"handover_size": handover, "not_cosigned_by": absent})}); err != nil {
		return LogKeyStatus{}, fmt.Errorf("the old audit key retired but that could not be recorded: %w", err)
	}
	n.cfg.Logger.Info("audit log: the old key retired; it verifies what it signed and signs no more", "key", keyName(nk.curPub), "retired", keyName(old))
	if len(absent) > 0 {
		n.cfg.Logger.Warn("audit log: the key rotation's overlap ended before these nodes cosigned a checkpoint signed by both keys; they learn the new key from the hand-over kept in the store when they come back",
			"nodes", absent, "overlap", n.logKeyOverlap())
	}
	return nk.status(""), nil
}

// keepHandover keeps in the store the hand-over from k's current key to
// its next one: cp, a checkpoint of the log signed by both. It returns
// cp's size.
func (n *Node) keepHandover(ctx context.Context, k auditKeys, cp []byte) (uint64, error) {
	ov, err := audit.ParseVerifierKey(k.curPub)
	if err != nil {
		return 0, err
	}
	nv, err := audit.ParseVerifierKey(k.nextPub)
	if err != nil {
		return 0, err
	}
	if !signedByBoth(cp, ov, nv) {
		return 0, errors.New("the log's newest checkpoint is not signed by both keys")
	}
	body, err := parseCheckpoint(cp)
	if err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	err = n.Store.PutAuditHandover(ctx, store.AuditHandover{Node: n.nodeID, Old: k.curPub, New: k.nextPub, Size: body.size, Checkpoint: string(cp)})
	return body.size, err
}

// signedByBoth says whether the note cp carries valid signatures of both
// a and b.
func signedByBoth(cp []byte, a, b note.Verifier) bool {
	no, err := note.Open(cp, note.VerifierList(a, b))
	if err != nil {
		return false
	}
	byA, byB := false, false
	for _, s := range no.Sigs {
		byA = byA || s.Name == a.Name() && s.Hash == a.KeyHash()
		byB = byB || s.Name == b.Name() && s.Hash == b.KeyHash()
	}
	return byA && byB
}

// overlapWaits says what the end of k's overlap still waits for, or ""
// and the other nodes that have not cosigned a checkpoint signed by the
// new key (the overlap lasted its bound: they will learn the new key
// from the hand-over).
func (n *Node) overlapWaits(ctx context.Context, k auditKeys) (string, []string, error) {
	nv, err := audit.ParseVerifierKey(k.nextPub)
	if err != nil {
		return "", nil, err
	}
	signedByNext := func(cp []byte) bool {
		no, err := note.Open(cp, note.VerifierList(nv))
		return err == nil && len(no.Sigs) > 0
	}
	if !signedByNext(n.Audit.Checkpoint()) {
		return "the log's first checkpoint signed by the new key (its next append)", nil, nil
	}
	if n.nodeID == "" {
		return "", nil, nil
	}
	heads, err := n.Store.ListAuditHeads(ctx)
	if err != nil {
		return "", nil, err
	}
	cos, err := n.Store.ListAuditCosignatures(ctx, n.nodeID)
	if err != nil {
		return "", nil, err
	}
	var missing []string
	for _, h := range heads {
		if h.Node == n.nodeID {
			continue
		}
		i := slices.IndexFunc(cos, func(c store.AuditCosignature) bool { return c.Witness == h.Node })
		if i < 0 || !signedByNext([]byte(cos[i].Checkpoint)) {
			missing = append(missing, h.Node)
		}
	}
	if len(missing) > 0 {
		until := k.since.Add(n.logKeyOverlap())
		if time.Now().Before(until) {
			return fmt.Sprintf("a cosignature of a checkpoint signed by the new key from %s (at most until %s; then the overlap ends, and they learn the new key from the hand-over kept in the store)",
				strings.Join(missing, ", "), until.UTC().Format(time.RFC3339)), nil, nil
		}
	}
	return "", missing, nil
}

// finishLogKeys ends an overlap that may end, on the cosigning cadence.
func (n *Node) finishLogKeys(ctx context.Context) error {
	if k := n.logKeys.Load(); k == nil || k.next == "" {
		return nil
	}
	_, err := n.FinishLogKeyRotation(ctx)
	return err
}

// FinishLogKeyRotation ends the overlap of a rotation of the log's key
// if it may end (the node does so by itself every cosignPoll), and says
// where the rotation stands; outside an overlap it changes nothing.
func (n *Node) FinishLogKeyRotation(ctx context.Context) (LogKeyStatus, error) {
	n.logKeysMu.Lock()
	defer n.logKeysMu.Unlock()
	k := n.logKeys.Load()
	if k == nil {
		return LogKeyStatus{}, errors.New("the audit log's keys are not loaded: the node is not open")
	}
	if k.next == "" {
		return k.status(""), nil
	}
	return n.finishLogKey(ctx, *k, "ward")
}

// watchLogKeys ends a rotation's overlap once it may end, until ctx ends.
func (n *Node) watchLogKeys(ctx context.Context) {
	every(ctx, cosignPoll, func() {
		if err := n.finishLogKeys(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logger.Warn("audit log: ending the key rotation's overlap", "err", err)
		}
	})
}
