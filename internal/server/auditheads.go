package server

// Audit heads of several nodes.
//
// A node of several publishes the newest checkpoint of its audit log to
// the store (store/auditheads.go) when it starts and every auditHeadEvery
// after. When it starts, it first checks that its log extends the head it
// published before: the same key, at least as many events, and a
// consistency proof from its log that the published tree is a prefix of
// its own. A data directory restored from an older backup, or a log
// replaced, so stops the node with a message instead of erasing history
// unnoticed; two nodes started from copies of one data directory (one
// node id) are caught when one of them publishes a head the other has
// outgrown.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ward-dev/ward/internal/store"
)

// auditHeadEvery is how often a node of several publishes its audit head.
const auditHeadEvery = 5 * time.Second

// checkpointBody is what a checkpoint note says: origin, size and root.
type checkpointBody struct {
	origin string
	size   uint64
	root   []byte
}

// parseCheckpoint reads the body of a signed checkpoint note (C2SP
// tlog-checkpoint: origin, size and base64 root, one a line).
func parseCheckpoint(note []byte) (checkpointBody, error) {
	lines := strings.SplitN(string(note), "\n", 4)
	if len(lines) < 4 {
		return checkpointBody{}, fmt.Errorf("checkpoint: too short")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return checkpointBody{}, fmt.Errorf("checkpoint: size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return checkpointBody{}, fmt.Errorf("checkpoint: root %q", lines[2])
	}
	return checkpointBody{origin: lines[0], size: size, root: root}, nil
}

// auditVKey is the verifier key of the newest key that signs the node's
// log (during a rotation's overlap the new one: its checkpoints carry
// both signatures, so peers learn it), and every key of the log.
func (n *Node) auditVKey() (string, []string, error) {
	k := n.logKeys.Load()
	if k == nil {
		return "", nil, errors.New("audit log: no key")
	}
	return k.newest(), k.all(), nil
}

// checkAuditHead checks, on a node of several, that its audit log extends
// the head it published before, then publishes the log's current head.
func (n *Node) checkAuditHead(ctx context.Context) error { return n.checkHead(ctx, false) }

// checkHead is checkAuditHead; with share, the log's tiles are kept in
// the store first (not when the node starts: a long log's first tiles
// would hold its start; the cadence keeps them, a step at a time).
func (n *Node) checkHead(ctx context.Context, share bool) error {
	if n.nodeID == "" {
		return nil
	}
	// A checkpoint over every event appended so far (the log signs them
	// on its own cadence): the head published covers them.
	cp, err := n.Audit.Sync(ctx)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	h, ok, err := n.Store.GetAuditHead(ctx, n.nodeID)
	if err != nil {
		return err
	}
	if ok {
		_, keys, err := n.auditVKey()
		if err != nil {
			return err
		}
		own, err := parseCheckpoint(cp)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		stop := func(why string) error {
			return fmt.Errorf("the audit log of node %s %s, but the system's store saw it at %d events (%s): its data directory was restored from an older backup, or its log replaced. Restore DATA/audit (and DATA/keys) to what the node had, or, if that is lost, start a new node on an empty data directory with ward up --join (the store keeps this node's head as the record of what it had); ward does not start on a log behind what it published",
				n.nodeID, why, h.Size, h.Updated.UTC().Format(time.RFC3339))
		}
		switch {
		case !slices.Contains(keys, h.VKey):
			return stop("is signed with another key")
		case own.size < h.Size:
			return stop(fmt.Sprintf("holds only %d events", own.size))
		case h.Size > 0:
			pub, err := parseCheckpoint([]byte(h.Checkpoint))
			if err != nil {
				return fmt.Errorf("the audit head of node %s in the store: %w", n.nodeID, err)
			}
			if pub.size != h.Size {
				return fmt.Errorf("the audit head of node %s in the store says %d events, its checkpoint %d", n.nodeID, h.Size, pub.size)
			}
			hashes, err := n.Audit.ConsistencyProof(h.Size, own.size)
			if err == nil && own.size == h.Size && !bytes.Equal(own.root, pub.root) {
				err = fmt.Errorf("another tree of the same size")
			}
			if err == nil {
				err = proof.VerifyConsistency(rfc6962.DefaultHasher, h.Size, own.size, hashes, pub.root, own.root)
			}
			if err != nil {
				return stop("is not the log it published (" + err.Error() + ")")
			}
		}
	}
	if share {
		// The tiles that prove the log's entries to other nodes come
		// before the head that covers them (auditsearch.go).
		body, err := parseCheckpoint(cp)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		if err := n.publishTiles(ctx, body.size); err != nil {
			return fmt.Errorf("audit tiles: %w", err)
		}
	}
	return n.putAuditHead(ctx, cp, h.Checkpoint)
}

// publishAuditHead publishes the newest checkpoint of the node's log,
// after checking, as at start, that the log extends the head stored: a
// copy of the node's data directory running beside it (same id, same key)
// writes a log that forks from the node's, and must not replace the head
// the node published with its own.
func (n *Node) publishAuditHead(ctx context.Context) error { return n.checkHead(ctx, true) }

// putAuditHead stores cp, a checkpoint of the node's log, in place of
// the head prev ("": whatever is stored, if it is not larger).
func (n *Node) putAuditHead(ctx context.Context, cp []byte, prev string) error {
	if n.nodeID == "" {
		return nil
	}
	vkey, keys, err := n.auditVKey()
	if err != nil {
		return err
	}
	body, err := parseCheckpoint(cp)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return n.Store.PutAuditHead(ctx, store.AuditHead{Node: n.nodeID, Origin: body.origin, VKey: vkey, Size: body.size, Checkpoint: string(cp), CosignKey: n.CosignKey(), Prev: prev, Keys: keys})
}

// closeShared, as a node of several stops, publishes its audit head and
// gives back its budget leases.
func (n *Node) closeShared() error {
	if n.nodeID == "" || n.Store == nil {
		return nil
	}
	var err error
	if n.Audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// The head published covers every event the node acknowledged
		// (the log signs checkpoints on its own cadence).
		if _, err = n.Audit.Sync(ctx); err == nil {
			err = errors.Join(n.IndexAudit(ctx), n.publishAuditHead(ctx))
		}
		cancel()
	}
	if n.leases != nil {
		err = errors.Join(err, n.leases.close())
	}
	return err
}
