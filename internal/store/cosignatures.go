package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Cosignatures of audit heads across nodes.
//
// Every node of several witnesses the audit logs of the others: it reads
// each peer's head (audit_heads), checks that the peer's log extends
// the checkpoint it cosigned for that peer before (a consistency proof
// the peer published with its head, in audit_heads.proofs) and stores
// its cosignature of the new checkpoint in audit_cosignatures, one row
// per (node, witness): the latest the witness cosigned. The peer reads
// its rows to know from which sizes to publish proofs. The store checks
// no signature: the witnesses and the verifiers do (internal/witness,
// ward audit verify --system), with keys they hold themselves.

// AuditCosignature is the latest checkpoint of one node's log that one
// other node (the witness) cosigned.
type AuditCosignature struct {
	Node, Witness string
	// Size is the cosigned checkpoint's tree size.
	Size uint64
	// Checkpoint is the node's signed checkpoint with the witness's
	// cosignature line (c2sp.org/tlog-cosignature) appended.
	Checkpoint string
	Updated    time.Time
}

// PutAuditCosignature records c as the latest cosignature by c.Witness
// of c.Node's log. A cosignature of a smaller size than the one stored
// wraps ErrConflict and records nothing: a witness never goes back.
func (s *Store) PutAuditCosignature(ctx context.Context, c AuditCosignature) error {
	if err := errors.Join(checkName("node", c.Node), checkName("witness", c.Witness), checkText("checkpoint", c.Checkpoint)); err != nil {
		return fmt.Errorf("put audit cosignature: %w", err)
	}
	if c.Node == c.Witness {
		return fmt.Errorf("put audit cosignature: node %s cannot witness its own log", c.Node)
	}
	if c.Updated.IsZero() {
		c.Updated = s.now()
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var size int64
		err := tx.QueryRowContext(ctx, `SELECT size FROM audit_cosignatures WHERE node = $1 AND witness = $2`+s.forUpdate(), c.Node, c.Witness).Scan(&size)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO audit_cosignatures (node, witness, size, checkpoint, updated) VALUES ($1, $2, $3, $4, $5)`,
				c.Node, c.Witness, int64(c.Size), c.Checkpoint, c.Updated.UnixNano())
			return err
		case err != nil:
			return err
		case uint64(size) > c.Size:
			return fmt.Errorf("%w: %s cosigned %s's log at %d events before; now at %d", ErrConflict, c.Witness, c.Node, size, c.Size)
		}
		_, err = tx.ExecContext(ctx, `UPDATE audit_cosignatures SET size = $3, checkpoint = $4, updated = $5 WHERE node = $1 AND witness = $2`,
			c.Node, c.Witness, int64(c.Size), c.Checkpoint, c.Updated.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("put audit cosignature of %s by %s: %w", c.Node, c.Witness, err)
	}
	return nil
}

// ListAuditCosignatures returns the cosignatures of node's log (every
// node's when node is ""), ordered by node and witness.
func (s *Store) ListAuditCosignatures(ctx context.Context, node string) ([]AuditCosignature, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT node, witness, size, checkpoint, updated FROM audit_cosignatures WHERE $1 = '' OR node = $1 ORDER BY node, witness`, node)
	if err != nil {
		return nil, fmt.Errorf("audit cosignatures: %w", err)
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (AuditCosignature, error) {
		var c AuditCosignature
		var size, updated int64
		err := sc.Scan(&c.Node, &c.Witness, &size, &c.Checkpoint, &updated)
		c.Size, c.Updated = uint64(size), fromNanos(updated)
		return c, err
	})
}

// AuditProofs are consistency proofs a node publishes with its head:
// from each size one of its witnesses last cosigned to the head's size,
// each hash standard base64 (RFC 6962 / RFC 9162 consistency proof).
type AuditProofs map[uint64][]string

// Bounds on the proofs published with one head: one per witness (more
// means a misbehaving witness or store), each at most 63 hashes.
const (
	maxProofSizes = 256
	maxProofsText = maxProofSizes * (24 + 63*47)
)

// PutAuditProofs stores proofs with node's head, if the head is still
// at size (a head that moved on since keeps its own proofs).
func (s *Store) PutAuditProofs(ctx context.Context, node string, size uint64, proofs AuditProofs) error {
	if len(proofs) > maxProofSizes {
		return fmt.Errorf("put audit proofs of %s: %d proofs, more than %d", node, len(proofs), maxProofSizes)
	}
	b, err := json.Marshal(proofs)
	if err != nil {
		return err
	}
	if len(b) > maxProofsText {
		return fmt.Errorf("put audit proofs of %s: %d bytes, more than %d", node, len(b), maxProofsText)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE audit_heads SET proofs = $3 WHERE node = $1 AND size = $2`, node, int64(size), string(b))
		if err != nil {
			return fmt.Errorf("put audit proofs of %s: %w", node, err)
		}
		return nil
	})
}

// GetAuditProofs returns the proofs published with node's head and the
// head's size.
func (s *Store) GetAuditProofs(ctx context.Context, node string) (size uint64, proofs AuditProofs, err error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int64
	var text string
	err = s.r.QueryRowContext(ctx, `SELECT size, proofs FROM audit_heads WHERE node = $1`, node).Scan(&n, &text)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("audit proofs of %s: %w", node, err)
	}
	proofs = AuditProofs{}
	if len(text) > maxProofsText {
		return 0, nil, fmt.Errorf("audit proofs of %s: %d bytes, more than %d", node, len(text), maxProofsText)
	}
	if text != "" {
		if err := json.Unmarshal([]byte(text), &proofs); err != nil {
			return 0, nil, fmt.Errorf("audit proofs of %s: %w", node, err)
		}
	}
	return uint64(n), proofs, nil
}

// sqliteCosignSchema is migration 12 on SQLite.
var sqliteCosignSchema = []string{
	`ALTER TABLE audit_heads ADD COLUMN proofs TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE audit_heads ADD COLUMN cosign_key TEXT NOT NULL DEFAULT ''`,
	`CREATE TABLE audit_cosignatures (
		node       TEXT NOT NULL,
		witness    TEXT NOT NULL,
		size       INTEGER NOT NULL CHECK (size >= 0),
		checkpoint TEXT NOT NULL,
		updated    INTEGER NOT NULL,
		PRIMARY KEY (node, witness)
	) STRICT`,
}

// postgresCosignSchema is migration 12 on PostgreSQL.
var postgresCosignSchema = []string{
	`ALTER TABLE audit_heads ADD COLUMN proofs TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE audit_heads ADD COLUMN cosign_key TEXT NOT NULL DEFAULT ''`,
	`CREATE TABLE audit_cosignatures (
		node       TEXT COLLATE "C" NOT NULL,
		witness    TEXT COLLATE "C" NOT NULL,
		size       BIGINT NOT NULL CHECK (size >= 0),
		checkpoint TEXT NOT NULL,
		updated    BIGINT NOT NULL,
		PRIMARY KEY (node, witness)
	)`,
}
