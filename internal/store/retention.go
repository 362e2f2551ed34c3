package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Retention: what an operator may delete from the store once it is old
// enough. The audit log, which records every session, approval and call,
// is never touched; these only drop rows the store keeps to serve and
// list them.

// endedTrees selects the root_id of every delegation tree whose sessions
// have all ended before $1: a tree is pruned whole, so a session's parent
// is never deleted before it (sessions.parent_id references sessions.id)
// and a tree with one session still active keeps all of them.
const endedTrees = `SELECT root_id FROM sessions GROUP BY root_id
	HAVING SUM(CASE WHEN status = 'ended' AND ended < $1 THEN 0 ELSE 1 END) = 0`

// PruneSessions deletes, in one transaction, the sessions of every
// delegation tree whose sessions all ended before before, and their taint
// labels; it returns how many sessions it deleted. A deleted session is
// not found afterwards, so its grant and certificates, already refused as
// ended, stay refused.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM session_labels WHERE session IN
			(SELECT id FROM sessions WHERE root_id IN (`+endedTrees+`))`, before.UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE root_id IN (`+endedTrees+`)`, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	return n, nil
}

// PruneApprovals deletes the approval records created before before whose
// state is one of final, or one of finalOnceEnded while their session is
// not active (ended, pruned or unknown), and returns how many it deleted.
// The store does not interpret states; the approval queue names them
// (internal/approval: denied, expired and used are final, an approval
// stays redeemable while its session lives).
func (s *Store) PruneApprovals(ctx context.Context, before time.Time, final, finalOnceEnded []string) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	args := []any{before.UnixNano()}
	in := func(states []string) string {
		if len(states) == 0 {
			return "FALSE"
		}
		ph := make([]string, len(states))
		for i, st := range states {
			args = append(args, st)
			ph[i] = fmt.Sprintf("$%d", len(args))
		}
		return "state IN (" + strings.Join(ph, ", ") + ")"
	}
	q := `DELETE FROM approvals WHERE created < $1 AND (` + in(final) + ` OR (` + in(finalOnceEnded) +
		` AND session NOT IN (SELECT id FROM sessions WHERE status = 'active')))`
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("prune approvals: %w", err)
	}
	return res.RowsAffected()
}
