package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Defaults for [Config].
const (
	// DefaultBusyTimeout is how long an SQLite connection waits for a lock
	// held by another process (a CLI sharing the file) before failing.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultTimeout bounds every store call. It exceeds DefaultBusyTimeout
	// so that a lock wait fails with SQLite's own error first.
	DefaultTimeout = 15 * time.Second
	// DefaultMaxReaders is the size of the SQLite read pool.
	DefaultMaxReaders = 8
)

// Config configures [OpenSQLite] (Path and the SQLite fields) and
// [OpenPostgres] (DSN and the PostgreSQL fields). Each constructor refuses
// a Config that sets the other's fields.
type Config struct {
	// Path is the SQLite database file. It is created with mode 0600 if
	// absent, and an existing file (with its -wal and -shm companions) is
	// tightened to 0600. Required; URIs (file:...), ":memory:" and paths
	// containing '?' are rejected.
	Path string
	// BusyTimeout is SQLite's busy_timeout; 0 means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// Timeout bounds each store call; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxReaders is the number of SQLite read connections; 0 means
	// DefaultMaxReaders.
	MaxReaders int

	// DSN is the PostgreSQL connection string, as a URL
	// (postgres://user:password@host:5432/db?sslmode=verify-full) or as
	// key=value pairs; the PG* environment variables and ~/.pgpass fill in
	// what it leaves out, as for libpq. It holds a secret: the store never
	// puts it in an error.
	DSN string
	// Schema is the PostgreSQL schema ward's tables live in, created on
	// first open if absent: several ward deployments may share one
	// database, each in its own schema. A lowercase identifier
	// ([a-z_][a-z0-9_]*, at most 63 bytes); "" means the first schema of
	// the connection's search_path (usually public).
	Schema string
	// MaxConns is the size of the PostgreSQL connection pool; 0 means
	// DefaultMaxConns.
	MaxConns int
	// Node names the ward node that opens the store, when several share
	// one PostgreSQL schema (cluster.go): the audit index describes this
	// node's log. [a-z0-9][a-z0-9-]*, at most 63 bytes; "" on SQLite.
	Node string
}

// OpenSQLite opens (creating if needed) the SQLite database at cfg.Path,
// brings its schema up to date, and returns a Store over it.
//
// Connections: all writes go through a pool of exactly one connection whose
// transactions begin IMMEDIATE. Go's connection pool then queues writers
// (each honouring its own context) instead of letting them race for
// SQLite's write lock, so concurrent writers in this process never see
// SQLITE_BUSY and a read-then-write transaction can never fail to upgrade
// its lock. Reads go through a separate pool of query-only connections; in
// WAL mode they neither block nor are blocked by the writer. busy_timeout
// covers the remaining contention, with other processes opening the same
// file. synchronous is FULL: an ended session must stay ended after a power
// loss.
//
// A database whose schema is newer than this binary understands is refused
// rather than guessed at.
func OpenSQLite(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxReaders == 0 {
		cfg.MaxReaders = DefaultMaxReaders
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := restrictFile(cfg.Path, true); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}

	busy := fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", sqliteDSN(cfg.Path,
		"_pragma", busy,
		"_pragma", "foreign_keys(1)",
		"_pragma", "journal_mode(WAL)",
		"_pragma", "synchronous(FULL)",
		"_txlock", "immediate"))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkWriter(ctx, w); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	if err := migrate(ctx, w, sqliteMigrations(), createSQLiteMigrations); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}

	r, err := sql.Open("sqlite", sqliteDSN(cfg.Path,
		"_pragma", busy,
		"_pragma", "foreign_keys(1)",
		"_pragma", "query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.MaxReaders)
	r.SetMaxIdleConns(cfg.MaxReaders)
	if err := r.PingContext(ctx); err != nil {
		_ = errors.Join(r.Close(), w.Close())
		return nil, fmt.Errorf("open sqlite %s: read pool: %w", cfg.Path, err)
	}
	// SQLite creates the -wal and -shm files with the main file's mode;
	// check rather than trust.
	if err := restrictFile(cfg.Path, false); err != nil {
		_ = errors.Join(r.Close(), w.Close())
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	s := &Store{w: w, r: r, where: cfg.Path, timeout: cfg.Timeout, now: time.Now}
	if err := s.prepare(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", cfg.Path, err)
	}
	return s, nil
}

func (c Config) validate() error {
	switch {
	case c.DSN != "" || c.Schema != "" || c.MaxConns != 0 || c.Node != "":
		return errors.New("the PostgreSQL fields (DSN, Schema, MaxConns) are set: use OpenPostgres")
	case c.Path == "":
		return errors.New("path is empty")
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:"):
		return fmt.Errorf("path %q: only plain file paths are supported", c.Path)
	case strings.ContainsAny(c.Path, "?\x00"):
		return fmt.Errorf("path %q contains '?' or NUL", c.Path)
	case c.BusyTimeout < 0:
		return errors.New("busy timeout is negative")
	case c.Timeout < 0:
		return errors.New("timeout is negative")
	case c.MaxReaders < 0:
		return errors.New("max readers is negative")
	}
	return nil
}

// sqliteDSN builds a modernc.org/sqlite DSN: the plain path, then query
// parameters given as key, value pairs.
func sqliteDSN(path string, kv ...string) string {
	q := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		q = append(q, url.QueryEscape(kv[i])+"="+url.QueryEscape(kv[i+1]))
	}
	return path + "?" + strings.Join(q, "&")
}

// restrictFile makes path (created if create is set) and its existing -wal
// and -shm companions regular files of mode 0600.
func restrictFile(path string, create bool) error {
	if create {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if fi.Mode().Perm() != 0o600 {
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkWriter fails closed if the pragmas the store relies on did not take.
func checkWriter(ctx context.Context, w *sql.DB) error {
	var mode string
	if err := w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not wal", mode)
	}
	var fk int
	if err := w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		return fmt.Errorf("read foreign keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign keys are off")
	}
	return nil
}

// createSQLiteMigrations creates SQLite's table of applied migrations.
func createSQLiteMigrations(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`)
	return err
}

// migrate applies, in one transaction, the migrations the database has not
// seen. Migration i (0-based) brings the schema to version i+1; each is a list
// of statements. setup runs first in the transaction: it takes whatever
// lock the backend needs and creates the table schema_migrations (version,
// applied) if absent.
func migrate(ctx context.Context, db *sql.DB, migrations [][]string, setup func(context.Context, *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := setup(ctx, tx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary supports (%d)", version, len(migrations))
	}
	for v := version + 1; v <= len(migrations); v++ {
		for _, stmt := range migrations[v-1] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate to version %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`, v, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migrate to version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// sqliteMigrations is the SQLite schema history. Append only: never edit a
// migration that has shipped.
func sqliteMigrations() [][]string {
	return [][]string{
		// 1: initial schema.
		{
			`CREATE TABLE principals (
				name    TEXT PRIMARY KEY,
				kind    TEXT NOT NULL CHECK (kind IN ('admin', 'sponsor', 'human', 'platform')),
				ceiling TEXT,
				created INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE credentials (
				id        TEXT PRIMARY KEY,
				principal TEXT NOT NULL REFERENCES principals (name),
				hash      BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
				created   INTEGER NOT NULL,
				revoked   INTEGER
			) STRICT`,
			`CREATE INDEX credentials_principal ON credentials (principal)`,
			`CREATE TABLE agents (
				name        TEXT PRIMARY KEY,
				sponsor     TEXT NOT NULL REFERENCES principals (name),
				groups_json TEXT NOT NULL,
				ceiling     TEXT,
				code_digest TEXT NOT NULL,
				status      TEXT NOT NULL CHECK (status IN ('active', 'quarantined')),
				created     INTEGER NOT NULL
			) STRICT`,
			`CREATE INDEX agents_sponsor ON agents (sponsor, name)`,
			`CREATE TABLE sessions (
				id             TEXT PRIMARY KEY,
				agent          TEXT NOT NULL REFERENCES agents (name),
				sponsor        TEXT NOT NULL,
				parent_id      TEXT REFERENCES sessions (id),
				root_id        TEXT NOT NULL,
				depth          INTEGER NOT NULL CHECK (depth >= 0),
				spiffe_id      TEXT NOT NULL,
				objective      TEXT NOT NULL,
				objective_hash TEXT NOT NULL,
				scope          TEXT,
				jkt            TEXT NOT NULL,
				grant_id       TEXT NOT NULL,
				status         TEXT NOT NULL CHECK (status IN ('active', 'ended')),
				end_reason     TEXT NOT NULL,
				created        INTEGER NOT NULL,
				expires        INTEGER NOT NULL,
				ended          INTEGER,
				CHECK ((status = 'ended') = (ended IS NOT NULL)),
				CHECK ((parent_id IS NULL) = (depth = 0))
			) STRICT`,
			`CREATE INDEX sessions_parent ON sessions (parent_id)`,
			`CREATE INDEX sessions_created ON sessions (created, id)`,
			`CREATE INDEX sessions_agent ON sessions (agent, created)`,
			`CREATE INDEX sessions_sponsor ON sessions (sponsor, created)`,
			`CREATE INDEX sessions_active_expires ON sessions (expires) WHERE status = 'active'`,
			`CREATE TABLE tool_pins (
				server        TEXT NOT NULL,
				tool          TEXT NOT NULL,
				hash          TEXT NOT NULL,
				definition    TEXT,
				approved_hash TEXT NOT NULL,
				approved_by   TEXT NOT NULL,
				updated       INTEGER NOT NULL,
				PRIMARY KEY (server, tool)
			) STRICT`,
			`CREATE TABLE meta (
				key   TEXT PRIMARY KEY,
				value TEXT NOT NULL
			) STRICT`,
		},
		// 2: an agent's trust score, 0-100 (policies read principal.trust).
		{
			`ALTER TABLE agents ADD COLUMN trust INTEGER NOT NULL DEFAULT 50 CHECK (trust BETWEEN 0 AND 100)`,
		},
		// 3: approval requests of escalated calls, so none is lost on a
		// restart. The request itself is an opaque JSON document; the
		// columns are what queries select by.
		{
			`CREATE TABLE approvals (
				id        TEXT PRIMARY KEY,
				session   TEXT NOT NULL,
				sponsor   TEXT NOT NULL,
				state     TEXT NOT NULL,
				call_hash TEXT NOT NULL,
				created   INTEGER NOT NULL,
				doc       TEXT NOT NULL
			) STRICT`,
			`CREATE INDEX approvals_session ON approvals (session, call_hash)`,
			`CREATE INDEX approvals_state ON approvals (state, created)`,
		},
		// 4: the objective tags a session declared (a JSON array).
		{
			`ALTER TABLE sessions ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'`,
		},
		// 5: a query index over the audit log (derived; the log stays the
		// source of truth and the index can be rebuilt from it).
		auditIndexSchema,
		// 6: the tool names each server offered: the first set it ever
		// listed (what trust on first use covers) and the last one seen
		// (to record changes). JSON arrays of names, sorted.
		{
			`CREATE TABLE tool_sets (
				server  TEXT PRIMARY KEY,
				first   TEXT NOT NULL,
				last    TEXT NOT NULL,
				created INTEGER NOT NULL,
				updated INTEGER NOT NULL
			) STRICT`,
		},
		// 7: active sessions by delegation tree, to bound a tree's size.
		{
			`CREATE INDEX sessions_root_active ON sessions (root_id) WHERE status = 'active'`,
		},
		// 8: several nodes on one store (cluster.go): sealed secrets, the
		// change feed, and the audit index by node.
		sqliteClusterSchema,
		// 9: leases of budgets shared by several nodes (leases.go).
		sqliteLeaseSchema,
		// 10: taint labels of sessions, shared by several nodes (labels.go).
		sqliteLabelSchema,
		// 11: the newest checkpoint each node published of its audit log (auditheads.go).
		sqliteAuditHeadsSchema,
		// 12: cosignatures of each node's audit heads by the others (cosignatures.go).
		sqliteCosignSchema,
		// 13: hand-overs of each node's audit log key, kept for peers that were offline (handovers.go).
		sqliteHandoverSchema,
		// 14: the audit index's entries and each node's log tiles, to read another node's events (tiles.go).
		slices.Concat(auditIndexEntry, sqliteTilesSchema),
	}
}
