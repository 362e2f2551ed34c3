package audit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const crashEnv = "WARD_AUDIT_CRASH_CHILD"

// TestCrashChild is the child half of TestCrash: it appends from several
// goroutines until killed, printing each acknowledged index.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashEnv) == "" {
		t.Skip("child process of TestCrash")
	}
	k := keyFrom(t, os.Getenv(crashEnv+"_SKEY"), os.Getenv(crashEnv+"_VKEY"))
	l, err := Open(testConfig(os.Getenv(crashEnv), k))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	round := os.Getenv(crashEnv + "_ROUND")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				e := testEvent(i)
				e.Session = fmt.Sprintf("r%s-g%d-%d", round, g, i)
				idx, err := l.Append(context.Background(), e)
				if err != nil {
					fmt.Println("append:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("ack %d %s\n", idx, e.Session)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrash kills a process mid-stream with SIGKILL and checks that every
// index it saw acknowledged is present after reopening, and that the log
// verifies. SIGKILL loses the process, not the page cache: in
// "lose-unsynced" the test then also takes from the files what a power
// loss could (every byte the head does not say was synced: the entries,
// the checkpoints and the index are cut back to the head's offsets and
// torn garbage is left after them), so that only the journal's synced
// records hold the acknowledged batches after the head; Open must replay
// them. (Torn writes of synced files are covered by TestTornTailRecovered.)
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, lose := range []bool{false, true} {
		name := "kill"
		if lose {
			name = "lose-unsynced"
		}
		t.Run(name, func(t *testing.T) { crashRounds(t, lose) })
	}
}

// loseUnsynced cuts the log's files back to what its head says was synced
// and leaves torn bytes after them, as a power loss may.
func loseUnsynced(t *testing.T, dir string, k testKey) (lostEntries int64) {
	t.Helper()
	hs, err := readHead(DefaultHead(dir), k.verifier, testOrigin)
	if err != nil || hs.front == nil {
		t.Fatalf("read head: %+v, %v", hs, err)
	}
	garbage := bytes.Repeat([]byte{0x00, 0x00, 0x01, 0x00, '{', 'x'}, 50)
	for _, c := range []struct {
		name string
		end  int64
	}{
		{entriesName, hs.front.entEnd},
		{checkpointsName, hs.front.cpEnd},
		{filepath.Join(indexDirName, offsetsName), 8 * int64(hs.front.indexed)},
	} {
		path := filepath.Join(dir, c.name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.name == entriesName {
			lostEntries = st.Size() - c.end
		}
		if err := os.Truncate(path, c.end); err != nil {
			t.Fatal(err)
		}
		if c.name == entriesName || c.name == checkpointsName {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(garbage)
			f.Close()
		}
	}
	return lostEntries
}

func crashRounds(t *testing.T, lose bool) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	acked := map[uint64]string{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_SKEY="+k.skey, crashEnv+"_VKEY="+k.vkey, crashEnv+"_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n, killed := 0, false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("child said %q", sc.Text())
			}
			idx, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := acked[idx]; dup {
				t.Fatalf("index %d acknowledged twice", idx)
			}
			acked[idx] = f[2]
			if n++; n == 300 && !killed {
				killed = true
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		if err := cmd.Wait(); err == nil || !killed {
			t.Fatalf("child exited on its own: %v", err)
		}

		if lose {
			t.Logf("round %d: %d bytes of entries after the head's cut", round, loseUnsynced(t, dir, k))
		}
		l, err := Open(testConfig(dir, k))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		if !l.fromHead {
			t.Fatalf("round %d: a kill made the next start verify the whole log", round)
		}
		evs, err := l.Read(0, l.Size())
		if err != nil {
			t.Fatal(err)
		}
		for idx, session := range acked {
			if idx >= uint64(len(evs)) || evs[idx].Session != session {
				t.Fatalf("round %d: acknowledged index %d (%s) missing after crash (size %d)", round, idx, session, len(evs))
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(dir, k.verifier, testOrigin)
		if err != nil {
			t.Fatalf("round %d: verify after crash: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged so far, log size %d", round, len(acked), rep.Size)
	}
}

// TestOneSyncPerBatch: a batch waits for one sync, its journal record's;
// the files and the head follow on the flusher's cadence, and a closed
// log's head covers every acknowledged entry.
func TestOneSyncPerBatch(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	l := mustOpen(t, cfg)
	const n = 200
	for i := range n {
		if _, err := l.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Appends are sequential: one batch each.
	if l.jr.syncs != n || l.throughs != 0 {
		t.Fatalf("%d batches made %d journal syncs and %d write-throughs (three syncs each)", n, l.jr.syncs, l.throughs)
	}
	size := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	hs, err := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
	if err != nil || hs.cp == nil || hs.cp.size != size {
		t.Fatalf("head after close: %+v, %v; want size %d", hs.cp, err, size)
	}
	rep, err := Verify(cfg.Dir, k.verifier, testOrigin)
	if err != nil || rep.Size != size || rep.TailEntries != 0 {
		t.Fatalf("verify after close: %+v, %v", rep, err)
	}
}
