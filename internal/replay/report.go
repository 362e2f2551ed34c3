package replay

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"unicode"
)

// WriteText writes the report for people: one line per call,
//
//	L12 s1 deny  tools/call db.drop_table — denied by policy "no-drops" (p.cedar:3:1)
//
// (line, session, outcome, method, name, reason), then a blank line and the
// summary: the counts, and the policies that determined calls, most calls
// first. Session ids, names and reasons holding spaces, quotes or
// non-printable characters are Go-quoted.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, c := range r.Calls {
		fmt.Fprintf(bw, "L%d %s %-5s %s %s — %s\n",
			c.Line, word(c.Session), c.Outcome, word(c.Method), word(c.Name), text(c.Reason))
	}
	s := r.Summary
	fmt.Fprintf(bw, "\n%s, %s: %d allowed, %d denied, %d escalated\n",
		plural(s.Sessions, "session"), plural(s.Calls, "call"), s.Allowed, s.Denied, s.Escalated)
	if len(s.ByPolicy) > 0 {
		ids := slices.SortedFunc(maps.Keys(s.ByPolicy), func(a, b string) int {
			return cmp.Or(cmp.Compare(s.ByPolicy[b], s.ByPolicy[a]), cmp.Compare(a, b))
		})
		width := len(strconv.Itoa(s.ByPolicy[ids[0]]))
		bw.WriteString("determined by policy:\n")
		for _, id := range ids {
			fmt.Fprintf(bw, "  %*d  %s\n", width, s.ByPolicy[id], word(id))
		}
	}
	return bw.Flush()
}

// WriteJSON writes the report for programs: one JSON object per line for
// each [Call], then one {"summary": …} object holding the [Summary].
func (r *Report) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range r.Calls {
		if err := enc.Encode(&r.Calls[i]); err != nil {
			return fmt.Errorf("encode call at trace line %d: %w", r.Calls[i].Line, err)
		}
	}
	sum := r.Summary
	if sum.ByPolicy == nil {
		sum.ByPolicy = map[string]int{}
	}
	if err := enc.Encode(struct {
		Summary Summary `json:"summary"`
	}{sum}); err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	return bw.Flush()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// word returns s as is if it is a non-empty run of printable characters
// without spaces or quotes, else Go-quoted.
func word(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == '"' || r == '\\' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// text returns s as is if all its characters are printable (plain spaces
// allowed), else Go-quoted.
func text(s string) string {
	for _, r := range s {
		if r != ' ' && !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
