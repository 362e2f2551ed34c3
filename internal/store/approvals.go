package store

import (
	"context"
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
