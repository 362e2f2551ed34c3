package grant

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestScopeValidate(t *testing.T) {
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	tests := []struct {
		name string
		s    Scope
		ok   bool
	}{
		{"empty", Scope{}, true},
		{"exact and prefixes", Scope{Tools: []string{"fs.read_file", "fs.read_*", "fs.*", "*", "a/b-c_d.e"}}, true},
		{"resource uri", Scope{Resources: []string{"file:///data/*", "https://x.example/a?b=c#d", "db://customers/42"}}, true},
		{"prompts", Scope{Prompts: []string{"summarize", "review.*"}}, true},
		{"max patterns", Scope{Tools: many[:MaxPatterns]}, true},
		{"max length", Scope{Tools: []string{strings.Repeat("a", MaxPatternLen)}}, true},
		{"too many", Scope{Tools: many}, false},
		{"too long", Scope{Resources: []string{strings.Repeat("a", MaxPatternLen+1)}}, false},
		{"empty pattern", Scope{Tools: []string{""}}, false},
		{"inner star", Scope{Tools: []string{"fs.*_file"}}, false},
		{"double star", Scope{Tools: []string{"**"}}, false},
		{"leading star", Scope{Prompts: []string{"*.x"}}, false},
		{"space in tool", Scope{Tools: []string{"fs read"}}, false},
		{"colon in tool", Scope{Tools: []string{"fs:read"}}, false},
		{"unicode in tool", Scope{Tools: []string{"fs.réad"}}, false},
		{"space in resource", Scope{Resources: []string{"file:///a b"}}, false},
		{"inner star in resource", Scope{Resources: []string{"file:///*/x"}}, false},
		{"control in resource", Scope{Resources: []string{"file:///a\x00"}}, false},
		{"non-ascii resource", Scope{Resources: []string{"file:///é"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.s.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestScopeAllows(t *testing.T) {
	s := Scope{
		Tools:     []string{"fs.read_*", "db.query", "git/*"},
		Resources: []string{"file:///data/*", "db://customers"},
		Prompts:   []string{"*"},
	}
	tests := []struct {
		kind Kind
		name string
		want bool
	}{
		{KindTool, "fs.read_file", true},
		{KindTool, "fs.read_", true},
		{KindTool, "fs.read", false},
		{KindTool, "fs.write_file", false},
		{KindTool, "db.query", true},
		{KindTool, "db.query2", false},
		{KindTool, "db.quer", false},
		{KindTool, "git/log", true},
		{KindTool, "", false},
		{KindTool, "fs.read_*", false}, // '*' is not a tool name character
		{KindTool, "fs.read_ file", false},
		{KindResource, "file:///data/q1.csv", true},
		{KindResource, "file:///data", false},
		{KindResource, "file:///etc/passwd", false},
		{KindResource, "db://customers", true},
		{KindResource, "db://customers/1", false},
		{KindResource, "file:///data/a b", false},
		{KindPrompt, "anything.at/all", true},
		{KindPrompt, "", false},
		{KindPrompt, "with space", false},
		{Kind(7), "fs.read_file", false},
	}
	for _, tt := range tests {
		if got := s.Allows(tt.kind, tt.name); got != tt.want {
			t.Errorf("Allows(%s, %q) = %v, want %v", tt.kind, tt.name, got, tt.want)
		}
	}
	for _, p := range []string{"x*y", "x*y*", "**"} {
		if (Scope{Resources: []string{p}}).Allows(KindResource, "x*yz") {
			t.Errorf("malformed pattern %q allows", p)
		}
	}
	if !(Scope{Resources: []string{"x*"}}).Allows(KindResource, "x*yz") {
		t.Error("prefix pattern does not allow a resource containing '*'")
	}
	if (Scope{}).Allows(KindTool, "x") {
		t.Error("empty scope allows")
	}
	if (Scope{Tools: []string{"*"}}).Allows(KindResource, "file:///x") {
		t.Error("tool pattern allows a resource")
	}
}

func TestScopeCovers(t *testing.T) {
	tests := []struct {
		parent, child string // tool patterns, comma-separated
		want          bool
	}{
		{"fs.*", "fs.read_*", true},
		{"fs.*", "fs.x", true},
		{"fs.*", "fs.*", true},
		{"fs.*", "fs.", true},
		{"fs.*", "fs", false},
		{"fs.*", "fsx.read", false},
		{"fs.read*", "fs.*", false},
		{"fs.read_*", "fs.read*", false},
		{"*", "fs.read_file", true},
		{"*", "fs.*", true},
		{"*", "*", true},
		{"fs.*", "*", false},
		{"fs.a", "fs.a", true},
		{"fs.a", "fs.a*", false},
		{"fs.a", "fs.ab", false},
		{"fs.a*", "fs.a", true},
		{"fs.a*", "fs.ab*", true},
		{"fs.read_file", "fs.write_file", false},
		{"", "", true},
		{"fs.*", "", true},
		{"", "fs.read", false},
		{"db.query,fs.*", "fs.read,db.query", true},
		{"db.query,fs.*", "fs.read,db.*", false},
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	for _, tt := range tests {
		t.Run(tt.parent+"⊇"+tt.child, func(t *testing.T) {
			p, c := Scope{Tools: split(tt.parent)}, Scope{Tools: split(tt.child)}
			err := p.Covers(c)
			if (err == nil) != tt.want {
				t.Fatalf("Covers = %v, want covered=%v", err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrWiden) {
				t.Errorf("Covers error %v does not wrap ErrWiden", err)
			}
		})
	}

	// Kinds are separate; the error names the first uncovered pattern.
	parent := Scope{Tools: []string{"fs.read_*"}, Resources: []string{"file:///data/*"}}
	err := parent.Covers(Scope{Tools: []string{"fs.read_file", "fs.write_file"}})
	if want := `scope widens parent: tool pattern "fs.write_file" not covered by parent`; err == nil || err.Error() != want || !errors.Is(err, ErrWiden) {
		t.Errorf("Covers = %v, want %q", err, want)
	}
	var we *WidenError
	if !errors.As(err, &we) || we.Kind != KindTool || we.Pattern != "fs.write_file" {
		t.Errorf("Covers = %#v, want a *WidenError naming the tool pattern", err)
	}
	err = parent.Covers(Scope{Tools: []string{"fs.read_file"}, Resources: []string{"file:///etc/*"}})
	if want := `resource pattern "file:///etc/*" not covered`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Covers = %v, want it to say %q", err, want)
	}
	if err := parent.Covers(Scope{Prompts: []string{"x"}}); !errors.Is(err, ErrWiden) {
		t.Errorf("prompt with no parent prompts: Covers = %v", err)
	}
	if err := parent.Covers(Scope{Tools: []string{"fs.*x"}}); err == nil || errors.Is(err, ErrWiden) {
		t.Errorf("malformed child: Covers = %v, want a non-ErrWiden error", err)
	}
}

// randomName draws a name from a small alphabet, so that prefixes collide
// often.
func randomName(r *rand.Rand) string {
	const alpha = "ab._"
	b := make([]byte, 1+r.IntN(5))
	for i := range b {
		b[i] = alpha[r.IntN(len(alpha))]
	}
	return string(b)
}

func randomScope(r *rand.Rand) Scope {
	var s Scope
	for range r.IntN(4) {
		p := randomName(r)
		if r.IntN(2) == 0 {
			p = p[:r.IntN(len(p)+1)] + "*"
		}
		s.Tools = append(s.Tools, p)
	}
	return s
}

// TestScopeIntersect checks on random scopes that Intersect allows exactly
// what both sides allow, and that Covers agrees with Allows.
func TestScopeIntersect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a, b := randomScope(r), randomScope(r)
		in := a.Intersect(b)
		if err := in.Validate(); err != nil {
			t.Fatalf("%v ∩ %v = %v: %v", a, b, in, err)
		}
		if err := a.Covers(in); err != nil {
			t.Fatalf("%v does not cover %v ∩ %v = %v", a, a, b, in)
		}
		if err := b.Covers(in); err != nil {
			t.Fatalf("%v does not cover %v ∩ %v = %v", b, a, b, in)
		}
		for range 20 {
			n := randomName(r)
			if got, want := in.Allows(KindTool, n), a.Allows(KindTool, n) && b.Allows(KindTool, n); got != want {
				t.Fatalf("(%v ∩ %v = %v).Allows(%q) = %v, want %v", a.Tools, b.Tools, in.Tools, n, got, want)
			}
			if a.Covers(b) == nil && b.Allows(KindTool, n) && !a.Allows(KindTool, n) {
				t.Fatalf("%v covers %v but only the latter allows %q", a.Tools, b.Tools, n)
			}
		}
	}
	got := Scope{Tools: []string{"fs.*", "db.query"}}.Intersect(Scope{Tools: []string{"fs.read_*", "db.*", "net.*"}})
	if want := []string{"db.query", "fs.read_*"}; fmt.Sprint(got.Tools) != fmt.Sprint(want) {
		t.Errorf("Intersect = %v, want %v", got.Tools, want)
	}
}
