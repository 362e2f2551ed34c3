package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	tdclient "github.com/transparency-dev/witness/client/http"
	"github.com/transparency-dev/witness/persistence/inmemory"
	tdwitness "github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/witness"
)

const origin = "ward.interop/audit"

type keyPair struct{ skey, vkey string }

func genKey(t *testing.T, name string) keyPair {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{skey, vkey}
}

// openLog opens a ward audit log signed with k.
func openLog(t *testing.T, k keyPair) *audit.Log {
	t.Helper()
	s, err := note.NewSigner(k.skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(k.vkey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(audit.Config{Dir: t.TempDir(), Origin: origin, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendN appends n events and waits for a checkpoint over them (the log
// signs on its own cadence).
func appendN(t *testing.T, l *audit.Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), audit.Event{Type: "interop", Actor: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReferenceWitnessCosignsWardCheckpoints: the reference witness, with
// in-memory persistence behind its own HTTP handler, cosigns ward's
// checkpoints as ward's publisher submits them, across growth of the log
// (consistency proofs from ward's tree), and the cosigned checkpoint
// satisfies the policy and verifies with the formats library.
func TestReferenceWitnessCosignsWardCheckpoints(t *testing.T) {
	logKey := genKey(t, origin)
	l := openLog(t, logKey)
	logV, err := note.NewVerifier(logKey.vkey)
	if err != nil {
		t.Fatal(err)
	}

	wKey := genKey(t, "reference.interop/witness")
	signer, err := fnote.NewSignerForCosignatureV1(wKey.skey)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := tdwitness.New(context.Background(), tdwitness.Opts{
		Persistence: inmemory.New(),
		Signers:     []note.Signer{signer},
		VerifierForLog: func(_ context.Context, o string) (note.Verifier, bool, error) {
			return logV, o == origin, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := tdwitness.NewHTTPHandler(ref)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", h.AddCheckpoint)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	cosigVKey, err := fnote.VKeyToCosignatureV1(wKey.vkey)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := witness.ParsePolicy([]byte("witness ref " + cosigVKey + " " + srv.URL + "\nquorum ref\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := witness.NewPublisher(witness.PublisherConfig{Log: l, Origin: origin, LogVerifier: logV, Policy: policy,
		Published: filepath.Join(t.TempDir(), "published")})
	if err != nil {
		t.Fatal(err)
	}
	cosigV, err := fnote.NewVerifierForCosignatureV1(cosigVKey)
	if err != nil {
		t.Fatal(err)
	}
	for round, n := range []int{3, 9, 1, 40} {
		appendN(t, l, n)
		if err := p.Sync(context.Background()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		pub := p.Published()
		if !bytes.HasPrefix(pub, l.Checkpoint()) || !policy.Satisfied(pub) {
			t.Fatalf("round %d: not the log's checkpoint, cosigned:\n%s", round, pub)
		}
		if _, err := note.Open(pub, note.VerifierList(cosigV)); err != nil {
			t.Fatalf("round %d: reference cosignature does not verify: %v", round, err)
		}
		stored, err := ref.GetCheckpoint(context.Background(), origin)
		if err != nil || !bytes.HasPrefix(stored, []byte(fmt.Sprintf("%s\n%d\n", origin, l.Size()))) {
			t.Fatalf("round %d: reference witness holds %q (%v), log size %d", round, stored, err, l.Size())
		}
	}
}

// TestReferenceClientDrivesWardWitness: the reference client updates ward's
// witness from empty, then with consistency proofs, gets cosignatures that
// verify, and reads ward's 409 as "stale" with the size ward holds.
func TestReferenceClientDrivesWardWitness(t *testing.T) {
	logKey := genKey(t, origin)
	l := openLog(t, logKey)
	wKey := genKey(t, "ward.interop/witness")
	w, err := witness.New(witness.Config{Key: wKey.skey, VerifierKey: wKey.vkey, State: filepath.Join(t.TempDir(), "state.json"),
		Logs: []witness.Log{{Origin: origin, Key: logKey.vkey}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/add-checkpoint", w)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	client := tdclient.NewWitness(u, srv.Client())
	cosigV, err := fnote.NewVerifierForCosignatureV1(w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	appendN(t, l, 5)
	sigs, _, err := client.Update(ctx, 0, l.Checkpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(append(l.Checkpoint(), sigs...), note.VerifierList(cosigV)); err != nil {
		t.Fatalf("ward's cosignature does not verify with formats: %v", err)
	}
	appendN(t, l, 11)
	proof, err := l.ConsistencyProof(5, 16)
	if err != nil {
		t.Fatal(err)
	}
	if _, size, err := client.Update(ctx, 0, l.Checkpoint(), nil); !errors.Is(err, tdwitness.ErrCheckpointStale) || size != 5 {
		t.Fatalf("stale update: size %d, %v", size, err)
	}
	sigs, _, err = client.Update(ctx, 5, l.Checkpoint(), proof)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(append(l.Checkpoint(), sigs...), note.VerifierList(cosigV)); err != nil {
		t.Fatalf("cosignature after growth: %v", err)
	}
	proof[0][0] ^= 1
	appendN(t, l, 1)
	bad, _ := l.ConsistencyProof(16, 17)
	bad[0][0] ^= 1
	if _, _, err := client.Update(ctx, 16, l.Checkpoint(), bad); !errors.Is(err, tdwitness.ErrInvalidProof) {
		t.Fatalf("bad proof: %v", err)
	}
}
