package changes

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProtected(t *testing.T) {
	s := &Set{Changes: []Change{
		{Path: ".env", Kind: Added, Type: File},
		{Path: ".envrc", Kind: Added, Type: File},
		{Path: ".git", Kind: Modified, Type: Dir},
		{Path: ".git/hooks/pre-commit", Kind: Added, Type: File},
		{Path: "Makefile", Kind: Modified, Type: File},
		{Path: "build", Kind: Deleted, Type: Dir},
		{Path: "certs/ca.pem", Kind: Added, Type: File},
		{Path: "deploy/.env/local", Kind: Added, Type: File},
		{Path: "notes.pem", Kind: Refused, Type: Fifo},
		{Path: "secrets", Kind: Replaced, Type: File, Prev: Dir},
		{Path: "src/Makefile", Kind: Added, Type: File},
		{Path: "src/key.pem", Kind: Deleted, Type: File},
		{Path: "vendor", Kind: Deleted, Type: File},
	}}
	for _, tc := range []struct {
		name     string
		patterns []string
		want     []string
	}{
		{"none", nil, nil},
		{"git tree", []string{".git/**"}, []string{".git", ".git/hooks/pre-commit"}},
		// A directory removed (build, secrets) may hold a .env anywhere.
		{"name at any depth", []string{".env"}, []string{".env", "build", "deploy/.env/local", "secrets"}},
		{"glob at any depth", []string{"*.pem"}, []string{"build", "certs/ca.pem", "secrets", "src/key.pem"}},
		{"anchored", []string{"/Makefile"}, []string{"Makefile"}},
		{"anchored glob", []string{"certs/*.pem"}, []string{"certs/ca.pem"}},
		// Removing a directory may remove what a pattern protects beneath it.
		{"beneath a removed dir", []string{"secrets/*.key", "/build/tmp"}, []string{"build", "secrets"}},
		{"dir and beneath", []string{"vendor/**"}, []string{"vendor"}},
		{"trailing slash", []string{"/build/"}, []string{"build"}},
		{"double star inside", []string{"deploy/**/local"}, []string{"deploy/.env/local"}},
		{"malformed fails closed", []string{"[z-a"}, []string{".env", ".envrc", ".git", ".git/hooks/pre-commit", "Makefile", "build", "certs/ca.pem", "deploy/.env/local", "secrets", "src/Makefile", "src/key.pem", "vendor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Protected(s, tc.patterns)); diff != "" {
				t.Errorf("Protected(%q) (-want +got):\n%s", tc.patterns, diff)
			}
		})
	}
}

func TestCheckPattern(t *testing.T) {
	for p, ok := range map[string]bool{
		".git/**": true, "*.pem": true, "/Makefile": true, "a/[bc]/d": true,
		"": false, "/": false, "[": false, "a/../b": false, "a//b": false, "./a": false,
	} {
		if err := CheckPattern(p); (err == nil) != ok {
			t.Errorf("CheckPattern(%q) = %v, want ok %v", p, err, ok)
		}
	}
}

func TestSummary(t *testing.T) {
	s := &Set{Changes: []Change{
		{Path: "a", Kind: Added, Type: Dir},
		{Path: "a/f", Kind: Added, Type: File, Size: 10},
		{Path: "b", Kind: Modified, Type: File, Size: 5},
		{Path: "c", Kind: Deleted, Type: Dir},
		{Path: "d", Kind: Replaced, Type: Symlink, Prev: File, Target: "a/f"},
		{Path: "line\nbreak", Kind: Deleted, Type: File},
		{Path: "p", Kind: Refused, Type: Fifo, Reason: "named pipe"},
	}}
	want := `A a/
A a/f
M b
D c/
R d -> a/f
D "line\nbreak"
! p (refused: named pipe)
2 added, 1 modified, 2 deleted, 1 replaced, 1 refused (15 bytes)
`
	if diff := cmp.Diff(want, s.Summary()); diff != "" {
		t.Errorf("Summary (-want +got):\n%s", diff)
	}
	var empty *Set
	if got := empty.Summary(); got != "0 added, 0 modified, 0 deleted, 0 replaced (0 bytes)\n" {
		t.Errorf("empty Summary = %q", got)
	}
}
