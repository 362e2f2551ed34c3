package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL half of the suite runs against the server WARD_TEST_POSTGRES
// names (a DSN), by default the machine's own at 127.0.0.1:5432 (user
// postgres, database test). Every test works in a schema of its own,
// ward_test_<unix time>_<random>, dropped when the test ends; schemas of
// this form older than an hour (left by a test run that was killed) are
// dropped when the suite starts. If the server cannot be reached the
// PostgreSQL tests skip, unless WARD_REQUIRE_POSTGRES=1 (as in CI), when
// they fail.

const defaultTestPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testPostgresDSN() string {
	if v := os.Getenv("WARD_TEST_POSTGRES"); v != "" {
		return v
	}
	return defaultTestPostgres
}

var (
	pgOnce sync.Once
	pgErr  error
)

// requirePostgres skips (or, with WARD_REQUIRE_POSTGRES=1, fails) tb when
// the test server cannot be reached.
func requirePostgres(tb testing.TB) {
	tb.Helper()
	pgOnce.Do(func() {
		db, err := adminDB()
		if err != nil {
			pgErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if pgErr = db.PingContext(ctx); pgErr != nil {
			return
		}
		sweepTestSchemas(ctx, db)
	})
	if pgErr == nil {
		return
	}
	if os.Getenv("WARD_REQUIRE_POSTGRES") == "1" {
		tb.Fatalf("PostgreSQL test server unreachable (WARD_REQUIRE_POSTGRES=1): %v", pgErr)
	}
	tb.Skipf("PostgreSQL test server unreachable (set WARD_TEST_POSTGRES to a DSN; WARD_REQUIRE_POSTGRES=1 makes this fail): %v", pgErr)
}

// adminDB connects to the test database without a schema of ward's.
func adminDB() (*sql.DB, error) {
	cc, err := pgx.ParseConfig(testPostgresDSN())
	if err != nil {
		return nil, errors.New("WARD_TEST_POSTGRES is not a valid DSN")
	}
	db := stdlib.OpenDB(*cc)
	db.SetMaxOpenConns(2)
	return db, nil
}

// sweepTestSchemas drops the test schemas that killed runs left behind.
func sweepTestSchemas(ctx context.Context, db *sql.DB) {
	var stale, staleDBs []string
	if rows, err := db.QueryContext(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'ward\_test\_%'`); err == nil {
		for rows.Next() {
			var n string
			if rows.Scan(&n) != nil {
				break
			}
			if stalePrefix(n) {
				staleDBs = append(staleDBs, n)
			}
		}
		rows.Close()
	}
	for _, n := range staleDBs {
		_, _ = db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+quoteIdent(n)+` WITH (FORCE)`)
	}
	rows, err := db.QueryContext(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ward\_test\_%'`)
	if err != nil {
		return
	}
	for rows.Next() {
		var n string
		if rows.Scan(&n) != nil {
			break
		}
		if stalePrefix(n) {
			stale = append(stale, n)
		}
	}
	rows.Close()
	for _, n := range stale {
		_, _ = db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+quoteIdent(n)+` CASCADE`)
	}
}

// stalePrefix reports a name ward_test_<unix time>_<random> more than an
// hour old.
func stalePrefix(name string) bool {
	parts := strings.Split(name, "_")
	if len(parts) != 4 {
		return false
	}
	at, err := strconv.ParseInt(parts[2], 10, 64)
	return err == nil && time.Since(time.Unix(at, 0)) > time.Hour
}

// dsnFor is the test DSN with its database replaced by db.
func dsnFor(db string) string {
	dsn := testPostgresDSN()
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String()
	}
	return dsn + " dbname=" + db
}

// newPostgresSchema returns the name of a schema that does not exist yet
// and that tb's cleanup drops (after the stores opened later are closed).
func newPostgresSchema(tb testing.TB) string {
	tb.Helper()
	requirePostgres(tb)
	var b [6]byte
	rand.Read(b[:])
	name := fmt.Sprintf("ward_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	tb.Cleanup(func() {
		db, err := adminDB()
		if err != nil {
			tb.Error(err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+quoteIdent(name)+` CASCADE`); err != nil {
			tb.Errorf("drop test schema %s: %v", name, err)
		}
	})
	return name
}

func openPostgres(tb testing.TB, schema string) *Store {
	tb.Helper()
	s, err := OpenPostgres(tb.Context(), Config{DSN: testPostgresDSN(), Schema: schema, MaxConns: 4})
	if err != nil {
		tb.Fatalf("OpenPostgres: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s
}

func postgresBackend() backend {
	return backend{open: func(t *testing.T) (*Store, func() *Store) {
		schema := newPostgresSchema(t)
		return openPostgres(t, schema), func() *Store { return openPostgres(t, schema) }
	}}
}

func TestPostgresContract(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	runContract(t, postgresBackend())
}

// TestPostgresConcurrentMigrations starts several nodes at once on a fresh
// schema: every one opens, and the migrations run exactly once.
func TestPostgresConcurrentMigrations(t *testing.T) {
	schema := newPostgresSchema(t)
	const nodes = 6
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			stores[i], errs[i] = OpenPostgres(t.Context(), Config{DSN: testPostgresDSN(), Schema: schema, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, s := range stores {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		if errs[i] != nil {
			t.Errorf("node %d: %v", i, errs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	var n, max int
	if err := stores[0].r.QueryRowContext(t.Context(), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(postgresMigrations()) || max != len(postgresMigrations()) {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d", n, max, len(postgresMigrations()))
	}
	// Every node works on the one schema.
	seed(t, stores[0])
	for i, s := range stores {
		if _, err := s.GetAgent(t.Context(), "reporter"); err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
}

func TestPostgresMigrations(t *testing.T) {
	schema := newPostgresSchema(t)
	s := openPostgres(t, schema)
	ctx := t.Context()
	mustNil(t, "close", s.Close())
	s = openPostgres(t, schema)
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(postgresMigrations()) {
		t.Fatalf("reopen re-ran migrations: %d rows", n)
	}
	// A database from a newer binary is refused, not guessed at.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, 0)`,
		len(postgresMigrations())+1); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenPostgres(ctx, Config{DSN: testPostgresDSN(), Schema: schema})
	if err == nil {
		s2.Close()
		t.Fatal("OpenPostgres accepted a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

// TestPostgresDefaultSchema opens without a schema: the tables go to the
// first schema of the DSN's search_path.
func TestPostgresDefaultSchema(t *testing.T) {
	schema := newPostgresSchema(t)
	db, err := adminDB()
	mustNil(t, "admin", err)
	defer db.Close()
	_, err = db.ExecContext(t.Context(), `CREATE SCHEMA `+schema)
	mustNil(t, "create schema", err)
	dsn := testPostgresDSN()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	s, err := OpenPostgres(t.Context(), Config{DSN: dsn + sep + "search_path=" + schema})
	mustNil(t, "open", err)
	defer s.Close()
	if s.schema != schema {
		t.Fatalf("store uses schema %q, want %q", s.schema, schema)
	}
	var n int
	mustNil(t, "count", db.QueryRowContext(t.Context(),
		`SELECT COUNT(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'sessions'`, schema).Scan(&n))
	if n != 1 {
		t.Fatal("the sessions table is not in the search_path's schema")
	}
}

func TestPostgresConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no dsn", Config{}},
		{"sqlite path", Config{DSN: defaultTestPostgres, Path: "ward.db"}},
		{"sqlite readers", Config{DSN: defaultTestPostgres, MaxReaders: 2}},
		{"schema with capitals", Config{DSN: defaultTestPostgres, Schema: "Ward"}},
		{"schema with quote", Config{DSN: defaultTestPostgres, Schema: `w"; DROP SCHEMA public; --`}},
		{"schema with comma", Config{DSN: defaultTestPostgres, Schema: "ward,public"}},
		{"schema too long", Config{DSN: defaultTestPostgres, Schema: strings.Repeat("w", 64)}},
		{"negative timeout", Config{DSN: defaultTestPostgres, Timeout: -time.Second}},
		{"negative conns", Config{DSN: defaultTestPostgres, MaxConns: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := OpenPostgres(t.Context(), tc.cfg); err == nil {
				s.Close()
				t.Fatal("OpenPostgres accepted the config")
			}
		})
	}
	// And the other way round.
	path := filepath.Join(t.TempDir(), "x.db")
	for _, cfg := range []Config{{Path: path, DSN: defaultTestPostgres}, {Path: path, Schema: "ward"}, {Path: path, MaxConns: 3}} {
		if s, err := OpenSQLite(t.Context(), cfg); err == nil {
			s.Close()
			t.Errorf("OpenSQLite accepted %+v", cfg)
		}
	}
}

// TestPostgresDSNSecret: no error shows the DSN's password, whether the
// DSN cannot be parsed, the server cannot be reached or refuses.
func TestPostgresDSNSecret(t *testing.T) {
	const secret = "hunter2-s3cret"
	for _, dsn := range []string{
		"postgres://postgres:" + secret + "@127.0.0.1:notaport/test",
		"postgres://postgres:" + secret + "@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=postgres password=" + secret + " dbname=test sslmode=disable connect_timeout=2",
		"host=127.0.0.1 port=1 password='" + secret,
		"postgres://postgres:" + secret + "@127.0.0.1:5432/test?sslmode=disable&search_path=x&options=-c%20bogus_setting%3D1",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		s, err := OpenPostgres(ctx, Config{DSN: dsn, Timeout: 5 * time.Second})
		cancel()
		if err == nil {
			s.Close()
			t.Errorf("opened %q", strings.ReplaceAll(dsn, secret, "…"))
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}

// TestSchemasMatch: the two backends' migrations build the same tables
// with the same columns, and there are as many of them.
func TestSchemasMatch(t *testing.T) {
	if len(sqliteMigrations()) != len(postgresMigrations()) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL ones: add every migration to both", len(sqliteMigrations()), len(postgresMigrations()))
	}
	ctx := t.Context()
	lite := openSQLite(t, filepath.Join(t.TempDir(), "ward.db"))
	pg := openPostgres(t, newPostgresSchema(t))
	columns := func(db *sql.DB, q string, args ...any) map[string][]string {
		t.Helper()
		rows, err := db.QueryContext(ctx, q, args...)
		mustNil(t, "columns", err)
		defer rows.Close()
		out := map[string][]string{}
		for rows.Next() {
			var table, col string
			mustNil(t, "scan", rows.Scan(&table, &col))
			out[table] = append(out[table], col)
		}
		mustNil(t, "rows", rows.Err())
		for _, cols := range out {
			slices.Sort(cols)
		}
		return out
	}
	liteCols := columns(lite.r, `SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	pgCols := columns(pg.r, `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1`, pg.schema)
	if diff := cmp.Diff(liteCols, pgCols); diff != "" {
		t.Errorf("tables and columns differ (-sqlite +postgres):\n%s", diff)
	}
	var tables []string
	for tb := range pgCols {
		tables = append(tables, tb)
	}
	slices.Sort(tables)
	if diff := cmp.Diff(postgresTables, tables); diff != "" {
		t.Errorf("postgresTables is not the schema's tables (-postgresTables +schema):\n%s", diff)
	}
}

// newPostgresDatabase creates a database of its own for tb, with the
// CREATE DATABASE options given, and drops it when tb ends; it skips tb
// if the role may not create databases.
func newPostgresDatabase(tb testing.TB, options string) *pgx.ConnConfig {
	tb.Helper()
	requirePostgres(tb)
	admin, err := adminDB()
	mustNil(tb, "admin", err)
	tb.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	name := fmt.Sprintf("ward_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	if _, err := admin.ExecContext(tb.Context(), `CREATE DATABASE `+name+` `+options); err != nil {
		tb.Skipf("cannot create a database of the test's own: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	cc, err := pgx.ParseConfig(testPostgresDSN())
	mustNil(tb, "parse", err)
	cc.Database = name
	return cc
}

// TestPostgresLocale runs the contract's tests of order in a database
// whose locale orders text case-insensitively (ICU en-US): ward's order
// stays bytewise, as on SQLite.
func TestPostgresLocale(t *testing.T) {
	cc := newPostgresDatabase(t, `TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`)
	open := func(t *testing.T, schema string) *Store {
		s, err := OpenPostgres(t.Context(), Config{DSN: dsnFor(cc.Database), Schema: schema, MaxConns: 2})
		mustNil(t, "open", err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("bytewise", func(t *testing.T) { testBytewise(t, open(t, "bytewise")) })
	t.Run("list sessions", func(t *testing.T) { testListSessions(t, open(t, "sessions")) })
	t.Run("pins", func(t *testing.T) { testPins(t, open(t, "pins")) })
	t.Run("approvals", func(t *testing.T) { testApprovals(t, open(t, "approvals")) })
}

// TestPostgresIntegrity damages an index of the audit index behind
// PostgreSQL's back (an index over a function that then changes its
// answers, so that the index no longer matches its table) and checks that
// CheckIntegrity names the table, that it is derived, and that
// ResetAuditIndex repairs it. It needs the amcheck extension, so it runs
// in a database of its own, created and dropped by the test.
func TestPostgresIntegrity(t *testing.T) {
	cc := newPostgresDatabase(t, "")
	dsn := stdlib.RegisterConnConfig(cc)
	defer stdlib.UnregisterConnConfig(dsn)
	db, err := sql.Open("pgx", dsn)
	mustNil(t, "open db", err)
	defer db.Close()
	ctx := t.Context()
	dbName := cc.Database

	open := func() *Store {
		t.Helper()
		s, err := OpenPostgres(ctx, Config{DSN: dsnFor(dbName), Schema: "ward"})
		mustNil(t, "open", err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	check := func() []Damage {
		t.Helper()
		d, err := s.CheckIntegrity(ctx)
		mustNil(t, "check", err)
		return d
	}
	if d := check(); len(d) != 0 {
		t.Fatalf("a new store is damaged: %+v", d)
	}
	if _, err := db.ExecContext(ctx, `CREATE EXTENSION amcheck`); err != nil {
		t.Skipf("amcheck is not available: %v", err)
	}
	if a, _, err := s.amcheck(ctx); err != nil || a == "" {
		t.Fatalf("amcheck installed but not found: %q %v", a, err)
	}
	seed(t, s)
	var rows []AuditRow
	for i := range 200 {
		rows = append(rows, AuditRow{Index: uint64(i), Time: t0, Type: fmt.Sprint("type", i%7), Session: "s"})
	}
	mustNil(t, "index", s.IndexAudit(ctx, rows))
	if d := check(); len(d) != 0 {
		t.Fatalf("a healthy store with amcheck is damaged: %+v", d)
	}
	for _, stmt := range []string{
		`CREATE FUNCTION ward.lie(t text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT t $$`,
		`CREATE INDEX audit_index_lie ON ward.audit_index (ward.lie(type))`,
		`CREATE OR REPLACE FUNCTION ward.lie(t text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'x' || t $$`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		mustNil(t, stmt, err)
	}
	d := check()
	if len(d) != 1 || d[0].Table != "audit_index" || !d[0].Derived() || !strings.Contains(d[0].Detail, "audit_index_lie") {
		t.Fatalf("damage = %+v, want audit_index naming the index", d)
	}
	mustNil(t, "reset", s.ResetAuditIndex(ctx))
	if d := check(); len(d) != 0 {
		t.Fatalf("damaged after reset: %+v", d)
	}
	if _, err := s.GetAgent(ctx, "reporter"); err != nil {
		t.Fatalf("reset lost other data: %v", err)
	}
	// A table of another application in the schema is not ward's to judge.
	for _, stmt := range []string{
		`CREATE TABLE ward.other (v text)`,
		`INSERT INTO ward.other VALUES ('a'), ('b')`,
		`CREATE INDEX other_lie ON ward.other (ward.lie(v))`,
		`CREATE OR REPLACE FUNCTION ward.lie(t text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'y' || t $$`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		mustNil(t, stmt, err)
	}
	if d := check(); len(d) != 0 {
		t.Fatalf("damage reported outside ward's tables: %+v", d)
	}
}

func FuzzRoundTripPostgres(f *testing.F) {
	roundTripSeeds(f)
	s := openPostgres(f, newPostgresSchema(f))
	f.Fuzz(func(t *testing.T, server, tool, def, value string) { roundTrip(t, s, server, tool, def, value) })
}

// TestPostgresRetry: a transaction PostgreSQL aborts with a serialization
// failure or a deadlock is run again, at most maxTxAttempts times; other
// errors, and every error on SQLite, are returned at once.
func TestPostgresRetry(t *testing.T) {
	pg := openPostgres(t, newPostgresSchema(t))
	lite := openSQLite(t, filepath.Join(t.TempDir(), "ward.db"))
	failing := func(code string, times int, runs *int) func(*sql.Tx) error {
		return func(tx *sql.Tx) error {
			*runs++
			if *runs <= times {
				// A real error from the server, with the SQLSTATE asked for.
				_, err := tx.ExecContext(t.Context(), `DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '`+code+`'; END $$`)
				return err
			}
			_, err := tx.ExecContext(t.Context(), `INSERT INTO meta (key, value) VALUES ($1, 'v') ON CONFLICT (key) DO NOTHING`, fmt.Sprint("k", code, times))
			return err
		}
	}
	for _, tc := range []struct {
		code      string
		times     int
		wantRuns  int
		wantError bool
	}{
		{"40001", 3, 4, false},
		{"40P01", 1, 2, false},
		{"40001", maxTxAttempts, maxTxAttempts, true},
		{"23505", 1, 1, true},
	} {
		runs := 0
		err := pg.write(t.Context(), failing(tc.code, tc.times, &runs))
		if runs != tc.wantRuns || (err != nil) != tc.wantError {
			t.Errorf("SQLSTATE %s %d times: %d runs, error %v; want %d runs, error %v", tc.code, tc.times, runs, err, tc.wantRuns, tc.wantError)
		}
		if err != nil && !strings.Contains(err.Error(), tc.code) {
			t.Errorf("the error does not carry the SQLSTATE: %v", err)
		}
	}
	runs := 0
	err := lite.write(t.Context(), func(*sql.Tx) error { runs++; return retryErr() })
	if runs != 1 || err == nil {
		t.Errorf("SQLite retried: %d runs, %v", runs, err)
	}
}

// retryErr is a PostgreSQL serialization failure as pgx reports it.
func retryErr() error { return &pgconn.PgError{Code: "40001", Message: "injected"} }
