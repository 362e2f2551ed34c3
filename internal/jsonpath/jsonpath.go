// Package jsonpath is the dotted path syntax ward's configuration uses to
// name places in a JSON document (redaction rules, consequential arguments):
//
//	credentials.password    member "password" of member "credentials"
//	recipients.*            every element (or member) of "recipients"
//	headers.X-Api-Key       member names are matched exactly
//	a\.b                    a member named "a.b": '\' escapes '.', '*' and '\'
//
// A segment is a member name or, for arrays, an index in decimal; "*" alone
// matches any one member or index.
package jsonpath

import (
	"errors"
	"fmt"
	"strings"
)

// MaxDepth is the most segments a path may have.
const MaxDepth = 64

// Segment is one step of a path.
type Segment struct {
	Name string
	Any  bool // "*": any member or index
}

// Parse splits a path into segments. A segment without escapes is a
// substring of p (no copy): the default consequential arguments are parsed
// on every call ward decides.
func Parse(p string) ([]Segment, error) {
	segs := make([]Segment, 0, strings.Count(p, ".")+1)
	var b []byte     // the segment's name, unescaped, once it had an escape
	escaped := false // the segment had an escape: its name is b
	start := 0       // where the segment begins in p
	star := false    // the segment has an unescaped '*'
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '.' {
			s := p[start:i]
			if escaped {
				s = string(b)
			}
			switch {
			case s == "":
				return nil, errors.New("empty segment")
			case len(segs) == MaxDepth:
				return nil, fmt.Errorf("more than %d segments", MaxDepth)
			case star && s != "*":
				return nil, errors.New(`'*' must be a whole segment (write "\*" for a literal '*')`)
			}
			segs = append(segs, Segment{Name: s, Any: star})
			b, escaped, star, start = b[:0], false, false, i+1
			continue
		}
		switch c := p[i]; {
		case c == '*':
			star = true
		case c == '\\' && (i+1 == len(p) || !strings.ContainsRune(`.*\`, rune(p[i+1]))):
			return nil, errors.New(`'\' must be followed by '.', '*' or '\'`)
		case c == '\\':
			if !escaped {
				b = append(b, p[start:i]...)
				escaped = true
			}
			i++
		}
		if escaped {
			b = append(b, p[i])
		}
	}
	return segs, nil
}

// Match reports whether the concrete path (member names and indexes)
// matches pattern exactly.
func Match(pattern []Segment, path []string) bool {
	if len(pattern) != len(path) {
		return false
	}
	for i, s := range pattern {
		if !s.Any && s.Name != path[i] {
			return false
		}
	}
	return true
}

// Render writes a concrete path in the syntax Parse reads.
func Render(path []string) string {
	var b strings.Builder
	for i, s := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(s); j++ {
			if c := s[j]; c == '.' || c == '*' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
	}
	return b.String()
}
