package server_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamClusterClonedDataDir: a copy of a node's data directory
// started beside it (same node id, same audit key) would write a log that
// forks from the node's. The copy does not start while the node runs (it
// holds its id); the node goes on, restarts, and the copy, now behind
// what the node published, still does not start.
func TestRedteamClusterClonedDataDir(t *testing.T) {
	dsn, schema := testPostgres(t)
	ca := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Data: t.TempDir()}
	a := startNode(t, ca)
	admin := a.admin
	a.Close()
	cb := ca
	cb.Data = filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("cp", "-a", ca.Data, cb.Data).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	open := func(c server.Config) error {
		c.Addr, c.TrustDomain = "127.0.0.1:0", "test.ward"
		n, err := server.Open(context.Background(), c)
		if err == nil {
			n.Close()
		}
		return err
	}
	a = startNode(t, ca)
	a.admin = admin
	if err := open(cb); err == nil {
		t.Fatal("the clone started beside the node")
	}
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	a.Close()
	if err := open(ca); err != nil {
		t.Errorf("the real node does not start again: %v", err)
	}
	if err := open(cb); err == nil {
		t.Errorf("the clone, behind what the node published, starts")
	}
}
