package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Audit heads of several nodes.
//
// Each node of several keeps its own audit log. The store remembers, per
// node, the newest checkpoint the node published (audit_heads): its size
// may only grow and the node's log origin and verifier key never change.
// A node that restarts on a log shorter than, or different from, what it
// published before (a data directory restored from an older backup, a
// log replaced) is caught by comparing its log with its head here (the
// server does, with a consistency proof), and every node's head lists the
// system's logs for an operator.

// AuditHead is the newest checkpoint one node published of its log.
type AuditHead struct {
	Node, Origin string
	// VKey is the note verifier key of the node's log.
	VKey string
	Size uint64
	// Checkpoint is the signed checkpoint note.
	Checkpoint string
	// CosignKey is the cosignature/v1 verifier key with which the node
	// cosigns the other nodes' heads (cosignatures.go), as it says:
	// informative, for an operator writing down the system's trust
	// anchors; "" if it has none.
	CosignKey string
	Updated   time.Time
	// Prev, when set on PutAuditHead, is the checkpoint the caller found
	// stored and proved its log extends: if another head was stored
	// since (another process with the node's id), the put wraps
	// ErrConflict instead of replacing it. Not stored.
	Prev string `json:"-"`
	// Keys, when set on PutAuditHead, are every key of the node's log (a
	// rotation's): a head stored under any of them may be replaced by
	// one under VKey. Not stored.
	Keys []string `json:"-"`
}

// GetAuditHead returns node's head, or ok false if it never published one.
func (s *Store) GetAuditHead(ctx context.Context, node string) (h AuditHead, ok bool, err error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var size, updated int64
	err = s.r.QueryRowContext(ctx, `SELECT node, origin, vkey, size, checkpoint, cosign_key, updated FROM audit_heads WHERE node = $1`, node).
		Scan(&h.Node, &h.Origin, &h.VKey, &size, &h.Checkpoint, &h.CosignKey, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, false, nil
	}
	if err != nil {
		return AuditHead{}, false, fmt.Errorf("audit head of %s: %w", node, err)
	}
	h.Size, h.Updated = uint64(size), fromNanos(updated)
	return h, true, nil
}

// ListAuditHeads returns every node's head, ordered by node.
func (s *Store) ListAuditHeads(ctx context.Context) ([]AuditHead, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT node, origin, vkey, size, checkpoint, cosign_key, updated FROM audit_heads ORDER BY node`)
	if err != nil {
		return nil, fmt.Errorf("audit heads: %w", err)
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (AuditHead, error) {
		var h AuditHead
		var size, updated int64
		err := sc.Scan(&h.Node, &h.Origin, &h.VKey, &size, &h.Checkpoint, &h.CosignKey, &updated)
		h.Size, h.Updated = uint64(size), fromNanos(updated)
		return h, err
	})
}

// PutAuditHead records h as its node's newest head. It wraps ErrConflict,
// and records nothing, if the node published a larger head before, or
// one of another origin or key. A head of the same size replaces the
// stored one (the caller checks that they are the same tree).
func (s *Store) PutAuditHead(ctx context.Context, h AuditHead) error {
	if err := errors.Join(checkName("node", h.Node), checkName("origin", h.Origin), checkText("key", h.VKey), checkText("checkpoint", h.Checkpoint), checkText("cosign key", h.CosignKey)); err != nil {
		return fmt.Errorf("put audit head: %w", err)
	}
	if h.Updated.IsZero() {
		h.Updated = s.now()
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var origin, vkey string
		var size int64
		var stored string
		err := tx.QueryRowContext(ctx, `SELECT origin, vkey, size, checkpoint FROM audit_heads WHERE node = $1`+s.forUpdate(), h.Node).Scan(&origin, &vkey, &size, &stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO audit_heads (node, origin, vkey, size, checkpoint, cosign_key, updated) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				h.Node, h.Origin, h.VKey, int64(h.Size), h.Checkpoint, h.CosignKey, h.Updated.UnixNano())
			return err
		case err != nil:
			return err
		case origin != h.Origin || (vkey != h.VKey && !slices.Contains(h.Keys, vkey)):
			return fmt.Errorf("%w: node %s published log %s before, with another key; now %s", ErrConflict, h.Node, origin, h.Origin)
		case uint64(size) > h.Size:
			return fmt.Errorf("%w: node %s published its log at %d events before; now it has %d", ErrConflict, h.Node, size, h.Size)
		case h.Prev != "" && stored != h.Prev:
			return fmt.Errorf("%w: the head of node %s changed since it was checked (another process with this node's id?)", ErrConflict, h.Node)
		}
		// A head of another size keeps no proofs: they were to the old size.
		_, err = tx.ExecContext(ctx, `UPDATE audit_heads SET size = $2, checkpoint = $3, cosign_key = $4, updated = $5, vkey = $6,
			proofs = CASE WHEN size = $2 THEN proofs ELSE '' END WHERE node = $1`,
			h.Node, int64(h.Size), h.Checkpoint, h.CosignKey, h.Updated.UnixNano(), h.VKey)
		return err
	})
	if err != nil {
		return fmt.Errorf("put audit head of %s: %w", h.Node, err)
	}
	return nil
}

// sqliteAuditHeadsSchema is migration 11 on SQLite.
var sqliteAuditHeadsSchema = []string{
	`CREATE TABLE audit_heads (
		node       TEXT PRIMARY KEY,
		origin     TEXT NOT NULL,
		vkey       TEXT NOT NULL,
		size       INTEGER NOT NULL CHECK (size >= 0),
		checkpoint TEXT NOT NULL,
		updated    INTEGER NOT NULL
	) STRICT`,
}

// postgresAuditHeadsSchema is migration 11 on PostgreSQL.
var postgresAuditHeadsSchema = []string{
	`CREATE TABLE audit_heads (
		node       TEXT COLLATE "C" PRIMARY KEY,
		origin     TEXT COLLATE "C" NOT NULL,
		vkey       TEXT NOT NULL,
		size       BIGINT NOT NULL CHECK (size >= 0),
		checkpoint TEXT NOT NULL,
		updated    BIGINT NOT NULL
	)`,
}
