package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// logAt builds a log of n single-event batches in a fresh directory and
// returns its config (head next to it).
func logAt(t *testing.T, n int) (Config, testKey) {
	t.Helper()
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	fill(t, l, n)
	l.Close()
	return cfg, k
}

// refused opens cfg, expects a refusal matching want and says, and checks
// that nothing in the log's directory or its head changed.
func refused(t *testing.T, cfg Config, want error, says string) {
	t.Helper()
	before := dirFiles(t, cfg.Dir)
	head, _ := os.ReadFile(DefaultHead(cfg.Dir))
	l, err := Open(cfg)
	if err == nil {
		l.Close()
		t.Fatal("Open succeeded")
	}
	if !errors.Is(err, want) || !strings.Contains(err.Error(), says) {
		t.Fatalf("open: %v\nwant %v containing %q", err, want, says)
	}
	after, _ := os.ReadFile(DefaultHead(cfg.Dir))
	if !equalMaps(before, dirFiles(t, cfg.Dir)) || !bytes.Equal(head, after) {
		t.Fatal("a refused Open changed the files")
	}
}

func TestHeadRemembersLatest(t *testing.T) {
	cfg, k := logAt(t, 7)
	rep, err := Verify(cfg.Dir, k.verifier, testOrigin)
	if err != nil || !rep.HeadFound || rep.Head != 7 || len(rep.Anchors) != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	// The head holds exactly the latest checkpoint record.
	hs, err := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
	recs := splitFrames(t, readFile(t, cfg.Dir, checkpointsName))
	if err != nil || hs.problem != "" || !bytes.Equal(hs.cp.signed, recs[len(recs)-1]) {
		t.Fatalf("head %+v, %v", hs, err)
	}
	if st, err := os.Stat(DefaultHead(cfg.Dir)); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 2*headSlot {
		t.Fatalf("head file: %v, %v", st, err)
	}
}

// TestRollbacks: every way found of making the log shorter than what ward
// acknowledged is refused, says what happened, and changes nothing.
func TestRollbacks(t *testing.T) {
	t.Run("checkpoints file cut at a record boundary", func(t *testing.T) {
		cfg, _ := logAt(t, 10)
		recs := splitFrames(t, readFile(t, cfg.Dir, checkpointsName))
		writeFile(t, cfg.Dir, checkpointsName, joinFrames(recs[:6]))
		refused(t, cfg, ErrRollback, "the checkpoints file was rolled back: its latest record covers 5 entries but ward's remembered head")
	})
	t.Run("checkpoints file cut inside the last record", func(t *testing.T) {
		// The last record was made durable before the head named it, so
		// losing it is not a crash.
		cfg, _ := logAt(t, 10)
		b := readFile(t, cfg.Dir, checkpointsName)
		writeFile(t, cfg.Dir, checkpointsName, b[:len(b)-30])
		refused(t, cfg, ErrRollback, "its latest record covers 9 entries")
	})
	t.Run("entries cut back", func(t *testing.T) {
		cfg, _ := logAt(t, 10)
		es := splitFrames(t, readFile(t, cfg.Dir, entriesName))
		writeFile(t, cfg.Dir, entriesName, joinFrames(es[:7]))
		refused(t, cfg, ErrTampered, "the log holds 7 entries but checkpoint record 10 covers 10")
	})
	t.Run("both files deleted", func(t *testing.T) {
		cfg, _ := logAt(t, 10)
		os.Remove(filepath.Join(cfg.Dir, entriesName))
		os.Remove(filepath.Join(cfg.Dir, checkpointsName))
		l, err := Open(cfg)
		if err == nil {
			l.Close()
			t.Fatal("Open started a new log over a deleted one")
		}
		if !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), "the log holds 0 entries but ward's remembered head") {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("head deleted", func(t *testing.T) {
		cfg, _ := logAt(t, 3)
		os.Remove(DefaultHead(cfg.Dir))
		refused(t, cfg, ErrRollback, "ward remembers no checkpoint of this log")
	})
	t.Run("head forged", func(t *testing.T) {
		cfg, _ := logAt(t, 3)
		evil := newTestKey(t, testOrigin)
		signed, _ := note.Sign(&note.Note{Text: checkpointText(testOrigin, 1, make([]byte, 32))}, evil.signer)
		if _, err := createHead(DefaultHead(cfg.Dir), 5, signed, &frontier{}); err != nil {
			t.Fatal(err)
		}
		refused(t, cfg, ErrTampered, "not signed by the log key")
	})
	t.Run("checkpoints of another log under the same key", func(t *testing.T) {
		cfg, k := logAt(t, 4)
		other := testConfig(filepath.Join(t.TempDir(), "audit"), k)
		l := mustOpen(t, other)
		l.Append(context.Background(), Event{Type: "other"})
		syncCP(t, l)
		fill(t, l, 3)
		l.Close()
		writeFile(t, cfg.Dir, checkpointsName, readFile(t, other.Dir, checkpointsName))
		refused(t, cfg, ErrTampered, "checkpoint record 1 (tree size 1) does not match the entries; checkpoint record 0 (tree size 0) still matches: entry 0 was altered or removed")
	})
	t.Run("checkpoints of another origin", func(t *testing.T) {
		cfg, k := logAt(t, 2)
		other := testConfig(filepath.Join(t.TempDir(), "audit"), k)
		other.Origin = "elsewhere/audit"
		l := mustOpen(t, other)
		fill(t, l, 2)
		l.Close()
		writeFile(t, cfg.Dir, checkpointsName, readFile(t, other.Dir, checkpointsName))
		refused(t, cfg, ErrTampered, `origin "elsewhere/audit"`)
	})
	t.Run("all three rolled back, the witnesses' checkpoint is not", func(t *testing.T) {
		k := newTestKey(t, testOrigin)
		base := t.TempDir()
		cfg := testConfig(filepath.Join(base, "audit"), k)
		published := filepath.Join(base, "published")
		cfg.Anchors = []string{published}
		l := mustOpen(t, cfg)
		fill(t, l, 5)
		l.Close()
		ent, cps := copyLogFiles(t, cfg.Dir)
		head := readFile(t, base, "audit.head")
		l = mustOpen(t, cfg)
		fill(t, l, 5)
		witness := newTestKey(t, "witness.test")
		cosigned, _ := note.Sign(&note.Note{Text: noteText(t, l.Checkpoint(), k.verifier)}, k.signer, witness.signer)
		os.WriteFile(published, cosigned, 0o644)
		l.Close()
		writeFile(t, cfg.Dir, entriesName, ent)
		writeFile(t, cfg.Dir, checkpointsName, cps)
		writeFile(t, base, "audit.head", head)
		refused(t, cfg, ErrRollback, "the log holds 5 entries but the checkpoint in "+published+" covers 10")
		// Offline too.
		if _, err := VerifyLog(cfg.Dir, VerifyConfig{Verifier: k.verifier, Origin: testOrigin, Anchors: []string{published}}); !errors.Is(err, ErrRollback) {
			t.Fatalf("verify: %v", err)
		}
		// The recorded override sets the witnessed checkpoint of the
		// abandoned history aside, so that later starts need no override.
		cfg.AllowUnverified = true
		l = mustOpen(t, cfg)
		l.Close()
		if _, err := os.Stat(published); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("published checkpoint still in place: %v", err)
		}
		if aside, _ := filepath.Glob(published + ".unverified-*"); len(aside) != 1 || !bytes.Equal(readFile(t, base, filepath.Base(aside[0])), cosigned) {
			t.Fatalf("published checkpoint not kept aside: %v", aside)
		}
		cfg.AllowUnverified = false
		mustOpen(t, cfg).Close()
	})
	t.Run("anchor of another key", func(t *testing.T) {
		cfg, _ := logAt(t, 2)
		evil := newTestKey(t, testOrigin)
		signed, _ := note.Sign(&note.Note{Text: checkpointText(testOrigin, 1, make([]byte, 32))}, evil.signer)
		anchor := filepath.Join(t.TempDir(), "cp")
		os.WriteFile(anchor, signed, 0o600)
		cfg.Anchors = []string{anchor}
		refused(t, cfg, ErrTampered, "checkpoint in "+anchor+": not signed by the log key")
	})
}

// TestRollbackOverride: --allow-unverified-audit after a rollback keeps
// everything, records what ward remembered, and re-anchors.
func TestRollbackOverride(t *testing.T) {
	cfg, k := logAt(t, 10)
	ent := readFile(t, cfg.Dir, entriesName)
	recs := splitFrames(t, readFile(t, cfg.Dir, checkpointsName))
	writeFile(t, cfg.Dir, checkpointsName, joinFrames(recs[:4]))
	cfg.AllowUnverified = true
	l := mustOpen(t, cfg)
	if !strings.Contains(l.Notice(), "opened although it failed verification") {
		t.Fatalf("notice %q", l.Notice())
	}
	if l.Size() != 11 {
		t.Fatalf("size %d, want the 10 entries and the unverified-open event", l.Size())
	}
	evs, _ := l.Read(10, 11)
	var uo unverifiedOpen
	json.Unmarshal(evs[0].Data, &uo)
	if evs[0].Type != typeUnverifiedOpen || !strings.Contains(uo.Error, "rolled back") || uo.Remembered != string(recs[10]) || uo.Checkpoint != string(recs[3]) {
		t.Fatalf("event %s %+v", evs[0].Type, uo)
	}
	l.Close()
	if !bytes.HasPrefix(readFile(t, cfg.Dir, entriesName), ent) {
		t.Fatal("the override changed the entries")
	}
	if rep, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil || rep.Size != 11 || rep.Head != 11 {
		t.Fatalf("after the override: %+v, %v", rep, err)
	}
	cfg.AllowUnverified = false
	mustOpen(t, cfg).Close()
}

// TestCrashStates: the states a crash can leave between the writes of a
// batch (entries, checkpoint record, head) all open, keep every
// acknowledged entry, and keep whatever was not acknowledged aside.
func TestCrashStates(t *testing.T) {
	t.Run("head lags the checkpoints file", func(t *testing.T) {
		cfg, k := logAt(t, 4)
		head := readFile(t, filepath.Dir(cfg.Dir), "audit.head")
		l := mustOpen(t, cfg)
		fill(t, l, 1)
		l.Close()
		writeFile(t, filepath.Dir(cfg.Dir), "audit.head", head) // the last head write was lost
		l = mustOpen(t, cfg)
		if l.Size() != 5 || l.Notice() != "" || !l.fromHead {
			t.Fatalf("size %d, notice %q, from head %v", l.Size(), l.Notice(), l.fromHead)
		}
		l.Close()
		if rep, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil || rep.Head != 5 {
			t.Fatalf("the head did not catch up: %+v, %v", rep, err)
		}
	})
	t.Run("head write torn", func(t *testing.T) {
		cfg, _ := logAt(t, 4)
		path := DefaultHead(cfg.Dir)
		b := readFile(t, filepath.Dir(path), filepath.Base(path))
		// Tear the newer slot: the older one (size 3) remains.
		newer := 0
		if seq, _, _, ok := decodeHeadSlot(b[headSlot:]); ok && seq%2 == 1 {
			if s0, _, _, ok0 := decodeHeadSlot(b[:headSlot]); !ok0 || seq > s0 {
				newer = 1
			}
		}
		copy(b[newer*headSlot+100:], bytes.Repeat([]byte{0xff}, 512))
		os.WriteFile(path, b, 0o600)
		l := mustOpen(t, cfg)
		if l.Size() != 4 {
			t.Fatalf("size %d", l.Size())
		}
	})
	t.Run("log created, head not yet", func(t *testing.T) {
		k := newTestKey(t, testOrigin)
		cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
		mustOpen(t, cfg).Close()
		os.Remove(DefaultHead(cfg.Dir))
		l := mustOpen(t, cfg)
		fill(t, l, 1)
	})
	t.Run("entries written, checkpoint not", func(t *testing.T) {
		cfg, _ := logAt(t, 4)
		tail := joinFrames([][]byte{[]byte(`{"v":2,"index":4,"time":"2026-01-01T00:00:00Z","type":"decision"}`)})
		writeFile(t, cfg.Dir, entriesName, append(readFile(t, cfg.Dir, entriesName), tail...))
		l := mustOpen(t, cfg)
		if !l.fromHead {
			t.Fatal("an unacknowledged tail made the start verify the whole log")
		}
		evs, _ := l.Read(4, 5)
		var rec recovery
		json.Unmarshal(evs[0].Data, &rec)
		if evs[0].Type != typeRecover || rec.Entries != 1 || rec.EntryBytes != int64(len(tail)) || len(rec.KeptIn) != 1 {
			t.Fatalf("recover event %+v", rec)
		}
		if got := readFile(t, cfg.Dir, rec.KeptIn[0]); !bytes.Equal(got, tail) {
			t.Fatal("the tail was not kept")
		}
		if !strings.Contains(l.Notice(), rec.KeptIn[0]) {
			t.Fatalf("notice %q does not say where", l.Notice())
		}
	})
}

// TestHeadNeverAhead: the head never names more than was acknowledged.
// If the journal cannot be written, the append is refused and the head
// does not move. If the checkpoints file or the head cannot be written
// (they follow on the flusher's cadence), the append is acknowledged, the
// head does not move past the last state whose files were synced, and the
// reopened log has the event, replayed from the journal.
func TestHeadNeverAhead(t *testing.T) {
	for _, what := range []string{"journal", "checkpoints", "head"} {
		t.Run(what, func(t *testing.T) {
			cfg, k := logAt(t, 3)
			l, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			switch what {
			case "journal":
				l.jr.f.Close()
			case "checkpoints":
				l.cps.Close()
			default:
				l.head.f.Close()
			}
			e := testEvent(3)
			_, err = l.Append(context.Background(), e)
			acked := err == nil
			if what == "journal" && (acked || !strings.Contains(err.Error(), "failed closed")) {
				t.Fatalf("append: %v", err)
			}
			if what != "journal" && !acked {
				t.Fatalf("append: %v", err)
			}
			time.Sleep(2 * checkpointInterval) // let the flusher try
			l.Close()
			hs, _ := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
			if hs.cp.size != 3 {
				t.Fatalf("head at %d after a failed write", hs.cp.size)
			}
			l = mustOpen(t, cfg)
			defer l.Close()
			want := uint64(3)
			if acked {
				want = 4
			}
			if l.Size() < want {
				t.Fatalf("size %d, want %d", l.Size(), want)
			}
			if acked {
				evs, err := l.Read(3, 4)
				if err != nil || evs[0].Session != e.Session {
					t.Fatalf("the acknowledged event: %+v, %v", evs, err)
				}
			}
		})
	}
}

// TestVerifyWhileAppending: Verify, reading in the reverse order of the
// writer, never mistakes a batch in progress for a rollback.
func TestVerifyWhileAppending(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				e := testEvent(i)
				e.Session = string(rune('a' + g))
				if _, err := l.Append(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for verified := 0; ; verified++ {
		select {
		case <-done:
			if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d verifications while appending", verified)
			return
		default:
		}
		if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHeadOutsideDir(t *testing.T) {
	k := newTestKey(t, testOrigin)
	dir := t.TempDir()
	cfg := testConfig(dir, k)
	cfg.Head = filepath.Join(dir, "head")
	if l, err := Open(cfg); err == nil {
		l.Close()
		t.Fatal("a head inside the log directory was accepted")
	}
}

// TestParseHeadSlots: the head file's reading of its two slots, in
// version 2 and in version 1.
func TestParseHeadSlots(t *testing.T) {
	k := newTestKey(t, testOrigin)
	tree := func(size uint64) (*frontier, []byte) {
		r := newRange()
		for i := range size {
			r.Append(hasher.HashLeaf([]byte{byte(i)}), nil)
		}
		return &frontier{entEnd: 100 * int64(size), cpEnd: 1000, indexed: size / 2, hashes: r.Hashes()}, rootOf(r)
	}
	cp := func(size uint64) []byte {
		_, root := tree(size)
		s, _ := note.Sign(&note.Note{Text: checkpointText(testOrigin, size, root)}, k.signer)
		return s
	}
	slot := func(seq uint64, size uint64) []byte {
		f, _ := tree(size)
		b, err := encodeHeadSlot(seq, cp(size), f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	slotV1 := func(seq uint64, size uint64) []byte { return encodeHeadSlotV1(t, seq, cp(size)) }
	badFront := func(seq uint64, size uint64, change func(*frontier)) []byte {
		f, _ := tree(size)
		change(f)
		b, err := encodeHeadSlot(seq, cp(size), f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	zero := make([]byte, headSlot)
	zeroV1 := make([]byte, headSlotV1)
	for _, tt := range []struct {
		name    string
		b       []byte
		size    uint64
		problem string
	}{
		{"one slot", append(bytes.Clone(zero), slot(1, 4)...), 4, ""},
		{"newer in slot 0", append(slot(2, 5), slot(1, 4)...), 5, ""},
		{"newer in slot 1", append(slot(4, 5), slot(5, 6)...), 6, ""},
		{"slot of the wrong parity", append(slot(1, 5), zero...), 0, "write 1 in slot 0"},
		{"writes apart (read while writing)", append(slot(2, 5), slot(7, 6)...), 6, ""},
		{"nothing", append(bytes.Clone(zero), zero...), 0, "no readable slot"},
		{"short", zero[:5000], 0, "bytes, want"},
		{"version 1", append(bytes.Clone(zeroV1), slotV1(1, 4)...), 4, ""},
		{"version 1, newer in slot 0", append(slotV1(2, 5), slotV1(1, 4)...), 5, ""},
		{"version 1 slot in a version 2 file", append(append(slotV1(2, 5), zeroV1...), zero...), 0, "no readable slot"},
		{"frontier of another tree", append(bytes.Clone(zero), badFront(1, 6, func(f *frontier) { f.hashes[0][0] ^= 1 })...), 0, "the frontier is not the tree of its checkpoint"},
		{"frontier of another size", append(bytes.Clone(zero), badFront(1, 6, func(f *frontier) { f.hashes = f.hashes[:1] })...), 0, "the frontier has 1 hashes"},
		{"index beyond the tree", append(bytes.Clone(zero), badFront(1, 6, func(f *frontier) { f.indexed = 7 })...), 0, "index size 7 is beyond"},
		{"offsets impossible", append(bytes.Clone(zero), badFront(1, 6, func(f *frontier) { f.cpEnd = 3 })...), 0, "impossible file offsets"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := parseHead(tt.b, "h", k.verifier, testOrigin)
			if tt.problem != "" {
				if !strings.Contains(h.problem, tt.problem) || h.cp != nil {
					t.Fatalf("%+v, want problem %q", h, tt.problem)
				}
				return
			}
			if h.problem != "" || h.cp == nil || h.cp.size != tt.size {
				t.Fatalf("%+v, want size %d", h, tt.size)
			}
		})
	}
}

// encodeHeadSlotV1 lays out a version 1 slot, as the ward before the
// frontier wrote it.
func encodeHeadSlotV1(t testing.TB, seq uint64, signed []byte) []byte {
	t.Helper()
	b := make([]byte, 0, headSlotV1)
	b = append(b, headMagicV1...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(signed)))
	b = append(b, signed...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	return b[:headSlotV1]
}

// TestVerifyNamesRemovedEntry: a log whose middle entry was deleted and
// whose checkpoints were re-signed with another key. Verified with the
// real key, the head alone says how many entries are gone; a copy of the
// old checkpoints file, given as an anchor, names the entry.
func TestVerifyNamesRemovedEntry(t *testing.T) {
	cfg, k := logAt(t, 10)
	saved := filepath.Join(t.TempDir(), "checkpoints.bak")
	os.WriteFile(saved, readFile(t, cfg.Dir, checkpointsName), 0o600)
	evil := newTestKey(t, testOrigin)
	ent, cps := resignedCopy(t, splitFrames(t, readFile(t, cfg.Dir, entriesName)), 4, evil)
	writeFile(t, cfg.Dir, entriesName, ent)
	writeFile(t, cfg.Dir, checkpointsName, cps)

	_, err := Verify(cfg.Dir, k.verifier, testOrigin)
	if err == nil || !strings.Contains(err.Error(), "checkpoint records 0..9: not signed by the log key") ||
		!strings.Contains(err.Error(), "the log holds 9 entries but ward's remembered head") || !strings.Contains(err.Error(), "at least 1 were removed") {
		t.Fatalf("with the head: %v", err)
	}
	_, err = VerifyLog(cfg.Dir, VerifyConfig{Verifier: k.verifier, Origin: testOrigin, Anchors: []string{saved}})
	if err == nil || !strings.Contains(err.Error(), "record 4 of "+saved+" (tree size 4) still matches: entry 4 was altered or removed") {
		t.Fatalf("with the old checkpoints: %v", err)
	}
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.First != 0 {
		// The unsigned checkpoints implicate the whole log.
		t.Fatalf("first %v", ve)
	}
}
