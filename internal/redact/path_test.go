package redact

import (
	"slices"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/jsonpath"
)

// FuzzPath parses rule paths and checks that a valid path without
// wildcards names exactly one value, and that JSON reports that value by
// the same path as written (parsing and reporting escape alike).
func FuzzPath(f *testing.F) {
	for _, s := range []string{"a", "a.b", `a\.b`, `\*.\\.x\.y`, "headers.*", "items.0.id", "*", `a\`, "a..b", "a*", `\**`, "é.\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		segs, err := jsonpath.Parse(p)
		if err != nil {
			return
		}
		if len(segs) == 0 || len(segs) > MaxDepth {
			t.Fatalf("jsonpath.Parse(%q) = %d segments", p, len(segs))
		}
		doc := []byte("1")
		for i := len(segs) - 1; i >= 0; i-- {
			if segs[i].Any {
				return
			}
			name, err := jsontext.AppendQuote(nil, segs[i].Name)
			if err != nil {
				return // not valid UTF-8: no document can hold that name
			}
			doc = append(append(append([]byte("{"), name...), ':'), append(doc, '}')...)
		}
		r, err := New(Config{Salt: make([]byte, MinSaltSize), NoDefaults: true, Rules: []Rule{{Path: p}}})
		if err != nil {
			t.Fatalf("New with path %q: %v", p, err)
		}
		_, paths, err := r.JSON("t", doc)
		if err != nil || !slices.Equal(paths, []string{p}) {
			t.Fatalf("path %q on %s: redacted %q, %v", p, doc, paths, err)
		}
	})
}
