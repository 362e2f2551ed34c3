package server_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamClusterClonedDataDir: a copy of a node's data directory
// started beside it (same node id, same audit key) writes a log that
// forks from the node's. The fork must not replace the head the node
// published, so that the real node still starts and the copy does not.
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
	a = startNode(t, ca)
	b := startNode(t, cb)
	a.admin, b.admin = admin, admin
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	b.setupAgent("forger", nil, map[string][]string{"tools": {"demo.*"}})
	b.setupAgent("forger2", nil, map[string][]string{"tools": {"demo.*"}})
	a.Close()
	b.Close()

	open := func(c server.Config) error {
		c.Addr, c.TrustDomain = "127.0.0.1:0", "test.ward"
		n, err := server.Open(context.Background(), c)
		if err == nil {
			n.Close()
		}
		return err
	}
	if err := open(ca); err != nil {
		t.Errorf("the real node does not start after its clone ran: %v", err)
	}
	if err := open(cb); err == nil {
		t.Errorf("the clone starts again")
	}
}
