package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
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
// verifies. (SIGKILL loses the process, not the page cache; torn writes on
// power loss are covered by TestTornTailRecovered.)
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
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
