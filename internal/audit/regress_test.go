package audit

// Regression tests for the findings of the attack pass on the audit log
// (issue 11, section 6). They use only the package API that existed before
// the fix, so that each can be run against the old code, where it fails.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// copyLogFiles copies a log's two files (not the head next to it).
func copyLogFiles(t *testing.T, dir string) (ent, cps []byte) {
	t.Helper()
	return readFile(t, dir, entriesName), readFile(t, dir, checkpointsName)
}

// dirFiles maps every file under dir (the index too) to its contents.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || de.Name() == lockName {
			return err
		}
		b, err := os.ReadFile(path)
		out[strings.TrimPrefix(path, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRegressCheckpointsFileRolledBack: the checkpoints file replaced by an
// older copy, the entries untouched. Before: Verify said ok for half the
// events and Open cut the entries back, recording only audit.recover.
func TestRegressCheckpointsFileRolledBack(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 10)
	_, oldCps := copyLogFiles(t, dir)
	fill(t, l, 10)
	l.Close()
	writeFile(t, dir, checkpointsName, oldCps)
	before := dirFiles(t, dir)

	if rep, err := Verify(dir, k.verifier, testOrigin); err == nil {
		t.Fatalf("verify of a rolled-back checkpoints file: ok, size %d", rep.Size)
	} else if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("verify: %v", err)
	}
	if l, err := Open(testConfig(dir, k)); err == nil {
		l.Close()
		t.Fatal("Open accepted a rolled-back checkpoints file")
	} else if !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("open: %v", err)
	}
	if after := dirFiles(t, dir); !equalMaps(before, after) {
		t.Fatal("a refused Open changed the log's files")
	}
}

// TestRegressBothFilesRestored: an older copy of both files, consistent
// with each other. Before: Verify said ok and Open accepted the shorter
// log.
func TestRegressBothFilesRestored(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 10)
	oldEnt, oldCps := copyLogFiles(t, dir)
	fill(t, l, 10)
	l.Close()
	writeFile(t, dir, entriesName, oldEnt)
	writeFile(t, dir, checkpointsName, oldCps)
	if _, err := Verify(dir, k.verifier, testOrigin); err == nil || !strings.Contains(err.Error(), "the log holds 10 entries but") {
		t.Fatalf("verify of a consistently rolled-back log: %v", err)
	}
	if l, err := Open(testConfig(dir, k)); err == nil {
		l.Close()
		t.Fatal("Open accepted a consistently rolled-back log")
	}
}

// TestRegressCrashTailKept: an unacknowledged tail (a crash mid-batch) is
// moved aside, not deleted. Before: Open truncated it.
func TestRegressCrashTailKept(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 5)
	l.Close()
	tail := joinFrames([][]byte{[]byte(`{"v":1,"index":5,"time":"2026-01-01T00:00:00Z","type":"decision"}`)})
	tail = append(tail, 0, 0, 1)
	writeFile(t, dir, entriesName, append(readFile(t, dir, entriesName), tail...))
	l = mustOpen(t, testConfig(dir, k))
	l.Close()
	kept := false
	for name, b := range dirFiles(t, dir) {
		if name != entriesName && strings.Contains(b, string(tail)) {
			kept = true
		}
	}
	if !kept {
		t.Fatal("the unacknowledged tail was deleted")
	}
}

// resignedCopy is what an attacker with write access builds: entry drop
// removed, the index (and session chain) fields renumbered, and every
// checkpoint re-signed with their own key.
func resignedCopy(t *testing.T, entries [][]byte, drop int, k testKey) (ent, cps []byte) {
	t.Helper()
	prefix := regexp.MustCompile(`^\{"v":(\d+),"index":\d+(,"seq":\d+)?(,"prev":\d+)?,`)
	type chainAt struct{ seq, last int }
	chains := map[string]chainAt{}
	var out [][]byte
	for i, e := range entries {
		if i == drop {
			continue
		}
		var ev struct{ Session string }
		if err := json.Unmarshal(e, &ev); err != nil {
			t.Fatal(err)
		}
		m := prefix.FindSubmatch(e)
		if m == nil {
			t.Fatalf("entry %d: unexpected prefix %q", i, e[:40])
		}
		idx := len(out)
		head := `{"v":` + string(m[1]) + `,"index":` + strconv.Itoa(idx)
		if len(m[2]) > 0 { // the log chains sessions
			c := chains[ev.Session]
			head += `,"seq":` + strconv.Itoa(c.seq+1)
			if c.seq > 0 {
				head += `,"prev":` + strconv.Itoa(c.last)
			}
			chains[ev.Session] = chainAt{c.seq + 1, idx}
		}
		out = append(out, append([]byte(head+","), e[len(m[0]):]...))
	}
	var recs [][]byte
	for size := 0; size <= len(out); size++ {
		signed, err := note.Sign(&note.Note{Text: checkpointText(testOrigin, uint64(size), mth(out[:size]))}, k.signer)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, signed)
	}
	return joinFrames(out), joinFrames(recs)
}

// TestRegressResignedLog: a middle entry deleted and the log re-signed with
// another key. Verified with the log's real key, it fails and says where;
// trusting the re-signing key is what the command line must refuse to call
// ok (see cmd/ward).
func TestRegressResignedLog(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 10)
	l.Close()
	evil := newTestKey(t, testOrigin)
	ent, cps := resignedCopy(t, splitFrames(t, readFile(t, dir, entriesName)), 4, evil)
	writeFile(t, dir, entriesName, ent)
	writeFile(t, dir, checkpointsName, cps)
	if _, err := independentCheck(t, ent, cps, evil.verifier); err != nil {
		t.Fatalf("the forgery is not even self-consistent: %v", err)
	}
	_, err := Verify(dir, k.verifier, testOrigin)
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "not signed by the log key") || !strings.Contains(err.Error(), "at least 1 were removed") {
		t.Fatalf("verify with the real key: %v", err)
	}
}

// malleate returns another standard base64 text that a lenient decoder
// reads as the same bytes: it flips a padding bit of the last character.
func malleate(t *testing.T, b64 string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	trimmed := strings.TrimRight(b64, "=")
	if len(trimmed) == len(b64) {
		t.Fatalf("%q has no padding bits", b64)
	}
	last := strings.IndexByte(alphabet, trimmed[len(trimmed)-1])
	out := trimmed[:len(trimmed)-1] + string(alphabet[last^1]) + b64[len(trimmed):]
	a, err1 := base64.StdEncoding.DecodeString(b64)
	b, err2 := base64.StdEncoding.DecodeString(out)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("malleate %q: %q does not decode the same", b64, out)
	}
	return out
}

// regressBundle exports the events of session s1, sealed if the package
// seals (see sealAll).
func regressBundle(t *testing.T) ([]byte, testKey) {
	t.Helper()
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	for i := range 6 {
		e := testEvent(i)
		e.Session = "s1"
		if _, err := l.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	sealAll(t, l, "s1")
	l.Close()
	b, err := ExportBundle(dir, k.verifier, testOrigin, k.vkey, "", nil, func(e Event) bool { return e.Session == "s1" })
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(b)
	if _, err := VerifyBundle(raw, k.verifier); err != nil {
		t.Fatalf("untouched bundle: %v", err)
	}
	return raw, k
}

// TestRegressBundleEventRemoved: a bundle with one event removed. Before:
// verify-bundle accepted it.
func TestRegressBundleEventRemoved(t *testing.T) {
	raw, k := regressBundle(t)
	var b map[string]any
	json.Unmarshal(raw, &b)
	evs := b["events"].([]any)
	b["events"] = append(evs[:2:2], evs[3:]...)
	cut, _ := json.Marshal(b)
	_, err := VerifyBundle(cut, k.verifier)
	if err == nil {
		t.Fatal("a bundle with an event removed verified")
	}
	if !strings.Contains(err.Error(), "(log index 2) is missing") {
		t.Fatalf("the error does not name the missing event: %v", err)
	}
}

// TestRegressProofHashMalleable: a proof hash written "…0001=" where the
// log wrote "…0000=" (the same bytes to a lenient decoder). Before: the
// bundle verified, so proven data had two encodings.
func TestRegressProofHashMalleable(t *testing.T) {
	raw, k := regressBundle(t)
	var b map[string]any
	json.Unmarshal(raw, &b)
	ev := b["events"].([]any)[1].(map[string]any)
	lines := strings.Split(ev["proof"].(string), "\n")
	lines[2] = malleate(t, lines[2]) // the first proof hash
	ev["proof"] = strings.Join(lines, "\n")
	bad, _ := json.Marshal(b)
	if _, err := VerifyBundle(bad, k.verifier); err == nil {
		t.Fatal("a proof hash in a second encoding verified")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
