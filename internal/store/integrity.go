package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Damage is a table that failed the backend's integrity check, with what
// the check said.
type Damage struct {
	Table  string
	Detail string
}

// Derived reports whether the table only holds what can be rebuilt from
// the audit log (the query index), so that ward may rebuild it itself.
func (d Damage) Derived() bool { return d.Table == "audit_index" }

// CheckIntegrity checks every table, one at a time, and returns the
// damaged ones, naming each. On SQLite it runs the quick check; on
// PostgreSQL it reads every table in full and, where the amcheck extension
// is installed, checks every table and B-tree index with it (postgres.go).
func (s *Store) CheckIntegrity(ctx context.Context) ([]Damage, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if s.pg {
		return s.checkPostgres(ctx)
	}
	rows, err := s.w.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("integrity check: list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, fmt.Errorf("integrity check: %w", err)
		}
		tables = append(tables, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	var out []Damage
	for _, t := range tables {
		var lines []string
		rows, err := s.w.QueryContext(ctx, `PRAGMA quick_check(`+quoteIdent(t)+`)`)
		if err != nil {
			out = append(out, Damage{Table: t, Detail: err.Error()})
			continue
		}
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				lines = append(lines, err.Error())
				break
			}
			if l != "ok" {
				lines = append(lines, l)
			}
		}
		if err := rows.Err(); err != nil {
			lines = append(lines, err.Error())
		}
		rows.Close()
		if len(lines) > 0 {
			out = append(out, Damage{Table: t, Detail: joinLines(lines)})
		}
	}
	return out, nil
}

// joinLines makes one line of (at most three of) a check's lines.
func joinLines(lines []string) string {
	lines = lines[:min(len(lines), 3)]
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, "\n", " ")
	}
	return strings.Join(lines, "; ")
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// auditIndexSchema creates the audit index (migration 5).
var auditIndexSchema = []string{
	`CREATE TABLE audit_index (
		idx      INTEGER PRIMARY KEY,
		time     INTEGER NOT NULL,
		type     TEXT NOT NULL,
		session  TEXT NOT NULL,
		agent    TEXT NOT NULL,
		sponsor  TEXT NOT NULL,
		name     TEXT NOT NULL,
		decision TEXT NOT NULL
	) STRICT`,
	`CREATE INDEX audit_index_session ON audit_index (session, idx)`,
	`CREATE INDEX audit_index_agent ON audit_index (agent, idx)`,
	`CREATE INDEX audit_index_sponsor ON audit_index (sponsor, idx)`,
	`CREATE INDEX audit_index_name ON audit_index (name, idx)`,
	`CREATE INDEX audit_index_type ON audit_index (type, idx)`,
}

// ResetAuditIndex throws the audit index away and creates it empty, to be
// rebuilt from the log. On SQLite a damaged index cannot always be dropped
// the ordinary way (dropping reads its pages): then it is taken out of the
// schema and the database rewritten (VACUUM) without it. On PostgreSQL the
// table is dropped and created again in one transaction.
func (s *Store) ResetAuditIndex(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if s.pg {
		return s.resetPostgresAuditIndex(ctx)
	}
	if _, err := s.w.ExecContext(ctx, `DROP TABLE IF EXISTS audit_index`); err != nil {
		for _, stmt := range []string{
			`PRAGMA writable_schema = ON`,
			`DELETE FROM sqlite_schema WHERE tbl_name = 'audit_index'`,
			`PRAGMA writable_schema = OFF`,
			`VACUUM`,
		} {
			if _, err := s.w.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("reset audit index: %s: %w", stmt, err)
			}
		}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, stmt := range slices.Concat(auditIndexSchema, sqliteAuditIndexByNode, auditIndexEntry) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("reset audit index: %w", err)
			}
		}
		return nil
	})
}

// LastIndexed returns the newest row of the audit index, or ok false if
// it is empty: what the store believes the log holds.
func (s *Store) LastIndexed(ctx context.Context) (row AuditRow, ok bool, err error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var idx, t int64
	err = s.r.QueryRowContext(ctx, `SELECT idx, time, type, session, agent, sponsor, name, decision FROM audit_index WHERE node = $1 ORDER BY idx DESC LIMIT 1`, s.node).
		Scan(&idx, &t, &row.Type, &row.Session, &row.Agent, &row.Sponsor, &row.Name, &row.Decision)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditRow{}, false, nil
	}
	if err != nil {
		return AuditRow{}, false, fmt.Errorf("audit index: %w", err)
	}
	row.Index = uint64(idx)
	row.Time = fromNanos(t)
	return row, true, nil
}

// Empty reports whether the store holds no principal at all: never
// bootstrapped, or lost.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM principals`).Scan(&n); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return n == 0, nil
}
