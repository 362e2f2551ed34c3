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
	"strings"
	"unicode"
)

// WriteText writes the report for people: one line per call,
//
//	L12 s1 deny  tools/call db.drop_table — denied by policy "no-drops" (p.cedar:3:1)
//	L13 s1 allow http GET https://api.example.com/v1/reports — allowed by policy "api" (p.cedar:9:1)
//	L14 s1 deny  exec /usr/bin/git push --force — denied by policy "no-force" (p.cedar:12:1)
//
// (line, session, outcome, method, what was asked for, reason): a call's
// name, an HTTP request's method and URL (the port only if not the
// scheme's), a program and its arguments. Then a blank line and the
// summary: the counts, and the policies that determined calls, most calls
// first. Session ids, names, URLs, arguments and reasons holding spaces,
// quotes or non-printable characters are Go-quoted.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, c := range r.Calls {
		fmt.Fprintf(bw, "L%d %s %-5s %s %s — %s\n",
			c.Line, word(c.Session), c.Outcome, word(c.Method), c.target(), text(c.Reason))
	}
	s := r.Summary
	fmt.Fprintf(bw, "\n%s, %s: %d allowed, %d denied, %d escalated\n",
		plural(s.Sessions, "session"), plural(s.Calls, "call"), s.Allowed, s.Denied, s.Escalated)
	r.writeLabelled(bw)
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

// target is what c asked for, for WriteText.
func (c *Call) target() string {
	switch {
	case c.HTTP != nil:
		h := c.HTTP
		host := h.Host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if h.Scheme == "" { // a tunnel: host and port only
			return word(h.Method) + " " + word(host+":"+strconv.Itoa(h.Port))
		}
		if h.Scheme == "http" && h.Port != 80 || h.Scheme != "http" && h.Port != 443 {
			host += ":" + strconv.Itoa(h.Port)
		}
		return word(h.Method) + " " + word(h.Scheme+"://"+host+h.Path)
	case c.Exec != nil:
		ws := []string{word(c.Exec.Command)}
		for _, a := range c.Exec.Args {
			ws = append(ws, word(a))
		}
		return strings.Join(ws, " ")
	}
	return word(c.Name)
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
