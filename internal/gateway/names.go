package gateway

import (
	"fmt"
	"sort"
	"strings"
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
	Name    string   // the upstreams' own name
	Servers []string // the servers offering it, sorted
	Kept    string   // the server shown under the bare name, if any
}

func (c Clash) String() string {
	var shown []string
	for _, s := range c.Servers {
		if s != c.Kept {
			shown = append(shown, s+"."+c.Name)
		}
	}
	if c.Kept != "" {
		return fmt.Sprintf("%q is offered by %s: %s's is shown as %q (names: keep), the others as %s",
			c.Name, strings.Join(c.Servers, ", "), c.Kept, c.Name, strings.Join(shown, ", "))
	}
	return fmt.Sprintf("%q is offered by %s: shown as %s", c.Name, strings.Join(c.Servers, ", "), strings.Join(shown, ", "))
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
	byName := map[string][]listed{}
	for _, it := range items {
		byName[it.name] = append(byName[it.name], it)
	}
	n := naming{exposed: map[string]string{}, bare: map[string]string{}, clashes: map[string]Clash{}}
	for name, group := range byName {
		var keep, auto []listed
		for _, it := range group {
			switch modes[it.server] {
			case NamesPrefix:
			case NamesKeep:
				keep = append(keep, it)
			default:
				auto = append(auto, it)
			}
		}
		var winner *listed
		switch {
		case looksPrefixed(name, modes):
		case len(keep) == 1:
			winner = &keep[0]
		case len(keep) == 0 && len(auto) == 1:
			winner = &auto[0]
		}
		for _, it := range group {
			if winner != nil && it == *winner {
				n.exposed[it.stable()] = name
				n.bare[name] = it.stable()
			} else {
				n.exposed[it.stable()] = it.stable()
			}
		}
		if len(keep)+len(auto) > 1 {
			c := Clash{Name: name}
			for _, it := range group {
				c.Servers = append(c.Servers, it.server)
			}
			sort.Strings(c.Servers)
			if winner != nil {
				c.Kept = winner.server
			}
			n.clashes[name] = c
		}
	}
	return n
}

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
// exposeNames resolves them, sorted by name.
func (n naming) Clashes() []Clash {
	out := make([]Clash, 0, len(n.clashes))
	for _, c := range n.clashes {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
