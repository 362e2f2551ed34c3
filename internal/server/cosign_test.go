package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
)

// cosignCluster starts three nodes on a fresh schema (each with cfg, if
// given) and returns them with a connection to that schema.
func cosignCluster(t *testing.T, cfg ...server.Config) ([]*testNode, *sql.DB) {
	t.Helper()
	dsn, schema := testPostgres(t)
	base := server.Config{}
	if len(cfg) > 0 {
		base = cfg[0]
	}
	return cosignClusterAt(t, dsn, schema, base)
}

// cosignClusterAt is cosignCluster on schema.
func cosignClusterAt(t *testing.T, dsn, schema string, cfg server.Config) ([]*testNode, *sql.DB) {
	t.Helper()
	cfg.Upstreams, cfg.StoreDSN, cfg.StoreSchema = demoOnly, dsn, schema
	first := cfg
	first.Data = t.TempDir()
	nodes := []*testNode{startNode(t, first)}
	tok, err := os.ReadFile(filepath.Join(first.Data, "keys", "join.token"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c := cfg
		c.Data, c.JoinToken = t.TempDir(), string(tok)
		nodes = append(nodes, startNode(t, c))
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`SET search_path TO ` + schema); err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // the search_path is per connection
	return nodes, db
}

func logEvents(t *testing.T, n *testNode, k int) {
	t.Helper()
	for i := range k {
		if _, err := n.Audit.Append(context.Background(), audit.Event{Type: "test.event", Actor: "tester", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
}

func cosignAll(t *testing.T, nodes []*testNode) {
	t.Helper()
	for range 2 {
		for _, n := range nodes {
			if err := n.Cosign(context.Background()); err != nil {
				t.Fatalf("node %s: %v", n.NodeID(), err)
			}
		}
	}
}

// TestClusterCosignStandard: every node cosigns every other node's head;
// the cosignatures and the consistency proofs published with the heads
// verify with golang.org/x/mod/sumdb/note, crypto/ed25519 (the C2SP
// cosignature/v1 message written out here) and
// github.com/transparency-dev/merkle alone.
func TestClusterCosignStandard(t *testing.T) {
	nodes, _ := cosignCluster(t)
	for _, n := range nodes {
		logEvents(t, n, 3)
	}
	cosignAll(t, nodes)
	st := nodes[0].Store
	first, err := st.ListAuditCosignatures(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		logEvents(t, n, 5)
	}
	// One round: each node publishes its head with proofs from what the
	// others cosigned; the next round's cosignatures need those proofs.
	for _, n := range nodes {
		if err := n.Cosign(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	checked := 0
	for _, n := range nodes {
		size, proofs, err := st.GetAuditProofs(context.Background(), n.NodeID())
		if err != nil {
			t.Fatal(err)
		}
		h, _, _ := st.GetAuditHead(context.Background(), n.NodeID())
		logV, err := note.NewVerifier(h.VKey)
		if err != nil {
			t.Fatal(err)
		}
		newRoot := rootOf(t, h.Checkpoint, logV)
		for _, c := range first {
			if c.Node != n.NodeID() || c.Size == size {
				continue
			}
			hashes := proofs[c.Size]
			if hashes == nil {
				t.Fatalf("node %s published no proof from %d (its witness %s's size) to %d: %v", n.NodeID(), c.Size, c.Witness, size, proofs)
			}
			var p [][]byte
			for _, b := range hashes {
				x, _ := base64.StdEncoding.DecodeString(b)
				p = append(p, x)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c.Size, size, p, rootOf(t, c.Checkpoint, logV), newRoot); err != nil {
				t.Fatalf("the proof %d→%d of node %s: %v", c.Size, size, n.NodeID(), err)
			}
			checked++
		}
	}
	if checked != 6 {
		t.Fatalf("%d consistency proofs checked, want 6 (3 nodes × 2 witnesses)", checked)
	}
	cosignAll(t, nodes)
	rows, err := st.ListAuditCosignatures(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 {
		t.Fatalf("%d cosignatures, want 6", len(rows))
	}
	for _, c := range rows {
		var logNode, witnessNode *testNode
		for _, n := range nodes {
			switch n.NodeID() {
			case c.Node:
				logNode = n
			case c.Witness:
				witnessNode = n
			}
		}
		if c.Size != logNode.Audit.Size() {
			t.Fatalf("%s cosigned %s at %d, its log is at %d", c.Witness, c.Node, c.Size, logNode.Audit.Size())
		}
		vkey := strings.TrimSpace(string(mustRead(t, filepath.Join(witnessNode.data, "keys", "cosign.vkey"))))
		checkCosignatureV1(t, c.Checkpoint, vkey)
		logV, _ := note.NewVerifier(strings.TrimSpace(string(mustRead(t, filepath.Join(logNode.data, "keys", "audit.pub")))))
		if _, err := note.Open([]byte(c.Checkpoint), note.VerifierList(logV)); err != nil {
			t.Fatalf("the cosigned checkpoint of %s does not verify with its log key: %v", c.Node, err)
		}
	}
}

// checkCosignatureV1 checks the one cosignature line of cp by the key
// vkey ("name+hash+base64(0x04 || Ed25519 public key)") as
// c2sp.org/tlog-cosignature says: the key hash is SHA-256(name || "\n" ||
// 0x04 || key)[:4], the signature 8 bytes of big-endian timestamp and an
// Ed25519 signature of "cosignature/v1\ntime <t>\n" + the note's text.
func checkCosignatureV1(t *testing.T, cp, vkey string) {
	t.Helper()
	f := strings.SplitN(vkey, "+", 3)
	key, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil || len(key) != 33 || key[0] != 0x04 {
		t.Fatalf("cosign key %q is not a cosignature/v1 key", vkey)
	}
	h := sha256.Sum256(append([]byte(f[0]+"\n"), key...))
	if fmt.Sprintf("%08x", binary.BigEndian.Uint32(h[:4])) != f[1] {
		t.Fatalf("cosign key %q: key hash", vkey)
	}
	text, sigs, _ := strings.Cut(cp, "\n\n")
	text += "\n"
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		name, b64, _ := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		sig, _ := base64.StdEncoding.DecodeString(b64)
		if name != f[0] || len(sig) != 4+8+64 || fmt.Sprintf("%08x", binary.BigEndian.Uint32(sig)) != f[1] {
			continue
		}
		ts := binary.BigEndian.Uint64(sig[4:12])
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, text)
		if !ed25519.Verify(ed25519.PublicKey(key[1:]), []byte(msg), sig[12:]) {
			t.Fatalf("the cosignature by %s does not verify", f[0])
		}
		return
	}
	t.Fatalf("no cosignature by %s in\n%s", f[0], cp)
}

func rootOf(t *testing.T, cp string, v note.Verifier) []byte {
	t.Helper()
	n, err := note.Open([]byte(cp), note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(n.Text, "\n")
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestClusterCosignRefuses: a head in the store that forks from what a
// node cosigned (same size, another root, signed by the peer's key), or
// that is behind it (a rollback), is refused: an error, one
// "cosign.refused" event in the refusing node's log however often it
// looks, and ward_cosign_refusals_total; nothing is cosigned.
func TestClusterCosignRefuses(t *testing.T) {
	nodes, db := cosignCluster(t)
	a, b := nodes[0], nodes[1]
	logEvents(t, b, 4)
	cosignAll(t, nodes)
	early, _, err := a.Store.GetAuditHead(context.Background(), b.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	logEvents(t, b, 4)
	cosignAll(t, nodes)
	cur, _, _ := a.Store.GetAuditHead(context.Background(), b.NodeID())

	refusals := func() int {
		events, err := a.Audit.Read(0, a.Audit.Size())
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, e := range events {
			if e.Type == "cosign.refused" && strings.Contains(string(e.Data), b.NodeID()) {
				k++
			}
		}
		return k
	}
	cases := []struct {
		name, checkpoint, want string
		size                   uint64
	}{
		{"fork", forkOf(t, b, cur.Checkpoint), "a fork", cur.Size},
		{"rollback", early.Checkpoint, "rolled back", early.Size},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Only someone who writes the store's tables directly can put
			// such a head there: PutAuditHead refuses a smaller one.
			if _, err := db.Exec(`UPDATE audit_heads SET size = $2, checkpoint = $3 WHERE node = $1`, b.NodeID(), int64(tc.size), tc.checkpoint); err != nil {
				t.Fatal(err)
			}
			before, _ := a.Store.ListAuditCosignatures(context.Background(), b.NodeID())
			for range 2 {
				if err := a.Cosign(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("cosign: %v, want an error saying %q", err, tc.want)
				}
			}
			if k := refusals(); k != i+1 {
				t.Fatalf("%d cosign.refused events, want %d", k, i+1)
			}
			after, _ := a.Store.ListAuditCosignatures(context.Background(), b.NodeID())
			for j := range after {
				if after[j].Witness == a.NodeID() && after[j].Checkpoint != before[j].Checkpoint {
					t.Fatal("the refused head was cosigned")
				}
			}
			m := sample(scrape(t, a, a.admin), "ward_cosign_refusals_total", map[string]string{"node": b.NodeID()})
			if m == nil || m.GetCounter().GetValue() != float64(i+1) {
				t.Fatalf("ward_cosign_refusals_total{node=%s}: %v", b.NodeID(), m)
			}
		})
	}
	// The real head again: cosigned as before.
	if _, err := db.Exec(`UPDATE audit_heads SET size = $2, checkpoint = $3 WHERE node = $1`, b.NodeID(), int64(cur.Size), cur.Checkpoint); err != nil {
		t.Fatal(err)
	}
	if err := a.Cosign(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// forkOf signs, with b's own log key, a checkpoint of b's origin and the
// size of cp but another root.
func forkOf(t *testing.T, b *testNode, cp string) string {
	t.Helper()
	skey := strings.TrimSpace(string(mustRead(t, filepath.Join(b.data, "keys", "audit.key"))))
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(cp, "\n", 4)
	root := sha256.Sum256([]byte("another history"))
	signed, err := note.Sign(&note.Note{Text: lines[0] + "\n" + lines[1] + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// TestClusterCosignsByItself: with nobody calling Cosign, the nodes
// publish their heads and cosign each other's on their own cadence,
// including a head that moved on (which needs a consistency proof).
func TestClusterCosignsByItself(t *testing.T) {
	nodes, _ := cosignCluster(t)
	for _, n := range nodes {
		logEvents(t, n, 2)
	}
	waitCosigned := func() {
		t.Helper()
		want := map[string]uint64{}
		for _, n := range nodes {
			want[n.NodeID()] = n.Audit.Size()
		}
		deadline := time.Now().Add(time.Minute)
		for {
			rows, err := nodes[0].Store.ListAuditCosignatures(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			ok := 0
			for _, c := range rows {
				if c.Size >= want[c.Node] {
					ok++
				}
			}
			if ok == 6 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a minute, %d of 6 cosignatures cover the logs (%v): %+v", ok, want, rows)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitCosigned()
	for _, n := range nodes {
		logEvents(t, n, 3)
	}
	waitCosigned()
}

// TestClusterCosignRotation: a peer's log key rotated; the others learn
// the new key from a checkpoint both keys signed, and afterwards refuse
// a head signed by the retired key alone (as a thief of it would make).
func TestClusterCosignRotation(t *testing.T) {
	nodes, db := cosignCluster(t)
	a, b := nodes[0], nodes[1]
	oldKey := strings.TrimSpace(string(mustRead(t, filepath.Join(b.data, "keys", "audit.key"))))
	logEvents(t, b, 2)
	cosignAll(t, nodes)
	if _, err := b.RotateLogKey(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	logEvents(t, b, 2)
	cosignAll(t, nodes)
	if st, err := b.FinishLogKeyRotation(context.Background()); err != nil || st.Next != "" {
		t.Fatalf("retire: %+v %v", st, err)
	}
	logEvents(t, b, 2)
	cosignAll(t, nodes) // the new key alone: still cosigned
	pins := string(mustRead(t, filepath.Join(a.data, "witness", "peer-keys.json")))
	if strings.Count(pins, keyHashOf(t, b)) != 1 || strings.Count(pins, "/audit/"+b.NodeID()+"+") != 2 {
		t.Fatalf("a's pinned keys for b: %s", pins)
	}

	// A head extending b's log, signed by the retired key alone.
	h, _, _ := a.Store.GetAuditHead(context.Background(), b.NodeID())
	signer, err := note.NewSigner(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(h.Checkpoint, "\n\n")
	forged, err := note.Sign(&note.Note{Text: text + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_heads SET checkpoint = $2 WHERE node = $1`, b.NodeID(), string(forged)); err != nil {
		t.Fatal(err)
	}
	if err := a.Cosign(context.Background()); err == nil || !strings.Contains(err.Error(), "newest key") {
		t.Fatalf("a head signed by the retired key alone: %v", err)
	}
}

// keyHashOf is the name+hash of b's current log key.
func keyHashOf(t *testing.T, b *testNode) string {
	t.Helper()
	pub := strings.TrimSpace(string(mustRead(t, filepath.Join(b.data, "keys", "audit.pub"))))
	name, rest, _ := strings.Cut(pub, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return name + "+" + hash
}
