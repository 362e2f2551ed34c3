package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL backend.
//
// # Layout
//
// The tables are those of SQLite, in one schema (Config.Schema), with the
// same columns and the same meaning: times are BIGINT Unix nanoseconds (not
// timestamptz, which keeps microseconds only), JSON is TEXT kept byte for
// byte (not jsonb, which rewrites it), and every text column that is
// compared or ordered is COLLATE "C", so that PostgreSQL orders and
// compares names bytewise as SQLite does, whatever the database's locale.
// Every method runs the same SQL on both backends; only the locks below,
// the schema's DDL, CheckIntegrity and ResetAuditIndex differ.
//
// # Migrations
//
// postgresMigrations mirrors sqliteMigrations version for version (a test
// keeps them the same length and their tables and columns the same).
// OpenPostgres applies what is missing in one transaction that first takes
// a transaction-scoped advisory lock named after the schema
// (pg_advisory_xact_lock): when several nodes start at once on a fresh
// database, one migrates and the others wait, then find the schema current
// and apply nothing. PostgreSQL's DDL is transactional, so a migration
// that fails leaves nothing half done. A schema newer than this binary is
// refused, as on SQLite.
//
// # Consistency: READ COMMITTED and row locks
//
// Write transactions run at PostgreSQL's default isolation, READ
// COMMITTED, where every statement sees what was committed before it
// began. Where a transaction reads and then writes on the strength of what
// it read, it first locks the rows that decide, so that transactions on the
// same rows run one after the other, as SQLite's single writer runs all of
// them:
//
//   - a delegation tree: creating a child, ending a session (and its
//     subtree), expiring sessions and counting a tree's active sessions
//     against Session.MaxTree all lock the row of the tree's root
//     (SELECT … FOR UPDATE) before reading the tree; ExpireSessions locks
//     the trees it ends in the order of their root ids;
//   - an agent: CreateSession share-locks the agent's row (FOR SHARE), so a
//     quarantine (SetAgentStatus) waits for sessions being created and a
//     caller that quarantines and then ends the agent's sessions ends them
//     all;
//   - a tool pin and a server's tool set (ObservePin, ObserveToolSet):
//     INSERT … ON CONFLICT DO NOTHING first, so that of concurrent first
//     observations exactly one creates the row (the others wait for it),
//     then SELECT … FOR UPDATE of the row and the update;
//   - an approval (UpdateApproval): SELECT … FOR UPDATE, then the update.
//
// Every other write is a single statement (an upsert, a conditional
// UPDATE), atomic by itself. SERIALIZABLE was the alternative; it was not
// chosen because it aborts, rather than queues, the contended case the
// contract suite exercises (twenty delegations racing for the last places
// of one tree), and so turns contention into retries. A transaction that
// still fails with a serialization failure (SQLSTATE 40001) or a deadlock
// (40P01) is retried from the start, at most maxTxAttempts times in all,
// with a short randomized backoff.
//
// # Integrity
//
// CheckIntegrity reads every table of the schema in full (with data
// checksums enabled, PostgreSQL verifies each page it reads) and, where the
// amcheck extension is installed and the role may use it, checks every
// table's heap (verify_heapam) and every B-tree index against its table
// (bt_index_check with heapallindexed). Both only take the locks a reader
// takes. ward never installs amcheck itself: CREATE EXTENSION amcheck in
// the database to have indexes checked.

// Defaults for the PostgreSQL fields of [Config].
const (
	// DefaultMaxConns is the size of the PostgreSQL connection pool.
	DefaultMaxConns = 10
	// maxTxAttempts bounds how often a write transaction is run when
	// PostgreSQL aborts it with a serialization failure or a deadlock.
	maxTxAttempts = 10
)

// schemaName is what Config.Schema may be: a plain, lowercase identifier
// that needs no quoting in search_path or in SQL.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// OpenPostgres connects to the PostgreSQL database cfg.DSN names, brings
// the schema cfg.Schema up to date (creating it if absent) and returns a
// Store over it. Several nodes may open the same database and schema at
// once and share the Store's data: see the package's PostgreSQL notes
// (postgres.go) for what is locked and what is retried. The database must
// use the UTF8 encoding.
func OpenPostgres(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validatePostgres(); err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("open postgres: the DSN is not a valid PostgreSQL connection string (postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=... or host=... user=... dbname=...)")
	}
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	if cfg.Schema != "" {
		cc.RuntimeParams["search_path"] = cfg.Schema
	}
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "ward"
	}
	where := fmt.Sprintf("database %q on %s:%d", cc.Database, cc.Host, cc.Port)
	db := stdlib.OpenDB(*cc)
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	fail := func(err error) (*Store, error) {
		_ = db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	var encoding string
	if err := db.QueryRowContext(ctx, `SHOW server_encoding`).Scan(&encoding); err != nil {
		return fail(err)
	}
	if encoding != "UTF8" {
		return fail(fmt.Errorf("the database's encoding is %s; ward needs UTF8 (CREATE DATABASE … ENCODING 'UTF8')", encoding))
	}
	schema := cfg.Schema
	if schema == "" {
		var cur sql.NullString
		if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
			return fail(err)
		}
		if !cur.Valid {
			return fail(errors.New("no schema of the connection's search_path exists: name one with the store's schema setting (ward creates it) or create it"))
		}
		schema = cur.String
	}
	if err := migrate(ctx, db, postgresMigrations(), postgresMigrationSetup(cfg.Schema, schema)); err != nil {
		return fail(err)
	}
	s := &Store{w: db, r: db, pg: true, schema: schema, node: cfg.Node, pgcfg: cc, where: fmt.Sprintf("PostgreSQL %s, schema %s", where, schema),
		timeout: cfg.Timeout, now: time.Now}
	if err := s.prepare(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	return s, nil
}

func (c Config) validatePostgres() error {
	switch {
	case c.Path != "" || c.BusyTimeout != 0 || c.MaxReaders != 0:
		return errors.New("the SQLite fields (Path, BusyTimeout, MaxReaders) are set: use OpenSQLite")
	case c.DSN == "":
		return errors.New("the DSN is empty")
	case c.Schema != "" && !schemaName.MatchString(c.Schema):
		return fmt.Errorf("schema %q is not a lowercase identifier ([a-z_][a-z0-9_]*, at most 63 bytes)", c.Schema)
	case c.Node != "" && !nodeName.MatchString(c.Node):
		return fmt.Errorf("node %q is not a node name ([a-z0-9][a-z0-9-]*, at most 63 bytes)", c.Node)
	case c.Timeout < 0:
		return errors.New("timeout is negative")
	case c.MaxConns < 0:
		return errors.New("max conns is negative")
	}
	return nil
}

// migrationLock is the advisory lock key under which schema's migrations
// run (and the audit index is reset).
func migrationLock(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("ward/store/migrate/" + schema))
	return int64(h.Sum64())
}

// postgresMigrationSetup locks schema's migrations for the transaction,
// creates the schema if create names it and it is absent, and creates the
// table of applied migrations.
func postgresMigrationSetup(create, schema string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock(schema)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if create != "" {
			// CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even
			// when the schema exists; look first.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1`, create).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				if _, err := tx.ExecContext(ctx, `CREATE SCHEMA `+quoteIdent(create)); err != nil {
					return fmt.Errorf("create schema %s: %w", create, err)
				}
			}
		}
		_, err := tx.ExecContext(ctx,
			`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`)
		return err
	}
}

// retryable reports a PostgreSQL error after which the whole transaction
// may succeed if run again: a serialization failure or a deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// backoff waits a random time that grows with attempt (at most 50 ms),
// or until ctx is done.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(min(attempt, 10)) * int64(5*time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// postgresTables are ward's tables; CheckIntegrity checks these (and no
// other table that shares the schema).
var postgresTables = []string{"agents", "approvals", "audit_cosignatures", "audit_handovers", "audit_heads", "audit_index", "audit_tiles", "budget_leases", "change_version", "changes", "credentials", "meta", "principals",
	"schema_migrations", "sealed", "session_labels", "sessions", "tool_pins", "tool_sets"}

// postgresMigrations is the PostgreSQL schema history, version for version
// the same schema as sqliteMigrations. Append only: never edit a migration
// that has shipped, and add each new one to both lists.
func postgresMigrations() [][]string {
	return [][]string{
		// 1: initial schema.
		{
			`CREATE TABLE principals (
				name    TEXT COLLATE "C" PRIMARY KEY,
				kind    TEXT COLLATE "C" NOT NULL CHECK (kind IN ('admin', 'sponsor', 'human', 'platform')),
				ceiling TEXT,
				created BIGINT NOT NULL
			)`,
			`CREATE TABLE credentials (
				id        TEXT COLLATE "C" PRIMARY KEY,
				principal TEXT COLLATE "C" NOT NULL REFERENCES principals (name),
				hash      BYTEA NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
				created   BIGINT NOT NULL,
				revoked   BIGINT
			)`,
			`CREATE INDEX credentials_principal ON credentials (principal)`,
			`CREATE TABLE agents (
				name        TEXT COLLATE "C" PRIMARY KEY,
				sponsor     TEXT COLLATE "C" NOT NULL REFERENCES principals (name),
				groups_json TEXT NOT NULL,
				ceiling     TEXT,
				code_digest TEXT COLLATE "C" NOT NULL,
				status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('active', 'quarantined')),
				created     BIGINT NOT NULL
			)`,
			`CREATE INDEX agents_sponsor ON agents (sponsor, name)`,
			`CREATE TABLE sessions (
				id             TEXT COLLATE "C" PRIMARY KEY,
				agent          TEXT COLLATE "C" NOT NULL REFERENCES agents (name),
				sponsor        TEXT COLLATE "C" NOT NULL,
				parent_id      TEXT COLLATE "C" REFERENCES sessions (id),
				root_id        TEXT COLLATE "C" NOT NULL,
				depth          INTEGER NOT NULL CHECK (depth >= 0),
				spiffe_id      TEXT COLLATE "C" NOT NULL,
				objective      TEXT NOT NULL,
				objective_hash TEXT COLLATE "C" NOT NULL,
				scope          TEXT,
				jkt            TEXT COLLATE "C" NOT NULL,
				grant_id       TEXT COLLATE "C" NOT NULL,
				status         TEXT COLLATE "C" NOT NULL CHECK (status IN ('active', 'ended')),
				end_reason     TEXT NOT NULL,
				created        BIGINT NOT NULL,
				expires        BIGINT NOT NULL,
				ended          BIGINT,
				CHECK ((status = 'ended') = (ended IS NOT NULL)),
				CHECK ((parent_id IS NULL) = (depth = 0))
			)`,
			`CREATE INDEX sessions_parent ON sessions (parent_id)`,
			`CREATE INDEX sessions_created ON sessions (created, id)`,
			`CREATE INDEX sessions_agent ON sessions (agent, created)`,
			`CREATE INDEX sessions_sponsor ON sessions (sponsor, created)`,
			`CREATE INDEX sessions_active_expires ON sessions (expires) WHERE status = 'active'`,
			`CREATE TABLE tool_pins (
				server        TEXT COLLATE "C" NOT NULL,
				tool          TEXT COLLATE "C" NOT NULL,
				hash          TEXT COLLATE "C" NOT NULL,
				definition    TEXT,
				approved_hash TEXT COLLATE "C" NOT NULL,
				approved_by   TEXT COLLATE "C" NOT NULL,
				updated       BIGINT NOT NULL,
				PRIMARY KEY (server, tool)
			)`,
			`CREATE TABLE meta (
				key   TEXT COLLATE "C" PRIMARY KEY,
				value TEXT NOT NULL
			)`,
		},
		// 2: an agent's trust score, 0-100 (policies read principal.trust).
		{
			`ALTER TABLE agents ADD COLUMN trust INTEGER NOT NULL DEFAULT 50 CHECK (trust BETWEEN 0 AND 100)`,
		},
		// 3: approval requests of escalated calls.
		{
			`CREATE TABLE approvals (
				id        TEXT COLLATE "C" PRIMARY KEY,
				session   TEXT COLLATE "C" NOT NULL,
				sponsor   TEXT COLLATE "C" NOT NULL,
				state     TEXT COLLATE "C" NOT NULL,
				call_hash TEXT COLLATE "C" NOT NULL,
				created   BIGINT NOT NULL,
				doc       TEXT NOT NULL
			)`,
			`CREATE INDEX approvals_session ON approvals (session, call_hash)`,
			`CREATE INDEX approvals_state ON approvals (state, created)`,
		},
		// 4: the objective tags a session declared (a JSON array).
		{
			`ALTER TABLE sessions ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'`,
		},
		// 5: the audit query index.
		postgresAuditIndexSchema,
		// 6: the tool names each server offered, first and last.
		{
			`CREATE TABLE tool_sets (
				server  TEXT COLLATE "C" PRIMARY KEY,
				first   TEXT NOT NULL,
				last    TEXT NOT NULL,
				created BIGINT NOT NULL,
				updated BIGINT NOT NULL
			)`,
		},
		// 7: active sessions by delegation tree, to bound a tree's size.
		{
			`CREATE INDEX sessions_root_active ON sessions (root_id) WHERE status = 'active'`,
		},
		// 8: several nodes on one store (cluster.go): sealed secrets, the
		// change feed and its triggers, and the audit index by node.
		postgresClusterSchema,
		// 9: leases of budgets shared by several nodes (leases.go).
		postgresLeaseSchema,
		// 10: taint labels of sessions, shared by several nodes (labels.go).
		postgresLabelSchema,
		// 11: the newest checkpoint each node published of its audit log (auditheads.go).
		postgresAuditHeadsSchema,
		// 12: cosignatures of each node's audit heads by the others (cosignatures.go).
		postgresCosignSchema,
		// 13: hand-overs of each node's audit log key, kept for peers that were offline (handovers.go).
		postgresHandoverSchema,
		// 14: the audit index's entries and each node's log tiles, to read another node's events (tiles.go).
		slices.Concat(auditIndexEntry, postgresTilesSchema),
	}
}

// postgresAuditIndexSchema creates the audit index (migration 5).
var postgresAuditIndexSchema = []string{
	`CREATE TABLE audit_index (
		idx      BIGINT PRIMARY KEY CHECK (idx >= 0),
		time     BIGINT NOT NULL,
		type     TEXT COLLATE "C" NOT NULL,
		session  TEXT COLLATE "C" NOT NULL,
		agent    TEXT COLLATE "C" NOT NULL,
		sponsor  TEXT COLLATE "C" NOT NULL,
		name     TEXT COLLATE "C" NOT NULL,
		decision TEXT COLLATE "C" NOT NULL
	)`,
	`CREATE INDEX audit_index_session ON audit_index (session, idx)`,
	`CREATE INDEX audit_index_agent ON audit_index (agent, idx)`,
	`CREATE INDEX audit_index_sponsor ON audit_index (sponsor, idx)`,
	`CREATE INDEX audit_index_name ON audit_index (name, idx)`,
	`CREATE INDEX audit_index_type ON audit_index (type, idx)`,
}

// checkPostgres is CheckIntegrity on PostgreSQL (see the notes above).
func (s *Store) checkPostgres(ctx context.Context) ([]Damage, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		  WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname`, s.schema)
	if err != nil {
		return nil, fmt.Errorf("integrity check: list tables: %w", err)
	}
	present, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
		var t string
		return t, sc.Scan(&t)
	})
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	amcheck, heapam, err := s.amcheck(ctx)
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	var out []Damage
	for _, t := range present {
		if !slices.Contains(postgresTables, t) {
			continue
		}
		rel := quoteIdent(s.schema) + "." + quoteIdent(t)
		var lines []string
		var n int64
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+rel).Scan(&n); err != nil {
			lines = append(lines, "reading the table: "+err.Error())
		}
		if heapam {
			rows, err := s.r.QueryContext(ctx,
				`SELECT COALESCE(blkno::text, '?') || ':' || COALESCE(offnum::text, '?') || ' ' || msg
				   FROM `+quoteIdent(amcheck)+`.verify_heapam(to_regclass($1)) LIMIT 3`, rel)
			if err != nil {
				lines = append(lines, "verify_heapam: "+err.Error())
			} else {
				found, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
					var l string
					return l, sc.Scan(&l)
				})
				if err != nil {
					found = append(found, "verify_heapam: "+err.Error())
				}
				lines = append(lines, found...)
			}
		}
		if amcheck != "" {
			rows, err := s.r.QueryContext(ctx,
				`SELECT quote_ident(i.relname) FROM pg_index x
				   JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam
				  WHERE x.indrelid = to_regclass($1) AND a.amname = 'btree' ORDER BY i.relname`, rel)
			if err != nil {
				return nil, fmt.Errorf("integrity check: list indexes of %s: %w", t, err)
			}
			indexes, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
				var i string
				return i, sc.Scan(&i)
			})
			if err != nil {
				return nil, fmt.Errorf("integrity check: list indexes of %s: %w", t, err)
			}
			for _, idx := range indexes {
				if _, err := s.r.ExecContext(ctx, `SELECT `+quoteIdent(amcheck)+`.bt_index_check(to_regclass($1), true)`,
					quoteIdent(s.schema)+"."+idx); err != nil {
					lines = append(lines, "index "+idx+": "+err.Error())
				}
			}
		}
		if len(lines) > 0 {
			out = append(out, Damage{Table: t, Detail: joinLines(lines)})
		}
	}
	return out, nil
}

// amcheck returns the schema of the amcheck extension if it is installed
// and this role may run bt_index_check, and whether verify_heapam is there
// too (amcheck 1.3, PostgreSQL 14).
func (s *Store) amcheck(ctx context.Context) (schema string, heapam bool, err error) {
	var ns sql.NullString
	err = s.r.QueryRowContext(ctx,
		`SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'`).Scan(&ns)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	q := quoteIdent(ns.String)
	var btree, heap bool
	err = s.r.QueryRowContext(ctx,
		`SELECT COALESCE(has_function_privilege(to_regprocedure($1), 'EXECUTE'), false),
		        COALESCE(has_function_privilege(to_regprocedure($2), 'EXECUTE'), false)`,
		q+".bt_index_check(regclass, boolean)",
		q+".verify_heapam(regclass, boolean, boolean, text, bigint, bigint)").Scan(&btree, &heap)
	if err != nil {
		return "", false, err
	}
	if !btree {
		return "", false, nil
	}
	return ns.String, heap, nil
}

// resetPostgresAuditIndex is ResetAuditIndex on PostgreSQL: the table is
// dropped and created again in one transaction, under the migration lock
// so that two nodes resetting at once do not interleave.
func (s *Store) resetPostgresAuditIndex(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock(s.schema)); err != nil {
			return fmt.Errorf("reset audit index: lock: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS audit_index`); err != nil {
			return fmt.Errorf("reset audit index: %w", err)
		}
		for _, stmt := range slices.Concat(postgresAuditIndexSchema, postgresAuditIndexByNode, auditIndexEntry) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("reset audit index: %w", err)
			}
		}
		return nil
	})
}
