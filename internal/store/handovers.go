package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Hand-overs of audit log keys.
//
// When a node of several retires the key of its audit log (a rotation's
// overlap ends), it keeps here, for good, the hand-over: a checkpoint of
// its log signed by the retiring key and by the key that replaces it. A
// peer that was offline during the whole overlap, and so never saw a
// checkpoint signed by both, learns the new key from it when it comes
// back: the key it pinned vouches for the new one (only the newest key a
// peer pinned may; cosign.go checks), and the node publishes with its
// head a consistency proof from the hand-over's size, so the peer checks
// that the head it cosigns extends the hand-over. The store checks no
// signature: the peers do, with the keys they pinned.

// AuditHandover is one rotation of one node's log key.
type AuditHandover struct {
	Node string
	// Old is the note verifier key retired, New the one that replaced it.
	Old, New string
	// Size is the tree size of Checkpoint, a checkpoint of the node's log
	// signed by both keys.
	Size       uint64
	Checkpoint string
	Created    time.Time
}

// MaxHandovers bounds the hand-overs kept for one node (one per rotation
// of its log key).
const MaxHandovers = 64

// PutAuditHandover keeps h. A hand-over to a key the node handed over to
// before is kept as first stored (a retirement tried again after a crash
// makes another checkpoint of the same hand-over): nothing changes.
func (s *Store) PutAuditHandover(ctx context.Context, h AuditHandover) error {
	if err := errors.Join(checkName("node", h.Node), checkText("old key", h.Old), checkText("new key", h.New), checkText("checkpoint", h.Checkpoint)); err != nil {
		return fmt.Errorf("put audit hand-over: %w", err)
	}
	if h.Old == "" || h.New == "" || h.Old == h.New {
		return fmt.Errorf("put audit hand-over of %s: want two different keys", h.Node)
	}
	if h.Created.IsZero() {
		h.Created = s.now()
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_handovers WHERE node = $1`, h.Node).Scan(&n); err != nil {
			return err
		}
		if n >= MaxHandovers {
			return fmt.Errorf("%d hand-overs are kept already", n)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_handovers (node, old_key, new_key, size, checkpoint, created) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT DO NOTHING`, h.Node, h.Old, h.New, int64(h.Size), h.Checkpoint, h.Created.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("put audit hand-over of %s: %w", h.Node, err)
	}
	return nil
}

// ListAuditHandovers returns the hand-overs kept for node, oldest first.
func (s *Store) ListAuditHandovers(ctx context.Context, node string) ([]AuditHandover, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT node, old_key, new_key, size, checkpoint, created FROM audit_handovers WHERE node = $1
		ORDER BY size, created LIMIT `+fmt.Sprint(MaxHandovers), node)
	if err != nil {
		return nil, fmt.Errorf("audit hand-overs of %s: %w", node, err)
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (AuditHandover, error) {
		var h AuditHandover
		var size, created int64
		err := sc.Scan(&h.Node, &h.Old, &h.New, &size, &h.Checkpoint, &created)
		h.Size, h.Created = uint64(size), fromNanos(created)
		return h, err
	})
}

// sqliteHandoverSchema is migration 13 on SQLite.
var sqliteHandoverSchema = []string{
	`CREATE TABLE audit_handovers (
		node       TEXT NOT NULL,
		old_key    TEXT NOT NULL,
		new_key    TEXT NOT NULL,
		size       INTEGER NOT NULL CHECK (size >= 0),
		checkpoint TEXT NOT NULL,
		created    INTEGER NOT NULL,
		PRIMARY KEY (node, new_key)
	) STRICT`,
}

// postgresHandoverSchema is migration 13 on PostgreSQL.
var postgresHandoverSchema = []string{
	`CREATE TABLE audit_handovers (
		node       TEXT COLLATE "C" NOT NULL,
		old_key    TEXT COLLATE "C" NOT NULL,
		new_key    TEXT COLLATE "C" NOT NULL,
		size       BIGINT NOT NULL CHECK (size >= 0),
		checkpoint TEXT NOT NULL,
		created    BIGINT NOT NULL,
		PRIMARY KEY (node, new_key)
	)`,
}
