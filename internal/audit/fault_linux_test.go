package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mountSmall mounts a small file system of the given kind on a fresh
// directory, unmounted when the test ends. It skips the test where this
// process may not mount.
func mountSmall(t *testing.T, kind string, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dir := t.TempDir()
	switch kind {
	case "tmpfs":
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
			t.Skipf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	case "ext4":
		img := filepath.Join(t.TempDir(), "fs.img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, size); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
			t.Skipf("mkfs.ext4: %v %s", err, out)
		}
		if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
			t.Skipf("mount a loop device: %v %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", "-d", dir).CombinedOutput(); err != nil {
				t.Errorf("unmount %s: %v %s", dir, err, out)
			}
		})
	}
	return dir
}

// fillDisk writes a file in dir until the file system is full and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 16, 1 << 12, 1 << 9, 1} {
		b := make([]byte, chunk)
		for {
			if _, err := f.Write(b); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill the disk: %v", err)
				}
				break
			}
		}
	}
	f.Sync()
	return path
}

// waitWritable waits until the log says it accepts appends again, which
// it must find out by itself.
func waitWritable(t *testing.T, l *Log) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for l.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the log did not recover by itself: %v", l.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faultRecorded returns the audit.fault events of a log.
func faultRecorded(t *testing.T, l *Log) []faultRecord {
	t.Helper()
	evs, err := l.Read(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	var out []faultRecord
	for _, e := range evs {
		if e.Type == typeFault {
			var f faultRecord
			if err := json.Unmarshal(e.Data, &f); err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
	}
	return out
}

// TestDiskFull: on a real full disk every append is refused (fail closed)
// and Err says why; once space is freed the log recovers by itself,
// without a restart and without losing an acknowledged event, records the
// fault, and verifies.
func TestDiskFull(t *testing.T) {
	for _, kind := range []string{"tmpfs", "ext4"} {
		t.Run(kind, func(t *testing.T) {
			mnt := mountSmall(t, kind, 8<<20)
			k := newTestKey(t, testOrigin)
			cfg := testConfig(filepath.Join(mnt, "audit"), k)
			l := mustOpen(t, cfg)
			acked := map[uint64]string{}
			ack := func(i int) error {
				e := testEvent(i)
				idx, err := l.Append(context.Background(), e)
				if err == nil {
					if _, dup := acked[idx]; dup {
						t.Fatalf("index %d acknowledged twice", idx)
					}
					acked[idx] = e.Session
				}
				return err
			}
			for i := range 20 {
				if err := ack(i); err != nil {
					t.Fatal(err)
				}
			}
			filler := fillDisk(t, mnt)
			var failure error
			for i := 20; i < 20000 && failure == nil; i++ {
				failure = ack(i)
			}
			if failure == nil || !errors.Is(failure, syscall.ENOSPC) || !strings.Contains(failure.Error(), "failed closed") {
				t.Fatalf("append on a full disk: %v", failure)
			}
			t.Logf("first failure: %v", failure)
			if err := l.Err(); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Err on a full disk: %v", err)
			}
			for i := range 5 {
				if err := ack(100000 + i); err == nil {
					t.Fatal("an append was acknowledged on a full disk")
				}
			}
			// What is on disk verifies and holds everything acknowledged:
			// the entries the checkpoints file does not yet cover (their
			// records did not fit) are a tail there, and in the journal.
			rep, err := Verify(cfg.Dir, k.verifier, testOrigin)
			if err != nil || rep.Size > l.Size() || rep.Size+rep.TailEntries < l.Size() {
				t.Fatalf("verify on a full disk: %+v, %v (size %d)", rep, err, l.Size())
			}

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			waitWritable(t, l)
			for i := range 20 {
				if err := ack(200000 + i); err != nil {
					t.Fatalf("append after space was freed: %v", err)
				}
			}
			faults := faultRecorded(t, l)
			if len(faults) != 1 || faults[0].Refused < 6 || !strings.Contains(faults[0].Error, "no space left on device") {
				t.Fatalf("fault recorded: %+v", faults)
			}
			if _, err := l.Verify(context.Background()); err != nil {
				t.Fatalf("verification pass after recovery: %v", err)
			}
			evs, err := l.Read(0, l.Size())
			if err != nil {
				t.Fatal(err)
			}
			for idx, s := range acked {
				if evs[idx].Session != s {
					t.Fatalf("acknowledged event %d (%s) is %q", idx, s, evs[idx].Session)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
				t.Fatalf("verify after recovery: %v", err)
			}
			l = mustOpen(t, cfg)
			if !l.fromHead {
				t.Fatal("the reopened log was verified in full, not started from its head")
			}
		})
	}
}

// swapFD points f's descriptor at with's file until the returned function
// puts it back: the process's own file stays open, its writes fail as
// the new file's do.
func swapFD(t *testing.T, f, with *os.File) func() {
	t.Helper()
	fd := int(f.Fd())
	saved, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup3(int(with.Fd()), fd, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := unix.Dup3(saved, fd, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		unix.Close(saved)
	}
}

// TestFaultAtEveryStage fails each write of a batch in turn with a full
// device (/dev/full answers every write with ENOSPC), then lets it work
// again: the log fails closed, never remembers in its head what it did not
// acknowledge, recovers by itself, and the log and its index verify.
func TestFaultAtEveryStage(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	for _, stage := range []struct {
		name  string
		file  func(l *Log) *os.File
		acked bool // the batch is durable before the write that fails
	}{
		{"index offsets", func(l *Log) *os.File { return l.idx.offsets }, false},
		{"index hashes", func(l *Log) *os.File { return l.idx.hashes }, false},
		{"entries", func(l *Log) *os.File { return l.ent }, false},
		{"journal", func(l *Log) *os.File { return l.jr.f }, false},
		// (The checkpoints file and the head are written on the
		// checkpointer's cadence: TestCheckpointWriteFault,
		// TestHeadNeverAhead.)
		{"session table", func(l *Log) *os.File { return l.idx.sessions.files()[0] }, true},
	} {
		t.Run(stage.name, func(t *testing.T) {
			cfg, k := logAt(t, 3)
			l := mustOpen(t, cfg)
			restore := swapFD(t, stage.file(l), full)
			// A new session, so that the session table is not read while
			// its descriptor reads /dev/full's zeros.
			e := Event{Type: "decision", Session: "new"}
			_, err := l.Append(context.Background(), e)
			if stage.acked {
				if err != nil {
					t.Fatalf("a batch durable before the failure was refused: %v", err)
				}
			} else if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append: %v", err)
			}
			if !errors.Is(l.Err(), syscall.ENOSPC) {
				t.Fatalf("Err: %v", l.Err())
			}
			if _, err := l.Append(context.Background(), Event{Type: "decision"}); err == nil {
				t.Fatal("append acknowledged while the log is failing")
			}
			hs, err := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
			if err != nil || hs.cp == nil || hs.cp.size > l.Size() {
				t.Fatalf("the head names %v, the log acknowledged %d", hs.cp, l.Size())
			}
			restore()
			waitWritable(t, l)
			for i := range 3 {
				e := testEvent(i)
				e.Session = "new"
				if _, err := l.Append(context.Background(), e); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.Verify(context.Background()); err != nil {
				t.Fatalf("verification pass after recovery: %v", err)
			}
			if f := faultRecorded(t, l); len(f) != 1 || f[0].Refused < 1 {
				t.Fatalf("fault recorded: %+v", f)
			}
			l.Close()
			if _, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, cfg)
			if _, err := l.Verify(context.Background()); err != nil || !l.fromHead {
				t.Fatalf("reopened (from head: %v): %v", l.fromHead, err)
			}
		})
	}
}

// TestWritableSeesAFullDisk: Writable says a disk is full before an
// append fails on it, and says it no more once space is freed.
func TestWritableSeesAFullDisk(t *testing.T) {
	mnt := mountSmall(t, "tmpfs", 16<<20)
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(filepath.Join(mnt, "audit"), k))
	if err := l.Writable(); err != nil {
		t.Fatal(err)
	}
	filler := fillDisk(t, mnt)
	if err := l.Writable(); !errors.Is(err, syscall.ENOSPC) || l.Err() != nil {
		t.Fatalf("Writable on a full disk: %v (Err %v)", err, l.Err())
	}
	os.Remove(filler)
	if err := l.Writable(); err != nil {
		t.Fatal(err)
	}
}

// TestPassBesideFaults: a verification pass running while writes fail
// and recover (a checkpoint written, then cut) never takes that for
// damage.
func TestPassBesideFaults(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	cfg, _ := logAt(t, 50)
	l := mustOpen(t, cfg)
	stop := make(chan struct{})
	passes := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				passes <- nil
				return
			default:
			}
			if _, err := l.Verify(context.Background()); err != nil && !errors.Is(err, errPassDisturbed) {
				passes <- fmt.Errorf("pass %d: %w", n, err)
				return
			}
			n++
		}
	}()
	for round := range 15 {
		// Fail the journal write: the batch's entries are on disk, then
		// moved aside.
		restore := swapFD(t, l.jr.f, full)
		if _, err := l.Append(context.Background(), Event{Type: "decision", Session: fmt.Sprintf("r%d", round)}); err == nil {
			t.Fatal("append with a failing journal was acknowledged")
		}
		restore()
		waitWritable(t, l)
		if _, err := l.Append(context.Background(), Event{Type: "decision"}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-passes; err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("the log failed: %v", err)
	}
}

// TestNewGenerationOnFullDisk: a session table that needs a new
// generation on a full disk fails without leaving a partial one, and
// makes it once space is freed.
func TestNewGenerationOnFullDisk(t *testing.T) {
	mnt := mountSmall(t, "tmpfs", 2<<20)
	tab, err := openSessions(mnt, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.close()
	filler := fillDisk(t, mnt)
	if err := tab.addGen(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("new generation on a full disk: %v", err)
	}
	if names, _ := filepath.Glob(filepath.Join(mnt, sessionsPrefix+"*")); len(names) != 1 || len(tab.files()) != 1 {
		t.Fatalf("after a failed generation: %v, %d open", names, len(tab.files()))
	}
	os.Remove(filler)
	if err := tab.addGen(); err != nil {
		t.Fatal(err)
	}
	again, err := openSessions(mnt, false)
	if err != nil || len(again.files()) != 2 {
		t.Fatalf("reopened: %v", err)
	}
	again.close()
}

// TestFlusherSyncFailureFailsClosed: when the flusher cannot sync the
// entries (here the descriptor points at /dev/full, whose fsync fails),
// the log fails closed until it is reopened, since a later sync's success
// would not prove pages the kernel may have dropped; the reopened log
// replays the acknowledged batch from the journal.
func TestFlusherSyncFailureFailsClosed(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	if err := full.Sync(); err == nil {
		t.Skip("fsync of /dev/full succeeds here")
	}
	cfg, _ := logAt(t, 3)
	l := mustOpen(t, cfg)
	e := testEvent(3)
	e.Session = "acked"
	if _, err := l.Append(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	restore := swapFD(t, l.ent, full)
	deadline := time.Now().Add(time.Minute)
	for l.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the log did not fail closed after the flusher's sync failed")
		}
		time.Sleep(checkpointInterval / 4)
	}
	if !strings.Contains(l.Err().Error(), "reopen") {
		t.Fatalf("Err: %v", l.Err())
	}
	if _, err := l.Append(context.Background(), testEvent(4)); err == nil {
		t.Fatal("append acknowledged after a failed sync")
	}
	restore()
	l.Close()
	l = mustOpen(t, cfg)
	defer l.Close()
	evs, err := l.Read(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 4 || evs[3].Session != "acked" {
		t.Fatalf("the acknowledged event after reopening: %d events", len(evs))
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointWriteFault: a checkpoints file that cannot be written
// delays checkpoints, not appends (their entries are durable in the
// journal): Sync returns the error, and once the file can be written
// again the next checkpoint covers every acknowledged entry, and the log
// verifies.
func TestCheckpointWriteFault(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	cfg, k := logAt(t, 3)
	l := mustOpen(t, cfg)
	restore := swapFD(t, l.cps, full)
	idx, err := l.Append(context.Background(), testEvent(7))
	if err != nil {
		t.Fatalf("append while the checkpoints file is full: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := l.Sync(ctx); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync while the checkpoints file is full: %v", err)
	}
	if _, err := l.Prove(idx); err == nil {
		t.Fatal("an event no checkpoint covers was proven")
	}
	if err := l.Err(); err != nil {
		t.Fatalf("appends refused for a late checkpoint: %v", err)
	}
	restore()
	size, _, err := parseCheckpointNote(syncCP(t, l), k)
	if err != nil || size <= idx {
		t.Fatalf("checkpoint after the fault: size %d, %v; want > %d", size, err, idx)
	}
	if _, err := l.Prove(idx); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if rep, err := Verify(cfg.Dir, k.verifier, testOrigin); err != nil || rep.Size != idx+1 || rep.TailEntries != 0 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestUnsyncedSyncFailureFailsClosed: when the sync that was to make an
// unsynced event durable fails, Durable returns the error (ward then
// withholds the call's result), the log fails closed until it is
// reopened, and the event, whose index was handed out, is not cut back:
// the reopened log holds it (the kernel kept the written record).
func TestUnsyncedSyncFailureFailsClosed(t *testing.T) {
	// Writes to /dev/null succeed and its fsync fails: the durable
	// append's record is written, and the sync that would cover the
	// unsynced event fails.
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no %s: %v", os.DevNull, err)
	}
	defer null.Close()
	if err := unix.Fdatasync(int(null.Fd())); err == nil {
		t.Skip("fdatasync of /dev/null succeeds here")
	}
	cfg, _ := logAt(t, 3)
	cfg.UnsyncedDelay = time.Hour
	l := mustOpen(t, cfg)
	ctx := context.Background()
	e := testEvent(3)
	e.Session = "written"
	p, err := l.AppendUnsynced(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	restore := swapFD(t, l.jr.f, null)
	// A durable append's sync is the one that fails; it fails too.
	if _, err := l.Append(ctx, testEvent(4)); err == nil {
		t.Fatal("append acknowledged after its sync failed")
	}
	if err := p.Durable(ctx); err == nil {
		t.Fatal("an unsynced event reported durable after the sync failed")
	}
	restore()
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Err after the failed sync: %v", err)
	}
	if _, err := l.Append(ctx, testEvent(5)); err == nil {
		t.Fatal("append acknowledged by a log that failed closed")
	}
	l.Close()
	l = mustOpen(t, cfg)
	defer l.Close()
	evs, err := l.Read(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 4 || evs[3].Session != "written" {
		t.Fatalf("the written event after reopening: %d events", len(evs))
	}
	if _, err := l.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}
