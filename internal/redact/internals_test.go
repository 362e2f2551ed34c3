package redact

import (
	"strings"
	"testing"
)

func TestInternals(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"claim node n1: connect: failed to connect to `user=postgres database=test`: 127.0.0.1:35605 (127.0.0.1): failed to receive message: read tcp 127.0.0.1:40674->127.0.0.1:35605: read: connection reset by peer",
			"claim node n1: connect: failed to connect to the database: failed to receive message: read tcp: read: connection reset by peer"},
		{"get session: dial tcp 10.1.2.3:5432: connect: connection refused", "get session: dial tcp: connect: connection refused"},
		{"dial tcp [::1]:5432: connect: connection refused", "dial tcp: connect: connection refused"},
		{"dial unix /var/run/postgresql/.s.PGSQL.5432: connect: no such file", "dial unix: connect: no such file"},
		{"lookup db.internal on 10.0.0.2:53: no such host", "lookup: no such host"},
		{"open postgres://ward:s3cret@db.internal:5432/ward?sslmode=require failed", "open postgres://… failed"},
		{"cannot parse `host=db.internal user=ward password=s3cret dbname=ward`", "cannot parse `host=… user=… password=… dbname=…`"},
		{"session s1 is not active", "session s1 is not active"},
		{"the node cannot confirm that it knows the revocations made on other nodes (it last reached the store 1.2s ago, the bound is 1s)",
			"the node cannot confirm that it knows the revocations made on other nodes (it last reached the store 1.2s ago, the bound is 1s)"},
	} {
		if got := Internals(c.in); got != c.want {
			t.Errorf("Internals(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}

// FuzzInternals: scrubbing is idempotent, and the address in a dial error
// never survives, whatever it is.
func FuzzInternals(f *testing.F) {
	f.Add("failed to connect to `user=postgres database=test`: 127.0.0.1:5432 (127.0.0.1): x")
	f.Add("dial tcp 10.0.0.1:5432: refused")
	f.Add("plain text")
	f.Fuzz(func(t *testing.T, s string) {
		out := Internals(s)
		if Internals(out) != out {
			t.Fatalf("not idempotent: %q → %q → %q", s, out, Internals(out))
		}
		// An address in a dial error never survives.
		if host := strings.Map(func(r rune) rune {
			if r == ' ' || r == ':' || r == '[' || r == ']' || r == '`' || r == '-' || r == '>' {
				return -1
			}
			return r
		}, s); host != "" {
			msg := "get session: dial tcp " + host + ":5432: connect: refused"
			if out := Internals(msg); strings.Contains(out, host+":5432") {
				t.Fatalf("%q kept the address: %q", msg, out)
			}
		}
	})
}
