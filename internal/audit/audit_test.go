package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "ward.test/audit"

type testKey struct {
	skey, vkey string
	signer     note.Signer
	verifier   note.Verifier
}

func newTestKey(t testing.TB, name string) testKey {
	t.Helper()
	skey, vkey, err := NewNoteKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return keyFrom(t, skey, vkey)
}

func keyFrom(t testing.TB, skey, vkey string) testKey {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{skey, vkey, s, v}
}

func testConfig(dir string, k testKey) Config {
	return Config{Dir: dir, Origin: testOrigin, Signer: k.signer, Verifier: k.verifier}
}

func mustOpen(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testEvent(i int) Event {
	return Event{
		Type:    "decision",
		Actor:   "spiffe://ward.test/agent/a" + strconv.Itoa(i),
		Session: "s-" + strconv.Itoa(i),
		Data:    json.RawMessage(`{"n":` + strconv.Itoa(i) + `,"allow":true}`),
	}
}

// fill appends n events one at a time, so each gets its own checkpoint.
func fill(t testing.TB, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		// A checkpoint after each entry (checkpoints otherwise come on
		// the log's cadence), so that the files hold one per size and
		// verification can say which entry an alteration hit.
		if _, err := l.Sync(context.Background()); err != nil {
			t.Fatalf("checkpoint after append %d: %v", i, err)
		}
	}
}

// syncCP returns a checkpoint covering every entry l acknowledged (Sync).
func syncCP(t testing.TB, l *Log) []byte {
	t.Helper()
	cp, err := l.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return cp
}

// parseCheckpointNote opens a checkpoint of the log of k.
func parseCheckpointNote(cp []byte, k testKey) (uint64, []byte, error) {
	return openCheckpoint(cp, k.verifier, testOrigin)
}

// splitFrames is the test's own reading of the framing (no ward code).
func splitFrames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if len(b) < 4+n {
			break
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func joinFrames(fs [][]byte) []byte {
	var out []byte
	for _, f := range fs {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

// mth is RFC 6962 section 2.1's Merkle Tree Hash, written out from the RFC
// with only the merkle library's hasher.
func mth(leaves [][]byte) []byte {
	h := rfc6962.DefaultHasher
	switch len(leaves) {
	case 0:
		return h.EmptyRoot()
	case 1:
		return h.HashLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return h.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
}

// independentCheck opens the latest checkpoint record with note.Open and
// recomputes its root from the raw entry bytes. It returns the size.
func independentCheck(t testing.TB, entries, checkpoints []byte, v note.Verifier) (uint64, error) {
	t.Helper()
	recs := splitFrames(t, checkpoints)
	if len(recs) == 0 {
		return 0, errors.New("no checkpoint")
	}
	n, err := note.Open(recs[len(recs)-1], note.VerifierList(v))
	if err != nil {
		return 0, err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[0] != testOrigin {
		return 0, fmt.Errorf("bad checkpoint text %q", n.Text)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return 0, err
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		return 0, err
	}
	leaves := splitFrames(t, entries)
	if uint64(len(leaves)) < size {
		return 0, fmt.Errorf("checkpoint size %d, %d entries", size, len(leaves))
	}
	if got := mth(leaves[:size]); !bytes.Equal(got, root) {
		return 0, fmt.Errorf("root mismatch at %d", size)
	}
	return size, nil
}

func readFile(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAppendReopenSize(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	k := newTestKey(t, testOrigin)
	cfg := testConfig(dir, k)
	cfg.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)) }

	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l.Size() != 0 {
		t.Fatalf("fresh size %d", l.Size())
	}
	fill(t, l, 3)
	if l.Size() != 3 {
		t.Fatalf("size %d, want 3", l.Size())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), testEvent(9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Read(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", st.Mode(), err)
	}

	l = mustOpen(t, cfg)
	if l.Size() != 3 {
		t.Fatalf("reopened size %d, want 3", l.Size())
	}
	idx, err := l.Append(context.Background(), testEvent(3))
	if err != nil || idx != 3 {
		t.Fatalf("append after reopen: %d, %v", idx, err)
	}
	evs, err := l.Read(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		want := testEvent(i)
		want.V, want.Index, want.Seq, want.Time = 2, uint64(i), 1, cfg.Now().UTC()
		if !e.Time.Equal(want.Time) || e.Time.Location() != time.UTC {
			t.Errorf("event %d time %v, want %v UTC", i, e.Time, want.Time)
		}
		e.Time = want.Time
		if fmt.Sprint(e) != fmt.Sprint(want) {
			t.Errorf("event %d = %+v, want %+v", i, e, want)
		}
	}
	for _, r := range [][2]uint64{{2, 1}, {0, 5}, {5, 5}} {
		if _, err := l.Read(r[0], r[1]); err == nil {
			t.Errorf("Read(%d, %d) succeeded", r[0], r[1])
		}
	}
	if evs, err := l.Read(4, 4); err != nil || len(evs) != 0 {
		t.Errorf("empty read: %v, %v", evs, err)
	}
	// A second Open of the same directory is refused while the first is open.
	if _, err := Open(cfg); err == nil {
		t.Fatal("second Open of a locked log succeeded")
	}
}

func TestAppendValidation(t *testing.T) {
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(t.TempDir(), k))
	for name, e := range map[string]Event{
		"no type":      {},
		"version 3":    {V: 3, Type: "x"},
		"version 1":    {V: 1, Type: "x"},
		"own type":     {Type: "audit.seal", Session: "s"},
		"invalid data": {Type: "x", Data: json.RawMessage(`{"a":`)},
		"year 10000":   {Type: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := l.Append(context.Background(), e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if l.Size() != 0 {
		t.Fatalf("size %d after refused appends", l.Size())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, testEvent(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled append: %v", err)
	}
}

func TestOpenConfig(t *testing.T) {
	k := newTestKey(t, testOrigin)
	other := newTestKey(t, testOrigin)
	dir := t.TempDir()
	for name, cfg := range map[string]Config{
		"no dir":       {Origin: testOrigin, Signer: k.signer, Verifier: k.verifier},
		"no origin":    {Dir: dir, Signer: k.signer, Verifier: k.verifier},
		"origin nl":    {Dir: dir, Origin: "a\nb", Signer: k.signer, Verifier: k.verifier},
		"no signer":    {Dir: dir, Origin: testOrigin, Verifier: k.verifier},
		"key mismatch": {Dir: dir, Origin: testOrigin, Signer: k.signer, Verifier: other.verifier},
		"huge events":  {Dir: dir, Origin: testOrigin, Signer: k.signer, Verifier: k.verifier, MaxEventSize: MaxEntryBytes},
	} {
		if l, err := Open(cfg); err == nil {
			l.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	const goroutines, each = 64, 20
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))

	var mu sync.Mutex
	got := map[uint64]string{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				e := testEvent(i)
				e.Session = fmt.Sprintf("g%d-%d", g, i)
				idx, err := l.Append(context.Background(), e)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := got[idx]; dup {
					t.Errorf("index %d acknowledged twice (%s, %s)", idx, prev, e.Session)
				}
				got[idx] = e.Session
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const total = goroutines * each
	if l.Size() != total || len(got) != total {
		t.Fatalf("size %d, %d acknowledged, want %d", l.Size(), len(got), total)
	}
	evs, err := l.Read(0, total)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Index != uint64(i) || got[uint64(i)] != e.Session {
			t.Fatalf("entry %d: index %d session %q, acknowledged %q", i, e.Index, e.Session, got[uint64(i)])
		}
	}
	syncCP(t, l) // the files hold a checkpoint over every acknowledged entry
	if rep, err := Verify(dir, k.verifier, testOrigin); err != nil || rep.Size != total {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	// Group commit: fewer checkpoints than events.
	recs := splitFrames(t, readFile(t, dir, checkpointsName))
	t.Logf("%d events in %d checkpoints", total, len(recs)-1)
}

func TestVerifyAndIndependentCheck(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 7)

	rep, err := Verify(dir, k.verifier, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != 7 || !bytes.Equal(rep.Checkpoint, l.Checkpoint()) || rep.TailBytes != 0 {
		t.Fatalf("report %+v", rep)
	}

	// No ward code from here: note.Open, the RFC 6962 hasher, our own framing.
	n, err := note.Open(l.Checkpoint(), note.VerifierList(k.verifier))
	if err != nil {
		t.Fatal(err)
	}
	want := "ward.test/audit\n7\n" + base64.StdEncoding.EncodeToString(rep.Root) + "\n"
	if n.Text != want {
		t.Fatalf("checkpoint text %q, want %q", n.Text, want)
	}
	size, err := independentCheck(t, readFile(t, dir, entriesName), readFile(t, dir, checkpointsName), k.verifier)
	if err != nil || size != 7 {
		t.Fatalf("independent check: %d, %v", size, err)
	}
	// Every historical checkpoint matches its prefix too.
	entries := splitFrames(t, readFile(t, dir, entriesName))
	for i, rec := range splitFrames(t, readFile(t, dir, checkpointsName)) {
		n, err := note.Open(rec, note.VerifierList(k.verifier))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(n.Text, "\n")
		if lines[1] != strconv.Itoa(i) || lines[2] != base64.StdEncoding.EncodeToString(mth(entries[:i])) {
			t.Fatalf("checkpoint record %d: %q", i, n.Text)
		}
	}
}

// tamper builds a log of 10 single-event batches and alters it.
func TestTamper(t *testing.T) {
	tests := []struct {
		name    string
		alter   func(t *testing.T, entries [][]byte) [][]byte
		corrupt bool   // ErrCorrupt rather than ErrTampered
		first   int64  // VerifyError.First
		says    string // substring of the error
	}{
		{
			name: "altered byte in a value",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				i := bytes.Index(es[4], []byte("agent/a4"))
				es[4][i+7] = 'b'
				return es
			},
			first: 4,
			says:  "checkpoint record 5 (tree size 5) does not match the entries; checkpoint record 4 (tree size 4) still matches: entry 4 was altered or removed",
		},
		{
			name: "altered byte breaks JSON",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				es[6][0] = '['
				return es
			},
			first: 6,
			says:  "entry 6: parse",
		},
		{
			name: "index field altered",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				es[2] = bytes.Replace(es[2], []byte(`"index":2`), []byte(`"index":7`), 1)
				return es
			},
			first: 2,
			says:  "entry 2: index field says 7",
		},
		{
			name: "entry removed",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				return append(es[:3], es[4:]...)
			},
			first: 3,
			says:  "entry 3: index field says 4: entry 3 was removed, or entries reordered; checkpoint record 4 (tree size 4) does not match the entries, and the log holds 9 entries but checkpoint record 10 covers 10, so at least 1 were removed; checkpoint record 3 (tree size 3) still matches: entry 3 was altered or removed",
		},
		{
			name: "last entry removed",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				return es[:9]
			},
			first: 9,
			says:  "the log holds 9 entries but checkpoint record 10 covers 10: entry 9 was removed (the 9 left match checkpoint record 9)",
		},
		{
			name: "entries swapped",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				es[5], es[6] = es[6], es[5]
				return es
			},
			first: 5,
			says:  "entry 5: index field says 6: entry 5 was removed, or entries reordered; entry 6: index field says 5: an entry was inserted or duplicated before it",
		},
		{
			name: "swapped and index fields fixed",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				a := bytes.Replace(es[6], []byte(`"index":6`), []byte(`"index":5`), 1)
				b := bytes.Replace(es[5], []byte(`"index":5`), []byte(`"index":6`), 1)
				es[5], es[6] = a, b
				return es
			},
			first: 5,
			says:  "checkpoint record 6 (tree size 6) does not match the entries; checkpoint record 5 (tree size 5) still matches: entry 5 was altered or removed",
		},
		{
			name: "entry inserted",
			alter: func(t *testing.T, es [][]byte) [][]byte {
				return append(es[:3], append([][]byte{es[3]}, es[3:]...)...)
			},
			first: 4,
			says:  "entry 4: index field says 3: an entry was inserted or duplicated before it",
		},
	}
	k := newTestKey(t, testOrigin)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, testConfig(dir, k))
			fill(t, l, 10)
			l.Close()
			es := splitFrames(t, readFile(t, dir, entriesName))
			writeFile(t, dir, entriesName, joinFrames(tt.alter(t, es)))

			_, err := Verify(dir, k.verifier, testOrigin)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("verify: %v", err)
			}
			if !errors.Is(err, ErrTampered) {
				t.Errorf("error does not wrap ErrTampered: %v", err)
			}
			if tt.corrupt != errors.Is(err, ErrCorrupt) {
				t.Errorf("ErrCorrupt = %v: %v", !tt.corrupt, err)
			}
			if ve.First != tt.first || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("verify error (first %d) %q\nwant first %d, containing %q", ve.First, err, tt.first, tt.says)
			}
			caught(t, testConfig(dir, k), ErrTampered)
		})
	}
}

// caught checks how a log damaged where only full verification looks is
// handled: Open starts from the head without reading the old entries
// (or, if its own checks see the damage, verifies in full and refuses);
// the verification pass finds it, records it, fails the log closed and
// marks it; the next Open verifies the whole log and refuses it, changing
// nothing. It returns the refusal.
func caught(t *testing.T, cfg Config, want error) error {
	t.Helper()
	l, err := Open(cfg)
	if err == nil {
		_, err = l.Verify(context.Background())
		if !errors.Is(err, want) {
			t.Fatalf("verification pass: %v, want %v", err, want)
		}
		if _, aerr := l.Append(context.Background(), testEvent(0)); !errors.Is(aerr, want) || !strings.Contains(aerr.Error(), "failed closed") {
			t.Fatalf("append after the pass found damage: %v", aerr)
		}
		if !errors.Is(l.Err(), want) {
			t.Fatalf("Err after the pass found damage: %v", l.Err())
		}
		l.Close()
		if _, err := os.Stat(filepath.Join(cfg.Dir, damagedName)); err != nil {
			t.Fatalf("no damage mark: %v", err)
		}
		before := dirFiles(t, cfg.Dir)
		if l, err = Open(cfg); err == nil {
			l.Close()
			t.Fatal("Open after the pass found damage succeeded")
		}
		if !equalMaps(before, dirFiles(t, cfg.Dir)) {
			t.Fatal("a refused Open changed the files")
		}
	}
	if !errors.Is(err, want) {
		t.Fatalf("open of a damaged log: %v, want %v", err, want)
	}
	return err
}

func TestCorruptFraming(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 4)
	l.Close()
	b := readFile(t, dir, entriesName)
	es := splitFrames(t, b)
	off := 4 + len(es[0]) + 4 + len(es[1])
	binary.BigEndian.PutUint32(b[off:], 0xffffffff)
	writeFile(t, dir, entriesName, b)
	_, err := Verify(dir, k.verifier, testOrigin)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry 2: invalid frame length") {
		t.Fatalf("verify: %v", err)
	}
}

func TestTornTailRecovered(t *testing.T) {
	for _, torn := range []string{"entries", "checkpoints", "both", "whole entries"} {
		t.Run(torn, func(t *testing.T) {
			dir := t.TempDir()
			k := newTestKey(t, testOrigin)
			cfg := testConfig(dir, k)
			l := mustOpen(t, cfg)
			fill(t, l, 5)
			l.Close()
			good := readFile(t, dir, entriesName)

			// A crash mid-batch: part of a frame after the checkpointed entries,
			// and/or part of a checkpoint record.
			frame := joinFrames([][]byte{[]byte(`{"v":1,"index":5,"time":"2026-01-01T00:00:00Z","type":"decision"}`)})
			ent := append(bytes.Clone(good), frame[:len(frame)/2]...)
			if torn == "whole entries" {
				ent = append(bytes.Clone(good), frame...) // complete, but never checkpointed
			}
			cps := readFile(t, dir, checkpointsName)
			rec := splitFrames(t, cps)[5]
			if torn != "checkpoints" {
				writeFile(t, dir, entriesName, ent)
			}
			if torn == "checkpoints" || torn == "both" {
				writeFile(t, dir, checkpointsName, append(cps, joinFrames([][]byte{rec})[:20]...))
			}
			rep, err := Verify(dir, k.verifier, testOrigin)
			if err != nil || rep.Size != 5 {
				t.Fatalf("verify before recovery: %+v, %v", rep, err)
			}

			l = mustOpen(t, cfg)
			if l.Size() != 6 || !l.fromHead {
				t.Fatalf("size %d, want 5 acknowledged + audit.recover (from head: %v)", l.Size(), l.fromHead)
			}
			evs, err := l.Read(0, 6)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if evs[i].Session != testEvent(i).Session {
					t.Errorf("acknowledged event %d lost: %+v", i, evs[i])
				}
			}
			if evs[5].Type != typeRecover {
				t.Errorf("event 5 type %q, want %q", evs[5].Type, typeRecover)
			}
			if !bytes.HasPrefix(readFile(t, dir, entriesName), good) {
				t.Error("recovery changed acknowledged bytes")
			}
			l.Close()
			if rep, err := Verify(dir, k.verifier, testOrigin); err != nil || rep.TailBytes != 0 || rep.Size != 6 {
				t.Fatalf("verify after recovery: %+v, %v", rep, err)
			}
		})
	}
}

// resign rewrites every checkpoint record with the same text signed by k.
func resign(t *testing.T, dir string, k testKey) {
	t.Helper()
	var out [][]byte
	for _, rec := range splitFrames(t, readFile(t, dir, checkpointsName)) {
		i := bytes.Index(rec, []byte("\n\n"))
		signed, err := note.Sign(&note.Note{Text: string(rec[:i+1])}, k.signer)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, signed)
	}
	writeFile(t, dir, checkpointsName, joinFrames(out))
}

func TestCheckpointSignedByAnotherKey(t *testing.T) {
	k := newTestKey(t, testOrigin)
	for name, other := range map[string]testKey{
		"same name": newTestKey(t, testOrigin),
		"otherName": newTestKey(t, "evil.example/audit"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, testConfig(dir, k))
			fill(t, l, 3)
			l.Close()
			resign(t, dir, other)
			if _, err := Verify(dir, k.verifier, testOrigin); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "checkpoint records 0..3: not signed by the log key") {
				t.Fatalf("verify: %v", err)
			}
			// Trusting the other key (as a verifier that reads it from
			// the directory would) does not help: ward's remembered head
			// is signed by the real one.
			if _, err := Verify(dir, other.verifier, testOrigin); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), ".head: slot") {
				t.Fatalf("verify with the re-signing key: %v", err)
			}
			// Without the head, the files agree with themselves: only a
			// pinned key tells.
			if _, err := VerifyLog(dir, VerifyConfig{Verifier: other.verifier, Origin: testOrigin, Head: filepath.Join(t.TempDir(), "none")}); err != nil {
				t.Fatalf("verify with the re-signing key and no head: %v", err)
			}
			if _, err := Open(testConfig(dir, k)); !errors.Is(err, ErrTampered) {
				t.Fatalf("open: %v", err)
			}
		})
	}
	t.Run("wrong origin", func(t *testing.T) {
		dir := t.TempDir()
		l := mustOpen(t, testConfig(dir, k))
		fill(t, l, 1)
		l.Close()
		if _, err := Verify(dir, k.verifier, "other/origin"); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "origin") {
			t.Fatalf("verify: %v", err)
		}
	})
	t.Run("checkpoints deleted", func(t *testing.T) {
		dir := t.TempDir()
		l := mustOpen(t, testConfig(dir, k))
		fill(t, l, 2)
		l.Close()
		writeFile(t, dir, checkpointsName, nil)
		if _, err := Open(testConfig(dir, k)); !errors.Is(err, ErrTampered) {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("rolled back", func(t *testing.T) {
		dir := t.TempDir()
		l := mustOpen(t, testConfig(dir, k))
		fill(t, l, 3)
		l.Close()
		recs := splitFrames(t, readFile(t, dir, checkpointsName))
		writeFile(t, dir, checkpointsName, joinFrames(append(recs, recs[1])))
		if _, err := Verify(dir, k.verifier, testOrigin); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "rolled back") {
			t.Fatalf("verify: %v", err)
		}
	})
}

func TestAllowUnverified(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	cfg := testConfig(dir, k)
	l := mustOpen(t, cfg)
	fill(t, l, 6)
	l.Close()
	es := splitFrames(t, readFile(t, dir, entriesName))
	es[2], es[3] = es[3], es[2]
	writeFile(t, dir, entriesName, append(joinFrames(es), 0, 0, 0)) // and a torn tail
	// Without its index, Open verifies the whole log (TestDamageFound
	// goes the usual way: a start from the head, then the pass).
	os.RemoveAll(filepath.Join(dir, indexDirName))

	if _, err := Open(cfg); !errors.Is(err, ErrTampered) {
		t.Fatalf("open refused? %v", err)
	}
	cfg.AllowUnverified = true
	l = mustOpen(t, cfg)
	if l.Size() != 7 {
		t.Fatalf("size %d, want 6 + audit.unverified-open", l.Size())
	}
	evs, err := l.Read(6, 7)
	if err != nil {
		t.Fatal(err)
	}
	var data unverifiedOpen
	if evs[0].Type != typeUnverifiedOpen || json.Unmarshal(evs[0].Data, &data) != nil ||
		!strings.Contains(data.Error, "entry 2: index field says 3") || data.Entries != 6 || data.Checkpoint == "" || data.Remembered != data.Checkpoint || len(data.Quarantined) != 3 {
		t.Fatalf("event %+v, data %+v", evs[0], data)
	}
	for _, q := range data.Quarantined {
		if !filepath.IsAbs(q) {
			q = filepath.Join(dir, q)
		}
		if _, err := os.Stat(q); err != nil {
			t.Errorf("evidence %s: %v", q, err)
		}
	}
	if _, err := l.Append(context.Background(), testEvent(7)); err != nil {
		t.Fatal(err)
	}
	l.Close()

	// Re-anchored: verifies, and lists what was accepted.
	rep, err := Verify(dir, k.verifier, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != 8 || len(rep.Anomalies) != 2 {
		t.Fatalf("report %+v", rep)
	}
	cfg.AllowUnverified = false
	l = mustOpen(t, cfg)
	if l.Size() != 8 {
		t.Fatalf("size %d", l.Size())
	}
}

func TestTooLarge(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	cfg := testConfig(dir, k)
	cfg.MaxEventSize = 512
	l := mustOpen(t, cfg)
	fill(t, l, 1)
	big := testEvent(1)
	big.Data = json.RawMessage(`"` + strings.Repeat("x", 600) + `"`)
	if _, err := l.Append(context.Background(), big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize append: %v", err)
	}
	if idx, err := l.Append(context.Background(), testEvent(2)); err != nil || idx != 1 {
		t.Fatalf("append after oversize: %d, %v", idx, err)
	}
	if _, err := Verify(dir, k.verifier, testOrigin); err != nil {
		t.Fatal(err)
	}
}

func TestFailClosed(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	cfg := testConfig(dir, k)
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 3)
	l.ent.Close() // the disk goes away: writes now fail with EBADF
	for i := range 3 {
		if _, err := l.Append(context.Background(), testEvent(3+i)); err == nil || !strings.Contains(err.Error(), "failed closed") {
			t.Fatalf("append %d on failed disk: %v", i, err)
		}
	}
	if l.Size() != 3 {
		t.Fatalf("size %d", l.Size())
	}
	l.Close()
	l = mustOpen(t, cfg)
	if l.Size() != 3 {
		t.Fatalf("reopened size %d", l.Size())
	}
}

// TestEncodingRoundTrip checks that what Append writes, Verify accepts, for
// awkward inputs.
func TestEncodingRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	for _, e := range []Event{
		{Type: "x", Data: json.RawMessage(`null`)},
		{Type: "x", Data: json.RawMessage(` { "b" : [1, 2.50, "<&>"] } `)},
		{Type: "x\xff<script>", Actor: "\u2028", Time: time.Date(2026, 1, 1, 0, 0, 0, 1, time.FixedZone("", -7*3600))},
		{Type: "x", Data: json.RawMessage(`"\u00e9\ud83d\ude00"`)},
	} {
		if _, err := l.Append(context.Background(), e); err != nil {
			t.Errorf("append %+v: %v", e, err)
		}
	}
	if _, err := Verify(dir, k.verifier, testOrigin); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedLengthsNotWiped: rewriting the first length of both files so
// that no frame is complete must not make Open treat the log as new.
func TestDamagedLengthsNotWiped(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, "test")
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 5)
	l.Close()
	for _, name := range []string{"entries", "checkpoints"} {
		b := readFile(t, dir, name)
		b[0], b[1], b[2], b[3] = 0x00, 0xff, 0xff, 0xff
		writeFile(t, dir, name, b)
	}
	caught(t, testConfig(dir, k), ErrTampered)
	if b := readFile(t, dir, "entries"); len(b) == 0 {
		t.Fatal("Open wiped the damaged entries")
	}
}
