package story

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestApprovalArgs: an approval id that starts with "-" (one in 64 of
// ward's random ids) goes after "--", where ward's flag parsing cannot
// take it for a flag; any other id goes where the README puts it.
func TestApprovalArgs(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want []string
	}{
		{"tEKNyHhmBFzHeEaZ4RrjGw", []string{"approvals", "deny", "tEKNyHhmBFzHeEaZ4RrjGw", "--reason", "no"}},
		{"-y9XuIXoQkaPitoJ1lSBtw", []string{"approvals", "deny", "--reason", "no", "--", "-y9XuIXoQkaPitoJ1lSBtw"}},
		{"--", []string{"approvals", "deny", "--reason", "no", "--", "--"}},
	} {
		var out bytes.Buffer
		s := &Story{Out: &out}
		got := s.ApprovalArgs("deny", tc.id, "--reason", "no")
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ApprovalArgs(%q) (-want +got):\n%s", tc.id, diff)
		}
		if said := strings.Contains(out.String(), "goes after --"); said != strings.HasPrefix(tc.id, "-") {
			t.Errorf("ApprovalArgs(%q) said %q", tc.id, out.String())
		}
	}
}

// TestIndentHidesCredentials: what a story prints of ward's output shows
// that a credential was made, never the credential.
func TestIndentHidesCredentials(t *testing.T) {
	var out bytes.Buffer
	indent(&out, "sponsor dana (human) created\ncredential (shown once): ward_HoNPtNtLyXcSW6BJgLiuKqg-u8S8nVMnELHpgDHG1bA\n")
	if strings.Contains(out.String(), "HoNPtN") || !strings.Contains(out.String(), "ward_…") {
		t.Fatalf("printed %q", out.String())
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"session", "start", "--objective", "write the report", "--allow", "tool:fs.*", "it's"})
	want := `session start --objective 'write the report' --allow 'tool:fs.*' 'it'\''s'`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestWrap(t *testing.T) {
	line := strings.Repeat("word ", 40)
	for _, l := range wrap(line, 30) {
		if len([]rune(l)) > 30 {
			t.Errorf("line of %d runes: %q", len([]rune(l)), l)
		}
	}
	if got := wrap("short", 30); len(got) != 1 || got[0] != "short" {
		t.Errorf("wrap(short) = %q", got)
	}
	long := strings.Repeat("x", 50)
	if got := wrap(long, 30); len(got) != 1 || got[0] != long {
		t.Errorf("a word longer than the width is kept whole: %q", got)
	}
}
