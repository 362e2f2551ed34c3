package changes

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestUnifiedDiff checks the diff against its definition on many inputs:
// applying its hunks to the old text gives the new one, and it changes no
// more lines than a longest common subsequence leaves.
func TestUnifiedDiff(t *testing.T) {
	alphabet := []string{"a\n", "b\n", "c\n", "d\n", "e"}
	seed := uint32(1)
	rnd := func(n int) int { seed = seed*1664525 + 1013904223; return int(seed>>16) % n }
	gen := func() []string {
		var out []string
		for range rnd(14) {
			out = append(out, alphabet[rnd(4)])
		}
		if rnd(3) == 0 {
			out = append(out, alphabet[4])
		}
		return out
	}
	for i := range 3000 {
		a, b := gen(), gen()
		ops, ok := lineDiff(a, b)
		if !ok {
			t.Fatal("gave up on a small diff")
		}
		var gotA, gotB []string
		edits := 0
		for _, op := range ops {
			if op.kind != '+' {
				gotA = append(gotA, op.line)
			}
			if op.kind != '-' {
				gotB = append(gotB, op.line)
			}
			if op.kind != ' ' {
				edits++
			}
		}
		if !slices.Equal(gotA, a) || !slices.Equal(gotB, b) {
			t.Fatalf("case %d: the script does not rebuild its inputs", i)
		}
		if want := len(a) + len(b) - 2*lcs(a, b); edits != want {
			t.Fatalf("case %d: %d edits, the shortest has %d", i, edits, want)
		}
		d := UnifiedDiff("a", "b", []byte(strings.Join(a, "")), []byte(strings.Join(b, "")))
		if got := patch(t, strings.Join(a, ""), d); got != strings.Join(b, "") {
			t.Fatalf("case %d: patching %q with\n%s\ngives %q, want %q", i, strings.Join(a, ""), d, got, strings.Join(b, ""))
		}
	}
}

// FuzzUnifiedDiff: the diff of any two texts patches the first into the
// second.
func FuzzUnifiedDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd")
	f.Add("", "x\n")
	f.Add("same\n", "same\n")
	f.Fuzz(func(t *testing.T, old, new string) {
		if len(old) > 4096 || len(new) > 4096 || len(splitLines([]byte(old)))+len(splitLines([]byte(new))) > maxEdits {
			return // beyond maxEdits the diff is not shown
		}
		d := UnifiedDiff("a", "b", []byte(old), []byte(new))
		if (d == "") != (old == new) {
			t.Fatalf("diff of %q and %q: %q", old, new, d)
		}
		if got := patch(t, old, d); got != new {
			t.Fatalf("patching %q with\n%s\ngives %q, want %q", old, d, got, new)
		}
	})
}

func lcs(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

// patch applies a unified diff the way patch(1) reads one, checking that
// its context matches.
func patch(t *testing.T, old, diff string) string {
	a := splitLines([]byte(old))
	var out []string
	pos := 0
	lines := strings.SplitAfter(diff, "\n")
	hunk := regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@`)
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		m := hunk.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		start := atoi(m[1])
		if m[2] != "" && atoi(m[2]) == 0 {
			start++
		}
		out = append(out, a[pos:start-1]...)
		pos = start - 1
		for i+1 < len(lines) && lines[i+1] != "" && strings.ContainsRune(" -+\\", rune(lines[i+1][0])) {
			i++
			l := lines[i]
			text := l[1:]
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "\\ No newline") {
				text = strings.TrimSuffix(text, "\n")
				i++
			}
			switch l[0] {
			case ' ', '-':
				if pos >= len(a) || a[pos] != text {
					t.Fatalf("context %q does not match line %d of the old text", text, pos+1)
				}
				if l[0] == ' ' {
					out = append(out, text)
				}
				pos++
			case '+':
				out = append(out, text)
			}
		}
	}
	out = append(out, a[pos:]...)
	return strings.Join(out, "")
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
