package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestRotateWhileOpen: a log's key rotated while it runs. Before the
// overlap checkpoints carry the old key's signature, during it both (old
// first), after it the new key's alone; every checkpoint verifies with
// x/mod/sumdb/note under the key(s) that signed it, the whole log
// verifies (and reopens) with a Keyring of both, and not with either key
// alone. Rotate refuses to drop a key that signed the log.
func TestRotateWhileOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	a, b := newTestKey(t, testOrigin), newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, a))
	fill(t, l, 3)
	ab, err := Keyring(a.verifier, b.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Rotate(ab, a.signer, b.signer); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 3)
	overlap := l.Checkpoint()
	ba, _ := Keyring(b.verifier, a.verifier)
	if err := l.Rotate(b.verifier, b.signer); err == nil || !strings.Contains(err.Error(), "must keep verifying") {
		t.Fatalf("a rotation dropping the old key: %v", err)
	}
	if err := l.Rotate(ba, b.signer); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 3)
	after := l.Checkpoint()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	sigs := func(cp []byte, vs ...note.Verifier) int {
		n, err := note.Open(cp, note.VerifierList(vs...))
		if err != nil {
			return -1
		}
		return len(n.Sigs)
	}
	if sigs(overlap, a.verifier) != 1 || sigs(overlap, b.verifier) != 1 || sigs(overlap, a.verifier, b.verifier) != 2 {
		t.Fatalf("an overlap checkpoint:\n%s", overlap)
	}
	if first := strings.Split(string(overlap), "\n")[4]; !strings.Contains(first, "— "+testOrigin+" ") {
		t.Fatalf("an overlap checkpoint's first signature: %q", first)
	}
	if sigs(after, a.verifier) != -1 || sigs(after, b.verifier) != 1 {
		t.Fatalf("a checkpoint after the overlap:\n%s", after)
	}
	for _, v := range []note.Verifier{ab, ba} {
		rep, err := VerifyLog(dir, VerifyConfig{Verifier: v, Origin: testOrigin})
		if err != nil || rep.Size != 9 {
			t.Fatalf("verify with both keys: %+v %v", rep, err)
		}
	}
	for _, k := range []testKey{a, b} {
		if _, err := VerifyLog(dir, VerifyConfig{Verifier: k.verifier, Origin: testOrigin}); !errors.Is(err, ErrTampered) {
			t.Fatalf("verify with one key of a rotated log: %v", err)
		}
	}
	// A Bundle-style anchor of the overlap verifies with either key alone.
	for _, v := range []note.Verifier{a.verifier, b.verifier} {
		if _, _, err := openCosigned(overlap, v, testOrigin); err != nil {
			t.Fatalf("the overlap checkpoint with one key: %v", err)
		}
	}

	if err := CheckKeyOrder(dir, ab); err != nil {
		t.Fatalf("key order of a rotated log: %v", err)
	}

	// Reopened with the new key signing and both verifying.
	l2 := mustOpen(t, Config{Dir: dir, Origin: testOrigin, Signer: b.signer, Verifier: ba})
	fill(t, l2, 1)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	// With the new key alone, Open (which starts from the head, signed
	// by it) succeeds, but the verification pass finds the old key's
	// checkpoints unverifiable.
	l3 := mustOpen(t, Config{Dir: dir, Origin: testOrigin, Signer: b.signer, Verifier: b.verifier})
	if _, err := l3.Verify(context.Background()); !errors.Is(err, ErrTampered) {
		t.Fatalf("the verification pass of a rotated log with the new key alone: %v", err)
	}
	// A checkpoint signed by the retired key alone, added after the new
	// key's (what a thief of the old key would add), breaks the order.
	cps := readFile(t, dir, checkpointsName)
	text, _, _ := strings.Cut(string(splitFrames(t, cps)[len(splitFrames(t, cps))-1]), "\n\n")
	forged, err := note.Sign(&note.Note{Text: text + "\n"}, a.signer)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, checkpointsName, joinFrames(append(splitFrames(t, cps), forged)))
	if err := CheckKeyOrder(dir, ab); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "rotated away") {
		t.Fatalf("a checkpoint by the retired key after the new one's: %v", err)
	}

	// Keyring's refusals.
	other := newTestKey(t, "other.test/audit")
	for _, vs := range [][]note.Verifier{{}, {a.verifier, a.verifier}, {a.verifier, other.verifier}} {
		if _, err := Keyring(vs...); err == nil {
			t.Fatalf("Keyring(%d keys) accepted", len(vs))
		}
	}
	if _, err := Open(Config{Dir: filepath.Join(t.TempDir(), "x"), Origin: testOrigin, Signer: a.signer, Signers: []note.Signer{b.signer}, Verifier: a.verifier}); err == nil {
		t.Fatal("a signer outside the verifier's keys accepted")
	}
}

// TestRotateJournalReplays: after a rotation's overlap ended, appends
// acknowledged only in the journal (no checkpoint could be signed since)
// replay in a process that holds the new key alone: the journal's
// records went under the newest key from the overlap's start.
func TestRotateJournalReplays(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	a, b := newTestKey(t, testOrigin), newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, a))
	fill(t, l, 2)
	ab, _ := Keyring(a.verifier, b.verifier)
	ba, _ := Keyring(b.verifier, a.verifier)
	gb := &gatedSigner{Signer: b.signer}
	if err := l.Rotate(ab, a.signer, gb); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 2)
	if _, err := l.Sync(context.Background()); err != nil { // as a node does before retiring
		t.Fatal(err)
	}
	if err := l.Rotate(ba, gb); err != nil {
		t.Fatal(err)
	}
	gb.close() // from here on no checkpoint is signed: the journal alone holds what follows
	for i := range 5 {
		if _, err := l.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	size := l.Size()
	crashed := filepath.Join(t.TempDir(), "log")
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{".head", ".head.journal"} {
		writeFile(t, filepath.Dir(crashed), filepath.Base(crashed)+f, readFile(t, filepath.Dir(dir), filepath.Base(dir)+f))
	}
	gb.open()
	os.Remove(filepath.Join(crashed, "lock"))
	l2 := mustOpen(t, Config{Dir: crashed, Origin: testOrigin, Signer: b.signer, Verifier: ba})
	if l2.Size() != size {
		t.Fatalf("after the crash the log holds %d entries, %d were acknowledged", l2.Size(), size)
	}
}
