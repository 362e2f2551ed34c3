package gateway

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestExposeNames(t *testing.T) {
	modes := map[string]NameMode{"a": NamesAuto, "b": NamesAuto, "k": NamesKeep, "k2": NamesKeep, "p": NamesPrefix, "fs": NamesAuto}
	items := []listed{
		{"a", "only_a"},          // unique: bare
		{"a", "search"},          // a and b (both auto): both prefixed
		{"b", "search"},          //
		{"a", "fetch"},           // a (auto) and k (keep): k keeps it
		{"k", "fetch"},           //
		{"k", "deploy"},          // k and k2 (both keep): both prefixed
		{"k2", "deploy"},         //
		{"p", "status"},          // p prefixes: a's status is the only bare one
		{"a", "status"},          //
		{"p", "solo"},            // p prefixes even when unique
		{"b", "fs.read_file"},    // looks like fs's: never bare
		{"b", "other.thing"},     // "other" is no server: bare
		{"a", "read_file"},       // unique: bare; fs.read_file above is b's, shown b.fs.read_file
		{"fs", "list_directory"}, // unique: bare
		{"a", "Lookup"},          // a and b, differing in case only: both prefixed
		{"b", "lookup"},          //
		{"a", "ｆｉｎｄ"},            // fullwidth, NFKC-equal to b's find: both prefixed
		{"b", "find"},            //
		{"fs", "Same"},           // one server, two spellings: no one to confuse them with
		{"fs", "same"},           //
	}
	want := map[string]string{
		"a.only_a":          "only_a",
		"a.search":          "a.search",
		"b.search":          "b.search",
		"a.fetch":           "a.fetch",
		"k.fetch":           "fetch",
		"k.deploy":          "k.deploy",
		"k2.deploy":         "k2.deploy",
		"p.status":          "p.status",
		"a.status":          "status",
		"p.solo":            "p.solo",
		"b.fs.read_file":    "b.fs.read_file",
		"b.other.thing":     "other.thing",
		"a.read_file":       "read_file",
		"fs.list_directory": "list_directory",
		"a.Lookup":          "a.Lookup",
		"b.lookup":          "b.lookup",
		"a.ｆｉｎｄ":            "a.ｆｉｎｄ",
		"b.find":            "b.find",
		"fs.Same":           "Same",
		"fs.same":           "same",
	}
	wantClashes := map[string]Clash{
		"deploy": {Name: "deploy", Servers: []string{"k", "k2"}, Shown: []string{"k.deploy", "k2.deploy"}},
		"fetch":  {Name: "fetch", Servers: []string{"a", "k"}, Kept: "k", Shown: []string{"a.fetch", "fetch"}},
		"search": {Name: "search", Servers: []string{"a", "b"}, Shown: []string{"a.search", "b.search"}},
		"Lookup": {Name: "Lookup", Servers: []string{"a", "b"}, Shown: []string{"a.Lookup", "b.lookup"}},
		"lookup": {Name: "lookup", Servers: []string{"a", "b"}, Shown: []string{"a.Lookup", "b.lookup"}},
		"ｆｉｎｄ":   {Name: "ｆｉｎｄ", Servers: []string{"a", "b"}, Shown: []string{"a.ｆｉｎｄ", "b.find"}},
		"find":   {Name: "find", Servers: []string{"a", "b"}, Shown: []string{"a.ｆｉｎｄ", "b.find"}},
	}
	// The names depend on the set, not on the order it was listed in.
	for round := 0; round < 20; round++ {
		rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		n := exposeNames(items, modes)
		if !reflect.DeepEqual(n.exposed, want) {
			t.Fatalf("round %d: exposed = %v\nwant %v", round, n.exposed, want)
		}
		for bare, stable := range n.bare {
			if want[stable] != bare {
				t.Fatalf("bare %q → %q, but %q is shown as %q", bare, stable, stable, want[stable])
			}
		}
		if len(n.bare) != 8 {
			t.Fatalf("bare names %v, want 8", n.bare)
		}
		if !reflect.DeepEqual(n.clashes, wantClashes) {
			t.Fatalf("clashes = %v, want %v", n.clashes, wantClashes)
		}
		if got := n.Clashes(); len(got) != 5 {
			t.Fatalf("Clashes() = %v, want one per clash (5)", got)
		}
	}
	// No exposed name is two things: bare names and SERVER.NAME never meet.
	n := exposeNames(items, modes)
	seen := map[string]string{}
	for stable, exposed := range n.exposed {
		if prev, dup := seen[exposed]; dup {
			t.Fatalf("%q names both %s and %s", exposed, prev, stable)
		}
		seen[exposed] = stable
		if _, isBare := n.bare[exposed]; !isBare && exposed != stable {
			t.Fatalf("%s shown as %q, which is neither bare nor its stable name", stable, exposed)
		}
	}
	for bare := range n.bare {
		for stable := range want {
			if bare == stable && n.bare[bare] != stable {
				t.Fatalf("bare %q is also the stable name of another tool", bare)
			}
		}
	}
}

func TestParseNameMode(t *testing.T) {
	for in, want := range map[string]NameMode{"": NamesAuto, "auto": NamesAuto, "keep": NamesKeep, "prefix": NamesPrefix} {
		if got, err := ParseNameMode(in); err != nil || got != want {
			t.Errorf("ParseNameMode(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"Keep", "PREFIX", "bare", " auto"} {
		if _, err := ParseNameMode(in); err == nil {
			t.Errorf("ParseNameMode(%q) accepted", in)
		}
	}
}
