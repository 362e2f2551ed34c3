package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ApprovalRecord is one stored approval request: the columns queries
// select by, and the request itself as a JSON document the store does not
// interpret.
type ApprovalRecord struct {
	ID, Session, Sponsor, State, CallHash string
	Created                               time.Time
	Doc                                   []byte
}

// ApprovalFilter selects approval records; empty fields match everything.
type ApprovalFilter struct{ State, Session, Sponsor, CallHash string }

// PutApproval inserts or replaces an approval record.
func (s *Store) PutApproval(ctx context.Context, r ApprovalRecord) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := errors.Join(checkName("id", r.ID), checkName("session", r.Session), checkText("sponsor", r.Sponsor),
		checkName("state", r.State), checkText("call hash", r.CallHash), checkJSON("document", r.Doc), checkTime("created", r.Created)); err != nil {
		return fmt.Errorf("put approval %q: %w", r.ID, err)
	}
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO approvals (id, session, sponsor, state, call_hash, created, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)
		 ON CONFLICT (id) DO UPDATE SET state = excluded.state, doc = excluded.doc`,
		r.ID, r.Session, r.Sponsor, r.State, r.CallHash, r.Created.UnixNano(), string(r.Doc))
	if err != nil {
		return fmt.Errorf("put approval %q: %w", r.ID, err)
	}
	return nil
}

// GetApproval returns the document of one approval record or wraps
// ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) ([]byte, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var doc string
	if err := s.r.QueryRowContext(ctx, `SELECT doc FROM approvals WHERE id = $1`, id).Scan(&doc); err != nil {
		return nil, fmt.Errorf("get approval %q: %w", id, notFound(err))
	}
	return []byte(doc), nil
}

// ListApprovals returns the documents of the matching records, oldest
// first.
func (s *Store) ListApprovals(ctx context.Context, f ApprovalFilter) ([][]byte, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx,
		`SELECT doc FROM approvals
		  WHERE ($1 = '' OR state = $1) AND ($2 = '' OR session = $2) AND ($3 = '' OR sponsor = $3) AND ($4 = '' OR call_hash = $4)
		  ORDER BY created, id`, f.State, f.Session, f.Sponsor, f.CallHash)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		out = append(out, []byte(doc))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

// UpdateApproval changes one approval record in one transaction: it reads
// the record, holding it against every other writer (on PostgreSQL a row
// lock, so across nodes too), calls update with it and stores the state
// and document update returns. Concurrent UpdateApprovals of one record
// therefore run one after the other, each seeing the last one's result:
// votes counted this way are never lost and a quorum is reached by exactly
// one of them. update may run more than once (a retried transaction) and
// must not have other effects; its error is returned as is, and stores
// nothing. Only State and Doc change; an unknown id wraps ErrNotFound.
func (s *Store) UpdateApproval(ctx context.Context, id string, update func(ApprovalRecord) (ApprovalRecord, error)) (ApprovalRecord, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var out ApprovalRecord
	err := s.write(ctx, func(tx *sql.Tx) error {
		var (
			cur     ApprovalRecord
			created int64
			doc     string
		)
		err := tx.QueryRowContext(ctx,
			`SELECT id, session, sponsor, state, call_hash, created, doc FROM approvals WHERE id = $1`+s.forUpdate(), id).
			Scan(&cur.ID, &cur.Session, &cur.Sponsor, &cur.State, &cur.CallHash, &created, &doc)
		if err != nil {
			return notFound(err)
		}
		cur.Created, cur.Doc = fromNanos(created), []byte(doc)
		next, err := update(cur)
		if err != nil {
			return err
		}
		if err := errors.Join(checkName("state", next.State), checkJSON("document", next.Doc)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET state = $2, doc = $3 WHERE id = $1`, id, next.State, string(next.Doc)); err != nil {
			return err
		}
		out = cur
		out.State, out.Doc = next.State, append([]byte(nil), next.Doc...)
		return nil
	})
	if err != nil {
		return ApprovalRecord{}, fmt.Errorf("update approval %q: %w", id, err)
	}
	return out, nil
}
