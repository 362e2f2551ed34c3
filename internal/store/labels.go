package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Taint labels across nodes.
//
// A node of several writes each taint label a session gets (what it has
// been exposed to: untrusted, private, …) to session_labels, and removes
// the ones an operator clears. On PostgreSQL, triggers put each added
// label on the change feed as a change of kind ChangeLabel and each
// removed one as ChangeUnlabel, with the subject SESSION "\t" LABEL
// (see [SplitLabelSubject]), so that every node holds the labels every
// other node gave the session.

// Change kinds of session labels.
const (
	ChangeLabel   = "label"
	ChangeUnlabel = "unlabel"
)

// SplitLabelSubject splits the subject of a ChangeLabel or ChangeUnlabel
// into the session and the label.
func SplitLabelSubject(subject string) (session, label string, ok bool) {
	return strings.Cut(subject, "\t")
}

// AddSessionLabels records that session has labels (those it has are
// left as they are).
func (s *Store) AddSessionLabels(ctx context.Context, session string, labels ...string) error {
	if err := checkName("session", session); err != nil {
		return fmt.Errorf("add session labels: %w", err)
	}
	for _, l := range labels {
		if err := checkName("label", l); err != nil {
			return fmt.Errorf("add session labels: %w", err)
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, l := range labels {
			if _, err := tx.ExecContext(ctx, `INSERT INTO session_labels (session, label, added) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				session, l, s.now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add labels of session %s: %w", session, err)
	}
	return nil
}

// RemoveSessionLabel removes a label of session; removing one it does not
// have is not an error.
func (s *Store) RemoveSessionLabel(ctx context.Context, session, label string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.w.ExecContext(ctx, `DELETE FROM session_labels WHERE session = $1 AND label = $2`, session, label); err != nil {
		return fmt.Errorf("remove label %s of session %s: %w", label, session, err)
	}
	return nil
}

// SessionLabels returns the labels recorded for session, sorted.
func (s *Store) SessionLabels(ctx context.Context, session string) ([]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT label FROM session_labels WHERE session = $1 ORDER BY label`, session)
	if err != nil {
		return nil, fmt.Errorf("labels of session %s: %w", session, err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
		var l string
		return l, sc.Scan(&l)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return out, err
}

// sqliteLabelSchema is migration 10 on SQLite.
var sqliteLabelSchema = []string{
	`CREATE TABLE session_labels (
		session TEXT NOT NULL,
		label   TEXT NOT NULL,
		added   INTEGER NOT NULL,
		PRIMARY KEY (session, label)
	) STRICT`,
}

// postgresLabelSchema is migration 10 on PostgreSQL.
var postgresLabelSchema = []string{
	`CREATE TABLE session_labels (
		session TEXT COLLATE "C" NOT NULL,
		label   TEXT COLLATE "C" NOT NULL,
		added   BIGINT NOT NULL,
		PRIMARY KEY (session, label)
	)`,
	`CREATE FUNCTION ward_label_change() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
	DECLARE
		nv BIGINT;
		subj TEXT;
	BEGIN
		IF TG_OP = 'DELETE' THEN
			subj := OLD.session || E'\t' || OLD.label;
		ELSE
			subj := NEW.session || E'\t' || NEW.label;
		END IF;
		UPDATE change_version SET v = v + 1 WHERE one = 1 RETURNING v INTO nv;
		INSERT INTO changes (seq, kind, subject, at)
			VALUES (nv, TG_ARGV[0], subj, (extract(epoch FROM clock_timestamp()) * 1000000000)::BIGINT);
		PERFORM pg_notify('` + ChangeChannel + `', TG_TABLE_SCHEMA || ' ' || nv::TEXT);
		RETURN NULL;
	END
	$$`,
	`CREATE TRIGGER session_labels_add AFTER INSERT ON session_labels FOR EACH ROW EXECUTE FUNCTION ward_label_change('` + ChangeLabel + `')`,
	`CREATE TRIGGER session_labels_remove AFTER DELETE ON session_labels FOR EACH ROW EXECUTE FUNCTION ward_label_change('` + ChangeUnlabel + `')`,
}

// PruneSessionLabels deletes the labels of sessions that ended before
// before, and returns how many it deleted.
func (s *Store) PruneSessionLabels(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `DELETE FROM session_labels WHERE session IN
		(SELECT id FROM sessions WHERE status = 'ended' AND ended < $1)`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune session labels: %w", err)
	}
	return res.RowsAffected()
}

// ActiveSessionLabels returns the recorded labels of every active
// session, by session.
func (s *Store) ActiveSessionLabels(ctx context.Context) (map[string][]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT l.session, l.label FROM session_labels l JOIN sessions s ON s.id = l.session
		WHERE s.status = 'active' ORDER BY l.session, l.label`)
	if err != nil {
		return nil, fmt.Errorf("labels of active sessions: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var session, label string
		if err := rows.Scan(&session, &label); err != nil {
			return nil, fmt.Errorf("labels of active sessions: %w", err)
		}
		out[session] = append(out[session], label)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("labels of active sessions: %w", err)
	}
	return out, nil
}
