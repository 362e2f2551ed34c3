package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// twoNodes starts node A on a fresh PostgreSQL schema and node B joined
// to it with A's join token.
func twoNodes(t testing.TB, cfg server.Config) (a, b *testNode) {
	t.Helper()
	nodes := clusterNodes(t, cfg, 2)
	return nodes[0], nodes[1]
}

// clusterNodes starts k nodes on one fresh PostgreSQL schema: the first
// creates the system, the others join with its token. Each answers to
// the first's admin credential.
func clusterNodes(t testing.TB, cfg server.Config, k int) []*testNode {
	t.Helper()
	dsn, schema := testPostgres(t)
	cfg.StoreDSN, cfg.StoreSchema = dsn, schema
	if cfg.Upstreams == nil {
		cfg.Upstreams = demoOnly
	}
	first := cfg
	first.Data = t.TempDir()
	nodes := []*testNode{startNode(t, first)}
	tok, err := os.ReadFile(filepath.Join(first.Data, "keys", "join.token"))
	if err != nil {
		t.Fatalf("the first node wrote no join token: %v", err)
	}
	for range k - 1 {
		c := cfg
		c.Data = t.TempDir()
		c.JoinToken = string(tok)
		n := startNode(t, c)
		n.admin = nodes[0].admin
		nodes = append(nodes, n)
	}
	return nodes
}

// TestClusterJoin: a second node joins with the first's token: it has
// the system's CA and keys, a node id and an audit log of its own, and
// serves a session started on the first node.
func TestClusterJoin(t *testing.T) {
	a, b := twoNodes(t, server.Config{})
	if a.AdminCredential == "" || b.AdminCredential != "" {
		t.Fatalf("bootstrap: first node %v, second node %v", a.AdminCredential != "", b.AdminCredential != "")
	}
	if string(a.CA.BundlePEM()) != string(b.CA.BundlePEM()) {
		t.Fatal("the nodes have different CAs")
	}
	if a.NodeID() == "" || a.NodeID() == b.NodeID() {
		t.Fatalf("node ids %q and %q", a.NodeID(), b.NodeID())
	}
	for _, n := range []*testNode{a, b} {
		_, origin, err := server.AuditVerifier(n.data)
		if err != nil {
			t.Fatal(err)
		}
		if origin != "test.ward/audit/"+n.NodeID() {
			t.Fatalf("node %s's audit origin is %q", n.NodeID(), origin)
		}
		for _, f := range []string{"keys/grant.key", "keys/receipt.key", "keys/redact.salt", "ca/ca.key", "ca/jwt.key", "keys/join.token"} {
			st, err := os.Stat(filepath.Join(n.data, f))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s of node %s: %v %v", f, n.NodeID(), st.Mode(), err)
			}
		}
	}
	for _, f := range []string{"keys/grant.key", "keys/receipt.key", "keys/redact.salt", "ca/ca.key", "ca/jwt.key"} {
		x, _ := os.ReadFile(filepath.Join(a.data, f))
		y, _ := os.ReadFile(filepath.Join(b.data, f))
		if string(x) != string(y) {
			t.Fatalf("%s differs between the nodes", f)
		}
	}
	ax, _ := os.ReadFile(filepath.Join(a.data, "keys", "audit.key"))
	bx, _ := os.ReadFile(filepath.Join(b.data, "keys", "audit.key"))
	if string(ax) == string(bx) {
		t.Fatal("the nodes share an audit key")
	}

	// A session started on A is served on B.
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := a.startSession("scribe", "take notes", nil, "")
	cs := b.connect(t, creds.HTTPClient(false), nil)
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}})
	if err != nil || res.IsError {
		t.Fatalf("call on B with a session from A: %v %+v", err, res)
	}
}

// TestClusterJoinRefused: without the token, with a wrong one, or from
// a data directory of another system, a node does not join.
func TestClusterJoinRefused(t *testing.T) {
	dsn, schema := testPostgres(t)
	cfg := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Addr: "127.0.0.1:0", TrustDomain: "test.ward"}
	first := cfg
	first.Data = t.TempDir()
	startNode(t, first)
	open := func(c server.Config) error {
		n, err := server.Open(context.Background(), c)
		if err == nil {
			n.Close()
		}
		return err
	}
	noToken := cfg
	noToken.Data = t.TempDir()
	if err := open(noToken); err == nil || !strings.Contains(err.Error(), "--join") {
		t.Fatalf("a node without the token: %v", err)
	}
	wrong := cfg
	wrong.Data = t.TempDir()
	wrong.JoinToken = server.NewJoinToken()
	if err := open(wrong); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("a node with another token: %v", err)
	}
	if _, err := os.Stat(filepath.Join(wrong.Data, "ca", "ca.key")); err == nil {
		t.Fatal("a refused node kept a CA")
	}
	// A data directory of another system, with the right token.
	tok, _ := os.ReadFile(filepath.Join(first.Data, "keys", "join.token"))
	alien := server.Config{Data: t.TempDir(), Upstreams: demoOnly, Addr: "127.0.0.1:0", TrustDomain: "test.ward"}
	if err := open(alien); err != nil {
		t.Fatal(err)
	}
	alien.StoreDSN, alien.StoreSchema, alien.JoinToken = dsn, schema, string(tok)
	if err := open(alien); err == nil || !strings.Contains(err.Error(), "another ward system") {
		t.Fatalf("a data directory of another system: %v", err)
	}
	if _, err := server.ParseJoinToken("ward-join-v1:short"); err == nil {
		t.Fatal("a short token was accepted")
	}
}

// TestClusterStartTogether: three nodes given one operator-made token
// start at once on a fresh schema: one migrates it, creates the keys and
// bootstraps; all three come up as one system.
func TestClusterStartTogether(t *testing.T) {
	dsn, schema := testPostgres(t)
	tok := server.NewJoinToken()
	nodes := make([]*server.Node, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			nodes[i], errs[i] = server.Open(context.Background(), server.Config{Data: t.TempDir(), Addr: "127.0.0.1:0", TrustDomain: "test.ward",
				Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, JoinToken: tok})
		})
	}
	wg.Wait()
	admins := 0
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		defer n.Close()
		if n.AdminCredential != "" {
			admins++
		}
		if string(n.CA.BundlePEM()) != string(nodes[0].CA.BundlePEM()) {
			t.Fatal("the nodes have different CAs")
		}
	}
	if admins != 1 {
		t.Fatalf("%d nodes bootstrapped an admin", admins)
	}
}

// TestClusterRestart: both nodes restart from their data directories
// alone (the joined one without being given the token again), keep
// their ids and audit logs, and still serve each other's sessions.
func TestClusterRestart(t *testing.T) {
	dsn, schema := testPostgres(t)
	cfg := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema}
	ca, cb := cfg, cfg
	ca.Data, cb.Data = t.TempDir(), t.TempDir()
	a := startNode(t, ca)
	tok, _ := os.ReadFile(filepath.Join(ca.Data, "keys", "join.token"))
	cb.JoinToken = string(tok)
	b := startNode(t, cb)
	admin := a.admin
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	ids := []string{a.NodeID(), b.NodeID()}
	sizes := []uint64{a.Audit.Size(), b.Audit.Size()}
	a.Close()
	b.Close()
	cb.JoinToken = ""
	a = startNode(t, ca)
	b = startNode(t, cb)
	a.admin, b.admin = admin, admin
	if a.NodeID() != ids[0] || b.NodeID() != ids[1] {
		t.Fatalf("ids after restart %s %s, before %v", a.NodeID(), b.NodeID(), ids)
	}
	if a.Audit.Size() <= sizes[0] || b.Audit.Size() <= sizes[1] {
		t.Fatal("an audit log started over")
	}
	creds, _ := b.startSession("scribe", "notes", nil, "")
	cs := a.connect(t, creds.HTTPClient(false), nil)
	if res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}}); err != nil || res.IsError {
		t.Fatalf("a session from B on A after the restart: %v %+v", err, res)
	}
}

// TestClusterAuditRollback: a node whose data directory is restored from
// an older backup does not start: its audit log is behind the head it
// published to the store.
func TestClusterAuditRollback(t *testing.T) {
	dsn, schema := testPostgres(t)
	cfg := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Data: t.TempDir()}
	a := startNode(t, cfg)
	admin := a.admin
	a.Close()
	backup := filepath.Join(t.TempDir(), "backup")
	if out, err := exec.Command("cp", "-a", cfg.Data, backup).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	a = startNode(t, cfg)
	a.admin = admin
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	a.Close()
	if err := os.RemoveAll(cfg.Data); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, cfg.Data); err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.TrustDomain = "127.0.0.1:0", "test.ward"
	n, err := server.Open(context.Background(), cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node restored from an older backup started")
	}
	// The store's audit index may have caught it first (if the node
	// indexed its log before it stopped).
	if !strings.Contains(err.Error(), "restored from an older backup") && !strings.Contains(err.Error(), "the log is behind the store") {
		t.Fatalf("refusal: %v", err)
	}
}
