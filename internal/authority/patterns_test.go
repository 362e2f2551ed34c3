package authority

import (
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/grant"
)

func TestParsePatterns(t *testing.T) {
	s, err := ParsePatterns([]string{"tool:fs.read_*", "resource:file:///tmp/*", "prompt:p.x", "demo.echo"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Allows(grant.KindTool, "fs.read_file") || !s.Allows(grant.KindTool, "demo.echo") || s.Allows(grant.KindTool, "fs.write_file") ||
		!s.Allows(grant.KindResource, "file:///tmp/a") || !s.Allows(grant.KindPrompt, "p.x") {
		t.Fatalf("scope %+v", s)
	}
	for _, bad := range []string{"widget:x", "tool:fs.*.read", "tool:" + strings.Repeat("a", 600)} {
		if _, err := ParsePatterns([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParsePatterns: what parses formats back to the same scope.
func FuzzParsePatterns(f *testing.F) {
	f.Add("tool:fs.read_* resource:file:///x/* prompt:a.b")
	f.Add("demo.* tool:*")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParsePatterns(strings.Fields(in))
		if err != nil {
			return
		}
		again, err := ParsePatterns(FormatPatterns(s))
		if err != nil {
			t.Fatalf("formatted scope does not parse: %v", err)
		}
		if s.Covers(again) != nil || again.Covers(s) != nil {
			t.Fatalf("round trip changed the scope: %+v vs %+v", s, again)
		}
	})
}
