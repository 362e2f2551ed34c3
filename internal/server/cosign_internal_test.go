package server

import (
	"fmt"
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

// TestHandOverOnlyNewestVouches: a node that missed a rotation of a
// peer's log key learns the new key from the hand-overs kept in the
// store, each signed by the newest key it pinned and the next one — and
// from nothing else: a new key signed only by itself, or vouched for by a
// key the peer retired, is refused.
func TestHandOverOnlyNewestVouches(t *testing.T) {
	const origin = "test.ward/audit/node-a"
	type key struct{ skey, vkey string }
	mk := func() key {
		s, v, err := audit.NewNoteKey(origin)
		if err != nil {
			t.Fatal(err)
		}
		return key{s, v}
	}
	sign := func(size int, by ...key) string {
		var signers []note.Signer
		for _, k := range by {
			s, err := note.NewSigner(k.skey)
			if err != nil {
				t.Fatal(err)
			}
			signers = append(signers, s)
		}
		cp, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", origin, size)}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return string(cp)
	}
	k0, k1, k2, attacker := mk(), mk(), mk(), mk()
	ho := func(old, new key, size int, by ...key) store.AuditHandover {
		return store.AuditHandover{Node: "node-a", Old: old.vkey, New: new.vkey, Size: uint64(size), Checkpoint: sign(size, by...)}
	}
	head := func(k key) store.AuditHead {
		return store.AuditHead{Node: "node-a", Origin: origin, VKey: k.vkey, Size: 30, Checkpoint: sign(30, k)}
	}
	for _, tc := range []struct {
		name   string
		pinned []key
		hos    []store.AuditHandover
		head   store.AuditHead
		want   []key // nil: refused
	}{
		{"one hand-over", []key{k0}, []store.AuditHandover{ho(k0, k1, 10, k0, k1)}, head(k1), []key{k0, k1}},
		{"two, in a row", []key{k0}, []store.AuditHandover{ho(k0, k1, 10, k0, k1), ho(k1, k2, 20, k1, k2)}, head(k2), []key{k0, k1, k2}},
		{"the newest pinned vouches", []key{k0, k1}, []store.AuditHandover{ho(k1, k2, 20, k1, k2)}, head(k2), []key{k0, k1, k2}},
		{"a new key signed only by itself", []key{k0}, []store.AuditHandover{ho(k0, attacker, 10, attacker)}, head(attacker), nil},
		{"a new key vouched for by a retired key", []key{k0, k1}, []store.AuditHandover{ho(k0, attacker, 10, k0, attacker)}, head(attacker), nil},
		{"a hand-over naming a pinned key it is not signed by", []key{k0}, []store.AuditHandover{ho(k0, attacker, 10, k1, attacker)}, head(attacker), nil},
		{"a chain that stops short", []key{k0}, []store.AuditHandover{ho(k0, k1, 10, k0, k1)}, head(k2), nil},
		{"no hand-over", []key{k0}, nil, head(k1), nil},
		{"a head not signed by the key it names", []key{k0}, []store.AuditHandover{ho(k0, k1, 10, k0, k1)},
			store.AuditHead{Node: "node-a", Origin: origin, VKey: k1.vkey, Size: 30, Checkpoint: sign(30, attacker)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pinned []string
			for _, k := range tc.pinned {
				pinned = append(pinned, k.vkey)
			}
			got, used, why := handOver(pinned, tc.head, tc.hos)
			if tc.want == nil {
				if why == "" {
					t.Fatalf("accepted: pinned %d keys", len(got))
				}
				return
			}
			if why != "" || len(got) != len(tc.want) || len(used) != len(tc.want)-len(tc.pinned) {
				t.Fatalf("got %d keys (%d hand-overs used): %q", len(got), len(used), why)
			}
			for i, k := range tc.want {
				if got[i] != k.vkey {
					t.Fatalf("key %d is not the one expected", i)
				}
			}
		})
	}
}
