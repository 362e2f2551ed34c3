package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

func bundleLog(t *testing.T) (string, testKey) {
	t.Helper()
	dir := t.TempDir()
	k := newTestKey(t, "test")
	l := mustOpen(t, testConfig(dir, k))
	for i := 0; i < 25; i++ {
		session := "s1"
		if i%3 == 0 {
			session = "s2"
		}
		if _, err := l.Append(context.Background(), Event{Type: "decision", Session: session, Data: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return dir, k
}

func export(t *testing.T, dir string, k testKey, session string) []byte {
	t.Helper()
	b, err := ExportBundle(dir, k.verifier, testOrigin, k.vkey, "", nil, func(e Event) bool { return e.Session == session })
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(b)
	return raw
}

func TestBundleRoundTrip(t *testing.T) {
	dir, k := bundleLog(t)
	raw := export(t, dir, k, "s1")
	rep, err := VerifyBundle(raw, k.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) != 16 {
		t.Fatalf("%d events, want 16", len(rep.Events))
	}
	for _, e := range rep.Events {
		if e.Session != "s1" {
			t.Fatalf("bundle carries another session's event %d", e.Index)
		}
	}
	// Tampering: an altered entry, a proof for another index, another key.
	var b Bundle
	json.Unmarshal(raw, &b)
	b.Events[3].Entry = []byte(strings.Replace(string(b.Events[3].Entry), `"n":`, `"n":1`, 1))
	altered, _ := json.Marshal(b)
	if _, err := VerifyBundle(altered, k.verifier); err == nil || !strings.Contains(err.Error(), "not included") {
		t.Fatalf("altered entry: %v", err)
	}
	json.Unmarshal(raw, &b)
	b.Events[2].Proof, b.Events[3].Proof = b.Events[3].Proof, b.Events[2].Proof
	swapped, _ := json.Marshal(b)
	if _, err := VerifyBundle(swapped, k.verifier); err == nil {
		t.Fatal("swapped proofs verified")
	}
	other := newTestKey(t, "test")
	if _, err := VerifyBundle(raw, other.verifier); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("another log key: %v", err)
	}
}

// TestBundleWithStandardLibrariesOnly verifies an exported bundle the way a
// third party would: JSON, the C2SP tlog-proof text format, signed notes
// and RFC 6962, with no ward code.
func TestBundleWithStandardLibrariesOnly(t *testing.T) {
	dir, k := bundleLog(t)
	raw := export(t, dir, k, "s2")
	var b struct {
		LogKey     string `json:"log_key"`
		Checkpoint string `json:"checkpoint"`
		Events     []struct {
			Index uint64 `json:"index"`
			Entry []byte `json:"entry"` // base64 of the exact bytes
			Proof string `json:"proof"`
		} `json:"events"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(k.vkey) // the pinned key, not the bundle's
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(b.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseUint(body[1], 10, 64)
	root, _ := base64.StdEncoding.DecodeString(body[2])
	h := rfc6962.DefaultHasher
	for _, e := range b.Events {
		lines := strings.Split(e.Proof, "\n")
		if lines[0] != "c2sp.org/tlog-proof@v1" || lines[1] != "index "+strconv.FormatUint(e.Index, 10) {
			t.Fatalf("proof header: %q", lines[:2])
		}
		var hashes [][]byte
		i := 2
		for ; lines[i] != ""; i++ {
			hb, err := base64.StdEncoding.DecodeString(lines[i])
			if err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, hb)
		}
		if strings.Join(lines[i+1:], "\n") != b.Checkpoint {
			t.Fatal("the proof does not end with the bundle's checkpoint")
		}
		if err := proof.VerifyInclusion(h, e.Index, size, h.HashLeaf(e.Entry), hashes, root); err != nil {
			t.Fatalf("event %d: %v", e.Index, err)
		}
	}
	if len(b.Events) != 9 {
		t.Fatalf("%d events, want 9", len(b.Events))
	}
}

// FuzzParseTlogProof: arbitrary text never panics; what parses formats back
// to the same text.
func FuzzParseTlogProof(f *testing.F) {
	f.Add(FormatTlogProof(3, [][]byte{make([]byte, 32), make([]byte, 32)}, "o\n1\nAAAA\n\n— o sig\n"))
	f.Add("c2sp.org/tlog-proof@v1\nextra AAAA\nindex 0\n\ncp\n")
	f.Fuzz(func(t *testing.T, text string) {
		idx, hashes, cp, err := ParseTlogProof(text)
		if err != nil {
			return
		}
		if strings.Contains(text, "\nextra ") {
			return // extra data is not reproduced
		}
		if got := FormatTlogProof(idx, hashes, cp); got != text {
			t.Fatalf("round trip changed the proof:\n%q\n%q", text, got)
		}
	})
}

// TestBundleAtWitnessedCheckpoint: a bundle can be proved under an earlier,
// cosigned checkpoint: it keeps the cosignature, holds only the events that
// checkpoint covers, and verifies; a checkpoint of another history under
// the same key is refused.
func TestBundleAtWitnessedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, "test")
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 10)
	witness := newTestKey(t, "witness.test")
	cosigned, err := note.Sign(&note.Note{Text: noteText(t, l.Checkpoint(), k.verifier)}, k.signer, witness.signer)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 15)
	l.Close()
	b, err := ExportBundle(dir, k.verifier, testOrigin, k.vkey, "", cosigned, func(Event) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 10 || b.Checkpoint != string(cosigned) {
		t.Fatalf("bundle at size 10: %d events, checkpoint %q", len(b.Events), b.Checkpoint)
	}
	raw, _ := json.Marshal(b)
	rep, err := VerifyBundle(raw, k.verifier)
	if err != nil || rep.TreeSize != 10 || string(rep.Checkpoint) != string(cosigned) {
		t.Fatalf("verify: %v", err)
	}
	if _, err := note.Open(rep.Checkpoint, note.VerifierList(witness.verifier)); err != nil {
		t.Fatalf("the cosignature did not survive: %v", err)
	}

	otherDir := t.TempDir()
	other := mustOpen(t, testConfig(otherDir, k))
	if _, err := other.Append(context.Background(), Event{Type: "forged"}); err != nil {
		t.Fatal(err)
	}
	fill(t, other, 9)
	if _, err := ExportBundle(dir, k.verifier, testOrigin, k.vkey, "", other.Checkpoint(), func(Event) bool { return true }); err == nil || !strings.Contains(err.Error(), "not the root") {
		t.Fatalf("checkpoint of another history: %v", err)
	}
}

func noteText(t *testing.T, signed []byte, v note.Verifier) string {
	t.Helper()
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	return n.Text
}
