package policytest

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ward-dev/ward/internal/policy"
)

// FuzzLoad checks that arbitrary input never panics and that every file
// that loads holds only well-formed cases: a valid expectation, a unique
// name, and a request that Decide never refuses as invalid.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/pass.yaml", "testdata/fail.yaml", "testdata/cases.yaml", "testdata/failing.yaml", "testdata/egress.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"cases: [{name: a, agent: a, call: fs.x, expect: deny}]",
		"defaults: {agent: b, groups: [g], depth: 2, trust: 0}\ncases:\n  - {name: r, resource: \"file:///x\", server: s, expect: allow}\n",
		"cases: [{name: a, agent: a, prompt: s.p, expect: escalate, approvals: [\"2 of group:a, group:b\"], arguments: {x: [1, 1.5, 1e3, 0x10, null, {y: ~}]}}]",
		"cases: [{name: a, agent: a, call: fs.x, expect: deny, arguments: {x: &a [1], y: *a}}]",
		"cases: [{name: a, agent: a, call: fs.x, expect: deny, impact: {rows: 9223372036854775807}, verb: delete}]",
		"a: b\n---\nc: d\n",
		"cases: [{name: a, agent: a, http: {method: GET, host: A.example, port: 0, path: \"/a/../b?c\"}, taint: [x, Y], expect: allow}]",
		"cases: [{name: a, agent: a, exec: {command: /bin/../sh, args: [\"\", x], cwd: rel}, expect: deny}]",
		"cases: [{name: a, agent: a, call: db.x, dataset: d, path: /srv/a, taint: [private], expect: deny}]",
	} {
		f.Add([]byte(s))
	}
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte(`
permit (principal, action, resource);
@escalate("1 of group:x") forbid (principal, action, resource) when { context.arguments has x };`)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := parse("f.yaml", b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "f.yaml:") {
				t.Fatalf("error %q is not an *Error naming the file", err)
			}
			if file != nil {
				t.Fatal("a file and an error")
			}
			return
		}
		if len(file.Cases) == 0 {
			t.Fatal("loaded a file without cases")
		}
		names := map[string]bool{}
		for _, c := range file.Cases {
			switch c.Expect {
			case ExpectAllow, ExpectDeny, ExpectEscalate:
			default:
				t.Fatalf("case %q expects %q", c.Name, c.Expect)
			}
			if c.Name == "" || names[c.Name] || strings.ContainsAny(c.Name, "\n\r") {
				t.Fatalf("bad or repeated case name %q", c.Name)
			}
			names[c.Name] = true
			if c.File != "f.yaml" || c.Line < 1 {
				t.Fatalf("case %q at %s:%d", c.Name, c.File, c.Line)
			}
			if c.Approvals != nil && (c.Expect != ExpectEscalate || len(c.Approvals) == 0) {
				t.Fatalf("case %q: approvals %q with expect %s", c.Name, c.Approvals, c.Expect)
			}
			for _, a := range c.Approvals {
				p, err := policy.ParseApproval(a)
				if err != nil || p.String() != a {
					t.Fatalf("case %q: approval %q is not canonical (%v)", c.Name, a, err)
				}
			}
			r := c.Request
			if r.Arguments != nil {
				var m map[string]any
				if err := json.Unmarshal(r.Arguments, &m); err != nil || m == nil {
					t.Fatalf("case %q: arguments %s are not a JSON object: %v", c.Name, r.Arguments, err)
				}
			}
			d := set.Decide(r)
			for _, e := range d.Errors {
				if strings.HasPrefix(e, "invalid request: ") {
					t.Fatalf("case %q: Decide refused the request %+v: %s", c.Name, r, e)
				}
			}
		}
		// Loading is deterministic, and Run reports one result per case.
		again, err := parse("f.yaml", b)
		if err != nil {
			t.Fatalf("second parse: %v", err)
		}
		if diff := cmp.Diff(file, again); diff != "" {
			t.Fatalf("parse is not deterministic:\n%s", diff)
		}
		rs := Run(file, set)
		if p, fl := Summary(rs); len(rs) != len(file.Cases) || p+fl != len(rs) {
			t.Fatalf("%d results, %d+%d, for %d cases", len(rs), p, fl, len(file.Cases))
		}
		for _, r := range rs {
			if r.Pass != (r.Why == "") || r.Pass && r.Got.Outcome() != r.Case.Expect {
				t.Fatalf("inconsistent result %+v", r)
			}
		}
	})
}
