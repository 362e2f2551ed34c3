package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// testPostgres returns the DSN of the PostgreSQL test server
// (WARD_TEST_POSTGRES, default the machine's own) and a new schema name
// that t's cleanup drops; it skips t if the server is unreachable, unless
// WARD_REQUIRE_POSTGRES=1.
func testPostgres(t testing.TB) (dsn, schema string) {
	t.Helper()
	dsn = os.Getenv("WARD_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal("WARD_TEST_POSTGRES is not a valid DSN")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		if os.Getenv("WARD_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL test server unreachable (WARD_REQUIRE_POSTGRES=1): %v", err)
		}
		t.Skipf("PostgreSQL test server unreachable: %v", err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema = fmt.Sprintf("ward_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return dsn, schema
}

// TestPostgresStoreNode: with StoreDSN set a node keeps its control-plane
// state in PostgreSQL, not in DATA, and finds it there on restart.
func TestPostgresStoreNode(t *testing.T) {
	dsn, schema := testPostgres(t)
	data := t.TempDir()
	cfg := server.Config{Data: data, Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema}
	n := startNode(t, cfg)
	n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	n.Close()
	if _, err := os.Stat(filepath.Join(data, "ward.db")); !os.IsNotExist(err) {
		t.Fatalf("a node on PostgreSQL made DATA/ward.db (%v)", err)
	}
	st, err := store.OpenPostgres(t.Context(), store.Config{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.GetAgent(t.Context(), "scribe"); err != nil {
		t.Fatalf("the agent is not in PostgreSQL: %v", err)
	}
	// The restarted node finds its store (an empty one would be refused
	// next to the existing CA and audit log).
	again := startNode(t, cfg)
	if again.AdminCredential != "" {
		t.Fatal("the restarted node bootstrapped again")
	}
	again.Close()
	// A node pointed at another, empty schema is refused as a lost store.
	_, other := testPostgres(t)
	if _, err := server.Open(context.Background(), server.Config{Data: data, Addr: "127.0.0.1:0", TrustDomain: "test.ward", Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: other}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("a node with an audit log opened an empty PostgreSQL store: %v", err)
	}
}
