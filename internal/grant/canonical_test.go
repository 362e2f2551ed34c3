package grant_test

import (
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
)

// FuzzHostCanonical: a scope's exact host patterns, and the hosts it
// allows, are exactly the hosts policy.CanonicalHost leaves unchanged, the
// form the egress proxy asks about. grant keeps its own copy of the rule so
// that it does not depend on policy; this keeps the two in step.
func FuzzHostCanonical(f *testing.F) {
	for _, seed := range []string{
		"api.example.com", "API.example.com", "127.0.0.1", "::1", "[::1]", "host:80", "::ffff:10.0.0.1",
		"2001:DB8::1", "fe80::1%eth0", "127.1", "a.0x7f", "a.0xg", "example.com.", "-a.b", "a_b.c", "xn--bcher-kva.example",
		"bücher.example", "\u212aelvin.example", "1.2.3.4.5", "0127.0.0.1", strings.Repeat("a", 64),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, h string) {
		canon, err := policy.CanonicalHost(h)
		want := err == nil && canon == h
		if strings.HasPrefix(h, "*") {
			return // wildcard patterns: covered by the table tests
		}
		if got := (grant.Scope{Hosts: []string{h}}).Validate() == nil; got != want {
			t.Fatalf("host pattern %q valid = %v; CanonicalHost = %q, %v", h, got, canon, err)
		}
		if got := (grant.Scope{Hosts: []string{"*"}}).Allows(grant.KindHost, h); got != want {
			t.Fatalf(`"*" allows %q = %v; CanonicalHost = %q, %v`, h, got, canon, err)
		}
		if want {
			if !(grant.Scope{Hosts: []string{h}}).Allows(grant.KindHost, h) {
				t.Fatalf("host pattern %q does not allow itself", h)
			}
			if dot := strings.IndexByte(h, '.'); dot > 0 && !strings.Contains(h, ":") {
				parent := "*" + h[dot:]
				if (grant.Scope{Hosts: []string{parent}}).Validate() == nil && !(grant.Scope{Hosts: []string{parent}}).Allows(grant.KindHost, h) {
					t.Fatalf("%q does not allow %q", parent, h)
				}
			}
		}
	})
}
