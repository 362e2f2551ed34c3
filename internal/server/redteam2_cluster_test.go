package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamClusterSealedTamper: with the right join token, a node does
// not join a system whose sealed keys were changed in the store (one
// byte flipped, or cut short), and no error, nor the log, shows the token.
func TestRedteamClusterSealedTamper(t *testing.T) {
	dsn, schema := testPostgres(t)
	cfg := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Addr: "127.0.0.1:0", TrustDomain: "test.ward"}
	first := cfg
	first.Data = t.TempDir()
	startNode(t, first)
	raw, err := os.ReadFile(filepath.Join(first.Data, "keys", "join.token"))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(raw))
	secret := strings.TrimPrefix(tok, "ward-join-v1:")

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	var blob []byte
	if err := db.QueryRow(`SELECT name, blob FROM `+schema+`.sealed LIMIT 1`).Scan(&name, &blob); err != nil {
		t.Fatal(err)
	}
	for what, bad := range map[string][]byte{
		"flipped byte": func() []byte { b := bytes.Clone(blob); b[len(b)-5] ^= 1; return b }(),
		"cut short":    blob[:len(blob)-20],
		"nonce only":   blob[:len(blob)-len(blob)/2],
	} {
		if _, err := db.Exec(`UPDATE `+schema+`.sealed SET blob = $1 WHERE name = $2`, bad, name); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		c := cfg
		c.Data, c.JoinToken = t.TempDir(), tok
		c.Logger = newTextLogger(&logs)
		n, err := server.Open(context.Background(), c)
		if err == nil {
			n.Close()
			t.Errorf("%s: a node joined with tampered sealed keys", what)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("%s: the join token is shown: %v\n%s", what, err, logs.String())
		}
		if _, serr := os.Stat(filepath.Join(c.Data, "ca", "ca.key")); serr == nil {
			t.Errorf("%s: the refused node kept a CA", what)
		}
	}
	// And a wrong token is refused without being shown either.
	var logs bytes.Buffer
	c := cfg
	other := server.NewJoinToken()
	c.Data, c.JoinToken, c.Logger = t.TempDir(), other, newTextLogger(&logs)
	if _, err := db.Exec(`UPDATE `+schema+`.sealed SET blob = $1 WHERE name = $2`, blob, name); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Open(context.Background(), c); err == nil {
		n.Close()
		t.Fatal("joined with another token")
	} else if s := strings.TrimPrefix(other, "ward-join-v1:"); strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) ||
		strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
		t.Fatalf("a token is shown: %v", err)
	}
}

func newTextLogger(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
