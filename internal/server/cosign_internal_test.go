package server

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/store"
)

// TestPinKeyOnlyNewestVouches: a peer's new log key is pinned only on a
// checkpoint co-signed by the newest key pinned for it. A key the peer
// moved away from (retired, perhaps leaked) cannot install a key of its
// holder's choosing, which would then lock out the peer's real heads.
func TestPinKeyOnlyNewestVouches(t *testing.T) {
	const origin = "test.ward/audit/node-a"
	type key struct{ skey, vkey string }
	mk := func() key {
		s, v, err := audit.NewNoteKey(origin)
		if err != nil {
			t.Fatal(err)
		}
		return key{s, v}
	}
	old, cur, attacker := mk(), mk(), mk()
	head := func(by ...key) store.AuditHead {
		var signers []note.Signer
		for _, k := range by {
			s, err := note.NewSigner(k.skey)
			if err != nil {
				t.Fatal(err)
			}
			signers = append(signers, s)
		}
		cp, err := note.Sign(&note.Note{Text: origin + "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return store.AuditHead{Origin: origin, VKey: by[0].vkey, Checkpoint: string(cp)}
	}
	pinned := []string{old.vkey, cur.vkey}
	if _, why := pinKey(pinned, head(attacker, old)); !strings.Contains(why, "newest key") {
		t.Fatalf("a new key vouched for by a retired one was pinned (%q)", why)
	}
	got, why := pinKey(pinned, head(attacker, cur))
	if why != "" || len(got) != 3 || got[2] != attacker.vkey {
		t.Fatalf("a new key vouched for by the newest one: %v %q", got, why)
	}
	if _, why := pinKey(pinned, head(old)); why == "" {
		t.Fatal("a head signed by the retired key alone was accepted")
	}
}
