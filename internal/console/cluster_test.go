package console_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/server"
)

// testPostgres returns the PostgreSQL test server's DSN and a new schema
// that t's cleanup drops; it skips t if the server is unreachable, unless
// WARD_REQUIRE_POSTGRES=1.
func testPostgres(t *testing.T) (dsn, schema string) {
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
	schema = fmt.Sprintf("ward_console_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
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

// TestConsoleAuditAcrossNodes: on a node of several, the console's audit
// view (GET /v1/audit/events, forwarded) shows another node's events with
// their node, and the console tells the page which node it is, so that
// the browser proves only this node's events (another node's event of
// the same number is another event).
func TestConsoleAuditAcrossNodes(t *testing.T) {
	dsn, schema := testPostgres(t)
	a := startNode(t, server.Config{StoreDSN: dsn, StoreSchema: schema})
	tok, err := os.ReadFile(filepath.Join(a.data, "keys", "join.token"))
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, server.Config{StoreDSN: dsn, StoreSchema: schema, JoinToken: string(tok)})
	ctx := context.Background()
	if _, err := a.Audit.Append(ctx, audit.Event{Type: "test.console", Actor: "tester", Agent: "on-a"}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // heads, index rows and tiles published; keys pinned
		for _, n := range []*node{a, b} {
			if err := n.Cosign(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	pw := b.addUser("ops", console.RoleViewer)
	c := b.client()
	login(t, b, c, "ops", pw)
	status, body := b.do(c, "GET", "/console/api/me", nil, nil)
	var me struct{ Node string }
	if json.Unmarshal(body, &me); status != http.StatusOK || me.Node != b.NodeID() {
		t.Fatalf("me: %d %s", status, body)
	}
	status, body = b.do(c, "GET", "/console/api/v1/audit/events?type=test.console", nil, nil)
	var evs []struct {
		Node  string
		Agent string
	}
	if json.Unmarshal(body, &evs); status != http.StatusOK || len(evs) != 1 || evs[0].Node != a.NodeID() || evs[0].Agent != "on-a" {
		t.Fatalf("the console's audit view on B: %d %s", status, body)
	}
	if status, body = b.do(c, "GET", "/console/api/v1/audit/events?type=test.console&node="+b.NodeID(), nil, nil); status != http.StatusOK || string(body) != "[]\n" {
		t.Fatalf("the console's audit view of B's events: %d %s", status, body)
	}
}
