package grant

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestScopeValidate(t *testing.T) {
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	tests := []struct {
		name string
		s    Scope
		ok   bool
	}{
		{"empty", Scope{}, true},
		{"exact and prefixes", Scope{Tools: []string{"fs.read_file", "fs.read_*", "fs.*", "*", "a/b-c_d.e"}}, true},
		{"resource uri", Scope{Resources: []string{"file:///data/*", "https://x.example/a?b=c#d", "db://customers/42"}}, true},
		{"prompts", Scope{Prompts: []string{"summarize", "review.*"}}, true},
		{"max patterns", Scope{Tools: many[:MaxPatterns]}, true},
		{"max length", Scope{Tools: []string{strings.Repeat("a", MaxPatternLen)}}, true},
		{"too many", Scope{Tools: many}, false},
		{"too long", Scope{Resources: []string{strings.Repeat("a", MaxPatternLen+1)}}, false},
		{"empty pattern", Scope{Tools: []string{""}}, false},
		{"inner star", Scope{Tools: []string{"fs.*_file"}}, false},
		{"double star", Scope{Tools: []string{"**"}}, false},
		{"leading star", Scope{Prompts: []string{"*.x"}}, false},
		{"space in tool", Scope{Tools: []string{"fs read"}}, false},
		{"colon in tool", Scope{Tools: []string{"fs:read"}}, false},
		{"unicode in tool", Scope{Tools: []string{"fs.réad"}}, false},
		{"space in resource", Scope{Resources: []string{"file:///a b"}}, false},
		{"inner star in resource", Scope{Resources: []string{"file:///*/x"}}, false},
		{"control in resource", Scope{Resources: []string{"file:///a\x00"}}, false},
		{"non-ascii resource", Scope{Resources: []string{"file:///é"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.s.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestScopeAllows(t *testing.T) {
	s := Scope{
		Tools:     []string{"fs.read_*", "db.query", "git/*"},
		Resources: []string{"file:///data/*", "db://customers"},
		Prompts:   []string{"*"},
	}
	tests := []struct {
		kind Kind
		name string
		want bool
	}{
		{KindTool, "fs.read_file", true},
		{KindTool, "fs.read_", true},
		{KindTool, "fs.read", false},
		{KindTool, "fs.write_file", false},
		{KindTool, "db.query", true},
		{KindTool, "db.query2", false},
		{KindTool, "db.quer", false},
		{KindTool, "git/log", true},
		{KindTool, "", false},
		{KindTool, "fs.read_*", false}, // '*' is not a tool name character
		{KindTool, "fs.read_ file", false},
		{KindResource, "file:///data/q1.csv", true},
		{KindResource, "file:///data", false},
		{KindResource, "file:///etc/passwd", false},
		{KindResource, "db://customers", true},
		{KindResource, "db://customers/1", false},
		{KindResource, "file:///data/a b", false},
		{KindPrompt, "anything.at/all", true},
		{KindPrompt, "", false},
		{KindPrompt, "with space", false},
		{Kind(7), "fs.read_file", false},
	}
	for _, tt := range tests {
		if got := s.Allows(tt.kind, tt.name); got != tt.want {
			t.Errorf("Allows(%s, %q) = %v, want %v", tt.kind, tt.name, got, tt.want)
		}
	}
	for _, p := range []string{"x*y", "x*y*", "**"} {
		if (Scope{Resources: []string{p}}).Allows(KindResource, "x*yz") {
			t.Errorf("malformed pattern %q allows", p)
		}
	}
	if !(Scope{Resources: []string{"x*"}}).Allows(KindResource, "x*yz") {
		t.Error("prefix pattern does not allow a resource containing '*'")
	}
	if (Scope{}).Allows(KindTool, "x") {
		t.Error("empty scope allows")
	}
	if (Scope{Tools: []string{"*"}}).Allows(KindResource, "file:///x") {
		t.Error("tool pattern allows a resource")
	}
}

func TestScopeCovers(t *testing.T) {
	tests := []struct {
		parent, child string // tool patterns, comma-separated
		want          bool
	}{
		{"fs.*", "fs.read_*", true},
		{"fs.*", "fs.x", true},
		{"fs.*", "fs.*", true},
		{"fs.*", "fs.", true},
		{"fs.*", "fs", false},
		{"fs.*", "fsx.read", false},
		{"fs.read*", "fs.*", false},
		{"fs.read_*", "fs.read*", false},
		{"*", "fs.read_file", true},
		{"*", "fs.*", true},
		{"*", "*", true},
		{"fs.*", "*", false},
		{"fs.a", "fs.a", true},
		{"fs.a", "fs.a*", false},
		{"fs.a", "fs.ab", false},
		{"fs.a*", "fs.a", true},
		{"fs.a*", "fs.ab*", true},
		{"fs.read_file", "fs.write_file", false},
		{"", "", true},
		{"fs.*", "", true},
		{"", "fs.read", false},
		{"db.query,fs.*", "fs.read,db.query", true},
		{"db.query,fs.*", "fs.read,db.*", false},
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	for _, tt := range tests {
		t.Run(tt.parent+"⊇"+tt.child, func(t *testing.T) {
			p, c := Scope{Tools: split(tt.parent)}, Scope{Tools: split(tt.child)}
			err := p.Covers(c)
			if (err == nil) != tt.want {
				t.Fatalf("Covers = %v, want covered=%v", err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrWiden) {
				t.Errorf("Covers error %v does not wrap ErrWiden", err)
			}
		})
	}

	// Kinds are separate; the error names the first uncovered pattern.
	parent := Scope{Tools: []string{"fs.read_*"}, Resources: []string{"file:///data/*"}}
	err := parent.Covers(Scope{Tools: []string{"fs.read_file", "fs.write_file"}})
	if want := `scope widens parent: tool pattern "fs.write_file" not covered by parent`; err == nil || err.Error() != want || !errors.Is(err, ErrWiden) {
		t.Errorf("Covers = %v, want %q", err, want)
	}
	var we *WidenError
	if !errors.As(err, &we) || we.Kind != KindTool || we.Pattern != "fs.write_file" {
		t.Errorf("Covers = %#v, want a *WidenError naming the tool pattern", err)
	}
	err = parent.Covers(Scope{Tools: []string{"fs.read_file"}, Resources: []string{"file:///etc/*"}})
	if want := `resource pattern "file:///etc/*" not covered`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Covers = %v, want it to say %q", err, want)
	}
	if err := parent.Covers(Scope{Prompts: []string{"x"}}); !errors.Is(err, ErrWiden) {
		t.Errorf("prompt with no parent prompts: Covers = %v", err)
	}
	if err := parent.Covers(Scope{Tools: []string{"fs.*x"}}); err == nil || errors.Is(err, ErrWiden) {
		t.Errorf("malformed child: Covers = %v, want a non-ErrWiden error", err)
	}
}

// randomName draws a name from a small alphabet, so that prefixes collide
// often.
func randomName(r *rand.Rand) string {
	const alpha = "ab._"
	b := make([]byte, 1+r.IntN(5))
	for i := range b {
		b[i] = alpha[r.IntN(len(alpha))]
	}
	return string(b)
}

func randomScope(r *rand.Rand) Scope {
	var s Scope
	for range r.IntN(4) {
		p := randomName(r)
		if r.IntN(2) == 0 {
			p = p[:r.IntN(len(p)+1)] + "*"
		}
		s.Tools = append(s.Tools, p)
	}
	return s
}

// TestScopeIntersect checks on random scopes that Intersect allows exactly
// what both sides allow, and that Covers agrees with Allows.
func TestScopeIntersect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a, b := randomScope(r), randomScope(r)
		in := a.Intersect(b)
		if err := in.Validate(); err != nil {
			t.Fatalf("%v ∩ %v = %v: %v", a, b, in, err)
		}
		if err := a.Covers(in); err != nil {
			t.Fatalf("%v does not cover %v ∩ %v = %v", a, a, b, in)
		}
		if err := b.Covers(in); err != nil {
			t.Fatalf("%v does not cover %v ∩ %v = %v", b, a, b, in)
		}
		for range 20 {
			n := randomName(r)
			if got, want := in.Allows(KindTool, n), a.Allows(KindTool, n) && b.Allows(KindTool, n); got != want {
				t.Fatalf("(%v ∩ %v = %v).Allows(%q) = %v, want %v", a.Tools, b.Tools, in.Tools, n, got, want)
			}
			if a.Covers(b) == nil && b.Allows(KindTool, n) && !a.Allows(KindTool, n) {
				t.Fatalf("%v covers %v but only the latter allows %q", a.Tools, b.Tools, n)
			}
		}
	}
	got := Scope{Tools: []string{"fs.*", "db.query"}}.Intersect(Scope{Tools: []string{"fs.read_*", "db.*", "net.*"}})
	if want := []string{"db.query", "fs.read_*"}; fmt.Sprint(got.Tools) != fmt.Sprint(want) {
		t.Errorf("Intersect = %v, want %v", got.Tools, want)
	}
}

func TestScopeValidateHosts(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
	}{
		{"api.example.com", true},
		{"*", true},
		{"*.example.com", true},
		{"*.com", true},
		{"localhost", true},
		{"under_score.example", true},
		{"xn--bcher-kva.example", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"2001:db8::1", true},
		{strings.Repeat("a", 63) + ".example", true},
		{"API.example.com", false},  // not lowercase
		{"exa mple.com", false},     // space
		{"*.", false},               // no name after "*."
		{"a*.b", false},             // '*' inside a label
		{"*a.b", false},             // '*' not followed by '.'
		{"*.*.example.com", false},  // one wildcard, leading only
		{"api.*", false},            // prefix patterns are not host patterns
		{"**", false},               //
		{"*.10.0.0.1", false},       // no wildcard over addresses
		{"[::1]", false},            // brackets
		{"host:80", false},          // port
		{"127.0.0.1:80", false},     // port
		{"example.com.", false},     // trailing dot
		{".example.com", false},     // empty label
		{"a..b", false},             // empty label
		{"-a.example", false},       // label starting with '-'
		{"a-.example", false},       // label ending with '-'
		{"127.1", false},            // numeric last label: read as IPv4
		{"a.0x7f", false},           // hex last label
		{"::ffff:127.0.0.1", false}, // IPv4-mapped: canonical is 127.0.0.1
		{"2001:DB8::1", false},      // IPv6 in uppercase
		{"2001:db8:0::1", false},    // IPv6 not in canonical form
		{"fe80::1%eth0", false},     // zone
		{"0127.0.0.1", false},       // leading zero
		{"bücher.example", false},   // not in xn-- form
		{strings.Repeat("a", 64) + ".example", false},
		{strings.Repeat("a.", 127) + "ab", false}, // 255 bytes
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			err := Scope{Hosts: []string{tt.pattern}}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "host pattern") {
				t.Errorf("Validate = %v, want it to name the host pattern", err)
			}
			if tt.ok {
				return
			}
			// A malformed pattern allows nothing, not even itself.
			for _, name := range []string{tt.pattern, "10.0.0.1", "a.b", "api.example.com", "x.example.com"} {
				if (Scope{Hosts: []string{tt.pattern}}).Allows(KindHost, name) {
					t.Errorf("malformed pattern allows %q", name)
				}
			}
		})
	}
}

func TestScopeAllowsHosts(t *testing.T) {
	s := Scope{Hosts: []string{"api.example.com", "*.cdn.example.com", "10.0.0.7", "::1"}}
	tests := []struct {
		host string
		want bool
	}{
		{"api.example.com", true},
		{"img.cdn.example.com", true},
		{"a.b.cdn.example.com", true},
		{"cdn.example.com", false}, // "*." is below the name, not the name
		{"xcdn.example.com", false},
		{"example.com", false},
		{"www.example.com", false},
		{"api.example.com.evil", false},
		{"10.0.0.7", true},
		{"10.0.0.8", false},
		{"::1", true},
		{"API.example.com", false}, // only canonical hosts are ever allowed
		{"[::1]", false},
		{"api.example.com:443", false},
		{"api.example.com.", false},
		{"::ffff:10.0.0.7", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := s.Allows(KindHost, tt.host); got != tt.want {
			t.Errorf("Allows(host, %q) = %v, want %v", tt.host, got, tt.want)
		}
	}
	any := Scope{Hosts: []string{"*"}}
	for _, h := range []string{"example.com", "127.0.0.1", "2001:db8::1", "a.b.c"} {
		if !any.Allows(KindHost, h) {
			t.Errorf(`"*" does not allow %q`, h)
		}
	}
	for _, h := range []string{"Example.com", "[::1]", "a b", "*"} {
		if any.Allows(KindHost, h) {
			t.Errorf(`"*" allows the malformed host %q`, h)
		}
	}
	if (Scope{Tools: []string{"*"}, Resources: []string{"*"}, Prompts: []string{"*"}}).Allows(KindHost, "example.com") {
		t.Error("a scope without hosts allows a host")
	}
	if (Scope{Hosts: []string{"*"}}).Allows(KindTool, "example.com") {
		t.Error("a host pattern allows a tool")
	}
	// A malformed "*." pattern over address labels must not match an
	// address that happens to end the same way.
	for _, p := range []string{"*.0.1", "*.1", "*.0.0.1"} {
		if (Scope{Hosts: []string{p}}).Allows(KindHost, "10.0.0.1") {
			t.Errorf("malformed pattern %q allows 10.0.0.1", p)
		}
	}
}

func TestScopeCoversHosts(t *testing.T) {
	tests := []struct {
		parent, child string // host patterns, comma-separated
		want          bool
	}{
		{"*", "*", true},
		{"*", "*.example.com", true},
		{"*", "api.example.com", true},
		{"*", "127.0.0.1", true},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "*.x.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.example.com", "*.badexample.com", false},
		{"*.example.com", "*.com", false},
		{"*.example.com", "*", false},
		{"*.x.example.com", "*.example.com", false},
		{"*.x.example.com", "y.example.com", false},
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "*.example.com", false},
		{"api.example.com", "*.api.example.com", false},
		{"api.example.com", "*", false},
		{"api.example.com", "v2.api.example.com", false},
		{"example.com", "*.example.com", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"", "", true},
		{"", "a.example", false},
		{"a.example,*.b.example", "x.b.example,a.example", true},
		{"a.example,*.b.example", "x.b.example,*.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.parent+"⊇"+tt.child, func(t *testing.T) {
			p, c := Scope{Hosts: splitPatterns(tt.parent)}, Scope{Hosts: splitPatterns(tt.child)}
			err := p.Covers(c)
			if (err == nil) != tt.want {
				t.Fatalf("Covers = %v, want covered=%v", err, tt.want)
			}
			var we *WidenError
			if err != nil && (!errors.As(err, &we) || we.Kind != KindHost) {
				t.Errorf("Covers error %#v is not a host *WidenError", err)
			}
		})
	}
	if err := (Scope{Hosts: []string{"*"}}).Covers(Scope{Hosts: []string{"[::1]"}}); err == nil || errors.Is(err, ErrWiden) {
		t.Errorf("malformed child host: Covers = %v, want a non-ErrWiden error", err)
	}
	// Hosts are a kind of their own: other kinds' "*" does not cover them.
	err := allButHosts().Covers(Scope{Hosts: []string{"example.com"}})
	if want := `scope widens parent: host pattern "example.com" not covered by parent`; err == nil || err.Error() != want {
		t.Errorf("Covers = %v, want %q", err, want)
	}
}

// allButHosts is "*" for every kind but hosts, like ward's admin ceiling.
func allButHosts() Scope {
	return Scope{Tools: []string{"*"}, Resources: []string{"*"}, Prompts: []string{"*"}}
}

// randomHost draws a host or host pattern from a small set of labels, so
// that suffixes collide often.
func randomHost(r *rand.Rand, pattern bool) string {
	labels := []string{"a", "b", "ab"}
	n := 1 + r.IntN(3)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = labels[r.IntN(len(labels))]
	}
	h := strings.Join(parts, ".")
	switch {
	case !pattern:
		if r.IntN(8) == 0 {
			return "10.0.0." + fmt.Sprint(r.IntN(3))
		}
	case r.IntN(8) == 0:
		return "*"
	case r.IntN(2) == 0:
		return "*." + h
	}
	return h
}

// TestScopeIntersectHosts checks on random host lists that Intersect allows
// exactly what both sides allow, and that Covers agrees with Allows.
func TestScopeIntersectHosts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	random := func() Scope {
		var s Scope
		for range r.IntN(4) {
			s.Hosts = append(s.Hosts, randomHost(r, true))
		}
		return s
	}
	for range 2000 {
		a, b := random(), random()
		in := a.Intersect(b)
		if err := in.Validate(); err != nil {
			t.Fatalf("%v ∩ %v = %v: %v", a, b, in, err)
		}
		if a.Covers(in) != nil || b.Covers(in) != nil {
			t.Fatalf("%v ∩ %v = %v is not covered by both", a.Hosts, b.Hosts, in.Hosts)
		}
		for range 20 {
			h := randomHost(r, false)
			if got, want := in.Allows(KindHost, h), a.Allows(KindHost, h) && b.Allows(KindHost, h); got != want {
				t.Fatalf("(%v ∩ %v = %v).Allows(%q) = %v, want %v", a.Hosts, b.Hosts, in.Hosts, h, got, want)
			}
			if a.Covers(b) == nil && b.Allows(KindHost, h) && !a.Allows(KindHost, h) {
				t.Fatalf("%v covers %v but only the latter allows %q", a.Hosts, b.Hosts, h)
			}
		}
	}
	got := Scope{Hosts: []string{"*.example.com", "10.0.0.1"}}.Intersect(Scope{Hosts: []string{"api.example.com", "*.x.example.com", "example.com"}})
	if want := []string{"*.x.example.com", "api.example.com"}; fmt.Sprint(got.Hosts) != fmt.Sprint(want) {
		t.Errorf("Intersect = %v, want %v", got.Hosts, want)
	}
}
