package gateway

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"golang.org/x/text/unicode/norm"

	"github.com/ward-dev/ward/internal/strictjson"
)

// NameMode says how the names of an upstream's tools and prompts are shown
// to clients. Whatever a client sees, policies, grants, pins and the audit
// log know each tool and prompt by one stable identity, "SERVER.NAME", and
// a client may always call it by that name too.
type NameMode string

const (
	// NamesAuto (the default) shows the upstream's own name when exactly
	// one upstream that does not prefix its names offers it, and
	// "SERVER.NAME" otherwise.
	NamesAuto NameMode = "auto"
	// NamesKeep shows the upstream's own name even when an auto upstream
	// offers the same name (whose tool is then shown as "SERVER.NAME").
	// Two keep upstreams offering one name both get "SERVER.NAME".
	NamesKeep NameMode = "keep"
	// NamesPrefix always shows "SERVER.NAME" (ward's behaviour before
	// names were kept).
	NamesPrefix NameMode = "prefix"
)

// ParseNameMode reads a configured name mode; "" is NamesAuto.
func ParseNameMode(s string) (NameMode, error) {
	switch NameMode(s) {
	case "", NamesAuto:
		return NamesAuto, nil
	case NamesKeep, NamesPrefix:
		return NameMode(s), nil
	}
	return "", fmt.Errorf("names %q: want auto, keep or prefix", s)
}

// listed is one tool or prompt an upstream listed.
type listed struct {
	server string // configured server name
	name   string // the upstream's own name
}

// stable is the identity policies and the audit log use.
func (l listed) stable() string { return l.server + "." + l.name }

// Clash is a name that more than one upstream offers.
type Clash struct {
	Name    string   // the upstreams' own name (one of them, if they differ in case or form)
	Servers []string // the servers offering it, sorted
	Kept    string   // the server whose tools keep their own name, if any
	Shown   []string // what clients are shown for each, sorted
}

func (c Clash) String() string {
	if c.Kept != "" {
		return fmt.Sprintf("%q is offered by %s: %s keeps its name (names: keep); clients are shown %s",
			c.Name, strings.Join(c.Servers, ", "), c.Kept, strings.Join(c.Shown, ", "))
	}
	return fmt.Sprintf("%q is offered by %s: clients are shown %s", c.Name, strings.Join(c.Servers, ", "), strings.Join(c.Shown, ", "))
}

// naming is the exposed-name table of one kind (tools or prompts).
type naming struct {
	exposed map[string]string // stable name → exposed name
	bare    map[string]string // exposed bare name → stable name
	clashes map[string]Clash  // upstream name → its clash
}

// exposeNames decides the exposed name of every listed item. It depends on
// the set of items only (not on their order or on who may see them), so
// every session that knows the same lists shows the same names. A bare name
// is never one that looks like another's "SERVER.NAME": an upstream name
// "fs.read_file" is shown as "x.fs.read_file" if server x offers it and fs
// is configured, so no upstream can take a name another server's tools are
// called by.
func exposeNames(items []listed, modes map[string]NameMode) naming {
	// Names that differ only in case or Unicode compatibility form
	// ("Search", "search", "ｓｅａｒｃｈ") are one name here: offered by two
	// servers, a client (or a model) could take one for the other.
	byName := map[string][]listed{}
	for _, it := range items {
		k := nameKey(it.name)
		byName[k] = append(byName[k], it)
	}
	n := naming{exposed: map[string]string{}, bare: map[string]string{}, clashes: map[string]Clash{}}
	for _, group := range byName {
		keep, auto := map[string]bool{}, map[string]bool{}
		var servers []string
		for _, it := range group {
			switch modes[it.server] {
			case NamesPrefix:
			case NamesKeep:
				keep[it.server] = true
			default:
				auto[it.server] = true
			}
			if !slices.Contains(servers, it.server) {
				servers = append(servers, it.server)
			}
		}
		winner := ""
		switch {
		case len(keep) == 1:
			for s := range keep {
				winner = s
			}
		case len(keep) == 0 && len(auto) == 1:
			for s := range auto {
				winner = s
			}
		}
		for _, it := range group {
			if it.server == winner && !looksPrefixed(it.name, modes) {
				n.exposed[it.stable()] = it.name
				n.bare[it.name] = it.stable()
			} else {
				n.exposed[it.stable()] = it.stable()
			}
		}
		if len(keep)+len(auto) > 1 {
			sort.Strings(servers)
			var shown []string
			for _, it := range group {
				shown = append(shown, n.exposed[it.stable()])
			}
			sort.Strings(shown)
			for _, it := range group {
				n.clashes[it.name] = Clash{Name: it.name, Servers: servers, Kept: winner, Shown: shown}
			}
		}
	}
	return n
}

// nameKey is what two names must share to be taken for one another:
// their compatibility form (NFKC) under Unicode case folding.
func nameKey(name string) string { return strictjson.Fold(norm.NFKC.String(name)) }

// looksPrefixed reports whether name reads as "SERVER.NAME" for a
// configured server.
func looksPrefixed(name string, modes map[string]NameMode) bool {
	server, rest, ok := strings.Cut(name, ".")
	if !ok || rest == "" {
		return false
	}
	_, configured := modes[server]
	return configured
}

// Clashes lists the names of items that more than one upstream offers, as
// exposeNames resolves them, sorted by name: one per clash.
func (n naming) Clashes() []Clash {
	out := make([]Clash, 0, len(n.clashes))
	seen := map[string]bool{}
	for _, c := range n.clashes {
		if k := strings.Join(c.Shown, "\x00"); !seen[k] {
			seen[k] = true
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
