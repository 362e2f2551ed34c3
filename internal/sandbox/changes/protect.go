package changes

import (
	"errors"
	"path"
	"strings"
)

// Protected lists, in order, the changed paths that match one of patterns,
// refused changes aside (they are never applied).
//
// A pattern is a slash-separated path whose segments are path.Match
// patterns; a segment "**" matches any number of segments, none included,
// so ".git/**" matches .git and everything beneath it. A pattern without a
// slash matches a name at any depth, like gitignore: "*.pem" matches
// a/b/key.pem. A slash anywhere but at the end anchors a pattern at the
// workspace root: "/Makefile" is the top one only; a trailing slash is
// ignored. A path matches when the pattern matches it or one of its parent
// directories, so ".env" protects .env/local as well.
//
// Deleting or replacing a directory removes everything beneath it, which
// the set does not list; such a change is protected when a pattern could
// match something beneath it: "secrets/*.pem" protects a deletion of
// secrets, and a pattern without a slash protects every directory deleted
// or replaced.
//
// A malformed pattern (see CheckPattern) matches every path: a typo in a
// protection list fails closed.
func Protected(s *Set, patterns []string) []string {
	if s == nil {
		return nil
	}
	pats := make([][]string, 0, len(patterns))
	for _, p := range patterns {
		segs, err := compile(p)
		if err != nil {
			segs = []string{"**"}
		}
		pats = append(pats, segs)
	}
	var out []string
	for _, c := range s.Changes {
		if c.Kind == Refused {
			continue
		}
		name := strings.Split(c.Path, "/")
		for _, pat := range pats {
			if match(pat, name, c.removesDir()) {
				out = append(out, c.Path)
				break
			}
		}
	}
	return out
}

// CheckPattern reports whether p is a pattern Protected understands.
func CheckPattern(p string) error {
	_, err := compile(p)
	return err
}

// compile splits p into segments, anchoring a pattern without a slash
// below "**".
func compile(p string) ([]string, error) {
	t := strings.TrimRight(p, "/")
	anchored := strings.Contains(t, "/")
	t = strings.TrimLeft(t, "/")
	if t == "" {
		return nil, errors.New("empty pattern")
	}
	segs := strings.Split(t, "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return nil, errors.New("pattern " + p + ": empty, . or .. segment")
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, errors.New("pattern " + p + ": malformed segment " + s)
		}
	}
	if !anchored {
		segs = []string{"**", segs[0]}
	}
	return segs, nil
}

// match reports whether pattern segments pat match name or one of its
// ancestors, or, when below is set, could match something beneath name.
func match(pat, name []string, below bool) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if match(pat[1:], name[i:], below) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return below
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return true
}
