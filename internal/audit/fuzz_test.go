package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// fuzzKey is a fixed test-only key so that saved corpus entries keep their
// signatures valid across runs.
const (
	fuzzSkey = "PRIVATE+KEY+ward.test/audit+d1a2bb3f+ARcZmArVuwP+lhyKNqwf4pmKKyiC60tlKw8U8He0G4yX"
	fuzzVkey = "ward.test/audit+d1a2bb3f+AVQtURZuhFU+vW5qxaHthEAS5STfaBkeWYrch4AA+dFu"
)

// fuzzLog builds a small real log with the fuzz key: three events of
// sessions a and b, a sealed, and returns its files.
func fuzzLog(f *testing.F) (dir string, ent, cps, head []byte) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	dir = filepath.Join(f.TempDir(), "audit")
	cfg := testConfig(dir, k)
	cfg.Now = func() time.Time { return time.Unix(1767225600, 0) }
	l, err := Open(cfg)
	if err != nil {
		f.Fatal(err)
	}
	for i, s := range []string{"a", "b", "a"} {
		e := testEvent(i)
		e.Session = s
		if _, err := l.Append(context.Background(), e); err != nil {
			f.Fatal(err)
		}
		syncCP(f, l) // a checkpoint record per event
	}
	if _, err := l.Seal(context.Background(), "a"); err != nil {
		f.Fatal(err)
	}
	l.Close()
	head, err = os.ReadFile(DefaultHead(dir))
	if err != nil {
		f.Fatal(err)
	}
	return dir, readFile(f, dir, entriesName), readFile(f, dir, checkpointsName), head
}

// seedLog adds the files of a small real log, and damaged variants, to f.
func seedLog(f *testing.F, withHead bool) {
	_, ent, cps, head := fuzzLog(f)
	add := func(ent, cps, h []byte) {
		if withHead {
			f.Add(ent, cps, h)
		} else {
			f.Add(ent, cps)
		}
	}
	add(ent, cps, head)
	add(ent, cps, nil)
	add(ent[:len(ent)-5], cps, head)
	add(ent, cps[:len(cps)-7], head)
	add(append(bytes.Clone(ent), 0, 0, 1), cps, head)
	add([]byte{}, []byte{}, nil)
	add([]byte{}, []byte{}, head)
	add([]byte{}, cps[:len(splitFrames(f, cps)[0])+4], nil)
	recs := splitFrames(f, cps)
	add(ent, joinFrames(recs[:3]), head)
	swapped := splitFrames(f, ent)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	add(joinFrames(swapped), cps, head)
}

// writeLog replaces the log in base/log and its head. The fuzz body runs
// sequentially in each worker process, so one directory per worker is
// reused: far cheaper than a new temporary directory per input.
func writeLog(t *testing.T, base string, ent, cps, head []byte) string {
	dir := filepath.Join(base, "log")
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, entriesName, ent)
	writeFile(t, dir, checkpointsName, cps)
	if len(head) > 0 {
		writeFile(t, base, "log.head", head)
	}
	return dir
}

// FuzzVerify: Verify never panics, and never reports success unless the
// latest checkpoint is validly signed, its root matches an independent
// recomputation over the raw entry bytes, and every covered entry is in
// its one encoding.
func FuzzVerify(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	seedLog(f, false)
	f.Fuzz(func(t *testing.T, ent, cps []byte) {
		// In memory, through the same scan and verdict as Verify; the file
		// handling of Verify is exercised by FuzzOpen and the unit tests.
		s, err := scanLog(bytes.NewReader(ent), int64(len(ent)), bytes.NewReader(cps), int64(len(cps)), k.verifier, testOrigin)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := s.report()
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || !(errors.Is(err, ErrTampered) || errors.Is(err, ErrCorrupt)) {
				t.Fatalf("verify error of the wrong kind: %v", err)
			}
			return
		}
		size, err := independentCheck(t, ent, cps, k.verifier)
		if err != nil {
			t.Fatalf("Verify succeeded but independent check fails: %v", err)
		}
		if size != rep.Size {
			t.Fatalf("Verify says size %d, checkpoint says %d", rep.Size, size)
		}
		for i, b := range splitFrames(t, ent)[:size] {
			var e Event
			if json.Unmarshal(b, &e) != nil || e.Index != uint64(i) {
				t.Fatalf("entry %d verified but does not carry its index", i)
			}
			if again, _ := json.Marshal(e); !bytes.Equal(again, b) {
				t.Fatalf("entry %d verified but is not in its one encoding", i)
			}
		}
	})
}

// keptWhole checks that orig survives whole: as a prefix of the current
// file, followed by the rest in one of the aside files.
func keptWhole(t *testing.T, orig, now []byte, aside []string, dir string) {
	t.Helper()
	var rests [][]byte
	for _, name := range aside {
		rests = append(rests, readFile(t, dir, name))
	}
	for k := len(orig); k >= 0; k-- {
		if !bytes.HasPrefix(now, orig[:k]) {
			continue
		}
		if k == len(orig) {
			return
		}
		for _, r := range rests {
			if bytes.Equal(r, orig[k:]) || bytes.Equal(r, orig) {
				return
			}
		}
	}
	for _, r := range rests {
		if bytes.Equal(r, orig) {
			return
		}
	}
	t.Fatalf("bytes of the log were lost (%d bytes; now %d, aside %v)", len(orig), len(now), aside)
}

func asideFiles(t *testing.T, dir, prefix string) []string {
	t.Helper()
	des, _ := os.ReadDir(dir)
	var out []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), prefix+".") && !strings.HasSuffix(de.Name(), ".journal") {
			out = append(out, de.Name())
		}
	}
	return out
}

// FuzzOpen: Open never panics; a refusal changes nothing; it opens only
// logs that verify independently and extend the head, keeping every
// checkpointed entry; no byte of the files is ever lost (what is not kept
// is moved aside); and with AllowUnverified it opens anything and leaves a
// log that verifies.
func FuzzOpen(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	seedLog(f, true)
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, ent, cps, head []byte) {
		dir := writeLog(t, base, ent, cps, head)
		cfg := testConfig(dir, k)
		before := dirFiles(t, dir)
		l, err := Open(cfg)
		if err == nil {
			if len(splitFrames(t, cps)) > 0 && len(splitFrames(t, ent)) > 0 {
				size, ierr := independentCheck(t, ent, cps, k.verifier)
				if ierr != nil {
					t.Fatalf("Open succeeded but independent check fails: %v", ierr)
				}
				if l.Size() < size {
					t.Fatalf("Open lost entries: size %d, checkpoint %d", l.Size(), size)
				}
				got := readFile(t, dir, entriesName)
				if n := len(joinFrames(splitFrames(t, ent)[:size])); string(got[:n]) != string(ent[:n]) {
					t.Fatal("Open changed checkpointed entries")
				}
				if hs := parseHead(head, "h", k.verifier, testOrigin); hs.cp != nil && hs.cp.size > size {
					t.Fatalf("Open accepted a log of %d entries behind its head of %d", size, hs.cp.size)
				}
			} else if len(splitFrames(t, ent)) > 0 {
				t.Fatal("Open accepted entries without a checkpoint")
			}
			if _, err := l.Append(context.Background(), testEvent(0)); err != nil {
				t.Fatal(err)
			}
			l.Close()
		} else if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open error of the wrong kind: %v", err)
		} else {
			if !equalMaps(before, dirFiles(t, dir)) {
				t.Fatal("a refused Open changed the files")
			}
			cfg.AllowUnverified = true
			l, err := Open(cfg)
			if err != nil {
				t.Fatalf("open with AllowUnverified: %v", err)
			}
			l.Close()
		}
		keptWhole(t, ent, readFile(t, dir, entriesName), asideFiles(t, dir, entriesName), dir)
		keptWhole(t, cps, readFile(t, dir, checkpointsName), asideFiles(t, dir, checkpointsName), dir)
		if len(head) > 0 && cfg.AllowUnverified {
			if aside := asideFiles(t, base, "log.head"); len(aside) != 1 || !bytes.Equal(readFile(t, base, aside[0]), head) {
				t.Fatalf("the head was not kept: %v", aside)
			}
		}
		if _, err := Verify(dir, k.verifier, testOrigin); err != nil {
			t.Fatalf("verify after open: %v", err)
		}
	})
}

// FuzzDecodeEntry: an entry is accepted only in its one encoding, with
// chain fields as its version has them.
func FuzzDecodeEntry(f *testing.F) {
	_, ent, _, _ := fuzzLog(f)
	for _, e := range splitFrames(f, ent) {
		f.Add(e)
	}
	f.Add([]byte(`{"v":1,"index":3,"time":"2026-01-01T00:00:00Z","type":"x","session":"s"}`))
	f.Add([]byte(`{"v":2,"index":3,"seq":2,"time":"2026-01-01T00:00:00Z","type":"x","session":"s"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		if again, _ := json.Marshal(e); !bytes.Equal(again, b) {
			t.Fatalf("accepted a second encoding:\n%s\n%s", b, again)
		}
		if (e.V == 1 || e.Session == "") && (e.Seq != 0 || e.Prev != nil) {
			t.Fatal("chain fields where there is no chain")
		}
		if e.V == 2 && e.Session != "" && (e.Seq == 0 || (e.Seq > 1) != (e.Prev != nil) || (e.Prev != nil && *e.Prev >= e.Index)) {
			t.Fatalf("bad chain fields accepted: %+v", e)
		}
	})
}

// FuzzParseTlogProof: arbitrary text never panics; what parses formats
// back to the same text, byte for byte.
func FuzzParseTlogProof(f *testing.F) {
	f.Add(FormatTlogProof(3, [][]byte{make([]byte, 32), make([]byte, 32)}, "o\n1\nAAAA\n\n— o sig\n"))
	f.Add("c2sp.org/tlog-proof@v1\nextra AAAA\nindex 0\n\ncp\n")
	f.Add("c2sp.org/tlog-proof@v1\nindex 1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n\ncp\n")
	f.Add("c2sp.org/tlog-proof@v1\nextra AAA=\nindex 01\n\ncp\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParseTlogProof(text)
		if err != nil {
			return
		}
		if got := p.String(); got != text {
			t.Fatalf("round trip changed the proof:\n%q\n%q", text, got)
		}
		for _, h := range p.Hashes {
			if len(h) != 32 {
				t.Fatal("a hash of the wrong size")
			}
		}
		if len(p.Hashes) > 64 || p.Checkpoint == "" || (p.Extra != nil && len(p.Extra) == 0) {
			t.Fatalf("accepted %+v", p)
		}
	})
}

// FuzzOpenCheckpoint: a checkpoint is accepted only if the note library
// verifies it with the log key, its body reads independently as the same
// size and root, and every signature line is in its one encoding; as the
// log writes it, it carries the log's signatures alone (the log's key's,
// and during a rotation another key's of the log's name).
func FuzzOpenCheckpoint(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	_, _, cps, _ := fuzzLog(f)
	witness := newTestKey(f, "witness.test")
	next := newTestKey(f, testOrigin)
	for _, rec := range splitFrames(f, cps) {
		f.Add(rec)
		n, _ := note.Open(rec, note.VerifierList(k.verifier))
		cosigned, _ := note.Sign(&note.Note{Text: n.Text}, k.signer, witness.signer)
		f.Add(cosigned)
		rotated, _ := note.Sign(&note.Note{Text: n.Text}, k.signer, next.signer, witness.signer)
		f.Add(rotated)
		f.Add(append(bytes.Clone(rec), rec[bytes.LastIndex(rec, []byte("\n\n"))+2:]...))
	}
	f.Fuzz(func(t *testing.T, signed []byte) {
		size, root, err := openCosigned(signed, k.verifier, testOrigin)
		if err != nil {
			return
		}
		n, err := note.Open(signed, note.VerifierList(k.verifier))
		if err != nil {
			t.Fatalf("accepted what the note library refuses: %v", err)
		}
		lines := strings.Split(n.Text, "\n")
		isize, err1 := strconv.ParseUint(lines[1], 10, 64)
		iroot, err2 := base64.StdEncoding.DecodeString(lines[2])
		if len(lines) != 4 || lines[0] != testOrigin || err1 != nil || err2 != nil || isize != size || !bytes.Equal(iroot, root) ||
			strconv.FormatUint(isize, 10) != lines[1] || base64.StdEncoding.EncodeToString(iroot) != lines[2] {
			t.Fatalf("body %q read as %d %x", n.Text, size, root)
		}
		sigs := strings.Split(strings.TrimSuffix(string(signed[len(n.Text)+1:]), "\n"), "\n")
		logNamed := 0
		for i, line := range sigs {
			f := strings.Fields(line)
			raw, err := base64.StdEncoding.DecodeString(f[2])
			if err != nil || base64.StdEncoding.EncodeToString(raw) != f[2] {
				t.Fatalf("signature line %q not in its one encoding", line)
			}
			if f[1] == testOrigin {
				if logNamed != i {
					t.Fatalf("a log signature after a cosignature accepted: %q", signed)
				}
				logNamed++
			}
		}
		if _, _, err := openCheckpoint(signed, k.verifier, testOrigin); (err == nil) != (logNamed == len(sigs)) {
			t.Fatalf("own checkpoint with %d signatures, %d of the log's name: %v", len(sigs), logNamed, err)
		}
	})
}

// FuzzParseHead: a head is read only from a slot that is its one encoding.
func FuzzParseHead(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	_, _, _, head := fuzzLog(f)
	f.Add(head)
	f.Add(head[:headSlot])
	f.Add(append(bytes.Clone(head[headSlot:]), head[:headSlot]...))
	if h := parseHead(head, "h", k.verifier, testOrigin); h.cp != nil {
		v1 := make([]byte, 2*headSlotV1)
		copy(v1[int(h.seq%2)*headSlotV1:], encodeHeadSlotV1(f, h.seq, h.cp.signed))
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h := parseHead(b, "h", k.verifier, testOrigin)
		if h.cp == nil {
			return
		}
		var slot []byte
		size := headSlot
		if h.front != nil {
			slot, _ = encodeHeadSlot(h.seq, h.cp.signed, h.front)
		} else {
			slot, size = encodeHeadSlotV1(t, h.seq, h.cp.signed), headSlotV1
		}
		if !bytes.Equal(slot, b[int(h.seq%2)*size:][:size]) {
			t.Fatal("read a head from a slot that is not in its one encoding")
		}
		if h.front != nil && h.front.check(h.cp.size, h.cp.root, len(h.cp.signed)) != "" {
			t.Fatal("read a head whose frontier is not its checkpoint's tree")
		}
		if _, _, err := openCheckpoint(h.cp.signed, k.verifier, testOrigin); err != nil {
			t.Fatalf("head holds a checkpoint the log would not accept: %v", err)
		}
	})
}

// FuzzParseVerifierKey: a key is read only in its one encoding.
func FuzzParseVerifierKey(f *testing.F) {
	f.Add(fuzzVkey)
	f.Add(strings.Replace(fuzzVkey, "d1a2bb3f", "D1A2BB3F", 1))
	f.Fuzz(func(t *testing.T, vkey string) {
		v, err := ParseVerifierKey(vkey)
		if err != nil {
			return
		}
		name, rest, _ := strings.Cut(vkey, "+")
		hash, key, _ := strings.Cut(rest, "+")
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil || v.Name() != name || hash != strconv.FormatUint(uint64(v.KeyHash())|1<<32, 16)[1:] || base64.StdEncoding.EncodeToString(raw) != key {
			t.Fatalf("accepted %q", vkey)
		}
	})
}

// independentBundle verifies a bundle with encoding/json, the note library
// and the merkle library alone, and returns each session's chain ending.
func independentBundle(t *testing.T, raw []byte, v note.Verifier) map[string]string {
	t.Helper()
	var b struct {
		Origin     string
		Checkpoint string
		Sessions   []string
		Events     []struct {
			Index uint64
			Entry string
			Proof string
		}
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("independent: %v", err)
	}
	n, err := note.Open([]byte(b.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatalf("independent: checkpoint: %v", err)
	}
	body := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseUint(body[1], 10, 64)
	root, _ := base64.StdEncoding.DecodeString(body[2])
	type link struct {
		seq, index uint64
		typ        string
	}
	last := map[string]link{}
	for i, e := range b.Events {
		if i > 0 && e.Index <= b.Events[i-1].Index {
			t.Fatal("independent: events not ascending")
		}
		entry, err := base64.StdEncoding.DecodeString(e.Entry)
		if err != nil || base64.StdEncoding.EncodeToString(entry) != e.Entry {
			t.Fatal("independent: entry not in its one encoding")
		}
		lines := strings.Split(e.Proof, "\n")
		if lines[1] != "index "+strconv.FormatUint(e.Index, 10) {
			t.Fatal("independent: proof index")
		}
		var hashes [][]byte
		j := 2
		for ; lines[j] != ""; j++ {
			h, _ := base64.StdEncoding.DecodeString(lines[j])
			if base64.StdEncoding.EncodeToString(h) != lines[j] {
				t.Fatal("independent: proof hash not in its one encoding")
			}
			hashes = append(hashes, h)
		}
		if strings.Join(lines[j+1:], "\n") != b.Checkpoint {
			t.Fatal("independent: proof checkpoint")
		}
		if err := proof.VerifyInclusion(hasher, e.Index, size, hasher.HashLeaf(entry), hashes, root); err != nil {
			t.Fatalf("independent: inclusion of %d: %v", e.Index, err)
		}
		var ev struct {
			Index, Seq uint64
			Prev       *uint64
			Type       string
			Session    string
		}
		json.Unmarshal(entry, &ev)
		l := last[ev.Session]
		if !slices.Contains(b.Sessions, ev.Session) || ev.Seq != l.seq+1 || (l.seq > 0 && *ev.Prev != l.index) {
			t.Fatalf("independent: event %d breaks session %q's chain", e.Index, ev.Session)
		}
		last[ev.Session] = link{ev.Seq, ev.Index, ev.Type}
	}
	out := map[string]string{}
	for _, s := range b.Sessions {
		if last[s].seq == 0 {
			t.Fatalf("independent: session %q has no events", s)
		}
		out[s] = last[s].typ
	}
	return out
}

// FuzzVerifyBundle: a bundle that verifies also verifies with the standard
// libraries alone, as a complete chain for every session it lists, sealed
// unless AllowUnsealed; its values are each in their one encoding; and
// re-encoding it changes nothing that is proven.
func FuzzVerifyBundle(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	dir, _, _, _ := fuzzLog(f)
	for _, sessions := range [][]string{{"a"}, {"b"}, {"a", "b"}} {
		b, err := Export(dir, ExportConfig{Verifier: k.verifier, Origin: testOrigin, LogKey: fuzzVkey, Sessions: sessions})
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := json.MarshalIndent(b, "", "  ")
		f.Add(raw, false)
		f.Add(raw, true)
		b.Events = b.Events[1:]
		raw, _ = json.Marshal(b)
		f.Add(raw, true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, unsealed bool) {
		rep, err := VerifyBundleWith(raw, BundleCheck{Verifier: k.verifier, AllowUnsealed: unsealed})
		if err != nil {
			return
		}
		ends := independentBundle(t, raw, k.verifier)
		for _, s := range rep.Sessions {
			if sealed := ends[s.ID] == typeSeal; sealed != s.Sealed || (!unsealed && !sealed) {
				t.Fatalf("session %q: sealed %v, chain ends in %q", s.ID, s.Sealed, ends[s.ID])
			}
		}
		var b Bundle
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		for _, be := range b.Events {
			p, err := ParseTlogProof(be.Proof)
			if err != nil || p.String() != be.Proof {
				t.Fatal("a proof not in its one encoding")
			}
		}
		again, _ := json.Marshal(b)
		rep2, err := VerifyBundleWith(again, BundleCheck{Verifier: k.verifier, AllowUnsealed: unsealed})
		if err != nil || rep2.TreeSize != rep.TreeSize || len(rep2.Events) != len(rep.Events) || !bytes.Equal(rep2.Checkpoint, rep.Checkpoint) {
			t.Fatalf("re-encoded bundle: %v", err)
		}
	})
}

// FuzzOpenFast: a log with its index and head, its two files replaced by
// the fuzzer's. Starting from the head and then running the verification
// pass must be exactly as strict as verifying the whole log: if Verify
// refuses the files, either Open refuses them or the pass finds the
// damage (and the next Open refuses); if Verify accepts them, Open and
// the pass do too. No byte of the files is lost either way.
func FuzzOpenFast(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	dir, ent, cps, head := fuzzLog(f)
	index := map[string][]byte{}
	des, err := os.ReadDir(filepath.Join(dir, indexDirName))
	if err != nil {
		f.Fatal(err)
	}
	for _, de := range des {
		index[de.Name()] = readFile(f, filepath.Join(dir, indexDirName), de.Name())
	}
	seedLog(f, false)
	es := splitFrames(f, ent)
	altered := bytes.Clone(es[1])
	altered[bytes.IndexByte(altered, 'a')] = 'b'
	f.Add(joinFrames([][]byte{es[0], altered, es[2], es[3]}), cps)
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, ent, cps []byte) {
		dir := writeLog(t, base, ent, cps, head)
		if err := os.Mkdir(filepath.Join(dir, indexDirName), 0o700); err != nil {
			t.Fatal(err)
		}
		for name, b := range index {
			writeFile(t, filepath.Join(dir, indexDirName), name, b)
		}
		cfg := testConfig(dir, k)
		_, strict := Verify(dir, k.verifier, testOrigin)
		before := dirFiles(t, dir)
		l, err := Open(cfg)
		if err != nil {
			if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open error of the wrong kind: %v", err)
			}
			if strict == nil {
				t.Fatalf("Open refused a log Verify accepts: %v", err)
			}
			if !equalMaps(before, dirFiles(t, dir)) {
				t.Fatal("a refused Open changed the files")
			}
			return
		}
		_, perr := l.Verify(context.Background())
		l.Close()
		switch {
		case strict == nil && perr != nil:
			t.Fatalf("the pass found damage Verify does not: %v", perr)
		case strict != nil && perr == nil:
			t.Fatalf("Open (from head %v) and the pass accepted a log Verify refuses: %v", l.fromHead, strict)
		case perr != nil:
			if !errors.Is(perr, ErrTampered) && !errors.Is(perr, ErrCorrupt) {
				t.Fatalf("pass error of the wrong kind: %v", perr)
			}
			if l, err := Open(cfg); err == nil {
				l.Close()
				t.Fatal("Open after the pass found damage succeeded")
			}
		default:
			if _, err := Verify(dir, k.verifier, testOrigin); err != nil {
				t.Fatalf("verify after open: %v", err)
			}
		}
		keptWhole(t, ent, readFile(t, dir, entriesName), asideFiles(t, dir, entriesName), dir)
		keptWhole(t, cps, readFile(t, dir, checkpointsName), asideFiles(t, dir, checkpointsName), dir)
	})
}

// FuzzReadJournal: whatever the journal holds (it is a file anyone who can
// write the data directory can write), readJournal returns a chain of
// records, each extending the one before it, that end after the size it
// was given; and records the writer made are read back.
func FuzzReadJournal(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	j, err := openJournal(filepath.Join(f.TempDir(), "journal"), key)
	if err != nil {
		f.Fatal(err)
	}
	defer j.close()
	j.ok = true
	frame := func(s string) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...) }
	one, two := frame(`{"a":1}`), append(frame(`{"b":2}`), frame(`{"c":3}`)...)
	for _, r := range []struct {
		start, end uint64
		entStart   int64
		entries    []byte
	}{{0, 1, 0, one}, {1, 3, int64(len(one)), two}} {
		next, err := j.write(r.start, r.end, r.entStart, r.entries)
		if err != nil {
			f.Fatal(err)
		}
		j.off = next
	}
	seed := make([]byte, j.off)
	if _, err := j.f.ReadAt(seed, 0); err != nil {
		f.Fatal(err)
	}
	if recs := readJournal(bytes.NewReader(seed), int64(len(seed)), 0, [][]byte{key}); len(recs) != 2 || !bytes.Equal(recs[1].entries, two) {
		f.Fatalf("the writer's records read back as %+v", recs)
	}
	if recs := readJournal(bytes.NewReader(seed), int64(len(seed)), 0, [][]byte{bytes.Repeat([]byte{8}, 32)}); len(recs) != 0 {
		f.Fatalf("records read back with another key: %+v", recs)
	}
	f.Add(seed, uint64(0))
	f.Add(seed, uint64(1))
	f.Add(seed[:len(seed)-1], uint64(0))
	f.Add(append(bytes.Clone(seed), seed...), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, after uint64) {
		recs := readJournal(bytes.NewReader(b), int64(len(b)), after, [][]byte{key})
		for i, r := range recs {
			if r.end <= r.start || r.end <= after || r.entStart < 0 {
				t.Fatalf("record %d: [%d, %d) at %d, after %d", i, r.start, r.end, r.entStart, after)
			}
			if i > 0 && (r.start != recs[i-1].end || r.entStart != recs[i-1].entStart+int64(len(recs[i-1].entries))) {
				t.Fatalf("record %d does not extend the one before it", i)
			}
		}
	})
}
