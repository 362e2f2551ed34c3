package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/audit"
)

// TestLoadLogKeys: what a node reads of its log keys at start, in each
// state a rotation leaves (and each a crash between its steps leaves).
func TestLoadLogKeys(t *testing.T) {
	const name = "keys.test/audit/n"
	dir := t.TempDir()
	write := func(f, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load := func() auditKeys {
		t.Helper()
		k, err := loadLogKeys(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := load() // a first key, made
	a, aPub := k.current, k.curPub
	if s, _ := k.signers(); len(s) != 1 || k.next != "" || len(k.all()) != 1 {
		t.Fatalf("a fresh key: %+v", k)
	}
	// During an overlap: both sign, both verify, the head names the new.
	b, bPub, _ := audit.NewNoteKey(name)
	write("audit.next.key", b)
	k = load()
	if s, _ := k.signers(); len(s) != 2 || s[0].KeyHash() == s[1].KeyHash() || k.newest() != bPub || len(audit.KeysOf(must(k.verifier()))) != 2 {
		t.Fatalf("an overlap: %+v", k)
	}
	if got := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, "audit.next.pub"))))); got != bPub {
		t.Fatalf("audit.next.pub %q, want %q", got, bPub)
	}
	// A retirement that crashed after writing audit.retired and
	// audit.key: the next key is the current one, the old one retired.
	write("audit.retired", aPub)
	write("audit.key", b)
	k = load()
	if k.curPub != bPub || k.next != "" || len(k.retired) != 1 || k.retired[0] != aPub {
		t.Fatalf("after a retirement: %+v", k)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.next.key")); !os.IsNotExist(err) {
		t.Fatalf("the next key's file is left: %v", err)
	}
	if got := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, "audit.pub"))))); got != bPub {
		t.Fatalf("audit.pub %q, want the new key", got)
	}
	// A retirement that crashed after writing audit.retired only: the
	// old key is current and retired at once, the overlap goes on.
	write("audit.key", a)
	write("audit.next.key", b)
	k = load()
	if k.curPub != aPub || k.nextPub != bPub || len(k.retired) != 0 {
		t.Fatalf("a retirement cut short: %+v", k)
	}
	// Keys of another log are refused.
	c, _, _ := audit.NewNoteKey("other.test/audit")
	write("audit.next.key", c)
	if _, err := loadLogKeys(dir, name); err == nil {
		t.Fatal("a next key of another log accepted")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
