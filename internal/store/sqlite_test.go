package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func openSQLite(t testing.TB, path string) *Store {
	t.Helper()
	s, err := OpenSQLite(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func sqliteBackend() backend {
	return backend{open: func(t *testing.T) (*Store, func() *Store) {
		path := filepath.Join(t.TempDir(), "ward.db")
		return openSQLite(t, path), func() *Store { return openSQLite(t, path) }
	}}
}

func TestSQLiteContract(t *testing.T) {
	t.Parallel()
	runContract(t, sqliteBackend())
}

func TestSQLiteFileMode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(path string) error
	}{
		{"new file", func(string) error { return nil }},
		{"existing world-readable file", func(path string) error {
			return os.WriteFile(path, nil, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ward.db")
			if err := tc.prepare(path); err != nil {
				t.Fatal(err)
			}
			s := openSQLite(t, path)
			seed(t, s) // forces the WAL and shared-memory files into existence
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatalf("stat %s: %v", filepath.Base(p), err)
				}
				if got := fi.Mode().Perm(); got != 0o600 {
					t.Errorf("%s mode = %v, want 0600", filepath.Base(p), got)
				}
			}
		})
	}
}

func TestSQLiteConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"empty path", Config{}},
		{"memory", Config{Path: ":memory:"}},
		{"uri", Config{Path: "file:" + filepath.Join(dir, "x.db")}},
		{"query in path", Config{Path: filepath.Join(dir, "x.db?_pragma=foreign_keys(0)")}},
		{"negative busy timeout", Config{Path: filepath.Join(dir, "x.db"), BusyTimeout: -time.Second}},
		{"negative timeout", Config{Path: filepath.Join(dir, "x.db"), Timeout: -time.Second}},
		{"negative readers", Config{Path: filepath.Join(dir, "x.db"), MaxReaders: -1}},
		{"directory", Config{Path: dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenSQLite(t.Context(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("OpenSQLite accepted the config")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected config created a file: %v", err)
	}
}

// TestSQLitePragmas checks that both pools run with the settings the
// concurrency design depends on.
func TestSQLitePragmas(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "ward.db"))
	ctx := t.Context()
	for _, tc := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.w, "journal_mode", "wal"},
		{s.w, "foreign_keys", "1"},
		{s.w, "busy_timeout", fmt.Sprint(DefaultBusyTimeout.Milliseconds())},
		{s.w, "synchronous", "2"},
		{s.r, "journal_mode", "wal"},
		{s.r, "query_only", "1"},
		{s.r, "busy_timeout", fmt.Sprint(DefaultBusyTimeout.Milliseconds())},
	} {
		var got string
		if err := tc.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("pragma %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("pragma %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
	if got := s.w.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool allows %d connections, want 1", got)
	}
	if _, err := s.r.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('k', 'v')`); err == nil {
		t.Error("read pool accepted a write")
	}
}

func TestSQLiteMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ward.db")
	s := openSQLite(t, path)
	ctx := t.Context()
	count := func() (n, max int) {
		t.Helper()
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		return n, max
	}
	if n, max := count(); n != len(sqliteMigrations()) || max != len(sqliteMigrations()) {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d", n, max, len(sqliteMigrations()))
	}
	mustNil(t, "close", s.Close())
	s = openSQLite(t, path)
	if n, _ := count(); n != len(sqliteMigrations()) {
		t.Fatalf("reopen re-ran migrations: %d rows", n)
	}

	// A database from a newer binary is refused, not guessed at.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, 0)`,
		len(sqliteMigrations())+1); err != nil {
		t.Fatal(err)
	}
	mustNil(t, "close", s.Close())
	s2, err := OpenSQLite(ctx, Config{Path: path})
	if err == nil {
		s2.Close()
		t.Fatal("OpenSQLite accepted a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

// TestSQLiteTwoStores checks that two stores (as a server and a CLI would
// have) can share one file.
func TestSQLiteTwoStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ward.db")
	a := openSQLite(t, path)
	b := openSQLite(t, path)
	ctx := t.Context()
	seed(t, a)
	mustNil(t, "create via a", a.CreateSession(ctx, session("s1", "", 0)))
	mustNil(t, "create child via b", b.CreateSession(ctx, session("s2", "s1", 1)))
	ended, err := b.EndSession(ctx, "s1", "cli", t0.Add(time.Minute))
	mustNil(t, "end via b", err)
	if len(ended) != 2 {
		t.Errorf("ended %v", ended)
	}
	x, err := a.GetSession(ctx, "s2")
	mustNil(t, "get via a", err)
	if x.Status != SessionEnded {
		t.Errorf("a sees %s", x.Status)
	}
}

// FuzzRoundTrip stores arbitrary names, text and JSON and checks that what
// the store accepts it returns byte for byte, and what it rejects leaves no
// trace.
func FuzzRoundTrip(f *testing.F) {
	roundTripSeeds(f)
	s, err := OpenSQLite(f.Context(), Config{Path: filepath.Join(f.TempDir(), "fuzz.db")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, server, tool, def, value string) { roundTrip(t, s, server, tool, def, value) })
}

func roundTripSeeds(f *testing.F) {
	f.Add("crm", "search", `{"name":"search"}`, "value")
	f.Add("a'b", `x"; DROP TABLE meta; --`, `[1,2,{"a":null}]`, "")
	f.Add("ü", "工具", `"\u0000"`, "héllo")
	f.Add("x\x00", "t", `{`, "a\x00b")
	f.Add("s", "t\n", `{"a":1,"a":2}`, "\xff")
	f.Add("s", "t", "\"\xed\xa0\x80\"", "\xed\xa0\x80") // a UTF-16 surrogate, encoded as if UTF-8
	f.Add("Tab\tname", "\u2028", `{"k":"\ud800"}`, "\x7f")
}

// roundTrip checks that what the store accepts it returns byte for byte,
// and what it rejects leaves no trace.
func roundTrip(t *testing.T, s *Store, server, tool, def, value string) {
	ctx := t.Context()
	before, beforeErr := s.GetPin(ctx, server, tool)
	pin := ToolPin{Server: server, Tool: tool, Hash: "h", Definition: json.RawMessage(def), Updated: t0}
	putErr := s.PutPin(ctx, pin)
	valid := checkName("", server) == nil && checkName("", tool) == nil &&
		(def == "" || (json.Valid([]byte(def)) && utf8.ValidString(def)))
	if (putErr == nil) != valid {
		t.Fatalf("PutPin(%q, %q, %q) = %v, want valid=%v", server, tool, def, putErr, valid)
	}
	got, err := s.GetPin(ctx, server, tool)
	if putErr != nil {
		// A rejected put leaves whatever was there (often nothing).
		if errors.Is(beforeErr, ErrNotFound) != errors.Is(err, ErrNotFound) || !cmp.Equal(before, got) {
			t.Fatalf("rejected put changed the pin: before %+v (%v), after %+v (%v)", before, beforeErr, got, err)
		}
	} else {
		if err != nil {
			t.Fatalf("GetPin: %v", err)
		}
		if got.Server != server || got.Tool != tool || string(got.Definition) != def || !got.Updated.Equal(t0) {
			t.Fatalf("round trip changed the pin: %+v", got)
		}
	}

	setErr := s.SetMeta(ctx, server, value)
	validMeta := checkName("", server) == nil && utf8.ValidString(value) && !strings.ContainsRune(value, 0)
	if (setErr == nil) != validMeta {
		t.Fatalf("SetMeta(%q, %q) = %v, want valid=%v", server, value, setErr, validMeta)
	}
	if setErr == nil {
		v, err := s.GetMeta(ctx, server)
		if err != nil || v != value {
			t.Fatalf("GetMeta(%q) = %q, %v; want %q", server, v, err, value)
		}
	}
}

// benchBackends runs bench against a store of each backend (PostgreSQL
// only where reachable), with sponsor alice and agent reporter.
func benchBackends(b *testing.B, bench func(b *testing.B, s *Store)) {
	open := map[string]func(b *testing.B) *Store{
		"sqlite":   func(b *testing.B) *Store { return openSQLite(b, filepath.Join(b.TempDir(), "ward.db")) },
		"postgres": func(b *testing.B) *Store { return openPostgres(b, newPostgresSchema(b)) },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := open[name](b)
			ctx := b.Context()
			if err := s.CreatePrincipal(ctx, Principal{Name: "alice", Kind: KindSponsor}); err != nil {
				b.Fatal(err)
			}
			if err := s.CreateAgent(ctx, Agent{Name: "reporter", Sponsor: "alice"}); err != nil {
				b.Fatal(err)
			}
			bench(b, s)
		})
	}
}

func benchSession(id string) Session {
	now := time.Now()
	return Session{
		ID: id, Agent: "reporter", SPIFFEID: "spiffe://example.org/agent/reporter/session/" + id,
		Objective: "summarise the quarterly report", ObjectiveHash: "sha256:0123456789abcdef",
		Scope: json.RawMessage(`{"tools":["crm.read","mail.draft"]}`), JKT: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		GrantID: "g-" + id, Created: now, Expires: now.Add(time.Hour),
	}
}

func BenchmarkGetSession(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Store) {
		ctx := b.Context()
		const n = 1000
		for i := range n {
			if err := s.CreateSession(ctx, benchSession(fmt.Sprint("s", i))); err != nil {
				b.Fatal(err)
			}
		}
		i := 0
		for b.Loop() {
			if _, err := s.GetSession(ctx, fmt.Sprint("s", i%n)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkCreateSession(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Store) {
		ctx := b.Context()
		i := 0
		for b.Loop() {
			if err := s.CreateSession(ctx, benchSession(fmt.Sprint("s", i))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkCreateSessionParallel(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Store) {
		ctx := b.Context()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.CreateSession(ctx, benchSession(fmt.Sprint("s", next.Add(1)))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkCreateChildMaxTree delegates within one tree bounded by
// MaxTree: on PostgreSQL every such delegation locks the tree's root.
func BenchmarkCreateChildMaxTree(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Store) {
		ctx := b.Context()
		if err := s.CreateSession(ctx, benchSession("root")); err != nil {
			b.Fatal(err)
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c := benchSession(fmt.Sprint("c", next.Add(1)))
				c.ParentID, c.MaxTree = "root", 1<<30
				if err := s.CreateSession(ctx, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkObservePinUnchanged is the per-listing path: a definition seen
// before.
func BenchmarkObservePinUnchanged(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Store) {
		ctx := b.Context()
		def := json.RawMessage(`{"name":"search","description":"find contacts"}`)
		for b.Loop() {
			if _, _, _, err := s.ObservePin(ctx, "crm", "search", "h1", def, "first-use"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
