package monitor

import (
	"slices"
	"strings"
	"unique"
)

// Categories returns the categories of a tool (or egress host) name under
// patterns such as
//
//	"db.*":      [database]
//	"mail.send": [email, external]
//	"*":         [other]
//
// A pattern is a name, or a prefix ending in "*" ("*" alone matches every
// name). The most specific pattern wins: the exact name, else the longest
// matching prefix; a name no pattern matches has no categories. The
// returned slice is categories' own and must not be modified.
func Categories(name string, categories map[string][]string) []string {
	if cats, ok := categories[name]; ok {
		return cats
	}
	best, bestLen := []string(nil), -1
	for pat, cats := range categories {
		prefix, ok := strings.CutSuffix(pat, "*")
		if ok && len(prefix) > bestLen && strings.HasPrefix(name, prefix) {
			best, bestLen = cats, len(prefix)
		}
	}
	return best
}

// OutsideObjective reports whether a call whose tool has the categories
// cats falls outside an objective that declared the categories declared.
// An objective that declared nothing does not restrict (false). Otherwise
// the call is inside only if every one of its categories is declared, so a
// tool with no categories at all is outside: what cannot be classified is
// not assumed to be part of the task.
func OutsideObjective(declared []string, cats []string) bool {
	if len(declared) == 0 {
		return false
	}
	if len(cats) == 0 {
		return true
	}
	for _, c := range cats {
		if !slices.Contains(declared, c) {
			return true
		}
	}
	return false
}

// categoryIndex is Categories compiled, with the categories interned.
type categoryIndex struct {
	exact    map[string][]name
	prefixes []prefixRule // longest first
}

type prefixRule struct {
	prefix string
	cats   []name
}

func compileCategories(patterns map[string][]string) categoryIndex {
	idx := categoryIndex{exact: map[string][]name{}}
	for pat, cats := range patterns {
		names := make([]name, len(cats))
		for i, c := range cats {
			names[i] = unique.Make(c)
		}
		if prefix, ok := strings.CutSuffix(pat, "*"); ok {
			idx.prefixes = append(idx.prefixes, prefixRule{prefix, names})
		} else {
			idx.exact[pat] = names
		}
	}
	slices.SortFunc(idx.prefixes, func(a, b prefixRule) int { return len(b.prefix) - len(a.prefix) })
	return idx
}

// lookup is Categories on the compiled index.
func (idx *categoryIndex) lookup(n string) []name {
	if cats, ok := idx.exact[n]; ok {
		return cats
	}
	for _, r := range idx.prefixes {
		if strings.HasPrefix(n, r.prefix) {
			return r.cats
		}
	}
	return nil
}
