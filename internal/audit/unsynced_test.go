package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUnsyncedSharesTheNextSync is a tool call at c=1 as ward's gateway
// makes it: the decision appended unsynced, the result appended durably.
// The pair takes one sync of the journal, not two; the decision is not
// readable until that sync, and is durable once the result is.
func TestUnsyncedSharesTheNextSync(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	cfg.UnsyncedDelay = time.Hour // only the result's sync may cover the decision
	l := mustOpen(t, cfg)
	ctx := context.Background()
	const calls = 50
	syncs := l.jr.syncs
	for i := range calls {
		before := l.Size()
		p, err := l.AppendUnsynced(ctx, testEvent(2*i))
		if err != nil {
			t.Fatal(err)
		}
		if p.Index() != before {
			t.Fatalf("call %d: decision at %d, want %d", i, p.Index(), before)
		}
		if l.Size() != before {
			t.Fatalf("call %d: an unsynced event is readable (size %d, want %d)", i, l.Size(), before)
		}
		res, err := l.Append(ctx, testEvent(2*i+1))
		if err != nil {
			t.Fatal(err)
		}
		if res != p.Index()+1 {
			t.Fatalf("call %d: result at %d, want %d", i, res, p.Index()+1)
		}
		// The result's sync made the decision durable: Durable says so
		// at once (the delay is an hour).
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = p.Durable(dctx)
		cancel()
		if err != nil {
			t.Fatalf("call %d: decision not durable after the result: %v", i, err)
		}
		if l.Size() != res+1 {
			t.Fatalf("call %d: size %d, want %d", i, l.Size(), res+1)
		}
	}
	if got := l.jr.syncs - syncs; got != calls {
		t.Fatalf("%d calls (decision unsynced, result durable) took %d journal syncs, want %d", calls, got, calls)
	}
	evs, err := l.Read(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 * calls {
		if evs[i].Session != testEvent(i).Session {
			t.Fatalf("event %d: %q, want %q", i, evs[i].Session, testEvent(i).Session)
		}
	}
}

// TestUnsyncedSyncedOnItsOwn: an unsynced event with no durable append
// after it is synced by the writer after UnsyncedDelay.
func TestUnsyncedSyncedOnItsOwn(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	cfg.UnsyncedDelay = time.Millisecond
	l := mustOpen(t, cfg)
	ctx := context.Background()
	syncs := l.jr.syncs
	p, err := l.AppendUnsynced(ctx, testEvent(0))
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.Durable(dctx); err != nil {
		t.Fatal(err)
	}
	if l.jr.syncs != syncs+1 || l.Size() != p.Index()+1 {
		t.Fatalf("after Durable: %d syncs (want %d), size %d (want %d)", l.jr.syncs, syncs+1, l.Size(), p.Index()+1)
	}
	if err := p.Durable(ctx); err != nil {
		t.Fatalf("Durable again: %v", err)
	}
}

// TestUnsyncedDurableAtClose: Close makes what was written unsynced
// durable, and the closed log holds it.
func TestUnsyncedDurableAtClose(t *testing.T) {
	k := newTestKey(t, testOrigin)
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	cfg.UnsyncedDelay = time.Hour
	l := mustOpen(t, cfg)
	p, err := l.AppendUnsynced(context.Background(), testEvent(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Durable(context.Background()); err != nil {
		t.Fatalf("Durable after Close: %v", err)
	}
	rep, err := Verify(cfg.Dir, k.verifier, testOrigin)
	if err != nil || rep.Size != 1 || rep.TailEntries != 0 {
		t.Fatalf("verify after close: %+v, %v", rep, err)
	}
}

const unsyncedEnv = "WARD_AUDIT_UNSYNCED_CHILD"

// TestUnsyncedKillChild is the child half of TestUnsyncedSurvivesKill: it
// appends events durably and unsynced in turn, as a gateway's decisions
// and results, prints each index as soon as the append returns, and
// after the last, unsynced, waits to be killed.
func TestUnsyncedKillChild(t *testing.T) {
	if os.Getenv(unsyncedEnv) == "" {
		t.Skip("child process of TestUnsyncedSurvivesKill")
	}
	k := keyFrom(t, os.Getenv(unsyncedEnv+"_SKEY"), os.Getenv(unsyncedEnv+"_VKEY"))
	cfg := testConfig(os.Getenv(unsyncedEnv), k)
	// Never synced on their own: only a later durable append's sync
	// could make them durable, and the last ones have none.
	cfg.UnsyncedDelay = time.Hour
	l, err := Open(cfg)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	round := os.Getenv(unsyncedEnv + "_ROUND")
	ctx := context.Background()
	for i := range 40 {
		e := testEvent(i)
		e.Session = fmt.Sprintf("r%s-%d", round, i)
		if i%2 == 1 && i < 30 {
			idx, err := l.Append(ctx, e)
			if err != nil {
				fmt.Println("append:", err)
				os.Exit(2)
			}
			fmt.Printf("durable %d %s\n", idx, e.Session)
			continue
		}
		p, err := l.AppendUnsynced(ctx, e)
		if err != nil {
			fmt.Println("append:", err)
			os.Exit(2)
		}
		fmt.Printf("written %d %s\n", p.Index(), e.Session)
	}
	fmt.Println("done")
	select {} // killed
}

// TestUnsyncedSurvivesKill is the guarantee AppendUnsynced gives: once it
// returned, a crash of the process does not lose the event. A child
// appends (the last ten unsynced, with nothing after them to sync them,
// so that they are certainly in the journal's page cache only) and is
// killed with SIGKILL; every index it printed, written or durable, must
// be there after reopening, the log must start from its head and verify.
// Three rounds, each on the log the one before left.
func TestUnsyncedSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := filepath.Join(t.TempDir(), "audit")
	k := newTestKey(t, testOrigin)
	seen := map[uint64]string{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnsyncedKillChild$")
		cmd.Env = append(os.Environ(), unsyncedEnv+"="+dir, unsyncedEnv+"_SKEY="+k.skey, unsyncedEnv+"_VKEY="+k.vkey, unsyncedEnv+"_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		written := 0
		for sc.Scan() {
			if sc.Text() == "done" {
				cmd.Process.Signal(syscall.SIGKILL)
				continue
			}
			f := strings.Fields(sc.Text())
			if len(f) != 3 || (f[0] != "written" && f[0] != "durable") {
				t.Fatalf("child said %q", sc.Text())
			}
			idx, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := seen[idx]; dup {
				t.Fatalf("index %d handed out twice", idx)
			}
			seen[idx] = f[2]
			if f[0] == "written" {
				written++
			}
		}
		if err := cmd.Wait(); err == nil {
			t.Fatal("child exited on its own")
		}
		if written != 25 {
			t.Fatalf("round %d: child wrote %d events unsynced, want 25", round, written)
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
		for idx, session := range seen {
			if idx >= uint64(len(evs)) || evs[idx].Session != session {
				t.Fatalf("round %d: index %d (%s), returned by an append, missing after kill -9 (size %d)", round, idx, session, len(evs))
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(dir, k.verifier, testOrigin)
		if err != nil {
			t.Fatalf("round %d: verify after kill: %v", round, err)
		}
		t.Logf("round %d: %d events returned so far, log size %d", round, len(seen), rep.Size)
	}
}
