package main

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// systemNodes opens k nodes of one system on a fresh PostgreSQL schema
// (not serving: the test drives their cosigning) and returns them with
// the DSN and schema.
func systemNodes(t *testing.T, k int) (nodes []*server.Node, dsn, schema string) {
	t.Helper()
	dsn, schema, ok := testPGSchema(t)
	if !ok {
		t.Skip("PostgreSQL test server unreachable")
	}
	var token string
	for i := range k {
		cfg := server.Config{Data: t.TempDir(), Addr: "127.0.0.1:0", TrustDomain: "sys.test", StoreDSN: dsn, StoreSchema: schema, JoinToken: token,
			Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}}
		n, err := server.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		if i == 0 {
			token = strings.TrimSpace(string(must(os.ReadFile(filepath.Join(cfg.Data, "keys", "join.token")))))
		}
		nodes = append(nodes, n)
	}
	return nodes, dsn, schema
}

// appendEvents appends k events to n's log and waits for a checkpoint
// over them (the log signs on its own cadence).
func appendEvents(t *testing.T, n *server.Node, k int) {
	t.Helper()
	for i := range k {
		if _, err := n.Audit.Append(context.Background(), audit.Event{Type: "test.event", Actor: "tester", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Audit.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// cosignRounds has every node publish its head and cosign the others',
// twice (the second round uses the proofs the first made needed).
func cosignRounds(t *testing.T, nodes []*server.Node) {
	t.Helper()
	for range 2 {
		for _, n := range nodes {
			if err := n.Cosign(context.Background()); err != nil {
				t.Fatalf("node %s: %v", n.NodeID(), err)
			}
		}
	}
}

type sysNode struct {
	ID        string   `json:"id"`
	Data      string   `json:"data"`
	LogKeys   []string `json:"log_keys"`
	CosignKey string   `json:"cosign_key"`
}

func nodeAnchors(t *testing.T, n *server.Node) sysNode {
	data := n.DataDir()
	return sysNode{ID: n.NodeID(), Data: data,
		LogKeys:   []string{strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "keys", "audit.pub")))))},
		CosignKey: strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "keys", "cosign.vkey")))))}
}

// writeSystem writes a system file (JSON is YAML) naming nodes.
func writeSystem(t *testing.T, dsn, schema string, nodes []sysNode) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"store": map[string]string{"postgres": dsn, "schema": schema}, "nodes": nodes})
	path := filepath.Join(t.TempDir(), "system.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type sysReport struct {
	OK    bool `json:"ok"`
	Nodes []struct {
		Node      string   `json:"node"`
		Status    string   `json:"status"`
		Size      uint64   `json:"size"`
		Witnessed uint64   `json:"witnessed"`
		Problems  []string `json:"problems"`
		Cosigners []struct {
			Witness string `json:"witness"`
			Size    uint64 `json:"size"`
		} `json:"cosigners"`
	} `json:"nodes"`
	Unknown []string `json:"unknown"`
}

func verifySys(t *testing.T, path string) (int, sysReport, string) {
	t.Helper()
	code, out, errOut := wardCLI("audit", "verify", "--system", "--config", path, "-o", "json")
	var r sysReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("ward audit verify --system: exit %d: %v: %s %s", code, err, out, errOut)
	}
	return code, r, errOut
}

func statusOf(r sysReport, node string) string {
	for _, n := range r.Nodes {
		if n.Node == node {
			return n.Status
		}
	}
	return ""
}

// TestAuditVerifySystem: three nodes on PostgreSQL cosign each other's
// heads; ward audit verify --system finds the system clean, then a
// missing log, a rolled-back log, a checkpoint signed by a wrong key, a
// wrong key in the anchors and an unknown node, each with exit 1.
func TestAuditVerifySystem(t *testing.T) {
	nodes, dsn, schema := systemNodes(t, 3)
	for _, n := range nodes {
		appendEvents(t, n, 5)
	}
	cosignRounds(t, nodes)
	// The rollback's "earlier copy" of node 1, taken while it is cosigned
	// at its current size; then the system moves on.
	n1 := nodes[1]
	early := t.TempDir()
	copyLog(t, n1.DataDir(), early)
	db := pgConn(t, dsn, schema)
	var earlyHead string
	if err := db.QueryRow(`SELECT checkpoint FROM audit_heads WHERE node = $1`, n1.NodeID()).Scan(&earlyHead); err != nil {
		t.Fatal(err)
	}
	earlyCos := map[string]string{}
	rows, err := db.Query(`SELECT witness, checkpoint FROM audit_cosignatures WHERE node = $1`, n1.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var w, cp string
		rows.Scan(&w, &cp)
		earlyCos[w] = cp
	}
	rows.Close()
	for _, n := range nodes {
		appendEvents(t, n, 7)
	}
	cosignRounds(t, nodes)

	var anchors []sysNode
	for _, n := range nodes {
		anchors = append(anchors, nodeAnchors(t, n))
	}
	path := writeSystem(t, dsn, schema, anchors)
	code, rep, errOut := verifySys(t, path)
	if code != 0 || !rep.OK || len(rep.Nodes) != 3 {
		t.Fatalf("clean system: exit %d %+v %s", code, rep, errOut)
	}
	for _, n := range rep.Nodes {
		if n.Status != "ok" || n.Size < 12 || n.Witnessed < 12 || len(n.Cosigners) != 2 {
			t.Fatalf("clean system, node %+v", n)
		}
	}
	if out := mustCLI(t, "audit", "verify", "--system", "--config", path); !strings.Contains(out, "ok: 3 node logs verified") {
		t.Fatalf("text output: %s", out)
	}

	// A missing node log.
	n2dir := filepath.Join(nodes[2].DataDir(), "audit")
	if err := os.Rename(n2dir, n2dir+".away"); err != nil {
		t.Fatal(err)
	}
	code, rep, errOut = verifySys(t, path)
	if code != 1 || rep.OK || statusOf(rep, nodes[2].NodeID()) != "missing" || statusOf(rep, nodes[0].NodeID()) != "ok" || !strings.Contains(errOut, "missing") {
		t.Fatalf("missing log: exit %d %+v %s", code, rep, errOut)
	}
	os.Rename(n2dir+".away", n2dir)

	// A rolled-back log: node 1's directory restored from the earlier copy
	// (its head file with it).
	n1.Close()
	late := t.TempDir()
	copyLog(t, n1.DataDir(), late)
	copyLog(t, early, n1.DataDir())
	code, rep, _ = verifySys(t, path)
	if code != 1 || statusOf(rep, n1.NodeID()) != "rolled-back" {
		t.Fatalf("rolled-back log: exit %d %+v", code, rep)
	}
	// The store rolled back with it (its head and the cosignatures of
	// it, as they were): the other nodes' witnesses still remember.
	var lateHead string
	if err := db.QueryRow(`SELECT checkpoint FROM audit_heads WHERE node = $1`, n1.NodeID()).Scan(&lateHead); err != nil {
		t.Fatal(err)
	}
	lateCos := map[string]string{}
	for w := range earlyCos {
		var cp string
		if err := db.QueryRow(`SELECT checkpoint FROM audit_cosignatures WHERE node = $1 AND witness = $2`, n1.NodeID(), w).Scan(&cp); err != nil {
			t.Fatal(err)
		}
		lateCos[w] = cp
	}
	setStore := func(head string, cos map[string]string) {
		t.Helper()
		size := strings.Split(head, "\n")[1]
		if _, err := db.Exec(`UPDATE audit_heads SET checkpoint = $2, size = $3 WHERE node = $1`, n1.NodeID(), head, size); err != nil {
			t.Fatal(err)
		}
		for w, cp := range cos {
			if _, err := db.Exec(`UPDATE audit_cosignatures SET checkpoint = $3, size = $4 WHERE node = $1 AND witness = $2`, n1.NodeID(), w, cp, strings.Split(cp, "\n")[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	setStore(earlyHead, earlyCos)
	code, rep, _ = verifySys(t, path)
	if code != 1 || statusOf(rep, n1.NodeID()) != "rolled-back" || !strings.Contains(fmt.Sprint(rep), "witness state holds") {
		t.Fatalf("a log and the store rolled back together: exit %d %+v", code, rep)
	}
	setStore(lateHead, lateCos)
	// A forked log: the earlier copy, extended with other events and
	// signed by the node's own key, in place of its log.
	fork := t.TempDir()
	copyLog(t, early, fork)
	skey := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(n1.DataDir(), "keys", "audit.key")))))
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(anchors[1].LogKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	fl, err := audit.Open(audit.Config{Dir: filepath.Join(fork, "audit"), Origin: v.Name(), Signer: signer, Verifier: v, Head: filepath.Join(fork, "audit.head")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := fl.Append(context.Background(), audit.Event{Type: "forged.event", Actor: "mallory", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	copyLog(t, fork, n1.DataDir())
	code, rep, _ = verifySys(t, path)
	if code != 1 || statusOf(rep, n1.NodeID()) != "forked" {
		t.Fatalf("forked log: exit %d %+v", code, rep)
	}

	// A truncated log: its entries cut in the middle.
	copyLog(t, late, n1.DataDir())
	entries := filepath.Join(n1.DataDir(), "audit", "entries")
	b := must(os.ReadFile(entries))
	os.WriteFile(entries, b[:len(b)/2], 0o600)
	code, rep, _ = verifySys(t, path)
	if s := statusOf(rep, n1.NodeID()); code != 1 || (s != "rolled-back" && s != "tampered") {
		t.Fatalf("truncated log: exit %d %+v", code, rep)
	}

	copyLog(t, late, n1.DataDir())
	if code, rep, errOut = verifySys(t, path); code != 0 {
		t.Fatalf("restored: exit %d %+v %s", code, rep, errOut)
	}

	// Anchors naming another key for node 0: its log is not signed by it.
	wrong := append([]sysNode(nil), anchors...)
	_, vkey, err := audit.NewNoteKey("sys.test/audit/" + nodes[0].NodeID())
	if err != nil {
		t.Fatal(err)
	}
	wrong[0].LogKeys = []string{vkey}
	code, rep, _ = verifySys(t, writeSystem(t, dsn, schema, wrong))
	if code != 1 || statusOf(rep, nodes[0].NodeID()) != "tampered" {
		t.Fatalf("wrong key in the anchors: exit %d %+v", code, rep)
	}

	// A head in the store signed by a wrong key (of the node's name).
	st, err := store.OpenPostgres(context.Background(), store.Config{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, _, err := st.GetAuditHead(context.Background(), nodes[0].NodeID())
	if err != nil {
		t.Fatal(err)
	}
	forged := h
	forged.Checkpoint = resign(t, h.Checkpoint, nodes[0].NodeID())
	if err := st.PutAuditHead(context.Background(), forged); err != nil {
		t.Fatal(err)
	}
	code, rep, _ = verifySys(t, path)
	if code != 1 || statusOf(rep, nodes[0].NodeID()) != "bad-signature" {
		t.Fatalf("forged head: exit %d %+v", code, rep)
	}
	if err := st.PutAuditHead(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if code, rep, errOut = verifySys(t, path); code != 0 {
		t.Fatalf("head restored: exit %d %+v %s", code, rep, errOut)
	}

	// An unknown node: the system file forgets node 2.
	code, rep, errOut = verifySys(t, writeSystem(t, dsn, schema, anchors[:2]))
	if code != 1 || len(rep.Unknown) != 1 || rep.Unknown[0] != nodes[2].NodeID() || !strings.Contains(errOut, "unknown") {
		t.Fatalf("unknown node: exit %d %+v %s", code, rep, errOut)
	}
}

// copyLog copies a data directory's audit/ and audit.head from src to
// dst, replacing what dst had.
func copyLog(t *testing.T, src, dst string) {
	t.Helper()
	os.RemoveAll(filepath.Join(dst, "audit"))
	if err := os.CopyFS(filepath.Join(dst, "audit"), os.DirFS(filepath.Join(src, "audit"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "audit.head"), must(os.ReadFile(filepath.Join(src, "audit.head"))), 0o600); err != nil {
		t.Fatal(err)
	}
}

// resign signs a checkpoint's text with a fresh key of the node's log
// name.
func resign(t *testing.T, checkpoint, node string) string {
	t.Helper()
	skey, _, err := audit.NewNoteKey("sys.test/audit/" + node)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(checkpoint, "\n\n")
	signed, err := note.Sign(&note.Note{Text: text + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// TestAuditReindex: the query index covers every node's events; ward
// audit search --system finds who did what across the nodes; after the
// index is deleted, ward audit reindex rebuilds it from the logs and the
// same search gives the same answer, again after a second reindex. An
// index row that lies about its event is caught, not believed.
func TestAuditReindex(t *testing.T) {
	nodes, dsn, schema := systemNodes(t, 3)
	ctx := context.Background()
	for i, n := range nodes {
		for j := range 3 + i {
			decision := "allow"
			if j%2 == 1 {
				decision = "deny"
			}
			for _, agent := range []string{"scribe", "auditor"} {
				if _, err := n.Audit.Append(ctx, audit.Event{Type: "decision", Actor: "spiffe://sys.test/agent/" + agent, Agent: agent, Sponsor: "dora",
					Data: json.RawMessage(fmt.Sprintf(`{"name":"demo.read_note","decision":%q,"j":%d}`, decision, j))}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := n.IndexAudit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cosignRounds(t, nodes)
	var anchors []sysNode
	for _, n := range nodes {
		anchors = append(anchors, nodeAnchors(t, n))
	}
	path := writeSystem(t, dsn, schema, anchors)
	search := func() string {
		return mustCLI(t, "audit", "search", "--system", "--config", path, "--agent", "scribe", "--decision", "deny", "-n", "0", "-o", "json")
	}
	before := search()
	lines := strings.Split(strings.TrimSpace(before), "\n")
	if len(lines) != 1+2+2 { // j = 1 on node 0; 1 and 3 on nodes 1 and 2
		t.Fatalf("search across nodes: %d events:\n%s", len(lines), before)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var e struct {
			Node  string `json:"node"`
			Agent string `json:"agent"`
		}
		json.Unmarshal([]byte(l), &e)
		seen[e.Node] = true
		if e.Agent != "scribe" {
			t.Fatalf("a match of another agent: %s", l)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("events of %d nodes, want 3:\n%s", len(seen), before)
	}
	one := mustCLI(t, "audit", "search", "--system", "--config", path, "--agent", "scribe", "--decision", "deny", "--node", nodes[2].NodeID(), "-n", "0", "-o", "json")
	if lines := strings.Split(strings.TrimSpace(one), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"node":"`+nodes[2].NodeID()+`"`) {
		t.Fatalf("search of one node: %s", one)
	}
	if code, _, errOut := wardCLI("audit", "search", "--node", nodes[2].NodeID()); code != 2 || !strings.Contains(errOut, "--system") {
		t.Fatalf("--node without --system: exit %d %s", code, errOut)
	}

	st, err := store.OpenPostgres(ctx, store.Config{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.DeleteAuditIndexOf(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	if out := search(); out != "" {
		t.Fatalf("search without an index: %s", out)
	}
	for range 2 {
		var rows []struct {
			Node   string `json:"node"`
			Events uint64 `json:"events"`
		}
		if err := json.Unmarshal([]byte(mustCLI(t, "audit", "reindex", "--config", path, "-o", "json")), &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || rows[0].Events == 0 {
			t.Fatalf("reindex: %+v", rows)
		}
		if after := search(); after != before {
			t.Fatalf("search after reindex:\n%s\nbefore:\n%s", after, before)
		}
	}

	// A row that says an event of "auditor" was of "scribe".
	db := pgConn(t, dsn, schema)
	if _, err := db.Exec(`UPDATE audit_index SET agent = 'scribe' WHERE agent = 'auditor' AND decision = 'deny' AND node = $1`, nodes[0].NodeID()); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := wardCLI("audit", "search", "--system", "--config", path, "--agent", "scribe", "--decision", "deny", "-o", "json"); code != 1 || !strings.Contains(errOut, "does not match") {
		t.Fatalf("a lying index row: exit %d %s", code, errOut)
	}
	mustCLI(t, "audit", "reindex", "--config", path)
	if after := search(); after != before {
		t.Fatalf("search after the lying row was reindexed:\n%s", after)
	}

	// A node whose log is missing is not reindexed (its rows stay), and
	// the command says so.
	os.Rename(filepath.Join(nodes[1].DataDir(), "audit"), filepath.Join(nodes[1].DataDir(), "audit.away"))
	if code, out, errOut := wardCLI("audit", "reindex", "--config", path); code != 1 || !strings.Contains(out, "not reindexed") || !strings.Contains(errOut, "missing") {
		t.Fatalf("reindex with a missing log: exit %d %s %s", code, out, errOut)
	}
}

// pgConn connects to schema.
func pgConn(t *testing.T, dsn, schema string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`SET search_path TO ` + schema); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestAuditVerifySystemKeyRotation: node 0's log key is rotated while
// the system runs: during the overlap its checkpoints carry both keys'
// signatures and the other nodes go on cosigning (learning the new key
// from them); the old key retires only once they have; after it, the
// new key signs alone and is still cosigned. ward audit verify --system
// accepts the log with both keys listed and refuses it with either
// alone; the node restarts on its rotated keys.
func TestAuditVerifySystemKeyRotation(t *testing.T) {
	nodes, dsn, schema := systemNodes(t, 3)
	ctx := context.Background()
	for _, n := range nodes {
		appendEvents(t, n, 3)
	}
	cosignRounds(t, nodes)
	n0 := nodes[0]
	old := nodeAnchors(t, n0).LogKeys[0]
	early0 := t.TempDir() // the old key, kept as a thief would
	os.WriteFile(filepath.Join(early0, "audit.key"), must(os.ReadFile(filepath.Join(n0.DataDir(), "keys", "audit.key"))), 0o600)
	st, err := n0.RotateLogKey(ctx, "admin")
	if err != nil || st.Next == "" || st.Key != old {
		t.Fatalf("rotate: %+v %v", st, err)
	}
	// Too soon to retire the old key: no checkpoint signed by both yet.
	if st, err := n0.FinishLogKeyRotation(ctx); err != nil || st.Next == "" || !strings.Contains(st.Waiting, "checkpoint") {
		t.Fatalf("rotate again at once: %+v %v", st, err)
	}
	appendEvents(t, n0, 3)
	// Not cosigned by the others yet.
	if st, err := n0.FinishLogKeyRotation(ctx); err != nil || st.Next == "" || !strings.Contains(st.Waiting, "cosignature") {
		t.Fatalf("rotate before the others cosigned: %+v %v", st, err)
	}
	cosignRounds(t, nodes)
	st, err = n0.FinishLogKeyRotation(ctx)
	if err != nil || st.Next != "" || st.Key == old || len(st.Retired) != 1 || st.Retired[0] != old {
		t.Fatalf("retire: %+v %v", st, err)
	}
	newKey := st.Key
	appendEvents(t, n0, 3)
	cosignRounds(t, nodes)

	anchors := func(keys ...string) string {
		var a []sysNode
		for _, n := range nodes {
			a = append(a, nodeAnchors(t, n))
		}
		a[0].LogKeys = keys
		return writeSystem(t, dsn, schema, a)
	}
	if code, rep, errOut := verifySys(t, anchors(newKey, old)); code != 0 || !rep.OK {
		t.Fatalf("both keys: exit %d %+v %s", code, rep, errOut)
	}
	for _, k := range []string{old, newKey} {
		if code, rep, _ := verifySys(t, anchors(k)); code != 1 || statusOf(rep, n0.NodeID()) != "tampered" {
			t.Fatalf("one key: exit %d %+v", code, rep)
		}
	}
	// The node restarts on its rotated keys, and its head still checks.
	data := n0.DataDir()
	n0.Close()
	again, err := server.Open(ctx, server.Config{Data: data, Addr: "127.0.0.1:0", TrustDomain: "sys.test", StoreDSN: dsn, StoreSchema: schema,
		Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	appendEvents(t, again, 1)
	cosignRounds(t, append([]*server.Node{again}, nodes[1:]...))
	if code, rep, errOut := verifySys(t, anchors(newKey, old)); code != 0 {
		t.Fatalf("after the restart: exit %d %+v %s", code, rep, errOut)
	}

	// A thief of the retired key adds a checkpoint signed by it alone
	// (over the latest tree: every entry still matches).
	again.Close()
	cpsPath := filepath.Join(data, "audit", "checkpoints")
	cps := must(os.ReadFile(cpsPath))
	last := strings.LastIndex(string(cps), "\n\n")
	start := strings.LastIndex(string(cps[:last]), "sys.test/audit/"+n0.NodeID()+"\n")
	signer, err := note.NewSigner(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(early0, "audit.key"))))))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := note.Sign(&note.Note{Text: string(cps[start:last]) + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(forged)))
	if err := os.WriteFile(cpsPath, append(append(cps, frame...), forged...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, rep, _ := verifySys(t, anchors(newKey, old))
	if code != 1 || statusOf(rep, n0.NodeID()) != "tampered" || !strings.Contains(fmt.Sprint(rep), "rotated away") {
		t.Fatalf("a checkpoint by the retired key alone: exit %d %+v", code, rep)
	}
}

// TestAuditVerifyRotatedKey: a node alone rotates its log key (the old
// key retires once a checkpoint signed by both is the log's); ward audit
// verify accepts the log with a pinned file listing both keys, and with
// the keys DATA/keys holds, but not with either key alone.
func TestAuditVerifyRotatedKey(t *testing.T) {
	n := startNode(t, server.Config{})
	ctx := context.Background()
	data := n.DataDir()
	old := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "keys", "audit.pub")))))
	appendEvents(t, n, 2)
	if st, err := n.RotateLogKey(ctx, "admin"); err != nil || st.Next == "" {
		t.Fatalf("rotate: %+v %v", st, err)
	}
	// Restarted during the overlap (server_test's TestLoadLogKeys checks
	// what it reads then).
	n.Close()
	n = startNode(t, server.Config{Data: data})
	appendEvents(t, n, 2)
	// The node ends the overlap by itself within a second; asking does
	// not wait.
	st, err := n.FinishLogKeyRotation(ctx)
	if err != nil || st.Next != "" || len(st.Retired) != 1 {
		t.Fatalf("retire: %+v %v", st, err)
	}
	appendEvents(t, n, 2)
	// The checkpoints file holds checkpoints signed by the old key, by
	// both, and by the new one.
	var kinds []int
	for _, cp := range strings.Split(string(must(os.ReadFile(filepath.Join(data, "audit", "checkpoints")))), "\n\n")[1:] {
		k := strings.Count(cp, "— ")
		if len(kinds) == 0 || kinds[len(kinds)-1] != k {
			kinds = append(kinds, k)
		}
	}
	if fmt.Sprint(kinds) != "[1 2 1]" {
		t.Fatalf("signatures per checkpoint record, in runs: %v", kinds)
	}
	both := filepath.Join(t.TempDir(), "keys.pub")
	os.WriteFile(both, []byte(st.Key+"\n"+old+"\n"), 0o600)
	if out := mustCLI(t, "audit", "verify", "--data", data, "--key", both); !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("verify with both keys pinned: %s", out)
	}
	if out := mustCLI(t, "audit", "verify", "--data", data); !strings.Contains(out, "UNPINNED") {
		t.Fatalf("verify with DATA's keys: %s", out)
	}
	for _, k := range []string{old, st.Key} {
		if code, _, errOut := wardCLI("audit", "verify", "--data", data, "--key", k); code != 1 || !strings.Contains(errOut, "FAILED VERIFICATION") {
			t.Fatalf("verify with one key: exit %d %s", code, errOut)
		}
	}
}
