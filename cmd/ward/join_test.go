package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// TestUpJoin: ward up on PostgreSQL creates a system and a join token;
// a second ward up --join FILE joins it as another node; without the
// token a second node is refused, and --join without a PostgreSQL store
// is refused before anything starts.
func TestUpJoin(t *testing.T) {
	dsn, schema, ok := testPGSchema(t)
	if !ok {
		t.Skip("PostgreSQL test server unreachable")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ward.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "store: {postgres: %q, schema: %s}\n", dsn, schema), 0o600)
	bin := buildWard(t)
	type info struct {
		Admin string `json:"admin_credential"`
		Node  struct {
			ID            string `json:"id"`
			JoinTokenFile string `json:"join_token_file"`
		} `json:"node"`
	}
	up := func(data string, extra ...string) info {
		var i info
		raw := firstJSON(t, bin, append([]string{"up", "--config", cfg, "--data", data, "--addr", "127.0.0.1:0", "-o", "json"}, extra...))
		if err := json.Unmarshal([]byte(raw), &i); err != nil {
			t.Fatal(err)
		}
		return i
	}
	first := up(filepath.Join(dir, "one"))
	if first.Admin == "" || first.Node.ID == "" || first.Node.JoinTokenFile == "" {
		t.Fatalf("first node: %+v", first)
	}
	code, _, errOut := wardCLI("up", "--config", cfg, "--data", filepath.Join(dir, "refused"), "--addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(errOut, "--join FILE") {
		t.Fatalf("a node without the token: exit %d: %s", code, errOut)
	}
	second := up(filepath.Join(dir, "two"), "--join", first.Node.JoinTokenFile)
	if second.Admin != "" || second.Node.ID == "" || second.Node.ID == first.Node.ID {
		t.Fatalf("second node: %+v (first %+v)", second, first)
	}
	code, _, errOut = wardCLI("up", "--data", filepath.Join(dir, "three"), "--addr", "127.0.0.1:0", "--join", first.Node.JoinTokenFile)
	if code == 0 || !strings.Contains(errOut, "PostgreSQL store") {
		t.Fatalf("--join without a store: exit %d: %s", code, errOut)
	}
}

// testPGSchema returns the DSN of the PostgreSQL test server
// (WARD_TEST_POSTGRES, default the machine's own) and a fresh schema
// name that t's cleanup drops, or ok false if the server is unreachable.
func testPGSchema(t *testing.T) (dsn, schema string, ok bool) {
	t.Helper()
	dsn = os.Getenv("WARD_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return "", "", false
	}
	var b [6]byte
	rand.Read(b[:])
	schema = fmt.Sprintf("ward_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		db.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`)
		db.Close()
	})
	return dsn, schema, true
}

// TestAuditNodes: ward audit nodes lists the nodes that published their
// audit heads to the store, checked against the recorded keys.
func TestAuditNodes(t *testing.T) {
	dsn, schema, ok := testPGSchema(t)
	if !ok {
		t.Skip("PostgreSQL test server unreachable")
	}
	cfg := filepath.Join(t.TempDir(), "ward.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "store: {postgres: %q, schema: %s}\n", dsn, schema), 0o600)
	if out := mustCLI(t, "audit", "nodes", "--config", cfg); !strings.Contains(out, "no node has published") {
		t.Fatalf("an empty system: %s", out)
	}
	firstJSON(t, buildWard(t), []string{"up", "--config", cfg, "--data", filepath.Join(t.TempDir(), "one"), "--addr", "127.0.0.1:0", "-o", "json"})
	var rows []struct {
		Node    string `json:"node"`
		Size    uint64 `json:"size"`
		Signed  bool   `json:"signed"`
		Problem string `json:"problem"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "audit", "nodes", "--config", cfg, "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || !rows[0].Signed || rows[0].Size == 0 || rows[0].Problem != "" {
		t.Fatalf("nodes: %+v", rows)
	}
	if code, _, errOut := wardCLI("audit", "nodes"); code == 0 || !strings.Contains(errOut, "store") {
		t.Fatalf("without a PostgreSQL store: exit %d: %s", code, errOut)
	}
}
