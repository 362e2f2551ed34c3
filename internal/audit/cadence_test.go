package audit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// gatedSigner is a note.Signer whose signatures wait, once it is closed,
// until it is opened: a checkpointer stuck in it signs nothing.
type gatedSigner struct {
	note.Signer
	mu     sync.Mutex
	gate   chan struct{} // nil: open
	signed int
}

func (g *gatedSigner) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedSigner) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedSigner) Sign(msg []byte) ([]byte, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	g.signed++
	g.mu.Unlock()
	return g.Signer.Sign(msg)
}

// TestAppendSignsNothing: appends are acknowledged, durable and readable
// while no checkpoint can be signed (the signer blocks), one journal
// sync each; once signing works again, a checkpoint covers every
// acknowledged entry without anyone asking for it (the cadence), and the
// files verify.
func TestAppendSignsNothing(t *testing.T) {
	k := newTestKey(t, testOrigin)
	g := &gatedSigner{Signer: k.signer}
	cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
	cfg.Signer = g
	l := mustOpen(t, cfg)
	fill(t, l, 2)
	g.close()
	const n = 50
	syncs := l.jr.syncs
	for i := range n {
		if _, err := l.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.jr.syncs - syncs; got != n {
		t.Fatalf("%d sequential appends made %d journal syncs", n, got)
	}
	size := l.Size()
	if evs, err := l.Read(0, size); err != nil || len(evs) != int(size) {
		t.Fatalf("read acknowledged entries: %d, %v", len(evs), err)
	}
	if cp, _, _ := parseCheckpointNote(l.Checkpoint(), k); cp >= size {
		t.Fatalf("a checkpoint of size %d was published while the signer was blocked", cp)
	}
	g.open()
	// No Sync: the checkpointer's cadence alone. (The deadline only ends
	// a test that would otherwise hang.)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp, err := l.NextCheckpoint(ctx, size-1)
	if err != nil {
		t.Fatalf("no checkpoint covered the acknowledged entries: %v", err)
	}
	got, _, err := parseCheckpointNote(cp, k)
	if err != nil || got < size {
		t.Fatalf("next checkpoint: size %d, %v; want ≥ %d", got, err, size)
	}
	// The published checkpoint is durable: the files and the head have it.
	rep, err := Verify(cfg.Dir, k.verifier, testOrigin)
	if err != nil || rep.Size < size || rep.Head < size {
		t.Fatalf("verify beside the open log: %+v, %v; want size and head ≥ %d", rep, err, size)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCadenceChild is the child half of TestKillBeforeCheckpoint: it
// opens the log, then blocks its signer (no checkpoint is signed from
// then on) and appends from several goroutines until killed, printing
// each acknowledged index.
func TestCadenceChild(t *testing.T) {
	dir := os.Getenv(crashEnv + "_CADENCE")
	if dir == "" {
		t.Skip("child process of TestKillBeforeCheckpoint")
	}
	k := keyFrom(t, os.Getenv(crashEnv+"_SKEY"), os.Getenv(crashEnv+"_VKEY"))
	g := &gatedSigner{Signer: k.signer}
	cfg := testConfig(dir, k)
	cfg.Signer = g
	l, err := Open(cfg)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	g.close()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				e := testEvent(i)
				e.Session = fmt.Sprintf("%s-w%d-%d", os.Getenv(crashEnv+"_ROUND"), w, i)
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

// TestKillBeforeCheckpoint: a process killed (SIGKILL) after appends were
// acknowledged and before any checkpoint covered them loses none of them,
// even when everything the head does not say was synced is taken away
// (as a power loss may): the next start replays them from the journal and
// signs a checkpoint that covers them, which the files then hold.
func TestKillBeforeCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := filepath.Join(t.TempDir(), "audit")
	k := newTestKey(t, testOrigin)
	acked := map[uint64]string{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCadenceChild$")
		cmd.Env = append(os.Environ(), crashEnv+"_CADENCE="+dir, crashEnv+"_SKEY="+k.skey, crashEnv+"_VKEY="+k.vkey, crashEnv+"_ROUND="+strconv.Itoa(round))
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
		var last uint64
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("child said %q", sc.Text())
			}
			idx, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			acked[idx] = f[2]
			last = max(last, idx)
			if n++; n == 200 && !killed {
				killed = true
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		if err := cmd.Wait(); err == nil || !killed {
			t.Fatalf("child exited on its own: %v", err)
		}
		// No checkpoint the child left covers what it acknowledged.
		hs, err := readHead(DefaultHead(dir), k.verifier, testOrigin)
		if err != nil || hs.cp == nil {
			t.Fatalf("read head: %v", err)
		}
		if hs.cp.size > last {
			t.Fatalf("round %d: the head covers %d entries, acknowledged up to %d: a checkpoint was signed", round, hs.cp.size, last)
		}
		if rep, err := Verify(dir, k.verifier, testOrigin); err != nil || rep.Size > last {
			t.Fatalf("round %d: the files before the restart: %+v, %v", round, rep, err)
		}
		loseUnsynced(t, dir, k)

		l, err := Open(testConfig(dir, k))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		size := l.Size()
		cpSize, _, err := parseCheckpointNote(l.Checkpoint(), k)
		if err != nil || cpSize <= last {
			t.Fatalf("round %d: after the restart the checkpoint covers %d entries, acknowledged up to %d (%v)", round, cpSize, last, err)
		}
		evs, err := l.Read(0, size)
		if err != nil {
			t.Fatal(err)
		}
		for idx, session := range acked {
			if idx >= uint64(len(evs)) || evs[idx].Session != session {
				t.Fatalf("round %d: acknowledged index %d (%s) missing after the kill (size %d)", round, idx, session, len(evs))
			}
		}
		// The signed checkpoint the restart made is in the files already.
		if rep, err := Verify(dir, k.verifier, testOrigin); err != nil || rep.Size < cpSize {
			t.Fatalf("round %d: verify the files after the restart: %+v, %v; want size %d", round, rep, err, cpSize)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgedJournalRecord: a record that extends the head but is not
// authenticated with the log's key (written by someone who can write the
// journal but does not hold the signing key) is not replayed, so no
// checkpoint is signed over it; the same record made with the key is.
func TestForgedJournalRecord(t *testing.T) {
	for _, c := range []struct {
		name   string
		forged bool
	}{{"with the log's key", false}, {"with another key", true}} {
		t.Run(c.name, func(t *testing.T) {
			k := newTestKey(t, testOrigin)
			cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
			l := mustOpen(t, cfg)
			fill(t, l, 3)
			l.Close()
			hs, err := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
			if err != nil || hs.cp == nil || hs.cp.size != 3 {
				t.Fatalf("head: %v", err)
			}
			key, err := journalKey(k.signer)
			if err != nil {
				t.Fatal(err)
			}
			if c.forged {
				key, err = journalKey(newTestKey(t, testOrigin).signer)
				if err != nil {
					t.Fatal(err)
				}
			}
			jf, err := os.OpenFile(journalPath(DefaultHead(cfg.Dir)), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			j := &journal{f: jf, ok: true}
			j.mac = newJournalMAC(key)
			entry := fillIn(nil, mustEncode(t, Event{Type: "forged", Actor: "mallory", Time: time.Unix(1767225600, 0)}), 3, "", chain{})
			frame := binary.BigEndian.AppendUint32(nil, uint32(len(entry)))
			if _, err := j.write(3, 4, hs.front.entEnd, append(frame, entry...)); err != nil {
				t.Fatal(err)
			}
			if err := j.sync(); err != nil {
				t.Fatal(err)
			}
			jf.Close()
			l = mustOpen(t, cfg)
			defer l.Close()
			want := uint64(4)
			if c.forged {
				want = 3
			}
			if l.Size() != want {
				t.Fatalf("after a record %s: size %d, want %d", c.name, l.Size(), want)
			}
			if cp, _, _ := parseCheckpointNote(l.Checkpoint(), k); cp != want {
				t.Fatalf("checkpoint at %d, want %d", cp, want)
			}
		})
	}
}

// mustEncode encodes e as Append does.
func mustEncode(t *testing.T, e Event) []byte {
	t.Helper()
	l := &Log{cfg: Config{Now: time.Now, MaxEventSize: DefaultMaxEventSize}}
	b, err := l.encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVersion1JournalReplayed: a record of the journal's first version
// (its entries under a checkpoint signed over them, and a SHA-256), as a
// log written before checkpoints had their own cadence left it, is still
// replayed; one whose checkpoint another key signed is not.
func TestVersion1JournalReplayed(t *testing.T) {
	for _, c := range []struct {
		name   string
		forged bool
	}{{"signed by the log's key", false}, {"signed by another key", true}} {
		t.Run(c.name, func(t *testing.T) {
			k := newTestKey(t, testOrigin)
			cfg := testConfig(filepath.Join(t.TempDir(), "audit"), k)
			l := mustOpen(t, cfg)
			fill(t, l, 3)
			l.Close()
			hs, err := readHead(DefaultHead(cfg.Dir), k.verifier, testOrigin)
			if err != nil || hs.cp == nil || hs.cp.size != 3 {
				t.Fatalf("head: %v", err)
			}
			entry := fillIn(nil, mustEncode(t, Event{Type: "old", Actor: "ward", Time: time.Unix(1767225600, 0)}), 3, "", chain{})
			frames := binary.BigEndian.AppendUint32(nil, uint32(len(entry)))
			frames = append(frames, entry...)
			rng, err := rangeFactory.NewRange(0, 3, hs.front.hashes)
			if err != nil {
				t.Fatal(err)
			}
			if err := rng.Append(hasher.HashLeaf(entry), nil); err != nil {
				t.Fatal(err)
			}
			signer := k.signer
			if c.forged {
				signer = newTestKey(t, testOrigin).signer
			}
			signed, err := note.Sign(&note.Note{Text: checkpointText(testOrigin, 4, rootOf(rng))}, signer)
			if err != nil {
				t.Fatal(err)
			}
			b := []byte(journalMagicV1)
			b = binary.BigEndian.AppendUint32(b, 0)
			b = binary.BigEndian.AppendUint64(b, 3)
			b = binary.BigEndian.AppendUint64(b, 4)
			b = binary.BigEndian.AppendUint64(b, uint64(hs.front.entEnd))
			b = binary.BigEndian.AppendUint32(b, uint32(len(frames)))
			b = append(b, frames...)
			b = binary.BigEndian.AppendUint32(b, uint32(len(signed)))
			b = append(b, signed...)
			binary.BigEndian.PutUint32(b[4:], uint32(len(b)-8))
			sum := sha256.Sum256(b)
			b = append(b, sum[:]...)
			jf, err := os.OpenFile(journalPath(DefaultHead(cfg.Dir)), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jf.WriteAt(b, 0); err != nil {
				t.Fatal(err)
			}
			jf.Close()
			l = mustOpen(t, cfg)
			defer l.Close()
			want := uint64(4)
			if c.forged {
				want = 3
			}
			if l.Size() != want {
				t.Fatalf("after a version 1 record %s: size %d, want %d", c.name, l.Size(), want)
			}
		})
	}
}
