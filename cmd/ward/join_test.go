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
	dsn := os.Getenv("WARD_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Skipf("PostgreSQL test server unreachable: %v", err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("ward_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	t.Cleanup(func() { db.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`) })
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
