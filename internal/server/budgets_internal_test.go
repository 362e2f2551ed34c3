package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/quota"
)

// TestBudgetsReplayRefunds: usage is rebuilt from decisions' charges and
// results recorded as refunded, whether the refunded decision is after
// the snapshot or before it (then the snapshot counts it and the refund
// takes it back).
func TestBudgetsReplayRefunds(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, _ := audit.NewNoteKey("t/audit")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	log, err := audit.Open(audit.Config{Dir: filepath.Join(dir, "audit"), Origin: "t/audit", Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	limits := []quota.Limit{{ID: "b", Scope: quota.ScopeGroup, Window: time.Hour, Max: 10}}
	now := time.Now()
	charge := func(i int) []quota.Charge {
		return []quota.Charge{{Limit: "b", Scope: quota.ScopeGroup, Key: "g", Time: now.Add(time.Duration(i) * time.Millisecond), Amount: 1}}
	}
	ctx := context.Background()
	appendEvent := func(typ string, data any) uint64 {
		b, _ := json.Marshal(data)
		i, err := log.Append(ctx, audit.Event{Type: typ, Data: b})
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	decide := func(i int) uint64 {
		return appendEvent("decision", map[string]any{"decision": "allow", "charged": charge(i)})
	}
	refund := func(d uint64) { appendEvent("result", map[string]any{"decision_event": d, "refunded": true}) }

	// Before the snapshot: 4 decisions, one refunded.
	live, _ := quota.New(quota.Config{Limits: limits})
	var early []uint64
	for i := range 4 {
		d := decide(i)
		early = append(early, d)
		if _, err := live.ApplyCharges(charge(i)); err != nil {
			t.Fatal(err)
		}
	}
	refund(early[0])
	live.RefundCharges(charge(0))
	n := &Node{cfg: Config{Data: dir}, Audit: log}
	snap, _ := json.Marshal(budgetsFile{Size: log.Size(), State: live.Snapshot()})
	if err := os.WriteFile(n.budgetsPath(), snap, 0o600); err != nil {
		t.Fatal(err)
	}
	// After it: 3 decisions, one refunded, and a refund of an early one.
	var late []uint64
	for i := 4; i < 7; i++ {
		late = append(late, decide(i))
	}
	refund(late[1])
	refund(early[2])

	for _, snapshot := range []bool{true, false} {
		if !snapshot {
			os.Remove(n.budgetsPath())
		}
		l, _ := quota.New(quota.Config{Limits: limits})
		if err := n.openBudgets(l); err != nil {
			t.Fatal(err)
		}
		// 7 charged, 3 refunded.
		if got := l.Usage(quota.ScopeGroup, "g", "b"); got != 4 {
			t.Fatalf("snapshot %v: rebuilt usage %v, want 4", snapshot, got)
		}
	}
}
