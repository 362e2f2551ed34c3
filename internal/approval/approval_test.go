package approval

import (
	"strings"
	"testing"
)

// TestIDsAreWords: approval ids are typed on command lines; none may look
// like a flag or need quoting.
func TestIDsAreWords(t *testing.T) {
	for range 5000 {
		id := newID()
		if len(id) != 26 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Fatalf("approval id %q", id)
		}
	}
}
