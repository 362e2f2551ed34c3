package jsonpath

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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

// parseBuilt is Parse as it was, building every name: FuzzParseSame
// compares the two.
func parseBuilt(p string) ([]Segment, error) {
	var segs []Segment
	var b strings.Builder
	star := false
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '.' {
			s := b.String()
			switch {
			case s == "":
				return nil, errors.New("empty segment")
			case len(segs) == MaxDepth:
				return nil, fmt.Errorf("more than %d segments", MaxDepth)
			case star && s != "*":
				return nil, errors.New(`'*' must be a whole segment (write "\*" for a literal '*')`)
			}
			segs = append(segs, Segment{Name: s, Any: star})
			b.Reset()
			star = false
			continue
		}
		switch c := p[i]; {
		case c == '*':
			star = true
		case c == '\\' && (i+1 == len(p) || !strings.ContainsRune(`.*\`, rune(p[i+1]))):
			return nil, errors.New(`'\' must be followed by '.', '*' or '\'`)
		case c == '\\':
			i++
		}
		b.WriteByte(p[i])
	}
	return segs, nil
}

// FuzzParseSame: Parse reads every path as the building parser did, and
// refuses what it refused with the same words.
func FuzzParseSame(f *testing.F) {
	for _, s := range []string{"to", "a.*.b", `a\.b`, `x\\`, "a..b", `a\*b.c`, `\\.\.`, "*x", `a\`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := Parse(p)
		want, werr := parseBuilt(p)
		if fmt.Sprint(err) != fmt.Sprint(werr) || !slices.Equal(got, want) {
			t.Fatalf("%q: Parse %v, %v; building parser %v, %v", p, got, err, want, werr)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range []string{"to", "to.*", "recipients.*", "payment.account"} {
			if _, err := Parse(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}
