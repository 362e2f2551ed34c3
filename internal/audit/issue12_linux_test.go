//go:build linux

package audit

// Issue 12 (keep every promise across restarts and faults), findings 1
// and 2, written against the API that existed before the fix (Open,
// Append, Close, Verify), so that they run against the old code too,
// where they fail: its Open read the whole log (3.7 MB of 3.7 MB here)
// and refused the log over an old entry only a full verification sees,
// and its appends still failed long after the full disk was freed.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func rchar12(t *testing.T) int64 {
	b, _ := os.ReadFile("/proc/self/io")
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// TestIssue12StartReadsOnlyTheTail: a start reads a small part of the log
// and starts although an old entry was altered (the verification pass and
// ward audit verify find it: TestStartReadsOnlyTheTail).
func TestIssue12StartReadsOnlyTheTail(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	ch := make(chan int)
	var wg sync.WaitGroup
	for range 128 {
		wg.Go(func() {
			for i := range ch {
				l.Append(context.Background(), testEvent(i))
			}
		})
	}
	for i := range 20000 {
		ch <- i
	}
	close(ch)
	wg.Wait()
	l.Close()
	es := splitFrames(t, readFile(t, cfg.Dir, entriesName))
	i := bytes.Index(es[10], []byte(`agent/a`))
	es[10][i+6] = 'b'
	ent := joinFrames(es)
	writeFile(t, cfg.Dir, entriesName, ent)
	before := rchar12(t)
	l, err := Open(cfg)
	read := rchar12(t) - before
	if err != nil {
		t.Fatalf("start on a log whose old entry was altered (read %d of %d bytes): %v", read, len(ent), err)
	}
	defer l.Close()
	if read > int64(len(ent))/20 {
		t.Fatalf("start read %d bytes of a log of %d", read, len(ent))
	}
}

// TestIssue12DiskFullRecovers: appends fail on a full tmpfs and succeed
// again, without a reopen, once space is freed; the log verifies.
func TestIssue12DiskFullRecovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", 8<<20)); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(filepath.Join(dir, "audit"), k))
	f, _ := os.Create(filepath.Join(dir, "filler"))
	for _, c := range []int{1 << 16, 1 << 12, 1} {
		for b := make([]byte, c); ; {
			if _, err := f.Write(b); err != nil {
				break
			}
		}
	}
	f.Close()
	var err error
	for i := 0; i < 20000 && err == nil; i++ {
		_, err = l.Append(context.Background(), testEvent(i))
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	os.Remove(filepath.Join(dir, "filler"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err = l.Append(context.Background(), testEvent(0)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("appends still fail 20 s after space was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.Close()
	if _, err := Verify(filepath.Join(dir, "audit"), k.verifier, testOrigin); err != nil {
		t.Fatal(err)
	}
}
