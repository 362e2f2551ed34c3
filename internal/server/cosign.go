package server

// Cosigning across nodes.
//
// Each node of several witnesses the audit logs of the others, with the
// witness package's [witness.Witness] (the C2SP tlog-witness rules: it
// cosigns a checkpoint only if it extends the one it cosigned before)
// and the store as the transport instead of HTTP:
//
//  1. A node publishes its head (auditheads.go) and, with it, the
//     consistency proofs from each size its witnesses last cosigned to
//     the head's size (store.PutAuditProofs): it reads those sizes from
//     the cosignatures the witnesses stored.
//  2. Every cosignPoll a node lists the heads; for each peer whose head
//     changed since it last looked (and for every peer every
//     cosignEvery) it takes the proof from the size it cosigned to the
//     head, has its witness check the peer's signature and the proof and
//     cosign (cosignature/v1, timestamped), and stores the checkpoint with
//     its cosignature line (store.PutAuditCosignature).
//  3. A head that is not an extension of what the node cosigned (smaller:
//     a rollback; another root: a fork), or not signed by the peer's
//     key, is refused: the node appends a "cosign.refused" event to its
//     own log and counts it in ward_cosign_refusals_total, once per head.
//
// The witness's state (DATA/witness/peers.json: per peer the latest
// cosigned checkpoint) is durable before a cosignature leaves it, so a
// restart never lets a node cosign two inconsistent checkpoints of one
// peer. The peers' log keys are pinned on first sight
// (DATA/witness/peer-keys.json); a head signed with another key is
// accepted only if the newest pinned key signed it too (a key rotation:
// its checkpoints carry both signatures), and the new key is then pinned.
// A peer that was offline during a rotation's whole overlap finds the
// head signed by the new key alone: it learns the key from the hand-over
// the node kept in the store (store.AuditHandover, a checkpoint signed by
// the old and the new key; only the newest key it pinned vouches, hand-
// over after hand-over), and cosigns only once the node's published
// consistency proof shows that the head extends that hand-over. The
// node publishes, with its head, proofs from its hand-overs' sizes as
// long as one of its witnesses last cosigned below one.
// The cosignature key is DATA/keys/cosign.key, its cosignature/v1
// verifier key DATA/keys/cosign.vkey (and in the store beside the head,
// for an operator writing down the system's trust anchors).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/strictjson"
	"github.com/ward-dev/ward/internal/witness"
)

const (
	// cosignPoll is how often a node looks whether a peer's head changed.
	cosignPoll = time.Second
	// cosignEvery is how often a node goes over every peer's head, changed
	// or not (a proof it lacked may have been published since).
	cosignEvery = auditHeadEvery
	// maxPeerKeys bounds the keys pinned for one peer (one per rotation).
	maxPeerKeys = 16
)

// cosigner witnesses the other nodes' logs through the store.
type cosigner struct {
	n          *Node
	skey, nkey string // the note signer key and its Ed25519 note verifier key
	vkey       string // the cosignature/v1 verifier key
	state      string // the witness's state file
	pinsPath   string
	refusals   *prometheus.CounterVec
	cosigned   *prometheus.CounterVec
	mu         sync.Mutex        // serialises passes
	seen       map[string]string // node → the head checkpoint last cosigned
	refused    map[string]string // node → the head checkpoint last refused (recorded once)
	published  string            // own proofs last published, as "size:sizes"
}

// openCosign sets up the node's cosigner, on a node of several.
func (n *Node) openCosign(cfg Config) error {
	if n.nodeID == "" {
		return nil
	}
	keys := filepath.Join(cfg.Data, "keys")
	skey, nkey, err := noteKeys(keys, "cosign", cfg.TrustDomain+"/cosign/"+n.nodeID)
	if err != nil {
		return fmt.Errorf("cosign key: %w", err)
	}
	dir := filepath.Join(cfg.Data, "witness")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cosign: %w", err)
	}
	c := &cosigner{n: n, skey: skey, nkey: nkey, state: filepath.Join(dir, "peers.json"), pinsPath: filepath.Join(dir, "peer-keys.json"),
		seen: map[string]string{}, refused: map[string]string{}}
	w, err := c.witness(nil)
	if err != nil {
		return err
	}
	c.vkey = w.VerifierKey()
	if err := atomicfile.Write(filepath.Join(keys, "cosign.vkey"), []byte(c.vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("cosign key: %w", err)
	}
	c.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ward_cosign_refusals_total", Help: "Heads of other nodes' audit logs this node refused to cosign (a rollback, a fork or a wrong signature), by node.",
	}, []string{"node"})
	c.cosigned = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ward_cosignatures_total", Help: "Heads of other nodes' audit logs this node cosigned, by node.",
	}, []string{"node"})
	if n.metrics != nil {
		n.metrics.Registry().MustRegister(c.refusals, c.cosigned)
	}
	n.cosign = c
	return nil
}

// CosignKey is the node's cosignature/v1 verifier key, "" on a node
// alone.
func (n *Node) CosignKey() string {
	if n.cosign == nil {
		return ""
	}
	return n.cosign.vkey
}

// witness returns the node's witness, following the peers' logs with
// the keys pinned for them.
func (c *cosigner) witness(pins map[string][]string) (*witness.Witness, error) {
	var logs []witness.Log
	for _, origin := range slices.Sorted(maps.Keys(pins)) {
		ks := pins[origin]
		logs = append(logs, witness.Log{Origin: origin, Key: ks[0], Keys: ks[1:]})
	}
	w, err := witness.New(witness.Config{Key: c.skey, VerifierKey: c.nkey, Logs: logs, State: c.state})
	if err != nil {
		return nil, fmt.Errorf("cosign: %w", err)
	}
	return w, nil
}

// run cosigns until ctx ends: at once when a peer's head changed (seen
// every cosignPoll), and every peer's every cosignEvery.
func (c *cosigner) run(ctx context.Context) {
	poll := time.NewTicker(cosignPoll)
	defer poll.Stop()
	full := time.NewTicker(cosignEvery)
	defer full.Stop()
	last := "" // the failure logged last: a standing refusal is logged once
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-full.C:
			all = true
		}
		err := c.pass(ctx, all)
		switch {
		case err == nil:
			last = ""
		case ctx.Err() == nil && err.Error() != last:
			last = err.Error()
			c.n.cfg.Logger.Warn("cosigning the other nodes' audit heads", "node", c.n.nodeID, "err", err)
		}
	}
}

// Cosign indexes the node's audit events, publishes its audit head and
// runs one cosigning pass over every other node's head at once: it
// publishes the proofs its own witnesses need, then cosigns what it can.
// It returns the refusals and failures of the pass, joined. The node does
// all of it by itself on its cadence; an operator's tool or a test calls
// it to not wait.
func (n *Node) Cosign(ctx context.Context) error {
	if n.cosign == nil {
		return nil
	}
	if err := n.IndexAudit(ctx); err != nil {
		return err
	}
	if err := n.publishAuditHead(ctx); err != nil {
		return err
	}
	return n.cosign.pass(ctx, true)
}

// pass is one cosigning pass; all goes over heads that did not change.
func (c *cosigner) pass(ctx context.Context, all bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if err := c.publishProofs(ctx); err != nil {
		errs = append(errs, err)
	}
	heads, err := c.n.Store.ListAuditHeads(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	pins, err := c.loadPins()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var todo []store.AuditHead
	changed := false
	for _, h := range heads {
		if h.Node == c.n.nodeID || (!all && (c.seen[h.Node] == h.Checkpoint || c.refused[h.Node] == h.Checkpoint)) {
			continue
		}
		ks, why := pinKey(pins[h.Origin], h)
		if why != "" && len(pins[h.Origin]) > 0 && !slices.Contains(pins[h.Origin], h.VKey) {
			// A key never seen, and no checkpoint signed by it and the
			// newest pinned one: a rotation this node missed?
			var wait error
			ks, why, wait = c.handedOver(ctx, pins[h.Origin], h)
			if wait != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", h.Node, wait))
				continue
			}
		}
		if why != "" {
			errs = append(errs, c.refuse(ctx, h, 0, why))
			continue
		}
		if !slices.Equal(ks, pins[h.Origin]) {
			pins[h.Origin], changed = ks, true
		}
		todo = append(todo, h)
	}
	if len(todo) == 0 {
		return errors.Join(errs...)
	}
	if changed {
		if err := c.savePins(pins); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	w, err := c.witness(pins)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, h := range todo {
		if err := c.cosignHead(ctx, w, h); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", h.Node, err))
		}
	}
	return errors.Join(errs...)
}

// cosignHead cosigns peer h's head if it extends what w cosigned of the
// peer before.
func (c *cosigner) cosignHead(ctx context.Context, w *witness.Witness, h store.AuditHead) error {
	cp := []byte(h.Checkpoint)
	old := w.Latest(h.Origin)
	if old > h.Size {
		return c.refuse(ctx, h, old, fmt.Sprintf("its log is at %d events, but this node cosigned it at %d: it was rolled back", h.Size, old))
	}
	var proof [][]byte
	if old > 0 && old < h.Size {
		size, proofs, err := c.n.Store.GetAuditProofs(ctx, h.Node)
		if err != nil {
			return err
		}
		p, ok := proofs[old]
		if size != h.Size || !ok {
			// The peer has not published a proof from our size yet
			// (it reads the size from our stored cosignature, which a
			// failed store write may have left behind): store it again.
			return c.restate(ctx, w, h)
		}
		if proof, err = decodeProof(p); err != nil {
			return c.refuse(ctx, h, old, "its consistency proof is malformed: "+err.Error())
		}
	}
	sig, err := w.Add(ctx, old, proof, cp)
	switch {
	case errors.Is(err, witness.ErrInconsistent):
		return c.refuse(ctx, h, old, fmt.Sprintf("its head at %d events is not an extension of the checkpoint at %d this node cosigned (a fork or a rewritten log): %v", h.Size, old, err))
	case errors.Is(err, witness.ErrBadSignature), errors.Is(err, witness.ErrUnknownLog), errors.Is(err, witness.ErrBadRequest):
		return c.refuse(ctx, h, old, err.Error())
	case err != nil:
		return err
	}
	if err := c.n.Store.PutAuditCosignature(ctx, store.AuditCosignature{Node: h.Node, Witness: c.n.nodeID, Size: h.Size, Checkpoint: h.Checkpoint + string(sig)}); err != nil {
		return err
	}
	c.seen[h.Node] = h.Checkpoint
	delete(c.refused, h.Node)
	c.cosigned.WithLabelValues(h.Node).Inc()
	return nil
}

// restate stores again the cosignature of the checkpoint w holds for h's
// log, so that the peer publishes a proof from its size.
func (c *cosigner) restate(ctx context.Context, w *witness.Witness, h store.AuditHead) error {
	prev := w.Cosigned(h.Origin)
	if prev == nil {
		return nil
	}
	size := w.Latest(h.Origin)
	sig, err := w.Add(ctx, size, nil, prev)
	if err != nil {
		return fmt.Errorf("cosign again at %d: %w", size, err)
	}
	err = c.n.Store.PutAuditCosignature(ctx, store.AuditCosignature{Node: h.Node, Witness: c.n.nodeID, Size: size, Checkpoint: string(prev) + string(sig)})
	if errors.Is(err, store.ErrConflict) {
		return nil // stored already
	}
	return err
}

// refuse records, once per head, that the node refused to cosign h.
func (c *cosigner) refuse(ctx context.Context, h store.AuditHead, cosigned uint64, why string) error {
	err := fmt.Errorf("refused to cosign the audit head of node %s at %d events: %s", h.Node, h.Size, why)
	if c.refused[h.Node] == h.Checkpoint {
		return err
	}
	_, aerr := c.n.Audit.Append(ctx, audit.Event{Type: "cosign.refused", Actor: "ward", Data: jsonData(map[string]any{
		"node": h.Node, "origin": h.Origin, "size": h.Size, "cosigned": cosigned, "reason": why, "checkpoint": h.Checkpoint})})
	if aerr != nil {
		return errors.Join(err, fmt.Errorf("recording the refusal: %w", aerr))
	}
	c.refused[h.Node] = h.Checkpoint
	c.refusals.WithLabelValues(h.Node).Inc()
	c.n.cfg.Logger.Error("audit: refused to cosign another node's head", "node", h.Node, "size", h.Size, "cosigned", cosigned, "reason", why)
	return err
}

// publishProofs publishes, with the node's head, a consistency proof from
// every size its witnesses last cosigned to the head's size.
func (c *cosigner) publishProofs(ctx context.Context) error {
	size, _, err := c.n.Store.GetAuditProofs(ctx, c.n.nodeID)
	if err != nil || size == 0 {
		return err
	}
	cos, err := c.n.Store.ListAuditCosignatures(ctx, c.n.nodeID)
	if err != nil {
		return err
	}
	var sizes []uint64
	lowest := size
	for _, co := range cos {
		if co.Size > 0 && co.Size < size && !slices.Contains(sizes, co.Size) {
			sizes = append(sizes, co.Size)
		}
		lowest = min(lowest, co.Size)
	}
	if lowest < size {
		// A witness that last cosigned below a hand-over may not know
		// the key that followed it: it checks that the head extends the
		// hand-over it learns the key from.
		hos, err := c.n.Store.ListAuditHandovers(ctx, c.n.nodeID)
		if err != nil {
			return err
		}
		for _, ho := range hos {
			if ho.Size > lowest && ho.Size < size && !slices.Contains(sizes, ho.Size) {
				sizes = append(sizes, ho.Size)
			}
		}
	}
	slices.Sort(sizes)
	key := fmt.Sprint(size, ":", sizes)
	if key == c.published {
		return nil
	}
	proofs := store.AuditProofs{}
	for _, s := range sizes {
		hashes, err := c.n.Audit.ConsistencyProof(s, size)
		if err != nil {
			return fmt.Errorf("consistency proof %d→%d: %w", s, size, err)
		}
		p := make([]string, len(hashes))
		for i, h := range hashes {
			p[i] = base64.StdEncoding.EncodeToString(h)
		}
		proofs[s] = p
	}
	if err := c.n.Store.PutAuditProofs(ctx, c.n.nodeID, size, proofs); err != nil {
		return err
	}
	c.published = key
	return nil
}

func decodeProof(p []string) ([][]byte, error) {
	if len(p) > witness.MaxProofHashes {
		return nil, fmt.Errorf("%d hashes", len(p))
	}
	out := make([][]byte, len(p))
	for i, s := range p {
		h, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(h) != 32 || base64.StdEncoding.EncodeToString(h) != s {
			return nil, fmt.Errorf("hash %d is not a base64 SHA-256 hash", i)
		}
		out[i] = h
	}
	return out, nil
}

// pinKey returns the keys to pin for h's log: those pinned, with h's key
// added when h's checkpoint is signed by it and by the newest pinned key
// (a rotation); or why h is refused. The keys are pinned in the order they
// were learnt, and a head must carry the newest one's signature: once a
// peer's checkpoints were signed by a new key, one signed by the old
// key alone (retired, perhaps because it leaked) is refused.
func pinKey(pinned []string, h store.AuditHead) ([]string, string) {
	v, err := audit.ParseVerifierKey(h.VKey)
	if err != nil || v.Name() != h.Origin {
		return nil, "its recorded key is not a note verifier key of its origin"
	}
	if len(pinned) == 0 {
		return []string{h.VKey}, ""
	}
	if slices.Contains(pinned, h.VKey) {
		newest, err := note.NewVerifier(pinned[len(pinned)-1])
		if err != nil {
			return nil, "a pinned key is not a note verifier key"
		}
		if _, err := note.Open([]byte(h.Checkpoint), note.VerifierList(newest)); err != nil {
			return nil, fmt.Sprintf("its checkpoint is not signed by %s, the newest key this node learnt for it (a checkpoint signed by a key it retired?)", keyName(pinned[len(pinned)-1]))
		}
		return pinned, ""
	}
	if len(pinned) >= maxPeerKeys {
		return nil, fmt.Sprintf("it names a new key, and %d are pinned already", len(pinned))
	}
	// Only the newest pinned key vouches for a new one: a key the peer
	// has moved away from (retired, perhaps leaked) must not install a
	// key of its holder's choosing.
	vs := []note.Verifier{v}
	var newest note.Verifier
	if len(pinned) > 0 {
		if newest, err = note.NewVerifier(pinned[len(pinned)-1]); err != nil {
			return nil, "a pinned key is not a note verifier key"
		}
		vs = append(vs, newest)
	}
	n, err := note.Open([]byte(h.Checkpoint), note.VerifierList(vs...))
	if err != nil {
		return nil, "its checkpoint does not verify: " + err.Error()
	}
	byNew, byPinned := false, false
	for _, s := range n.Sigs {
		byNew = byNew || s.Hash == v.KeyHash()
		byPinned = byPinned || newest != nil && s.Hash == newest.KeyHash()
	}
	if !byNew || !byPinned {
		return nil, fmt.Sprintf("it names the key %s, which this node never saw, and its checkpoint is not signed by that key and the newest key this node pinned for it (as during a rotation)", keyName(h.VKey))
	}
	return append(slices.Clone(pinned), h.VKey), ""
}

// handedOver returns the keys to pin for h's log when h names a key this
// node never saw, learnt from the hand-overs the peer kept in the store;
// or why h is refused; or, wait, why it cannot be decided yet (the peer
// has not published the proof it needs).
func (c *cosigner) handedOver(ctx context.Context, pinned []string, h store.AuditHead) (keys []string, why string, wait error) {
	hos, err := c.n.Store.ListAuditHandovers(ctx, h.Node)
	if err != nil {
		return nil, "", err
	}
	keys, used, why := handOver(pinned, h, hos)
	if why != "" {
		return nil, why, nil
	}
	head, err := parseCheckpoint([]byte(h.Checkpoint))
	if err != nil || head.origin != h.Origin || head.size != h.Size {
		return nil, "its checkpoint is not of its origin and size", nil
	}
	size, proofs, err := c.n.Store.GetAuditProofs(ctx, h.Node)
	if err != nil {
		return nil, "", err
	}
	for _, ho := range used {
		hb, err := parseCheckpoint([]byte(ho.Checkpoint))
		if err != nil || hb.origin != h.Origin || hb.size != ho.Size {
			return nil, fmt.Sprintf("its hand-over to %s is not a checkpoint of its log at %d events", keyName(ho.New), ho.Size), nil
		}
		switch {
		case ho.Size > h.Size:
			return nil, fmt.Sprintf("its hand-over to %s is at %d events, beyond its head", keyName(ho.New), ho.Size), nil
		case ho.Size == h.Size:
			if !bytes.Equal(hb.root, head.root) {
				return nil, fmt.Sprintf("its hand-over to %s is another tree of the head's size (a fork)", keyName(ho.New)), nil
			}
			continue
		}
		p, ok := proofs[ho.Size]
		if size != h.Size || !ok {
			return nil, "", fmt.Errorf("its head names the key %s, which it handed over to at %d events: waiting for it to publish a consistency proof from there", keyName(h.VKey), ho.Size)
		}
		hashes, err := decodeProof(p)
		if err != nil {
			return nil, "its consistency proof from its hand-over is malformed: " + err.Error(), nil
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, ho.Size, h.Size, hashes, hb.root, head.root); err != nil {
			return nil, fmt.Sprintf("its head is not an extension of its hand-over to %s at %d events (a fork): %v", keyName(ho.New), ho.Size, err), nil
		}
	}
	return keys, "", nil
}

// handOver returns the keys to pin for h's log from hand-overs: starting
// from the newest key pinned, a hand-over signed by it and by a key not
// pinned yet pins that key, until h's key is pinned; and h's checkpoint
// must be signed by it. It returns the hand-overs it used, or why h is
// refused. Only the newest pinned key vouches, as in pinKey: a retired
// key (perhaps leaked) installs nothing, nor does a key vouching for
// itself.
func handOver(pinned []string, h store.AuditHead, hos []store.AuditHandover) ([]string, []store.AuditHandover, string) {
	v, err := audit.ParseVerifierKey(h.VKey)
	if err != nil || v.Name() != h.Origin {
		return nil, nil, "its recorded key is not a note verifier key of its origin"
	}
	keys := slices.Clone(pinned)
	var used []store.AuditHandover
	for !slices.Contains(keys, h.VKey) {
		newest, err := note.NewVerifier(keys[len(keys)-1])
		if err != nil {
			return nil, nil, "a pinned key is not a note verifier key"
		}
		found := false
		for _, ho := range hos {
			if slices.Contains(keys, ho.New) {
				continue
			}
			nv, err := audit.ParseVerifierKey(ho.New)
			if err != nil || nv.Name() != h.Origin || !signedByBoth([]byte(ho.Checkpoint), newest, nv) {
				continue
			}
			if len(keys) >= maxPeerKeys {
				return nil, nil, fmt.Sprintf("it names a new key, and %d are pinned already", len(keys))
			}
			keys, used, found = append(keys, ho.New), append(used, ho), true
			break
		}
		if !found {
			return nil, nil, fmt.Sprintf("it names the key %s, which this node never saw; its checkpoint is not signed by that key and %s, the newest key this node pinned for it (as during a rotation), and no hand-over kept in the store is signed by %s and a key after it",
				keyName(h.VKey), keyName(keys[len(keys)-1]), keyName(keys[len(keys)-1]))
		}
	}
	if _, err := note.Open([]byte(h.Checkpoint), note.VerifierList(v)); err != nil || keys[len(keys)-1] != h.VKey {
		return nil, nil, fmt.Sprintf("its checkpoint is not signed by %s, the newest key it handed over to", keyName(h.VKey))
	}
	return keys, used, ""
}

// keyName names a verifier key by its name and hash.
func keyName(vkey string) string {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return name + "+" + hash
}

func (c *cosigner) loadPins() (map[string][]string, error) {
	pins := map[string][]string{}
	b, err := os.ReadFile(c.pinsPath)
	if errors.Is(err, os.ErrNotExist) {
		return pins, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pinned peer keys: %w", err)
	}
	if err := strictjson.Unmarshal(b, &pins); err != nil {
		return nil, fmt.Errorf("pinned peer keys %s: %w", c.pinsPath, err)
	}
	return pins, nil
}

func (c *cosigner) savePins(pins map[string][]string) error {
	b, err := json.MarshalIndent(pins, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(c.pinsPath, b, 0o600); err != nil {
		return fmt.Errorf("pinned peer keys: %w", err)
	}
	return nil
}

// DataDir is the node's data directory.
func (n *Node) DataDir() string { return n.cfg.Data }
