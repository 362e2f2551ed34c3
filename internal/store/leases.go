package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"time"
)

// Budget leases.
//
// Several nodes enforce one budget (a limit of Max over a sliding Window,
// for one key) by leasing parts of it: a node takes a lease of some of
// what is left, spends it on calls without asking the store again, and
// when the lease expires (it is never spent after its Expires) or the node
// stops, gives back what it did not spend by lowering the lease's Amount
// to what it spent. A lease row counts against the budget until
// CountsUntil = Expires + Window: every call spent from it happened by
// Expires, so it left every window by then.
//
// TakeLease grants a lease only if the Amounts of the key's rows that
// still count, plus the new one, are at most Max. That holds at every
// later moment too (rows only stop counting or shrink), so the calls of
// every window of length Window, on all nodes together, never exceed
// Max: each was spent from a row that still counts at the window's end.
// Takers of one key are serialised (an advisory lock on PostgreSQL; the
// one writer on SQLite).

// LeaseRequest asks for a lease of one budget.
type LeaseRequest struct {
	Limit, Scope, Key string
	Node              string
	Max               float64
	Window            time.Duration
	// Want is how much the node would like; Need is the least that is of
	// use (the call at hand). A lease of at least Need and at most Want
	// (less when little is left: about half of it) is granted, or none.
	Want, Need float64
	TTL        time.Duration
	Now        time.Time
}

// Lease is a granted lease, or none (Amount 0).
type Lease struct {
	ID      string
	Amount  float64
	Expires time.Time
	// Used is what the key's other counting rows hold; RetryAfter, when
	// no lease was granted, is when the first of them stops counting.
	Used       float64
	RetryAfter time.Duration
}

// TakeLease grants a lease of r's budget, or reports (Amount 0) that
// less than r.Need is left.
func (s *Store) TakeLease(ctx context.Context, r LeaseRequest) (Lease, error) {
	switch {
	case r.Limit == "" || r.Scope == "" || r.Key == "":
		return Lease{}, errors.New("take lease: limit, scope and key are required")
	case !(r.Max >= 0) || !(r.Need > 0) || r.Want < r.Need || math.IsInf(r.Want, 0) || r.Window <= 0 || r.TTL <= 0:
		return Lease{}, fmt.Errorf("take lease: invalid request (max %g, need %g, want %g, window %s, ttl %s)", r.Max, r.Need, r.Want, r.Window, r.TTL)
	}
	if err := errors.Join(checkName("limit", r.Limit), checkName("key", r.Key)); err != nil {
		return Lease{}, fmt.Errorf("take lease: %w", err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	now := r.Now.UnixNano()
	var out Lease
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = Lease{}
		if s.pg {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, leaseLock(s.schema, r.Limit, r.Scope, r.Key)); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM budget_leases WHERE limit_id = $1 AND scope = $2 AND key = $3 AND counts_until <= $4`,
			r.Limit, r.Scope, r.Key, now); err != nil {
			return err
		}
		var used float64
		var first sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0), MIN(counts_until) FROM budget_leases
			WHERE limit_id = $1 AND scope = $2 AND key = $3 AND counts_until > $4`, r.Limit, r.Scope, r.Key, now).Scan(&used, &first); err != nil {
			return err
		}
		out.Used = used
		left := r.Max - used
		if left < r.Need {
			if first.Valid {
				out.RetryAfter = time.Duration(first.Int64 - now)
			}
			return nil
		}
		grant := min(left, max(r.Need, min(r.Want, math.Floor(left/2))))
		var b [12]byte
		rand.Read(b[:])
		id := "lease-" + hex.EncodeToString(b[:])
		expires := r.Now.Add(r.TTL)
		if _, err := tx.ExecContext(ctx, `INSERT INTO budget_leases (id, limit_id, scope, key, node, granted, expires, counts_until, amount)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			id, r.Limit, r.Scope, r.Key, r.Node, now, expires.UnixNano(), expires.Add(r.Window).UnixNano(), grant); err != nil {
			return err
		}
		out.ID, out.Amount, out.Expires = id, grant, expires
		return nil
	})
	if err != nil {
		return Lease{}, fmt.Errorf("take lease of %s %s %s: %w", r.Limit, r.Scope, r.Key, err)
	}
	return out, nil
}

// ReturnLease gives back what was not spent of lease id: its Amount
// becomes spent (never more than it was). An unknown id (a lease that no
// longer counts) is not an error.
func (s *Store) ReturnLease(ctx context.Context, id string, spent float64) error {
	if !(spent >= 0) {
		return fmt.Errorf("return lease %s: spent %g", id, spent)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.w.ExecContext(ctx, `UPDATE budget_leases SET amount = $2 WHERE id = $1 AND amount > $2`, id, spent); err != nil {
		return fmt.Errorf("return lease %s: %w", id, err)
	}
	return nil
}

// leaseLock is the advisory lock key under which one budget's leases are
// taken in schema.
func leaseLock(schema, limit, scope, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("ward/store/lease/" + schema + "\x00" + limit + "\x00" + scope + "\x00" + key))
	return int64(h.Sum64())
}

// sqliteLeaseSchema is migration 9 on SQLite.
var sqliteLeaseSchema = []string{
	`CREATE TABLE budget_leases (
		id           TEXT PRIMARY KEY,
		limit_id     TEXT NOT NULL,
		scope        TEXT NOT NULL,
		key          TEXT NOT NULL,
		node         TEXT NOT NULL,
		granted      INTEGER NOT NULL,
		expires      INTEGER NOT NULL,
		counts_until INTEGER NOT NULL,
		amount       REAL NOT NULL CHECK (amount >= 0)
	) STRICT`,
	`CREATE INDEX budget_leases_key ON budget_leases (limit_id, scope, key, counts_until)`,
}

// postgresLeaseSchema is migration 9 on PostgreSQL.
var postgresLeaseSchema = []string{
	`CREATE TABLE budget_leases (
		id           TEXT COLLATE "C" PRIMARY KEY,
		limit_id     TEXT COLLATE "C" NOT NULL,
		scope        TEXT COLLATE "C" NOT NULL,
		key          TEXT COLLATE "C" NOT NULL,
		node         TEXT COLLATE "C" NOT NULL,
		granted      BIGINT NOT NULL,
		expires      BIGINT NOT NULL,
		counts_until BIGINT NOT NULL,
		amount       DOUBLE PRECISION NOT NULL CHECK (amount >= 0)
	)`,
	`CREATE INDEX budget_leases_key ON budget_leases (limit_id, scope, key, counts_until)`,
}

// PruneLeases deletes the leases that no longer count at now, of every
// budget, and returns how many it deleted.
func (s *Store) PruneLeases(ctx context.Context, now time.Time) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `DELETE FROM budget_leases WHERE counts_until <= $1`, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune leases: %w", err)
	}
	return res.RowsAffected()
}
