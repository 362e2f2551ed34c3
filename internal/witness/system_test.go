package witness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
)

// sysNode is one node of a test system: its log and its witness.
type sysNode struct {
	id      string
	data    string
	logKey  key
	log     *audit.Log
	witness *Witness
}

// newSystem makes k nodes, each with a log of n events and a witness
// following the others' logs.
func newSystem(t testing.TB, k, n int) []*sysNode {
	t.Helper()
	var nodes []*sysNode
	for i := range k {
		id := string(rune('a' + i))
		data := t.TempDir()
		lk := newKey(t, "sys.test/audit/"+id)
		l, err := audit.Open(audit.Config{Dir: filepath.Join(data, "audit"), Origin: lk.verifier.Name(), Signer: lk.signer, Verifier: lk.verifier})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		appendN(t, l, n)
		nodes = append(nodes, &sysNode{id: id, data: data, logKey: lk, log: l})
	}
	for _, w := range nodes {
		wk := newKey(t, "sys.test/cosign/"+w.id)
		var logs []Log
		for _, o := range nodes {
			if o != w {
				logs = append(logs, Log{Origin: o.logKey.verifier.Name(), Key: o.logKey.vkey})
			}
		}
		var err error
		if w.witness, err = New(Config{Key: wk.skey, VerifierKey: wk.vkey, Logs: logs, State: filepath.Join(t.TempDir(), "state")}); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// cosign has every node's witness cosign every other node's latest
// checkpoint, and returns the system's heads and cosignatures.
func cosign(t testing.TB, nodes []*sysNode) ([]PublishedHead, []PublishedCosignature) {
	t.Helper()
	var heads []PublishedHead
	var cos []PublishedCosignature
	for _, o := range nodes {
		cp := o.log.Checkpoint()
		size := o.log.Size()
		heads = append(heads, PublishedHead{Node: o.id, Origin: o.logKey.verifier.Name(), Size: size, Checkpoint: cp})
		for _, w := range nodes {
			if w == o {
				continue
			}
			old := w.witness.Latest(o.logKey.verifier.Name())
			var p [][]byte
			if old > 0 && old < size {
				var err error
				if p, err = o.log.ConsistencyProof(old, size); err != nil {
					t.Fatal(err)
				}
			}
			sig, err := w.witness.Add(context.Background(), old, p, cp)
			if err != nil {
				t.Fatal(err)
			}
			cos = append(cos, PublishedCosignature{Node: o.id, Witness: w.id, Size: size, Checkpoint: append(append([]byte(nil), cp...), sig...)})
		}
	}
	return heads, cos
}

func anchorsOf(nodes []*sysNode) []SystemNode {
	var out []SystemNode
	for _, n := range nodes {
		out = append(out, SystemNode{ID: n.id, Data: n.data, LogKeys: []string{n.logKey.vkey}, CosignKey: n.witness.VerifierKey()})
	}
	return out
}

func statusIn(rep *SystemReport, id string) NodeReport {
	for _, n := range rep.Nodes {
		if n.Node == id {
			return n
		}
	}
	return NodeReport{}
}

// TestVerifySystem: the system verifier's verdicts on a clean system,
// a quorum unmet, a retired witness, a witness's rows counted once, a
// head missing from the store, and configurations it refuses.
func TestVerifySystem(t *testing.T) {
	nodes := newSystem(t, 3, 4)
	heads, cos := cosign(t, nodes)
	appendN(t, nodes[0].log, 3) // logged after its last cosignature
	cfg := SystemConfig{Nodes: anchorsOf(nodes), Heads: heads, Cosignatures: cos}
	rep, err := VerifySystem(cfg)
	if err != nil || !rep.OK || rep.Quorum != 2 {
		t.Fatalf("clean: %+v %v", rep, err)
	}
	if a := statusIn(rep, "a"); a.Size != 7 || a.Witnessed != 4 || a.Published != 4 || len(a.Cosigners) != 2 {
		t.Fatalf("node a: %+v", a)
	}

	// Only one cosignature of a's log: the default quorum (2) is unmet,
	// an explicit quorum of 1 is met.
	var fewer []PublishedCosignature
	for _, c := range cos {
		if c.Node != "a" || c.Witness == "c" {
			fewer = append(fewer, c)
		}
	}
	cfg.Cosignatures = fewer
	if rep, _ := VerifySystem(cfg); rep.OK || statusIn(rep, "a").Status != StatusUnwitnessed {
		t.Fatalf("one cosignature, quorum 2: %+v", rep)
	}
	cfg.Quorum = 1
	if rep, _ := VerifySystem(cfg); !rep.OK {
		t.Fatalf("one cosignature, quorum 1: %+v", rep)
	}
	// Witness c's row twice does not make two witnesses.
	cfg.Quorum = 0
	for _, c := range fewer {
		if c.Node == "a" {
			cfg.Cosignatures = append(cfg.Cosignatures, c)
		}
	}
	if rep, _ := VerifySystem(cfg); rep.OK || statusIn(rep, "a").Status != StatusUnwitnessed {
		t.Fatalf("one witness's row twice: %+v", rep)
	}
	// With b retired, a's default quorum is c alone.
	cfg.Cosignatures = fewer
	cfg.Nodes = anchorsOf(nodes)
	cfg.Nodes[1].Retired = true
	if rep, _ := VerifySystem(cfg); statusIn(rep, "a").Status != StatusOK {
		t.Fatalf("b retired: %+v", rep)
	}

	// No head of c in the store.
	cfg = SystemConfig{Nodes: anchorsOf(nodes), Heads: heads[:2], Cosignatures: cos}
	if rep, _ := VerifySystem(cfg); rep.OK || statusIn(rep, "c").Status != StatusUnpublished {
		t.Fatalf("c unpublished: %+v", rep)
	}
	// A cosignature whose line was made for another checkpoint.
	bad := append([]PublishedCosignature(nil), cos...)
	for i, c := range bad {
		if c.Node == "b" && c.Witness == "a" {
			text, sigs, _ := strings.Cut(string(c.Checkpoint), "\n\n")
			other := strings.Replace(text, "\n4\n", "\n5\n", 1) + "\n"
			bad[i].Checkpoint = []byte(other + "\n" + sigs)
		}
	}
	cfg = SystemConfig{Nodes: anchorsOf(nodes), Heads: heads, Cosignatures: bad}
	if rep, _ := VerifySystem(cfg); rep.OK || statusIn(rep, "b").Status != StatusBadEvidence {
		t.Fatalf("an altered cosigned checkpoint: %+v", rep)
	}

	// Configurations refused.
	shared := anchorsOf(nodes)
	shared[2].CosignKey = shared[1].CosignKey
	other := newKey(t, "elsewhere/audit")
	twoNames := anchorsOf(nodes)
	twoNames[0].LogKeys = append(twoNames[0].LogKeys, other.vkey)
	dup := anchorsOf(nodes)
	dup[2].ID = "a"
	for name, ns := range map[string][]SystemNode{"a cosign key twice": shared, "log keys of two names": twoNames, "an id twice": dup} {
		if _, err := VerifySystem(SystemConfig{Nodes: ns}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzOpenCosignature: what the system verifier accepts as a cosigned
// checkpoint verifies with x/mod/sumdb/note under the log's key and the
// witness's, is a checkpoint of the log's origin of the size it reports,
// and carries a cosignature/v1 timestamp.
func FuzzOpenCosignature(f *testing.F) {
	nodes := newSystem(f, 2, 3)
	_, cos := cosign(f, nodes)
	for _, c := range cos {
		f.Add(c.Checkpoint)
	}
	a, b := nodes[0], nodes[1]
	wv, err := fnote.NewVerifierForCosignatureV1(b.witness.VerifierKey())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cp []byte) {
		size, ts, err := openCosignature(cp, a.logKey.verifier.Name(), []note.Verifier{a.logKey.verifier}, wv)
		if err != nil {
			return
		}
		n, err := note.Open(cp, note.VerifierList(a.logKey.verifier, wv))
		if err != nil || len(n.Sigs) < 2 || ts.IsZero() {
			t.Fatalf("accepted %q: %v", cp, err)
		}
		want := fmt.Sprintf("%s\n%d\n", a.logKey.verifier.Name(), size)
		if !strings.HasPrefix(n.Text, want) {
			t.Fatalf("size %d for %q", size, n.Text)
		}
	})
}

// BenchmarkVerifySystem: verifying a system of three nodes of 10,000
// events each, against the baseline of verifying the three logs alone
// (what ward audit verify --data does per node).
func BenchmarkVerifySystem(b *testing.B) {
	nodes := newSystem(b, 3, 0)
	for _, n := range nodes {
		events := make([]audit.Event, 0, 10_000)
		for i := range 10_000 {
			events = append(events, audit.Event{Type: "decision", Actor: "bench", Data: []byte(fmt.Sprintf(`{"i":%d}`, i))})
		}
		var wg sync.WaitGroup
		for _, e := range events {
			wg.Go(func() { n.log.Append(context.Background(), e) })
		}
		wg.Wait()
	}
	heads, cos := cosign(b, nodes)
	cfg := SystemConfig{Nodes: anchorsOf(nodes), Heads: heads, Cosignatures: cos}
	b.Run("system", func(b *testing.B) {
		for b.Loop() {
			if rep, err := VerifySystem(cfg); err != nil || !rep.OK {
				b.Fatal(rep, err)
			}
		}
	})
	b.Run("logs-alone", func(b *testing.B) {
		for b.Loop() {
			for _, n := range nodes {
				if _, err := audit.VerifyLog(filepath.Join(n.data, "audit"), audit.VerifyConfig{Verifier: n.logKey.verifier, Origin: n.logKey.verifier.Name()}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
