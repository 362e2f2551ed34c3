package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/server"
)

// TestCLIWitnessedBundle: `ward audit export --witnessed` proves a session
// under the published, cosigned checkpoint, and `verify-bundle
// --witness-policy` accepts that bundle but refuses one whose checkpoint
// lacks the required cosignature.
func TestCLIWitnessedBundle(t *testing.T) {
	n := startNode(t, server.Config{})
	data := filepath.Dir(os.Getenv("WARD_CA"))
	mustCLI(t, "sponsor", "create", "dora", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "scribe", "--sponsor", "dora", "--allow", "tool:demo.*")
	var s struct{ Session string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "scribe", "--objective", "notes", "-o", "json")), &s)

	// A witness cosigns the current checkpoint; the node "publishes" it.
	skey, vkey, err := note.GenerateKey(rand.Reader, "witness.cli.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	logV, err := note.NewVerifier(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "keys", "audit.pub"))))))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := n.Audit.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opened, err := note.Open(cp, note.VerifierList(logV))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(&note.Note{Text: opened.Text}, signer)
	if err != nil {
		t.Fatal(err)
	}
	published := append(cp, cosigned[len(opened.Text)+1:]...)
	os.MkdirAll(filepath.Join(data, "witness"), 0o700)
	if err := os.WriteFile(filepath.Join(data, "witness", "published"), published, 0o600); err != nil {
		t.Fatal(err)
	}
	cosigVKey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.txt")
	os.WriteFile(policy, []byte("witness w "+cosigVKey+" https://127.0.0.1:1/unused\nquorum w\n"), 0o600)
	mustCLI(t, "session", "end", s.Session) // newer than the published checkpoint

	dir := t.TempDir()
	witnessed, latest := filepath.Join(dir, "witnessed.json"), filepath.Join(dir, "latest.json")
	out := mustCLI(t, "audit", "export", "--data", data, "--session", s.Session, "--witnessed", "--out", witnessed)
	if !strings.Contains(out, "newer than the witnessed checkpoint") {
		t.Fatalf("export --witnessed: %s", out)
	}
	mustCLI(t, "audit", "export", "--data", data, "--session", s.Session, "--out", latest)
	key := filepath.Join(data, "keys", "audit.pub")
	// The published checkpoint predates the session's end, so the bundle
	// under it proves no more than what the session had then.
	if code, _, errOut := wardCLI("audit", "verify-bundle", "--key", key, "--witness-policy", policy, witnessed); code != 1 || !strings.Contains(errOut, "is not sealed") {
		t.Fatalf("verify witnessed bundle of an open session: %d %s", code, errOut)
	}
	if out := mustCLI(t, "audit", "verify-bundle", "--key", key, "--allow-unsealed", "--witness-policy", policy, witnessed); !strings.Contains(out, "cosigned as") || !strings.Contains(out, "NOT PROVEN COMPLETE") {
		t.Fatalf("verify witnessed bundle: %s", out)
	}
	if code, _, errOut := wardCLI("audit", "verify-bundle", "--key", key, "--witness-policy", policy, latest); code != 1 || !strings.Contains(errOut, "lacks the cosignatures") {
		t.Fatalf("bundle without cosignature: %d %s", code, errOut)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
