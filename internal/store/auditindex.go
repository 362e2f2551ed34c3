package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AuditRow is one audit event as the query index sees it.
type AuditRow struct {
	Index                                         uint64
	Time                                          time.Time
	Type, Session, Agent, Sponsor, Name, Decision string
}

// AuditQuery selects indexed events; empty fields match everything.
type AuditQuery struct {
	Type, Session, Agent, Sponsor, Name, Decision string
	Since, Until                                  time.Time // zero: unbounded
	Limit                                         int       // the newest Limit matches; 0 means 1,000
}

// IndexAudit records rows in the audit query index; rows already indexed
// are left as they are.
func (s *Store) IndexAudit(ctx context.Context, rows []AuditRow) error {
	return s.IndexAuditOf(ctx, s.node, rows)
}

// IndexAuditOf records rows of node's log in the audit query index, as
// IndexAudit does for the store's own node (ward audit reindex rebuilds
// every node's rows from the logs).
func (s *Store) IndexAuditOf(ctx context.Context, node string, rows []AuditRow) error {
	if len(rows) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.write(ctx, func(tx *sql.Tx) error {
		// Prepared once per batch: every tool call adds two rows, and
		// SQLite parsed the statement again for each (a third of the
		// indexer's CPU).
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_index (node, idx, time, type, session, agent, sponsor, name, decision)
				 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`)
		if err != nil {
			return fmt.Errorf("index audit events: %w", err)
		}
		defer stmt.Close()
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, node, int64(r.Index), r.Time.UnixNano(), r.Type, r.Session, r.Agent, r.Sponsor, r.Name, r.Decision); err != nil {
				return fmt.Errorf("index audit event %d: %w", r.Index, err)
			}
		}
		return nil
	})
}

// AuditIndexed returns how many leading audit events are indexed (the
// index of the next event to index).
func (s *Store) AuditIndexed(ctx context.Context) (uint64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(idx) FROM audit_index WHERE node = $1`, s.node).Scan(&n); err != nil {
		return 0, fmt.Errorf("audit index: %w", err)
	}
	if !n.Valid {
		return 0, nil
	}
	return uint64(n.Int64) + 1, nil
}

// clauses adds q's conditions to where (whose placeholders are args) and
// returns them joined with AND, the arguments, and the row limit (1,000
// unless q says otherwise, at most 100,000).
func (q AuditQuery) clauses(where []string, args []any) (string, []any, int) {
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	for _, c := range []struct{ col, v string }{{"type", q.Type}, {"session", q.Session}, {"agent", q.Agent},
		{"sponsor", q.Sponsor}, {"name", q.Name}, {"decision", q.Decision}} {
		if c.v != "" {
			add(c.col+" = $%d", c.v)
		}
	}
	if !q.Since.IsZero() {
		add("time >= $%d", q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		add("time < $%d", q.Until.UnixNano())
	}
	limit := q.Limit
	if limit <= 0 || limit > 100_000 {
		limit = 1000
	}
	return strings.Join(where, " AND "), args, limit
}

// SearchAudit returns the log indexes of matching events, oldest first.
func (s *Store) SearchAudit(ctx context.Context, q AuditQuery) ([]uint64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	where, args, limit := q.clauses([]string{"node = $1"}, []any{s.node})
	sqlText := `SELECT idx FROM audit_index WHERE ` + where
	sqlText += fmt.Sprintf(` ORDER BY idx DESC LIMIT %d`, limit)
	rows, err := s.r.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("search audit index: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			return nil, err
		}
		out = append(out, uint64(i))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for l, r := 0, len(out)-1; l < r; l, r = l+1, r-1 {
		out[l], out[r] = out[r], out[l]
	}
	return out, nil
}

// DeleteAuditIndexOf deletes node's rows from the audit query index
// (every node's when node is "*"), to rebuild them from the logs.
func (s *Store) DeleteAuditIndexOf(ctx context.Context, node string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_index WHERE $1 = '*' OR node = $1`, node); err != nil {
			return fmt.Errorf("delete audit index of %s: %w", node, err)
		}
		return nil
	})
}

// AuditHit is one event the index found: which node's log, which event.
type AuditHit struct {
	Node  string
	Index uint64
	Time  time.Time
}

// SearchAuditNodes is SearchAudit over every node's rows: who did what
// across the system. Hits are ordered by time (then node and index),
// oldest first; Limit keeps the newest.
func (s *Store) SearchAuditNodes(ctx context.Context, q AuditQuery) ([]AuditHit, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	where, args, limit := q.clauses([]string{"TRUE"}, nil)
	rows, err := s.r.QueryContext(ctx, `SELECT node, idx, time FROM audit_index WHERE `+where+
		fmt.Sprintf(` ORDER BY time DESC, node DESC, idx DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("search audit index: %w", err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (AuditHit, error) {
		var h AuditHit
		var idx, t int64
		err := sc.Scan(&h.Node, &idx, &t)
		h.Index, h.Time = uint64(idx), fromNanos(t)
		return h, err
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}
