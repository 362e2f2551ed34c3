package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// bulk appends n events from many goroutines (so that they share group
// commits); session names event i's session ("" for none).
func bulk(t testing.TB, l *Log, n int, session func(i int) string) {
	t.Helper()
	ch := make(chan int)
	var wg sync.WaitGroup
	for range 128 {
		wg.Go(func() {
			for i := range ch {
				e := testEvent(i)
				e.Session = session(i)
				if _, err := l.Append(context.Background(), e); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range n {
		ch <- i
	}
	close(ch)
	wg.Wait()
}

// readBytes is how many bytes this process has read through system calls
// (rchar in /proc/self/io), or -1 where that is not available.
func readBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return -1
}

// TestStartReadsOnlyTheTail: Open starts from the remembered head and
// reads a few kilobytes, whatever the log's length; an old entry altered
// in a way only a full verification sees does not stop it. The
// verification pass finds it (and the log then fails closed), and so does
// ward audit verify (VerifyLog).
func TestStartReadsOnlyTheTail(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	const n = 20000
	bulk(t, l, n, func(i int) string { return "s-" + strconv.Itoa(i%500) })
	l.Close()
	// An old entry altered where only rehashing it shows.
	es := splitFrames(t, readFile(t, cfg.Dir, entriesName))
	i := bytes.Index(es[10], []byte(`"actor":"spiffe://ward.test/agent/a`))
	es[10][i+len(`"actor":"spiffe://ward.test/agent/`)] = 'b'
	ent := joinFrames(es)
	writeFile(t, cfg.Dir, entriesName, ent)

	before := readBytes(t)
	l, err := Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	read := readBytes(t) - before
	if !l.fromHead || l.Size() != n {
		t.Fatalf("from head %v, size %d", l.fromHead, l.Size())
	}
	if before >= 0 && read > int64(len(ent))/20 {
		t.Fatalf("Open read %d bytes of a log whose entries are %d bytes", read, len(ent))
	}
	t.Logf("Open read %d bytes; the entries are %d bytes", read, len(ent))
	// (The appends were batched: the checkpoints around entry 10 say in
	// which batch it is.)
	const says = "does not match the entries"
	if _, err := l.Verify(context.Background()); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "index: ") {
		t.Fatalf("verification pass: %v", err)
	}
	l.Close()
	if _, err := Verify(cfg.Dir, k.verifier, testOrigin); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), says) {
		t.Fatalf("offline verify: %v", err)
	}
	// The pass recorded what it found before failing closed.
	evs, err := ReadDir(cfg.Dir, n, n+1)
	if err != nil || evs[0].Type != typeDamage || !strings.Contains(string(evs[0].Data), says) {
		t.Fatalf("damage event: %+v, %v", evs, err)
	}
	if _, err := Open(cfg); !errors.Is(err, ErrTampered) {
		t.Fatalf("open after the pass found damage: %v", err)
	}
}

// TestDamageFoundThenOverride: the way out of a damaged log is the same as
// before the fast start: restore it, or open it with AllowUnverified,
// which keeps the evidence and re-anchors; then it starts from its head
// again.
func TestDamageFoundThenOverride(t *testing.T) {
	cfg, k := logAt(t, 10)
	es := splitFrames(t, readFile(t, cfg.Dir, entriesName))
	es[2], es[3] = es[3], es[2]
	writeFile(t, cfg.Dir, entriesName, joinFrames(es))
	if err := caught(t, cfg, ErrTampered); !strings.Contains(err.Error(), "entry 2: index field says 3") {
		t.Fatalf("refusal: %v", err)
	}
	cfg.AllowUnverified = true
	l := mustOpen(t, cfg)
	if l.fromHead {
		t.Fatal("AllowUnverified started from the head")
	}
	l.Close()
	if _, err := os.Stat(filepath.Join(cfg.Dir, damagedName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("damage mark left after the override: %v", err)
	}
	if rep, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil || len(rep.Anomalies) != 2 {
		t.Fatalf("after the override: %+v, %v", rep, err)
	}
	cfg.AllowUnverified = false
	l = mustOpen(t, cfg)
	if !l.fromHead {
		t.Fatal("not started from the head after the override")
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// setIndexed rewrites the head as if the index had been durable only up
// to d entries.
func setIndexed(t *testing.T, cfg Config, k testKey, d uint64) {
	t.Helper()
	hs, err := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
	if err != nil || hs.front == nil {
		t.Fatalf("head: %+v, %v", hs, err)
	}
	f := *hs.front
	f.indexed = d
	h, err := createHead(DefaultHead(cfg.Dir), hs.seq, hs.cp.signed, &f)
	if err != nil {
		t.Fatal(err)
	}
	h.close()
}

// TestReplayAfterLostIndexWrites: a crash lost the index writes after its
// last sync (offsets and hashes garbage, session slots of new sessions
// gone, those of older ones torn or stale): Open replays the entries after
// the durable part, and the sessions' chains go on as if nothing
// happened.
func TestReplayAfterLostIndexWrites(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	session := func(i int) string { return "s-" + strconv.Itoa(i%37) }
	const n, d = 600, 250
	bulk(t, l, 300, session)
	bulk(t, l, 300, func(i int) string { return "late-" + strconv.Itoa(i%11) })
	for i := range 37 {
		if i%5 == 0 {
			if _, err := l.Seal(context.Background(), session(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	evs, err := l.Read(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	l.Close()
	// What each session looked like after entry d-1, and where it began.
	atD, first := map[string]chainState{}, map[string]uint64{}
	for _, e := range evs {
		if e.Session == "" {
			continue
		}
		if _, ok := first[e.Session]; !ok {
			first[e.Session] = e.Index
		}
		if e.Index < d {
			atD[e.Session] = chainState{last: e.Index, seq: e.Seq, seal: e.Type == typeSeal}
		}
	}
	setIndexed(t, cfg, k, d)
	ix := filepath.Join(cfg.Dir, indexDirName)
	garbage := func(name string, from int64) {
		f, err := os.OpenFile(filepath.Join(ix, name), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, int(st.Size()-from)), from); err != nil {
			t.Fatal(err)
		}
	}
	garbage(offsetsName, 8*d)
	garbage(hashesName, 32*nodesIn(d))
	tab, err := openSessions(ix, true)
	if err != nil {
		t.Fatal(err)
	}
	torn := 0
	for s, f := range first {
		loc, st, found, err := tab.lookup(keyOf(s))
		if err != nil || !found {
			t.Fatalf("session %s not in the table: %v", s, err)
		}
		if st.last < d {
			continue
		}
		switch {
		case f >= d: // never durable: the slot reads as free
			tab.write(loc, keyOf(s), chainState{})
			b := make([]byte, sessionSlot)
			tab.files()[loc.gen].WriteAt(b, sessionSlot*int64(1+loc.slot))
		case torn%2 == 0: // torn
			tab.files()[loc.gen].WriteAt([]byte{0xff, 0xee}, sessionSlot*int64(1+loc.slot)+18)
			torn++
		default: // the last durable state
			tab.write(loc, keyOf(s), atD[s])
			torn++
		}
	}
	tab.close()

	l = mustOpen(t, cfg)
	if !l.fromHead || l.Size() != size {
		t.Fatalf("from head %v, size %d of %d", l.fromHead, l.Size(), size)
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatalf("index after replay: %v", err)
	}
	bulk(t, l, 200, func(i int) string {
		if i%2 == 0 {
			return session(i)
		}
		return "late-" + strconv.Itoa(i%11)
	})
	l.Close()
	if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
		t.Fatalf("chains after replay: %v", err)
	}
}

// TestIndexDamage: a damaged index never yields a wrong event or a false
// proof: Read and Prove check what it points at; the verification pass
// finds it; the next Open, verifying the whole log, rebuilds it.
func TestIndexDamage(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, ix string)
		check  func(t *testing.T, l *Log)
	}{
		{"offsets point at another entry", func(t *testing.T, ix string) {
			b := readFile(t, ix, offsetsName)
			copy(b[8*5:8*6], b[8*6:8*7])
			writeFile(t, ix, offsetsName, b)
		}, func(t *testing.T, l *Log) {
			if _, err := l.Read(6, 7); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read: %v", err)
			}
			if _, err := l.Prove(6); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("prove: %v", err)
			}
		}},
		{"a hash altered", func(t *testing.T, ix string) {
			b := readFile(t, ix, hashesName)
			b[32*nodePos(proofNode(t, 3, 20))] ^= 1
			writeFile(t, ix, hashesName, b)
		}, func(t *testing.T, l *Log) {
			if _, err := l.Prove(3); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("prove: %v", err)
			}
			if _, err := l.ConsistencyProof(3, 20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("consistency: %v", err)
			}
		}},
		{"a session's state altered", func(t *testing.T, ix string) {
			tab, err := openSessions(ix, true)
			if err != nil {
				t.Fatal(err)
			}
			defer tab.close()
			loc, st, found, err := tab.lookup(keyOf("s-3"))
			if err != nil || !found {
				t.Fatal(err)
			}
			st.seq++
			tab.write(loc, keyOf("s-3"), st)
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, k := logAt(t, 20)
			ix := filepath.Join(cfg.Dir, indexDirName)
			tt.damage(t, ix)
			l := mustOpen(t, cfg)
			if tt.check != nil {
				tt.check(t, l)
			}
			if _, err := l.Verify(context.Background()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "index: ") {
				t.Fatalf("verification pass: %v", err)
			}
			if _, err := l.Append(context.Background(), testEvent(0)); err == nil {
				t.Fatal("append after the index was found damaged")
			}
			l.Close()
			l = mustOpen(t, cfg)
			if l.fromHead {
				t.Fatal("started from the head over a damaged index")
			}
			if _, err := l.Prove(6); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Verify(context.Background()); err != nil {
				t.Fatalf("rebuilt index: %v", err)
			}
			l.Close()
			if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// proofNode is a node of the inclusion proof of index in a tree of size
// leaves that is not one of the tree's frontier (which Open checks).
func proofNode(t *testing.T, index, size uint64) compact.NodeID {
	t.Helper()
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range nodes.IDs {
		if !slices.Contains(compact.RangeNodes(0, size, nil), id) {
			return id
		}
	}
	t.Fatal("every node of the proof is on the frontier")
	return compact.NodeID{}
}

// TestUpgradeFromVersion1: a log written before the frontier and the
// index (a version 1 head, no index) is verified in full once, gets both,
// and then starts from its head.
func TestUpgradeFromVersion1(t *testing.T) {
	cfg, k := logAt(t, 12)
	hs, err := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	v1 := make([]byte, 2*headSlotV1)
	copy(v1[int(hs.seq%2)*headSlotV1:], encodeHeadSlotV1(t, hs.seq, hs.cp.signed))
	if err := os.WriteFile(DefaultHead(cfg.Dir), v1, 0o600); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(cfg.Dir, indexDirName))
	if rep, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil || rep.Head != 12 {
		t.Fatalf("verify with a version 1 head: %+v, %v", rep, err)
	}
	l := mustOpen(t, cfg)
	if l.fromHead || l.Size() != 12 {
		t.Fatalf("from head %v, size %d", l.fromHead, l.Size())
	}
	fill(t, l, 2)
	l.Close()
	if hs, _ := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin); hs.front == nil || hs.cp.size != 14 {
		t.Fatalf("head after the upgrade: %+v", hs)
	}
	l = mustOpen(t, cfg)
	if !l.fromHead {
		t.Fatal("not started from the head after the upgrade")
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestFullWhenAsked: Open verifies the whole log when the index is gone,
// when a pass left a damage mark, and with AllowUnverified; the result is
// the same log.
func TestFullWhenAsked(t *testing.T) {
	for name, prepare := range map[string]func(cfg *Config){
		"no index":        func(cfg *Config) { os.RemoveAll(filepath.Join(cfg.Dir, indexDirName)) },
		"damage mark":     func(cfg *Config) { os.WriteFile(filepath.Join(cfg.Dir, damagedName), []byte("x\n"), 0o600) },
		"allow":           func(cfg *Config) { cfg.AllowUnverified = true },
		"no session list": func(cfg *Config) { os.Remove(filepath.Join(cfg.Dir, indexDirName, genName(0))) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, k := logAt(t, 5)
			prepare(&cfg)
			l := mustOpen(t, cfg)
			if l.fromHead || l.Size() != 5 {
				t.Fatalf("from head %v, size %d", l.fromHead, l.Size())
			}
			fill(t, l, 1)
			l.Close()
			if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
				t.Fatal(err)
			}
			cfg.AllowUnverified = false
			if l := mustOpen(t, cfg); !l.fromHead {
				t.Fatal("the next start was not from the head")
			}
		})
	}
}

// TestVerifyPassWhileAppending: the pass beside a busy log (sessions
// reused and sealed, group commits) never reports damage that is not
// there.
func TestVerifyPassWhileAppending(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := range 4 {
			bulk(t, l, 300, func(i int) string { return fmt.Sprintf("s-%d", i%23) })
			for i := range 23 {
				if i%(round+2) == 0 {
					l.Seal(context.Background(), fmt.Sprintf("s-%d", i))
				}
			}
		}
	}()
	passes := 0
	for {
		select {
		case <-done:
			if _, err := l.Verify(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d passes while appending", passes)
			return
		default:
		}
		if _, err := l.Verify(context.Background()); err != nil {
			t.Fatalf("pass %d: %v", passes, err)
		}
		passes++
	}
}

// TestSessionTableGrows: more sessions than the first generation holds
// near their homes go to new generations, and every chain still follows.
func TestSessionTableGrows(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	const sessions = 3 << sessionGenBits
	bulk(t, l, sessions, func(i int) string { return "grow-" + strconv.Itoa(i) })
	bulk(t, l, 2000, func(i int) string { return "grow-" + strconv.Itoa(i*7919%sessions) })
	if g := len(l.idx.sessions.files()); g < 2 {
		t.Fatalf("%d generations for %d sessions", g, sessions)
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
		t.Fatal(err)
	}
}

// TestSlotEncoding: a session's state reads back; a torn slot does not
// read as anything.
func TestSlotEncoding(t *testing.T) {
	k := keyOf("s")
	for _, st := range []chainState{{1, 1, false}, {maxSlotIndex, maxSlotSeq, true}, {0, 1, true}} {
		b, err := encodeSlot(k, st)
		if err != nil {
			t.Fatal(err)
		}
		id, got, free, ok := decodeSlot(b[:])
		if !ok || free || got != st || id != k.id {
			t.Fatalf("%+v read back as %+v (ok %v)", st, got, ok)
		}
		for i := range sessionSlot {
			c := b
			c[i] ^= 0x10
			if _, _, _, ok := decodeSlot(c[:]); ok {
				t.Fatalf("slot with byte %d changed reads as valid", i)
			}
		}
	}
	if _, err := encodeSlot(k, chainState{last: maxSlotIndex + 1}); err == nil {
		t.Fatal("an index beyond 48 bits was encoded")
	}
	var zero [sessionSlot]byte
	if _, _, free, _ := decodeSlot(zero[:]); !free {
		t.Fatal("a zero slot is not free")
	}
	if got := binary.BigEndian.Uint64(k.id[8:]); got != k.home {
		t.Fatal("home is not the key's second half")
	}
}

// TestNodePositions: the index's post-order numbering is the order in
// which a compact range completes nodes.
func TestNodePositions(t *testing.T) {
	r := newRange()
	pos := int64(0)
	for i := range uint64(1000) {
		err := r.Append(hasher.HashLeaf([]byte{byte(i)}), func(id compact.NodeID, _ []byte) {
			if got := nodePos(id); got != pos {
				t.Fatalf("node %d/%d at %d, visited %d", id.Level, id.Index, got, pos)
			}
			pos++
		})
		if err != nil {
			t.Fatal(err)
		}
		if nodesIn(i+1) != pos {
			t.Fatalf("%d leaves: %d nodes, visited %d", i+1, nodesIn(i+1), pos)
		}
	}
}

// TestLeftoverScratchRemoved: the scratch table of a verification pass a
// crash interrupted does not stay in the index.
func TestLeftoverScratchRemoved(t *testing.T) {
	cfg, _ := logAt(t, 2)
	left := filepath.Join(cfg.Dir, indexDirName, scratchPrefix+"1")
	if err := os.Mkdir(left, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, left, genName(0), []byte("x"))
	l := mustOpen(t, cfg)
	if !l.fromHead {
		t.Fatal("not started from the head")
	}
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover scratch table: %v", err)
	}
}
