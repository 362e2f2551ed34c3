package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Several nodes on one store.
//
// Several ward nodes may share one PostgreSQL schema and behave as one
// system. Three things in the store serve them (migration 8):
//
//   - sealed: secrets every node needs (the trust domain's CA and signing
//     keys), stored as opaque blobs that the caller has encrypted. [Store.Sealed]
//     returns the blob of a name, creating it once: when several nodes
//     start at once on a fresh schema, exactly one creates it (under a
//     transaction-scoped advisory lock) and the others read that one.
//     [Store.UpdateSealed] replaces one under the same lock (a key
//     rotation) and puts a [ChangeKeys] change on the feed.
//   - the change feed: on PostgreSQL, triggers record every change another
//     node must act on at once (a session ended, an agent's status or
//     trust changed, an approval submitted or decided) as a row of
//     changes, numbered by change_version, and NOTIFY the channel
//     [ChangeChannel] with the schema and the new version. The triggers
//     take the single row of change_version for update, so versions are
//     assigned in commit order and without gaps: a reader that sees
//     version v committed has seen every change numbered up to v. A node
//     polls [Store.ChangeVersion] (cheap: one row) and reads
//     [Store.ChangesSince] what it has not applied; LISTEN
//     ([Store.ListenChanges]) only makes it poll sooner.
//   - the audit index by node: each node indexes its own audit log, so
//     audit_index rows carry the node (Config.Node) whose log they
//     describe, and every audit index method reads and writes the rows
//     of the store's own node only.
//
// SQLite has the tables (the two backends keep the same ones) but no
// triggers: one node has no one to tell.

// ChangeChannel is the PostgreSQL NOTIFY channel of the change feed. The
// payload is "SCHEMA VERSION".
const ChangeChannel = "ward_changes"

// Change kinds, the tables whose rows changed.
const (
	ChangeSession  = "session"  // a session's status changed (it ended)
	ChangeAgent    = "agent"    // an agent's status or trust changed
	ChangeApproval = "approval" // an approval was submitted or changed
)

// nodeName is what Config.Node may be.
var nodeName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidNodeName reports whether name may name a node (Config.Node).
func ValidNodeName(name string) bool { return nodeName.MatchString(name) }

// sqliteClusterSchema is migration 8 on SQLite.
var sqliteClusterSchema = append([]string{
	`CREATE TABLE sealed (
		name    TEXT PRIMARY KEY,
		blob    BLOB NOT NULL,
		created INTEGER NOT NULL
	) STRICT`,
	`CREATE TABLE change_version (
		one INTEGER PRIMARY KEY CHECK (one = 1),
		v   INTEGER NOT NULL
	) STRICT`,
	`INSERT INTO change_version (one, v) VALUES (1, 0)`,
	`CREATE TABLE changes (
		seq     INTEGER PRIMARY KEY,
		kind    TEXT NOT NULL,
		subject TEXT NOT NULL,
		at      INTEGER NOT NULL
	) STRICT`,
	`CREATE INDEX changes_at ON changes (at)`,
}, sqliteAuditIndexByNode...)

// sqliteAuditIndexByNode adds the node column to the audit index. SQLite
// has one node only, so its rows all have node ” and idx stays the key.
var sqliteAuditIndexByNode = []string{
	`ALTER TABLE audit_index ADD COLUMN node TEXT NOT NULL DEFAULT ''`,
}

// postgresAuditIndexByNode adds the node column to the audit index and
// makes (node, idx) its key.
var postgresAuditIndexByNode = []string{
	`ALTER TABLE audit_index ADD COLUMN node TEXT COLLATE "C" NOT NULL DEFAULT ''`,
	`ALTER TABLE audit_index DROP CONSTRAINT audit_index_pkey`,
	`ALTER TABLE audit_index ADD PRIMARY KEY (node, idx)`,
}

// postgresClusterSchema is migration 8 on PostgreSQL.
var postgresClusterSchema = append([]string{
	`CREATE TABLE sealed (
		name    TEXT COLLATE "C" PRIMARY KEY,
		blob    BYTEA NOT NULL,
		created BIGINT NOT NULL
	)`,
	`CREATE TABLE change_version (
		one INTEGER PRIMARY KEY CHECK (one = 1),
		v   BIGINT NOT NULL
	)`,
	`INSERT INTO change_version (one, v) VALUES (1, 0)`,
	`CREATE TABLE changes (
		seq     BIGINT PRIMARY KEY,
		kind    TEXT COLLATE "C" NOT NULL,
		subject TEXT COLLATE "C" NOT NULL,
		at      BIGINT NOT NULL
	)`,
	`CREATE INDEX changes_at ON changes (at)`,
	// The function runs with the search_path it was created with (the
	// store's schema), whoever's session fires it.
	`CREATE FUNCTION ward_change() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
	DECLARE
		nv BIGINT;
		subj TEXT;
	BEGIN
		IF TG_TABLE_NAME = 'agents' THEN
			subj := NEW.name;
		ELSE
			subj := NEW.id;
		END IF;
		UPDATE change_version SET v = v + 1 WHERE one = 1 RETURNING v INTO nv;
		INSERT INTO changes (seq, kind, subject, at)
			VALUES (nv, TG_ARGV[0], subj, (extract(epoch FROM clock_timestamp()) * 1000000000)::BIGINT);
		PERFORM pg_notify('` + ChangeChannel + `', TG_TABLE_SCHEMA || ' ' || nv::TEXT);
		RETURN NULL;
	END
	$$`,
	`CREATE TRIGGER sessions_change AFTER UPDATE ON sessions FOR EACH ROW
		WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION ward_change('session')`,
	`CREATE TRIGGER agents_change AFTER UPDATE ON agents FOR EACH ROW
		WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.trust IS DISTINCT FROM NEW.trust) EXECUTE FUNCTION ward_change('agent')`,
	`CREATE TRIGGER approvals_insert AFTER INSERT ON approvals FOR EACH ROW EXECUTE FUNCTION ward_change('approval')`,
	`CREATE TRIGGER approvals_change AFTER UPDATE ON approvals FOR EACH ROW
		WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION ward_change('approval')`,
}, postgresAuditIndexByNode...)

// MaxSealedLen bounds a sealed blob.
const MaxSealedLen = 1 << 20

// Sealed returns the blob stored under name, calling create to make it if
// there is none. Of several callers at once (on several nodes) exactly one
// creates it; the others wait for it and return what it created. created
// reports whether this call created the blob. create runs inside the
// store's transaction and should be quick (generating keys is fine).
func (s *Store) Sealed(ctx context.Context, name string, create func() ([]byte, error)) (blob []byte, created bool, err error) {
	if err := checkName("sealed name", name); err != nil {
		return nil, false, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	err = s.write(ctx, func(tx *sql.Tx) error {
		blob, created = nil, false
		if s.pg {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, sealedLock(s.schema, name)); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		err := tx.QueryRowContext(ctx, `SELECT blob FROM sealed WHERE name = $1`, name).Scan(&blob)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		b, err := create()
		if err != nil {
			return err
		}
		if len(b) == 0 || len(b) > MaxSealedLen {
			return fmt.Errorf("a sealed blob is 1 to %d bytes, not %d", MaxSealedLen, len(b))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sealed (name, blob, created) VALUES ($1, $2, $3)`,
			name, b, s.now().UnixNano()); err != nil {
			return err
		}
		blob, created = b, true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("sealed %s: %w", name, err)
	}
	return blob, created, nil
}

// ChangeKeys is the change feed's kind for a sealed blob replaced by
// UpdateSealed (the subject is its name): the system's keys were rotated
// or retired, and every node loads them again.
const ChangeKeys = "keys"

// UpdateSealed replaces the blob stored under name with what update makes
// of it, under the same lock as Sealed, so that changes made on several
// nodes at once apply one after the other, each to the result of the one
// before. update returning nil leaves the blob as it is (changed false).
// On PostgreSQL a change is put on the change feed (ChangeKeys) in the
// same transaction. The blob must exist. It returns the blob now stored.
func (s *Store) UpdateSealed(ctx context.Context, name string, update func(old []byte) ([]byte, error)) (blob []byte, changed bool, err error) {
	if err := checkName("sealed name", name); err != nil {
		return nil, false, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	err = s.write(ctx, func(tx *sql.Tx) error {
		blob, changed = nil, false
		if s.pg {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, sealedLock(s.schema, name)); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		var old []byte
		if err := tx.QueryRowContext(ctx, `SELECT blob FROM sealed WHERE name = $1`, name).Scan(&old); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: no sealed %s", ErrNotFound, name)
			}
			return err
		}
		b, err := update(old)
		if err != nil {
			return err
		}
		if b == nil {
			blob = old
			return nil
		}
		if len(b) > MaxSealedLen {
			return fmt.Errorf("a sealed blob is 1 to %d bytes, not %d", MaxSealedLen, len(b))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sealed SET blob = $1 WHERE name = $2`, b, name); err != nil {
			return err
		}
		if s.pg {
			var v int64
			if err := tx.QueryRowContext(ctx, `UPDATE change_version SET v = v + 1 WHERE one = 1 RETURNING v`).Scan(&v); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO changes (seq, kind, subject, at) VALUES ($1, $2, $3, $4)`,
				v, ChangeKeys, name, s.now().UnixNano()); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, ChangeChannel, s.schema+" "+strconv.FormatInt(v, 10)); err != nil {
				return err
			}
		}
		blob, changed = b, true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("update sealed %s: %w", name, err)
	}
	return blob, changed, nil
}

// sealedLock is the advisory lock key under which name's sealed blob is
// created in schema.
func sealedLock(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("ward/store/sealed/" + schema + "/" + name))
	return int64(h.Sum64())
}

// Change is one entry of the change feed: the row named Subject of the
// table Kind changed.
type Change struct {
	Seq     uint64
	Kind    string
	Subject string
	At      time.Time
}

// ChangeVersion returns the number of the newest committed change (0 if
// none). Every change numbered up to it is readable with ChangesSince.
func (s *Store) ChangeVersion(ctx context.Context) (uint64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var v int64
	if err := s.r.QueryRowContext(ctx, `SELECT v FROM change_version WHERE one = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("change version: %w", err)
	}
	return uint64(v), nil
}

// ChangesSince returns the changes numbered after seq, oldest first, at
// most limit of them. A first change numbered above seq+1 means the feed
// was pruned past seq: the caller has missed changes and must resync
// from the store's state.
func (s *Store) ChangesSince(ctx context.Context, seq uint64, limit int) ([]Change, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if limit <= 0 || limit > 100_000 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, kind, subject, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT `+strconv.Itoa(limit), int64(seq))
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (Change, error) {
		var c Change
		var seq, at int64
		err := sc.Scan(&seq, &c.Kind, &c.Subject, &at)
		c.Seq, c.At = uint64(seq), fromNanos(at)
		return c, err
	})
}

// PruneChanges deletes changes recorded before before, and returns how
// many it deleted.
func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `DELETE FROM changes WHERE at < $1`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune changes: %w", err)
	}
	return res.RowsAffected()
}

// ChangeListener receives the change feed's notifications for one
// store's schema over a connection of its own.
type ChangeListener struct {
	conn   *pgx.Conn
	schema string
}

// ListenChanges opens a connection that LISTENs on ChangeChannel. It
// fails on SQLite, which has no notifications (nor other nodes).
func (s *Store) ListenChanges(ctx context.Context) (*ChangeListener, error) {
	if !s.pg || s.pgcfg == nil {
		return nil, errors.New("listen for changes: only a PostgreSQL store has a change feed")
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.pgcfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("listen for changes: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+ChangeChannel); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("listen for changes: %w", err)
	}
	return &ChangeListener{conn: conn, schema: s.schema}, nil
}

// Wait blocks until a change of the listener's schema is notified, and
// returns its version, or until ctx is done. An error other than ctx's
// means the connection is lost: close the listener and open another.
func (l *ChangeListener) Wait(ctx context.Context) (uint64, error) {
	for {
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			return 0, err
		}
		schema, v, ok := strings.Cut(n.Payload, " ")
		if !ok || schema != l.schema {
			continue
		}
		seq, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		return seq, nil
	}
}

// Close closes the listener's connection.
func (l *ChangeListener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.conn.Close(ctx)
}
