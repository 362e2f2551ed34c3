package server_test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// TestClusterCloneRefused: a copy of a running node's data directory
// (same node id, same audit key) does not start beside it; the original,
// once another process has taken its id, refuses calls for good; a node
// that stopped frees its id for the next start.
func TestClusterCloneRefused(t *testing.T) {
	dsn, schema := testPostgres(t)
	cfg := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Data: t.TempDir()}
	a := startNode(t, cfg)
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := a.startSession("scribe", "one", nil, "")
	hc := creds.HTTPClient(false)
	if status, body := whoami(t, a, hc); status != http.StatusOK {
		t.Fatalf("A: %d %s", status, body)
	}
	clone := t.TempDir() + "/data"
	if out, err := exec.Command("cp", "-a", cfg.Data, clone).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	cc := cfg
	cc.Data = clone
	if n, err := server.Open(context.Background(), cc); err == nil {
		n.Close()
		t.Fatal("a copy of a running node's data directory started beside it")
	} else if !strings.Contains(err.Error(), "already running") {
		t.Fatalf("the copy was refused for another reason: %v", err)
	}
	if status, body := whoami(t, a, hc); status != http.StatusOK {
		t.Fatalf("A after the copy was refused: %d %s", status, body)
	}

	// Another process takes A's id (A's connection ended, as after a cut,
	// and someone else was quicker): A stops serving, and stays stopped.
	ctx := t.Context()
	pcfg, _ := pgx.ParseConfig(dsn)
	pcfg.RuntimeParams["application_name"] = "ward-node " + a.NodeID() + " intruder"
	intruder, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close(context.Background())
	key := store.NodeLockKey(schema, a.NodeID())
	for taken := false; !taken; {
		if _, err := intruder.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1 AND pid <> pg_backend_pid()`, "ward-node "+a.NodeID()+" %"); err != nil {
			t.Fatal(err)
		}
		for range 100 {
			if err := intruder.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&taken); err != nil {
				t.Fatal(err)
			}
			if taken {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := whoami(t, a, hc)
		if status == http.StatusServiceUnavailable && strings.Contains(body, "no longer holds its id") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A with its id taken answers %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := intruder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if status, body := whoami(t, a, hc); status != http.StatusServiceUnavailable {
		t.Fatalf("A deposed then served again: %d %s", status, body)
	}

	// Stopped, a node frees its id: its data directory starts again.
	a.Close()
	b := startNode(t, cfg)
	if status, body := whoami(t, b, hc); status != http.StatusOK {
		t.Fatalf("the node restarted on its data directory: %d %s", status, body)
	}
}
