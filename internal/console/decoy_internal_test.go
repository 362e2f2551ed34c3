package console

import (
	"strings"
	"testing"
)

// TestDecoyHashCostsWhatAccountsCost: a login for a name no account has is
// checked against a decoy with the parameters most accounts' hashes have,
// not ward's defaults, so that with accounts hashed at other parameters
// (a users file written by another tool, or by an older ward) the time a
// wrong password takes does not tell whether a name exists. The decoy
// matches no password.
func TestDecoyHashCostsWhatAccountsCost(t *testing.T) {
	const cheap = "$argon2id$v=19$m=8192,t=2,p=1$c2FsdHNhbHRzYWx0$" + "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
	const other = "$argon2id$v=19$m=16384,t=1,p=2$c2FsdHNhbHRzYWx0$" + "a2V5a2V5a2V5a2V5a2V5a2V5"
	for _, c := range []struct {
		name   string
		list   []User
		params string
		keyLen int
	}{
		{"no accounts", nil, "m=65536,t=1,p=2", argonKeyLen},
		{"one account at other parameters", []User{{Name: "a", Hash: cheap}}, "m=8192,t=2,p=1", 24},
		{"most accounts decide", []User{{Name: "a", Hash: other}, {Name: "b", Hash: cheap}, {Name: "c", Hash: cheap}}, "m=8192,t=2,p=1", 24},
		{"unusable hashes ignored", []User{{Name: "a", Hash: "$argon2id$v=19$m=999999999,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5"}, {Name: "b", Hash: other}}, "m=16384,t=1,p=2", 18},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := shapeOf(c.list).hash()
			h, ok := parseHash(d)
			if !ok {
				t.Fatalf("decoy %q is not a hash ward accepts", d)
			}
			if parts := strings.Split(d, "$"); parts[3] != c.params || len(h.key) != c.keyLen {
				t.Fatalf("decoy %q: want parameters %s and a %d-byte key", d, c.params, c.keyLen)
			}
			for _, pw := range []string{"", "not a password", "password"} {
				if CheckPassword(d, pw) {
					t.Fatalf("the decoy matched %q", pw)
				}
			}
			if shapeOf(c.list).hash() == d {
				t.Fatal("two decoys are the same: their salt and key must be fresh")
			}
		})
	}
}
