package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// TestClusterRotationPeerOffline: node C is offline while A rotates its
// log key. The overlap ends on its bound though C never cosigned a
// checkpoint signed by both keys; A keeps the hand-over in the store.
// When C comes back it finds A's head signed by the new key alone, learns
// the key from the hand-over (its pinned key vouches), checks that the
// head extends it, and cosigns.
func TestClusterRotationPeerOffline(t *testing.T) {
	dsn, schema := testPostgres(t)
	nodes, _ := cosignClusterAt(t, dsn, schema, server.Config{LogKeyOverlap: time.Nanosecond})
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	for _, n := range nodes {
		logEvents(t, n, 2)
	}
	cosignAll(t, nodes)
	cData := c.data
	c.Close() // offline

	// Two rotations while C is away: it walks both hand-overs.
	for r := range 2 {
		st, err := a.RotateLogKey(ctx, "admin")
		if err != nil || st.Next == "" {
			t.Fatalf("rotate: %+v %v", st, err)
		}
		logEvents(t, a, 2)
		cosignAll(t, []*testNode{a, b})
		if st, err = a.FinishLogKeyRotation(ctx); err != nil || st.Next != "" {
			t.Fatalf("rotation %d: the overlap did not end on its bound with C offline: %+v %v", r, st, err)
		}
		logEvents(t, a, 2)
		cosignAll(t, []*testNode{a, b})
	}
	st, err := a.FinishLogKeyRotation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hos, err := a.Store.ListAuditHandovers(ctx, a.NodeID())
	if err != nil || len(hos) != 2 || hos[1].New != st.Key || hos[0].New != hos[1].Old {
		t.Fatalf("hand-overs kept: %+v %v", hos, err)
	}
	logEvents(t, a, 3)
	cosignAll(t, []*testNode{a, b})
	h, _, _ := a.Store.GetAuditHead(ctx, a.NodeID())
	if h.VKey != st.Key || strings.Count(h.Checkpoint, "\n— ") != 1 {
		t.Fatalf("A's head after the overlap is not signed by the new key alone: %s", h.Checkpoint)
	}

	// C comes back.
	c = startNode(t, server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Data: cData, LogKeyOverlap: time.Nanosecond})
	for range 2 {
		a.Cosign(ctx) // A publishes the proof from the hand-over C needs
		if err := c.Cosign(ctx); err != nil {
			t.Logf("C's pass: %v", err)
		}
	}
	if err := c.Cosign(ctx); err != nil {
		t.Fatalf("C, back, does not cosign: %v", err)
	}
	cos, err := a.Store.ListAuditCosignatures(ctx, a.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ = a.Store.GetAuditHead(ctx, a.NodeID())
	cosigned := false
	for _, co := range cos {
		cosigned = cosigned || co.Witness == c.NodeID() && co.Size == h.Size
	}
	if !cosigned {
		t.Fatalf("C did not cosign A's head at %d: %+v", h.Size, cos)
	}
	pins := string(mustRead(t, c.data+"/witness/peer-keys.json"))
	if !strings.Contains(pins, st.Key) {
		t.Fatalf("C did not pin A's new key: %s", pins)
	}
}

// TestClusterRotationWaitsWithinBound: with a peer offline, the overlap
// stays open until its bound (here the default, an hour) and says so.
func TestClusterRotationWaitsWithinBound(t *testing.T) {
	nodes, _ := cosignCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	cosignAll(t, nodes)
	c.Close()
	if _, err := a.RotateLogKey(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	logEvents(t, a, 2)
	cosignAll(t, []*testNode{a, b})
	st, err := a.FinishLogKeyRotation(ctx)
	if err != nil || st.Next == "" || !strings.Contains(st.Waiting, c.NodeID()) || !strings.Contains(st.Waiting, "at most until") {
		t.Fatalf("the overlap with C offline, within its bound: %+v %v", st, err)
	}
	if hos, err := a.Store.ListAuditHandovers(ctx, a.NodeID()); err != nil || len(hos) != 0 {
		t.Fatalf("a hand-over kept before the overlap ended: %+v %v", hos, err)
	}
}

// TestClusterForgedHandover: a hand-over that installs a key signed only
// by itself, or vouched for by a key the peer retired, is refused.
func TestClusterForgedHandover(t *testing.T) {
	nodes, _ := cosignCluster(t)
	c := nodes[2]
	ctx := context.Background()
	const origin = "test.ward/audit/node-x"
	mk := func() (note.Signer, string) {
		skey, vkey, err := audit.NewNoteKey(origin)
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		return s, vkey
	}
	sign := func(by ...note.Signer) string {
		cp, err := note.Sign(&note.Note{Text: origin + "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}, by...)
		if err != nil {
			t.Fatal(err)
		}
		return string(cp)
	}
	x0, x0v := mk()
	x1, x1v := mk()
	put := func(vkey, cp string, keys ...string) {
		t.Helper()
		if err := c.Store.PutAuditHead(ctx, store.AuditHead{Node: "node-x", Origin: origin, VKey: vkey, Size: 1, Checkpoint: cp, Keys: keys}); err != nil {
			t.Fatal(err)
		}
	}
	// node-x, seen first with x0, then rotated to x1 in the open.
	put(x0v, sign(x0))
	if err := c.Cosign(ctx); err != nil {
		t.Fatal(err)
	}
	put(x1v, sign(x0, x1), x0v)
	if err := c.Cosign(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		by   func(att note.Signer) []note.Signer
	}{
		{"signed only by itself", func(att note.Signer) []note.Signer { return []note.Signer{att} }},
		{"vouched for by a retired key", func(att note.Signer) []note.Signer { return []note.Signer{x0, att} }},
	} {
		att, attv := mk()
		if err := c.Store.PutAuditHandover(ctx, store.AuditHandover{Node: "node-x", Old: x1v, New: attv, Size: 1, Checkpoint: sign(tc.by(att)...)}); err != nil {
			t.Fatal(err)
		}
		put(attv, sign(att), x1v, x0v)
		err := c.Cosign(ctx)
		if err == nil || !strings.Contains(err.Error(), "no hand-over kept in the store is signed by") {
			t.Fatalf("a hand-over %s: %v", tc.name, err)
		}
		x1v = attv // the head put next names the key stored now
	}
	pins := string(mustRead(t, c.data+"/witness/peer-keys.json"))
	if strings.Count(pins, origin+"+") != 2 {
		t.Fatalf("C's pins for node-x after forged hand-overs: %s", pins)
	}
}
