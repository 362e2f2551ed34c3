package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/witness"
)

// TestSecondNodeWitnessesCheckpoints: node B witnesses node A's audit log;
// A requires B's cosignature before publishing a checkpoint. A's published
// checkpoint carries B's cosignature (checked with x/mod/sumdb/note and
// transparency-dev/formats alone), and while B is down A keeps logging but
// publishes nothing newer.
func TestSecondNodeWitnessesCheckpoints(t *testing.T) {
	dataA := t.TempDir()
	first := startNode(t, server.Config{Data: dataA, TrustDomain: "a.test"})
	admin := first.admin
	first.Close()
	logVKey := readKey(t, filepath.Join(dataA, "keys", "audit.pub"))

	b := startNode(t, server.Config{TrustDomain: "b.test", WitnessFor: []witness.Log{{Origin: "a.test/audit", Key: logVKey}}})
	witnessVKey := readKey(t, filepath.Join(b.data, "keys", "witness.vkey"))
	policy := "witness b " + witnessVKey + " " + b.url + "/witness\nquorum b\n"

	a := startNode(t, server.Config{Data: dataA, TrustDomain: "a.test", WitnessPolicy: []byte(policy),
		WitnessRoots: b.pool, WitnessInterval: 20 * time.Millisecond})
	a.admin = admin
	a.setupAgent("scout", nil, nil)

	logV, err := note.NewVerifier(logVKey)
	if err != nil {
		t.Fatal(err)
	}
	cosigV, err := fnote.NewVerifierForCosignatureV1(witnessVKey)
	if err != nil {
		t.Fatal(err)
	}
	// published returns the size of A's published checkpoint once it
	// covers at least min entries, checking both signatures.
	published := func(min uint64) uint64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, body := a.call(admin, "GET", "/v1/audit/checkpoint", nil)
			if status == 200 {
				n, err := note.Open(body, note.VerifierList(logV, cosigV))
				if err != nil {
					t.Fatalf("published checkpoint: %v\n%s", err, body)
				}
				if len(n.Sigs) != 2 {
					t.Fatalf("published checkpoint has %d verified signatures, want the log's and the witness's:\n%s", len(n.Sigs), body)
				}
				size, _ := strconv.ParseUint(strings.Split(n.Text, "\n")[1], 10, 64)
				if size >= min {
					return size
				}
			} else if status != 503 {
				t.Fatalf("GET checkpoint: %d %s", status, body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint covering %d entries was published (last answer %d %s)", min, status, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	size := published(a.Audit.Size())
	if b.Witness.Latest("a.test/audit") < size {
		t.Fatal("the witness does not hold what A published")
	}
	onDisk, err := os.ReadFile(filepath.Join(dataA, "witness", "published"))
	if err != nil || !strings.HasPrefix(string(onDisk), "a.test/audit\n") {
		t.Fatalf("published checkpoint not kept on disk: %v", err)
	}

	b.Close()
	a.setupAgent("scout-2", nil, nil)
	logged := a.Audit.Size()
	if _, err := a.Audit.Sync(context.Background()); err != nil { // a checkpoint over them to submit
		t.Fatal(err)
	}
	// Give the publisher several rounds: none may publish without B.
	for range 10 {
		if err := a.Publisher.Sync(context.Background()); err == nil {
			t.Fatal("sync succeeded with the only witness down")
		}
	}
	if got := published(size); got >= logged {
		t.Fatalf("published size %d with the witness down; the log's %d was never cosigned", got, logged)
	}
}

func readKey(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
