package changes

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of the diffs UnifiedDiff computes.
const (
	// maxDiffLines bounds the lines of either side a diff compares.
	maxDiffLines = 20_000
	// diffContext is the unchanged lines shown around a change.
	diffContext = 3
)

// IsText reports whether b reads as text: valid UTF-8 without NUL bytes.
// Only text is shown as a diff; other content is described by its size.
func IsText(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}

// splitLines splits b into lines, each with its newline; the last line may
// lack one.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// editOp is one line of an edit script: ' ' kept, '-' removed, '+' added.
type editOp struct {
	kind byte
	line string
}

// maxEdits bounds the edit distance lineDiff looks for: its memory grows
// with its square.
const maxEdits = 2000

// lineDiff is a shortest edit script from a to b (Myers' O(ND) algorithm),
// or false if it takes more than maxEdits lines added and removed.
func lineDiff(a, b []string) ([]editOp, bool) {
	n, m := len(a), len(b)
	limit := min(n+m, maxEdits)
	off := limit + 1
	v := make([]int, 2*limit+3)
	// trace[d] holds v for k in [-d-1, d+1] as it was when step d began.
	var trace [][]int
	for d := 0; d <= limit; d++ {
		trace = append(trace, append([]int(nil), v[off-d-1:off+d+2]...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, a, b, d), true
			}
		}
	}
	return nil, false
}

func backtrack(trace [][]int, a, b []string, d int) []editOp {
	var ops []editOp
	x, y := len(a), len(b)
	for ; d > 0; d-- {
		v := trace[d]
		at := func(k int) int { return v[k+d+1] }
		k := x - y
		var pk int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := at(pk)
		py := px - pk
		for x > px && y > py {
			x--
			y--
			ops = append(ops, editOp{' ', a[x]})
		}
		if x == px {
			y--
			ops = append(ops, editOp{'+', b[y]})
		} else {
			x--
			ops = append(ops, editOp{'-', a[x]})
		}
	}
	for x > 0 && y > 0 {
		x--
		y--
		ops = append(ops, editOp{' ', a[x]})
	}
	for i, j := 0, len(ops)-1; i < j; i, j = i+1, j-1 {
		ops[i], ops[j] = ops[j], ops[i]
	}
	return ops
}

// UnifiedDiff is the unified diff of old and new, as diff -u writes it
// with three lines of context, its sides named from and to ("a/path",
// "/dev/null"), or "" if they are equal. Sides of more than 20,000 lines,
// or that differ in more than 2,000 lines, are not compared: the diff is
// then its two header lines and a line in parentheses giving the sizes.
func UnifiedDiff(from, to string, old, new []byte) string {
	a, b := splitLines(old), splitLines(new)
	if len(a) > maxDiffLines || len(b) > maxDiffLines {
		return fmt.Sprintf("--- %s\n+++ %s\n(%d and %d lines: too long to compare; %d bytes -> %d bytes)\n", from, to, len(a), len(b), len(old), len(new))
	}
	ops, ok := lineDiff(a, b)
	if !ok {
		return fmt.Sprintf("--- %s\n+++ %s\n(more than %d lines differ: not shown; %d bytes -> %d bytes)\n", from, to, maxEdits, len(old), len(new))
	}
	var out strings.Builder
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk: from diffContext lines before this change to
		// diffContext lines after the last change within 2*diffContext
		// of the one before it.
		start := max(0, i-diffContext)
		end := i
		for j := i; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				end = j
			} else if j-end > 2*diffContext {
				break
			}
		}
		end = min(len(ops), end+diffContext+1)
		aLine, bLine := 1, 1
		for _, op := range ops[:start] {
			if op.kind != '+' {
				aLine++
			}
			if op.kind != '-' {
				bLine++
			}
		}
		aN, bN := 0, 0
		for _, op := range ops[start:end] {
			if op.kind != '+' {
				aN++
			}
			if op.kind != '-' {
				bN++
			}
		}
		if out.Len() == 0 {
			fmt.Fprintf(&out, "--- %s\n+++ %s\n", from, to)
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(aLine, aN), hunkRange(bLine, bN))
		for _, op := range ops[start:end] {
			out.WriteByte(op.kind)
			out.WriteString(op.line)
			if !strings.HasSuffix(op.line, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return out.String()
}

// hunkRange is a hunk header's "start,count"; an empty range starts at the
// line before it, as diff -u writes it.
func hunkRange(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start-1)
	case 1:
		return fmt.Sprintf("%d", start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}
