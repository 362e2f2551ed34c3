package doctor

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRedteamJoinTokenAndConsoleUsers: the join token (it unseals the
// system's keys from the shared store) and the console's password hashes
// are secrets too: readable by other users, doctor fails them.
func TestRedteamJoinTokenAndConsoleUsers(t *testing.T) {
	for _, f := range []string{"keys/join.token", "console/users.json"} {
		d := dataDir(t)
		p := filepath.Join(d, f)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("ward-join-v1:x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o644)
		r, ok := find(checkData(d), "key "+f)
		if !ok || r.Status != Fail {
			t.Errorf("%s mode 0644: %+v (reported %v)", f, r, ok)
		}
	}
}
