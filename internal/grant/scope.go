package grant

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

const (
	// MaxPatterns is the most patterns a Scope may hold per kind.
	MaxPatterns = 256
	// MaxPatternLen is the longest pattern, in bytes, a Scope accepts.
	MaxPatternLen = 512
)

// Kind says which list of a Scope a name is checked against.
type Kind int

// The kinds of thing a grant can reach.
const (
	KindTool Kind = iota
	KindResource
	KindPrompt
	KindHost // HTTP destinations, decided by the egress proxy

	lastKind = KindHost // loops over every kind run KindTool..lastKind
)

// String returns "tool", "resource", "prompt" or "host".
func (k Kind) String() string {
	switch k {
	case KindTool:
		return "tool"
	case KindResource:
		return "resource"
	case KindPrompt:
		return "prompt"
	case KindHost:
		return "host"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Scope is what a grant lets a session reach, one list of patterns per kind.
//
// A pattern is either an exact name or a prefix followed by a single trailing
// '*' that matches every name starting with the prefix: "fs.read_file",
// "fs.read_*", "fs.*" and "*" are patterns; "fs.*_file" and "**" are not.
// Tool and prompt names and patterns use the characters [A-Za-z0-9_./-];
// resource names and patterns are URIs of printable ASCII characters other
// than space, '*' appearing in a resource pattern only as its last byte.
//
// Hosts are the HTTP destinations the egress proxy lets the session reach,
// matched against the host of each request in the form
// policy.CanonicalHost writes it: a lowercase DNS name without a trailing
// dot, or an IP address in canonical form (IPv6 without brackets, an
// IPv4-mapped address as IPv4), never a port. A host pattern is an exact
// host ("api.example.com", "10.0.0.7", "::1"), "*" (any host), or "*." and
// a DNS name ("*.example.com"), which matches every name below that name at
// any depth but not the name itself. Host patterns are therefore suffix
// patterns, not prefix patterns: "api.*", "*example.com" and "*.10.0.0.7"
// are not host patterns.
//
// An empty list allows nothing of that kind: a scope without Hosts reaches
// no HTTP destination at all.
type Scope struct {
	Tools     []string `json:"tools,omitempty"`
	Resources []string `json:"resources,omitempty"`
	Prompts   []string `json:"prompts,omitempty"`
	Hosts     []string `json:"hosts,omitempty"`
}

// list returns the patterns of kind k, or nil for an unknown kind.
func (s Scope) list(k Kind) []string {
	switch k {
	case KindTool:
		return s.Tools
	case KindResource:
		return s.Resources
	case KindPrompt:
		return s.Prompts
	case KindHost:
		return s.Hosts
	}
	return nil
}

// IsZero reports whether s has no pattern of any kind. Narrow reads a zero
// requested Scope as "the same as the parent's".
func (s Scope) IsZero() bool {
	return len(s.Tools) == 0 && len(s.Resources) == 0 && len(s.Prompts) == 0 && len(s.Hosts) == 0
}

// Validate reports the first malformed pattern of s, or nil.
func (s Scope) Validate() error {
	for k := KindTool; k <= lastKind; k++ {
		l := s.list(k)
		if len(l) > MaxPatterns {
			return fmt.Errorf("scope: %d %s patterns, more than %d", len(l), k, MaxPatterns)
		}
		for _, p := range l {
			if err := validPattern(k, p); err != nil {
				return fmt.Errorf("scope: %w", err)
			}
		}
	}
	return nil
}

// validPattern checks one pattern of kind k.
func validPattern(k Kind, p string) error {
	if p == "" {
		return fmt.Errorf("empty %s pattern", k)
	}
	if len(p) > MaxPatternLen {
		return fmt.Errorf("%s pattern of %d bytes, more than %d", k, len(p), MaxPatternLen)
	}
	if k == KindHost {
		return validHostPattern(p)
	}
	body := strings.TrimSuffix(p, "*")
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '*' {
			return fmt.Errorf("%s pattern %.64q: '*' allowed only as the last character", k, p)
		}
		if !nameByte(k, c) {
			return fmt.Errorf("%s pattern %.64q: character %q not allowed", k, p, c)
		}
	}
	return nil
}

// nameByte reports whether c may appear in a name of kind k.
func nameByte(k Kind, c byte) bool {
	if k == KindResource {
		return c > ' ' && c < 0x7f
	}
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '_', c == '.', c == '/', c == '-':
		return true
	}
	return false
}

// validName reports whether name is a well-formed name of kind k. Only
// well-formed names are ever allowed.
func validName(k Kind, name string) bool {
	if name == "" || len(name) > MaxPatternLen {
		return false
	}
	if k == KindHost {
		return validHost(name)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(k, name[i]) {
			return false
		}
	}
	return true
}

// Allows reports whether some pattern of kind k in s matches name. Names that
// are empty, longer than MaxPatternLen or use characters outside their kind's
// alphabet are never allowed, and malformed patterns allow nothing. A tool
// name containing '*' is therefore never allowed; a resource URI containing
// '*' can only be matched by a prefix pattern. A host is allowed only in
// the canonical form described at Scope: "API.example.com", "[::1]" and
// "example.com:443" never are.
func (s Scope) Allows(k Kind, name string) bool {
	if !validName(k, name) {
		return false
	}
	for _, p := range s.list(k) {
		if matches(k, p, name) {
			return true
		}
	}
	return false
}

// matches reports whether pattern p of kind k matches name. A pattern with
// a '*' anywhere but at its end is malformed and matches nothing; other
// malformed patterns cannot match a well-formed name.
func matches(k Kind, p, name string) bool {
	if k == KindHost {
		return matchesHost(p, name)
	}
	prefix, wild := strings.CutSuffix(p, "*")
	if strings.IndexByte(prefix, '*') >= 0 {
		return false
	}
	if wild {
		return strings.HasPrefix(name, prefix)
	}
	return p == name
}

// covers reports whether every name matched by pattern c of kind k is
// matched by p. Both must be well-formed.
func covers(k Kind, p, c string) bool {
	if k == KindHost {
		return coversHost(p, c)
	}
	pp, pWild := strings.CutSuffix(p, "*")
	if !pWild {
		return p == c // an exact pattern covers only itself
	}
	// Whether c is exact or a prefix pattern, everything it matches starts
	// with c minus its '*'.
	return strings.HasPrefix(strings.TrimSuffix(c, "*"), pp)
}

// WidenError is the error Covers returns for a pattern the parent does not
// cover. It wraps ErrWiden.
type WidenError struct {
	Kind    Kind   // kind of the uncovered pattern
	Pattern string // the first uncovered pattern
}

// Error returns, e.g., `scope widens parent: tool pattern "fs.write_file"
// not covered by parent`.
func (e *WidenError) Error() string {
	return fmt.Sprintf("scope widens parent: %s pattern %q not covered by parent", e.Kind, e.Pattern)
}

// Unwrap returns ErrWiden.
func (e *WidenError) Unwrap() error { return ErrWiden }

// Covers returns nil if every pattern of child is covered by some pattern of
// the same kind in s, that is if child allows nothing s does not. Otherwise it
// returns a *WidenError, which wraps ErrWiden, naming the first uncovered
// pattern and its kind. A malformed s or child is reported as such, not as ErrWiden.
func (s Scope) Covers(child Scope) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("parent %w", err)
	}
	if err := child.Validate(); err != nil {
		return err
	}
	for k := KindTool; k <= lastKind; k++ {
		parent := s.list(k)
		for _, c := range child.list(k) {
			if !slices.ContainsFunc(parent, func(p string) bool { return covers(k, p, c) }) {
				return &WidenError{Kind: k, Pattern: c}
			}
		}
	}
	return nil
}

// Intersect returns the scope allowing exactly the names both s and ceiling
// allow. Two patterns that match a common name are nested, so the result is
// the patterns of either side that the other side covers, without patterns
// covered by another pattern of the result. Malformed patterns on either side
// are dropped. The result may hold up to 2×MaxPatterns patterns per kind.
func (s Scope) Intersect(ceiling Scope) Scope {
	return Scope{
		Tools:     intersect(KindTool, s.Tools, ceiling.Tools),
		Resources: intersect(KindResource, s.Resources, ceiling.Resources),
		Prompts:   intersect(KindPrompt, s.Prompts, ceiling.Prompts),
		Hosts:     intersect(KindHost, s.Hosts, ceiling.Hosts),
	}
}

func intersect(k Kind, a, b []string) []string {
	valid := func(p string) bool { return validPattern(k, p) == nil }
	var cand []string
	add := func(from, other []string) {
		for _, p := range from {
			if valid(p) && slices.ContainsFunc(other, func(o string) bool { return valid(o) && covers(k, o, p) }) {
				cand = append(cand, p)
			}
		}
	}
	add(a, b)
	add(b, a)
	slices.Sort(cand)
	cand = slices.Compact(cand)
	var out []string
	for i, p := range cand {
		redundant := false
		for j, q := range cand {
			if i != j && covers(k, q, p) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, p)
		}
	}
	return out
}

// validHostPattern checks a host pattern: "*", "*." and a DNS name, or a
// host.
func validHostPattern(p string) error {
	if p == "*" {
		return nil
	}
	if name, ok := strings.CutPrefix(p, "*."); ok {
		if !validDNSName(name) {
			return fmt.Errorf(`host pattern %.64q: "*." must be followed by a lowercase DNS name`, p)
		}
		return nil
	}
	if !validHost(p) {
		return fmt.Errorf(`host pattern %.64q: not a lowercase DNS name, a canonical IP address without brackets or port, "*" or "*.NAME"`, p)
	}
	return nil
}

// validHost reports whether h is a host in the form policy.CanonicalHost
// returns: a canonical IP address without zone, or a DNS name as
// validDNSName accepts it.
func validHost(h string) bool {
	if validDNSName(h) { // never an address: its last label is no number
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Zone() == "" && a.Unmap().String() == h
}

// validDNSName reports whether name is a DNS name as policy.CanonicalHost
// writes it: at most 253 bytes of labels of 1 to 63 bytes from [a-z0-9_-]
// that neither start nor end with '-', separated by '.', no trailing dot,
// and a last label that is not a number (decimal, or hex after "0x"),
// which resolvers may read as part of an IPv4 address.
func validDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	var last string
	for l := range strings.SplitSeq(name, ".") {
		last = l
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	hex, isHex := strings.CutPrefix(last, "0x")
	return strings.Trim(last, "0123456789") != "" && !(isHex && strings.Trim(hex, "0123456789abcdef") == "")
}

// matchesHost reports whether host pattern p matches host, a valid host.
// A malformed pattern matches nothing.
func matchesHost(p, host string) bool {
	if p == "*" {
		return true
	}
	if dotName, ok := strings.CutPrefix(p, "*"); ok && strings.HasPrefix(dotName, ".") {
		// The name after "*." must itself be valid: "*.0.1" would
		// otherwise match the address 10.0.0.1.
		return len(host) > len(dotName) && strings.HasSuffix(host, dotName) && validDNSName(dotName[1:])
	}
	return p == host
}

// coversHost reports whether every host matched by host pattern c is
// matched by p: "*" covers everything; "*.example.com" covers the names
// below example.com and the patterns "*.example.com" and "*.x.example.com";
// an exact host covers only itself.
func coversHost(p, c string) bool {
	if p == "*" {
		return true
	}
	dotName, ok := strings.CutPrefix(p, "*")
	if !ok {
		return p == c
	}
	if c == "*" {
		return false
	}
	// An exact host or a "*." pattern: either way what it matches ends
	// with c minus its leading '*', which must end with p's ".NAME".
	return strings.HasSuffix(strings.TrimPrefix(c, "*"), dotName)
}
