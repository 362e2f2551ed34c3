package jsonpath

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for p, want := range map[string][]Segment{
		"to":            {{Name: "to"}},
		"recipients.*":  {{Name: "recipients"}, {Name: "*", Any: true}},
		`a\.b.c`:        {{Name: "a.b"}, {Name: "c"}},
		`lit\*.x`:       {{Name: "lit*"}, {Name: "x"}},
		`back\\slash`:   {{Name: `back\slash`}},
		"headers.X-Key": {{Name: "headers"}, {Name: "X-Key"}},
	} {
		got, err := Parse(p)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", p, got, err, want)
		}
	}
	for _, bad := range []string{"", "a..b", ".a", "a.", "a*", "*b", `a\`, `a\b`} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	long := "a"
	for range MaxDepth {
		long += ".a"
	}
	if _, err := Parse(long); err == nil {
		t.Error("a path deeper than MaxDepth accepted")
	}
}

func TestMatchAndRender(t *testing.T) {
	pat, _ := Parse("recipients.*.email")
	if !Match(pat, []string{"recipients", "3", "email"}) || Match(pat, []string{"recipients", "3"}) || Match(pat, []string{"cc", "0", "email"}) {
		t.Fatal("Match")
	}
	path := []string{"a.b", "*", `c\d`}
	segs, err := Parse(Render(path))
	if err != nil || len(segs) != 3 || segs[0].Name != "a.b" || segs[1].Any || segs[1].Name != "*" || segs[2].Name != `c\d` {
		t.Fatalf("Render does not round-trip: %q → %v %v", Render(path), segs, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"to", "a.*.b", `a\.b`, `x\\`, "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		segs, err := Parse(p)
		if err != nil {
			return
		}
		if len(segs) == 0 || len(segs) > MaxDepth {
			t.Fatalf("%q: %d segments", p, len(segs))
		}
		names := make([]string, len(segs))
		for i, s := range segs {
			if s.Any {
				return // "*" renders as a literal star, by design
			}
			names[i] = s.Name
		}
		again, err := Parse(Render(names))
		if err != nil || !slices.Equal(again, segs) {
			t.Fatalf("%q: render/parse round trip gives %v, %v", p, again, err)
		}
	})
}
