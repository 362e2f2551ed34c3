package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzKey is a fixed test-only key so that saved corpus entries keep their
// signatures valid across runs.
const (
	fuzzSkey = "PRIVATE+KEY+ward.test/audit+d1a2bb3f+ARcZmArVuwP+lhyKNqwf4pmKKyiC60tlKw8U8He0G4yX"
	fuzzVkey = "ward.test/audit+d1a2bb3f+AVQtURZuhFU+vW5qxaHthEAS5STfaBkeWYrch4AA+dFu"
)

// seedLog adds the files of small real logs, and damaged variants, to f.
func seedLog(f *testing.F, k testKey) {
	dir := f.TempDir()
	cfg := testConfig(dir, k)
	cfg.Now = func() time.Time { return time.Unix(1767225600, 0) }
	l, err := Open(cfg)
	if err != nil {
		f.Fatal(err)
	}
	fill(f, l, 3)
	l.Close()
	ent := readFile(f, dir, entriesName)
	cps := readFile(f, dir, checkpointsName)
	f.Add(ent, cps)
	f.Add(ent[:len(ent)-5], cps)
	f.Add(ent, cps[:len(cps)-7])
	f.Add(append(ent, 0, 0, 1), cps)
	f.Add([]byte{}, []byte{})
	f.Add([]byte{}, cps[:len(splitFrames(f, cps)[0])+4])
	swapped := splitFrames(f, ent)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	f.Add(joinFrames(swapped), cps)
}

// writeLog replaces the log in base/log. The fuzz body runs sequentially in
// each worker process, so one directory per worker is reused: far cheaper
// than a new temporary directory per input, which keeps minimisation fast.
func writeLog(t *testing.T, base string, ent, cps []byte) string {
	dir := filepath.Join(base, "log")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, entriesName, ent)
	writeFile(t, dir, checkpointsName, cps)
	return dir
}

// FuzzVerify: Verify never panics, and never reports success unless the
// latest checkpoint is validly signed and its root matches an independent
// recomputation over the raw entry bytes.
func FuzzVerify(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	seedLog(f, k)
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
	})
}

// FuzzOpen: Open never panics; it opens only logs that verify
// independently, keeping every checkpointed entry; and with AllowUnverified
// it opens anything and leaves a log that verifies.
func FuzzOpen(f *testing.F) {
	k := keyFrom(f, fuzzSkey, fuzzVkey)
	seedLog(f, k)
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, ent, cps []byte) {
		dir := writeLog(t, base, ent, cps)
		cfg := testConfig(dir, k)
		l, err := Open(cfg)
		if err == nil {
			if len(splitFrames(t, cps)) == 0 {
				// Only a fresh log (nothing ever acknowledged) has no checkpoint.
				if len(splitFrames(t, ent)) != 0 {
					t.Fatal("Open accepted entries without a checkpoint")
				}
			} else {
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
			}
			if _, err := l.Append(context.Background(), testEvent(0)); err != nil {
				t.Fatal(err)
			}
			l.Close()
		} else if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open error of the wrong kind: %v", err)
		} else {
			cfg.AllowUnverified = true
			l, err := Open(cfg)
			if err != nil {
				t.Fatalf("open with AllowUnverified: %v", err)
			}
			l.Close()
		}
		if _, err := Verify(dir, k.verifier, testOrigin); err != nil {
			t.Fatalf("verify after open: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, lockName)); err != nil {
			t.Fatal(err)
		}
	})
}
