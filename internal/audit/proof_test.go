package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// checkpointRoot parses a signed checkpoint with the note library alone.
func checkpointRoot(t *testing.T, signed string, v note.Verifier) (uint64, []byte) {
	t.Helper()
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not verify: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return size, root
}

// TestProofsVerifyWithStandardLibraries: every event's inclusion proof and
// every consistency proof verify with transparency-dev/merkle against the
// root in the signed checkpoint; a wrong entry does not.
func TestProofsVerifyWithStandardLibraries(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, "test")
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 37)
	l.Close()
	h := rfc6962.DefaultHasher
	for i := uint64(0); i < 37; i++ {
		p, err := Prove(dir, k.verifier, testOrigin, i)
		if err != nil {
			t.Fatal(err)
		}
		size, root := checkpointRoot(t, p.Checkpoint, k.verifier)
		if size != p.Size {
			t.Fatalf("proof size %d, checkpoint %d", p.Size, size)
		}
		if !bytes.Equal(h.HashLeaf(p.Entry), p.LeafHash) {
			t.Fatal("leaf hash is not the hash of the entry")
		}
		if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(p.Entry), p.Hashes, root); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		forged := bytes.Replace(p.Entry, []byte(`"v":2`), []byte(`"v":3`), 1)
		if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(forged), p.Hashes, root); err == nil {
			t.Fatalf("event %d: a forged entry verified", i)
		}
	}
	// Consistency between every earlier size and the latest.
	_, root2 := checkpointRoot(t, mustProve(t, dir, k).Checkpoint, k.verifier)
	for size1 := uint64(1); size1 < 37; size1 += 5 {
		cp, err := ConsistencyProof(dir, k.verifier, testOrigin, size1, 37)
		if err != nil {
			t.Fatal(err)
		}
		_, leaves, _ := readLeaves(dir, size1)
		r := newRange()
		for _, lh := range leaves {
			r.Append(lh, nil)
		}
		if err := proof.VerifyConsistency(h, size1, 37, cp, rootOf(r), root2); err != nil {
			t.Fatalf("consistency %d→37: %v", size1, err)
		}
	}
	if _, err := Prove(dir, k.verifier, testOrigin, 37); err == nil {
		t.Fatal("proved an event beyond the log")
	}
}

func mustProve(t *testing.T, dir string, k testKey) *InclusionProof {
	p, err := Prove(dir, k.verifier, testOrigin, 0)
	if err != nil {
		t.Fatal(fmt.Errorf("prove: %w", err))
	}
	return p
}

// BenchmarkProve measures producing an inclusion proof from a 10,000-event
// log on disk (verification of the whole log included, as ward audit prove
// does), and BenchmarkVerifyInclusion checking one with merkle.
func BenchmarkProve(b *testing.B) {
	dir := b.TempDir()
	k := newTestKey(b, "test")
	l, err := Open(testConfig(dir, k))
	if err != nil {
		b.Fatal(err)
	}
	fill(b, l, 10000)
	l.Close()
	p, err := Prove(dir, k.verifier, testOrigin, 4321)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("prove", func(b *testing.B) {
		for b.Loop() {
			if _, err := Prove(dir, k.verifier, testOrigin, 4321); err != nil {
				b.Fatal(err)
			}
		}
	})
	l, err = Open(testConfig(dir, k))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.Run("open-log", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Prove(4321); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open-log-consistency", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.ConsistencyProof(4321, 10000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		_, root := checkpointRootB(b, p.Checkpoint, k.verifier)
		h := rfc6962.DefaultHasher
		leaf := h.HashLeaf(p.Entry)
		for b.Loop() {
			if err := proof.VerifyInclusion(h, p.Index, p.Size, leaf, p.Hashes, root); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func checkpointRootB(b *testing.B, signed string, v note.Verifier) (uint64, []byte) {
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseUint(lines[1], 10, 64)
	root, _ := base64.StdEncoding.DecodeString(lines[2])
	return size, root
}

// TestOpenLogProofsMatchFiles: proofs from an open log's in-memory subtree
// hashes are exactly the proofs computed from the files, across a reopen
// (the hashes are rebuilt from the scan) and concurrent appends after it.
func TestOpenLogProofsMatchFiles(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, "test")
	l := mustOpen(t, testConfig(dir, k))
	fill(t, l, 21)
	l.Close()
	l = mustOpen(t, testConfig(dir, k))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 4 {
				if _, err := l.Append(context.Background(), testEvent(100*w+i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	size := l.Size()
	h := rfc6962.DefaultHasher
	_, root := checkpointRoot(t, string(syncCP(t, l)), k.verifier)
	for i := range size {
		got, err := l.Prove(i)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Prove(dir, k.verifier, testOrigin, i)
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != want.Size || !bytes.Equal(got.Entry, want.Entry) || fmt.Sprint(got.Hashes) != fmt.Sprint(want.Hashes) || got.Checkpoint != want.Checkpoint {
			t.Fatalf("event %d: open-log proof differs from the files' proof", i)
		}
		if err := proof.VerifyInclusion(h, i, size, h.HashLeaf(got.Entry), got.Hashes, root); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	for s1 := uint64(0); s1 <= size; s1 += 3 {
		got, err := l.ConsistencyProof(s1, size)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ConsistencyProof(dir, k.verifier, testOrigin, s1, size)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("consistency %d→%d differs from the files' proof", s1, size)
		}
	}
	if _, err := l.Prove(size); err == nil {
		t.Fatal("proof beyond the checkpoint")
	}
	if _, err := l.ConsistencyProof(2, size+1); err == nil {
		t.Fatal("consistency proof beyond the checkpoint")
	}
}
