package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/ward-dev/ward/internal/server"
)

// TestLostStoreRefused: with the store lost (ward.db and its WAL gone),
// a node with an audit log and a CA once started as on a first start,
// minting a new admin credential and forgetting every pin. It refuses and
// says how to recover; --reinit-store starts over, recorded.
func TestLostStoreRefused(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	n.Close()
	for _, f := range []string{"ward.db", "ward.db-wal", "ward.db-shm"} {
		os.Remove(filepath.Join(data, f))
	}
	_, err := server.Open(context.Background(), server.Config{Data: data, Addr: "127.0.0.1:0", TrustDomain: "test.ward", Upstreams: demoOnly})
	if err == nil || !strings.Contains(err.Error(), "is empty") || !strings.Contains(err.Error(), "--reinit-store") {
		t.Fatalf("open over a lost store: %v", err)
	}
	again, err := server.Open(context.Background(), server.Config{Data: data, Addr: "127.0.0.1:0", TrustDomain: "test.ward", Upstreams: demoOnly, ReinitStore: true})
	if err != nil {
		t.Fatalf("--reinit-store: %v", err)
	}
	defer again.Close()
	if again.AdminCredential == "" {
		t.Fatal("a reinitialised store got no admin credential")
	}
	events, _ := again.Audit.Read(0, again.Audit.Size())
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if !slices.Contains(types, "store.reinit") {
		t.Fatalf("the reinit was not recorded (events %v)", types)
	}
}

// corruptTable overwrites one page of a table of a stopped node's store.
func corruptTable(t *testing.T, dbPath, table string) {
	t.Helper()
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	var root, size int
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_schema WHERE name = ?`, table).Scan(&root); err != nil {
		t.Fatal(err)
	}
	db.QueryRow(`PRAGMA page_size`).Scan(&size)
	db.Close()
	f, err := os.OpenFile(dbPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, size)
	for i := range junk {
		junk[i] = 0x5a
	}
	if _, err := f.WriteAt(junk, int64(root-1)*int64(size)); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedStore: a damaged page is found on start and named: the audit
// index (derived) is rebuilt by itself, recorded; a damaged sessions table
// stops the start with the table's name and what to do.
func TestDamagedStore(t *testing.T) {
	data := t.TempDir()
	cfg := server.Config{Data: data, Upstreams: demoOnly}
	n := startNode(t, cfg)
	n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	n.startSession("scribe", "write", nil, "")
	if err := n.IndexAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	admin := n.admin
	n.Close()
	db := filepath.Join(data, "ward.db")
	corruptTable(t, db, "audit_index")
	n = startNode(t, cfg)
	n.admin = admin
	var repaired bool
	for _, e := range auditEvents(t, n) {
		repaired = repaired || e.Type == "store.repair" && strings.Contains(string(e.Data), "audit_index")
	}
	if !repaired {
		t.Fatal("a damaged audit index was not repaired (or not recorded)")
	}
	if err := n.IndexAudit(context.Background()); err != nil {
		t.Fatalf("rebuilding the index: %v", err)
	}
	var found []json.RawMessage
	n.must("GET", "/v1/audit/events?type=session.start", nil, &found)
	if len(found) == 0 {
		t.Fatal("the rebuilt index finds no session.start")
	}
	n.Close()

	corruptTable(t, db, "sessions")
	_, err := server.Open(context.Background(), server.Config{Data: data, Addr: "127.0.0.1:0", TrustDomain: "test.ward", Upstreams: demoOnly})
	if err == nil || !strings.Contains(err.Error(), "table sessions") || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("open with a damaged sessions table: %v", err)
	}
}

// TestStoreOfAnotherLog: a store next to a log it does not belong to (or a
// log shorter than the store has seen) stops the start.
func TestStoreOfAnotherLog(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		n := startNode(t, server.Config{Data: d, Upstreams: demoOnly})
		n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
		if d == a {
			for range 5 {
				n.startSession("scribe", "write", nil, "")
			}
		}
		n.IndexAudit(context.Background())
		n.Close()
	}
	for _, f := range []string{"ward.db", "ward.db-wal", "ward.db-shm"} {
		os.Remove(filepath.Join(b, f))
		if raw, err := os.ReadFile(filepath.Join(a, f)); err == nil {
			os.WriteFile(filepath.Join(b, f), raw, 0o600)
		}
	}
	_, err := server.Open(context.Background(), server.Config{Data: b, Addr: "127.0.0.1:0", TrustDomain: "test.ward", Upstreams: demoOnly})
	if err == nil || !(strings.Contains(err.Error(), "does not belong") || strings.Contains(err.Error(), "behind the store")) {
		t.Fatalf("open with another node's store: %v", err)
	}
}

// TestStoreBehindLogReconciled: a store restored to an older state (a
// backup, or a lost write-ahead log) once brought back a session and an
// agent the log says were ended and quarantined, and forgot the first
// tool set trust on first use had approved. At start the node applies
// again, from the log, what takes authority away, and reports (without
// recreating) what the store lost that would grant it.
func TestStoreBehindLogReconciled(t *testing.T) {
	data := t.TempDir()
	files := []string{"ward.db", "ward.db-wal", "ward.db-shm"}
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	n.setupAgent("helper", nil, map[string][]string{"tools": {"demo.*"}})
	_, early := n.startSession("scribe", "write", map[string][]string{"tools": {"demo.*"}}, "")
	n.IndexAudit(context.Background())
	admin := n.admin
	n.Close()
	backup := t.TempDir()
	for _, f := range files {
		if raw, err := os.ReadFile(filepath.Join(data, f)); err == nil {
			os.WriteFile(filepath.Join(backup, f), raw, 0o600)
		}
	}

	// After the backup: the session is ended, the helper quarantined, the
	// demo server's tools first listed, a new agent registered.
	n = startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	n.admin = admin
	creds, _ := n.startSession("helper", "list", map[string][]string{"tools": {"demo.*"}}, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	if _, err := cs.ListTools(ctxT(t), nil); err != nil {
		t.Fatal(err)
	}
	cs.Close()
	n.must("POST", "/v1/sessions/"+early.Session+"/end", map[string]any{"reason": "done"}, nil)
	n.must("POST", "/v1/agents/helper/quarantine", map[string]any{}, nil)
	n.setupAgent("latecomer", nil, map[string][]string{"tools": {"demo.*"}})
	if _, err := n.Store.GetToolSet(context.Background(), "demo"); err != nil {
		t.Fatalf("the demo server's tool set was not recorded: %v", err)
	}
	n.Close()

	// The store goes back to the backup.
	for _, f := range files {
		os.Remove(filepath.Join(data, f))
		if raw, err := os.ReadFile(filepath.Join(backup, f)); err == nil {
			os.WriteFile(filepath.Join(data, f), raw, 0o600)
		}
	}
	n = startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	ctx := context.Background()
	if s, err := n.Store.GetSession(ctx, early.Session); err != nil || s.Status != "ended" {
		t.Fatalf("the ended session came back: %+v %v", s, err)
	}
	if a, err := n.Store.GetAgent(ctx, "helper"); err != nil || a.Status != "quarantined" {
		t.Fatalf("the quarantined agent came back: %+v %v", a, err)
	}
	set, err := n.Store.GetToolSet(ctx, "demo")
	if err != nil || len(set.First) == 0 {
		t.Fatalf("the first tool set was not recreated: %+v %v", set, err)
	}
	if _, err := n.Store.GetAgent(ctx, "latecomer"); err == nil {
		t.Fatal("a lost agent was recreated (that would grant authority)")
	}
	events, _ := n.Audit.Read(0, n.Audit.Size())
	var behind map[string]any
	for _, e := range events {
		if e.Type == "store.behind" {
			json.Unmarshal(e.Data, &behind)
		}
	}
	if behind == nil {
		t.Fatal("no store.behind event")
	}
	missing, _ := json.Marshal(behind["missing"])
	applied, _ := json.Marshal(behind["applied_again"])
	if !strings.Contains(string(missing), "agent latecomer") || !strings.Contains(string(applied), "session "+early.Session+" ended") ||
		!strings.Contains(string(applied), "agent helper quarantined") || !strings.Contains(string(applied), "first tool set of demo") {
		t.Fatalf("store.behind = %v", behind)
	}
	// A clean restart finds nothing to do.
	n.IndexAudit(ctx)
	size := n.Audit.Size()
	n.Close()
	n = startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	events, _ = n.Audit.Read(size, n.Audit.Size())
	for _, e := range events {
		if e.Type == "store.behind" {
			t.Fatalf("a clean restart reported the store behind: %s", e.Data)
		}
	}
}
