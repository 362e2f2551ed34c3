package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ward-dev/ward/internal/policy"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// loadPolicies loads *.cedar files and directories of them, as the CLI's
// loader does for Cedar.
func loadPolicies(t testing.TB, paths []string) *policy.Set {
	t.Helper()
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.cedar"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	set, err := policy.LoadFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil { // as ward's loader requires
		t.Fatal(err)
	}
	return set
}

func loadFile(t testing.TB, path string) (*File, *policy.Set) {
	t.Helper()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f, loadPolicies(t, f.ResolvedPolicyPaths())
}

// TestPassingFiles runs files whose every case passes. (pass.yaml is also
// what cmd/ward's CLI test runs.)
func TestPassingFiles(t *testing.T) {
	for _, tc := range []struct {
		path  string
		cases int
	}{{"testdata/pass.yaml", 5}, {"testdata/cases.yaml", 10}, {"testdata/egress.yaml", 10}} {
		t.Run(tc.path, func(t *testing.T) {
			f, set := loadFile(t, tc.path)
			rs := Run(f, set)
			var out bytes.Buffer
			if err := WriteText(&out, rs); err != nil {
				t.Fatal(err)
			}
			if p, fl := Summary(rs); p != tc.cases || fl != 0 {
				t.Fatalf("%d passed, %d failed, want %d passed:\n%s", p, fl, tc.cases, out.String())
			}
			for _, r := range rs {
				if r.Got.Outcome() != r.Case.Expect || r.Why != "" {
					t.Errorf("%s: passed with outcome %s, why %q", r.Case.Name, r.Got.Outcome(), r.Why)
				}
			}
			if want := fmt.Sprintf("\n%d passed, 0 failed\n", tc.cases); !strings.HasSuffix(out.String(), want) || strings.Contains(out.String(), "FAIL") {
				t.Fatalf("output:\n%s", out.String())
			}
		})
	}
}

// TestFailingFiles checks the report of files with failing cases against
// golden files next to them (go test -update rewrites them).
func TestFailingFiles(t *testing.T) {
	for _, tc := range []struct {
		path           string
		passed, failed int
	}{{"testdata/fail.yaml", 0, 2}, {"testdata/failing.yaml", 1, 5}} {
		t.Run(tc.path, func(t *testing.T) {
			f, set := loadFile(t, tc.path)
			rs := Run(f, set)
			if p, fl := Summary(rs); p != tc.passed || fl != tc.failed {
				t.Errorf("Summary = %d passed, %d failed, want %d, %d", p, fl, tc.passed, tc.failed)
			}
			var out bytes.Buffer
			if err := WriteText(&out, rs); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(tc.path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("WriteText output differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestResolvedPolicyPaths(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "p.cedar")
	f := &File{Path: filepath.Join("ops", "tests", "t.yaml"), PolicyPaths: []string{"../policies", "x.cedar", abs}}
	got := f.ResolvedPolicyPaths()
	want := []string{filepath.Join("ops", "policies"), filepath.Join("ops", "tests", "x.cedar"), abs}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ResolvedPolicyPaths (-want +got):\n%s", diff)
	}
	if got := (&File{Path: "t.yaml"}).ResolvedPolicyPaths(); got != nil {
		t.Errorf("no policies: got %q, want nil", got)
	}
}

// policies used by TestRun.
const runPolicies = `
@id("read-share")
permit (principal in Group::"analytics", action == Action::"call_tool", resource in Server::"fs")
when { context.arguments.path like "/srv/share/*" };

@id("also-read")
permit (principal, action == Action::"call_tool", resource == Tool::"fs.read")
when { principal.trust >= 80 };

@id("no-root")
forbid (principal, action, resource) when { principal.depth > 2 };

@id("dba-delete")
@escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"db.delete");

@id("delete")
permit (principal, action == Action::"call_tool", resource == Tool::"db.delete");
`

func TestRun(t *testing.T) {
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte(runPolicies)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml string
		outcome    string // the decision's outcome
		why        string // "" for a pass
	}{
		{"allow", `{call: fs.read, arguments: {path: /srv/share/a}, expect: allow}`, "allow", ""},
		{"allow with policies", `{call: fs.read, arguments: {path: /srv/share/a}, expect: allow, policies: [read-share]}`, "allow", ""},
		{"allow by two policies, as a set", `{call: fs.read, trust: 90, arguments: {path: /srv/share/a}, expect: allow, policies: [also-read, read-share]}`, "allow", ""},
		{"one of two policies is not enough", `{call: fs.read, trust: 90, arguments: {path: /srv/share/a}, expect: allow, policies: [read-share]}`, "allow",
			`expected policies ["read-share"], got ["read-share", "also-read"] (allowed by policies "read-share" (p.cedar:2:1), "also-read" (p.cedar:6:1))`},
		{"default deny", `{call: fs.read, arguments: {path: /etc/passwd}, expect: deny, policies: []}`, "deny", ""},
		{"default deny has no policies", `{call: fs.read, arguments: {path: /etc/passwd}, expect: deny, policies: [no-root]}`, "deny",
			`expected policies ["no-root"], got none (no policy permits call_tool on Tool::"fs.read" (default deny))`},
		{"forbid", `{call: fs.read, depth: 3, arguments: {path: /srv/share/a}, expect: deny, policies: [no-root]}`, "deny", ""},
		{"expected deny, got allow", `{call: fs.read, arguments: {path: /srv/share/a}, expect: deny}`, "allow",
			`expected deny, got allow (allowed by policy "read-share" (p.cedar:2:1))`},
		{"expected allow, got deny", `{call: fs.read, groups: [], arguments: {path: /srv/share/a}, expect: allow}`, "deny",
			`expected allow, got deny (no policy permits call_tool on Tool::"fs.read" (default deny))`},
		{"escalate", `{call: db.delete, expect: escalate, policies: [dba-delete], approvals: ["1 of group:dba"]}`, "escalate", ""},
		{"escalate, approvals canonical", `{call: db.delete, expect: escalate, approvals: ["1  of  group:dba, group:dba"]}`, "escalate", ""},
		{"escalate, wrong approvals", `{call: db.delete, expect: escalate, approvals: ["2 of group:dba"]}`, "escalate",
			`expected approvals ["2 of group:dba"], got ["1 of group:dba"] (needs approval by 1 of group:dba (policy "dba-delete"))`},
		{"escalate, an approval too many", `{call: db.delete, expect: escalate, approvals: ["1 of group:dba", "1 of group:dba"]}`, "escalate",
			`expected approvals ["1 of group:dba", "1 of group:dba"], got ["1 of group:dba"] (needs approval by 1 of group:dba (policy "dba-delete"))`},
		{"expected allow, got escalate", `{call: db.delete, expect: allow}`, "escalate",
			`expected allow, got escalate (needs approval by 1 of group:dba (policy "dba-delete"))`},
		{"expected escalate, got deny", `{call: db.delete, depth: 3, expect: escalate}`, "deny",
			`expected escalate, got deny (denied by policies "no-root" (p.cedar:10:1), "dba-delete" (p.cedar:13:1))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "defaults: {agent: a, groups: [analytics]}\ncases:\n  - " + strings.Replace(tc.yaml, "{", "{name: c, ", 1) + "\n"
			f, err := parse("t.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			rs := Run(f, set)
			if len(rs) != 1 {
				t.Fatalf("%d results, want 1", len(rs))
			}
			r := rs[0]
			if got := r.Got.Outcome(); got != tc.outcome {
				t.Errorf("outcome %s, want %s", got, tc.outcome)
			}
			if r.Pass != (tc.why == "") || r.Why != tc.why {
				t.Errorf("Pass %v, Why:\n%s\nwant:\n%s", r.Pass, r.Why, tc.why)
			}
		})
	}
}

func TestRunNilSet(t *testing.T) {
	f, err := parse("t.yaml", []byte("cases: [{name: a, agent: a, call: fs.read, expect: deny, policies: []}]"))
	if err != nil {
		t.Fatal(err)
	}
	if rs := Run(f, nil); len(rs) != 1 || !rs[0].Pass {
		t.Errorf("a nil set must deny: %+v", rs)
	}
	if rs := Run(nil, nil); rs != nil {
		t.Errorf("Run(nil) = %v", rs)
	}
}

func TestLoadCase(t *testing.T) {
	src := `defaults:
  session: s-1
  agent: reporter
  sponsor: alice
  groups: [analytics, ops]
  depth: 1
  trust: 70
cases:
  - name: all overrides
    session: s-2
    agent: writer
    sponsor: ""
    groups: []
    depth: 0
    trust: 0
    prompt: docs.sum
    arguments: {a: 1, b: 1.50, c: 1e3, d: 0x1f, e: +7, f: [x, null, true], g: {h: null}, i: "2001-12-14", j: 18446744073709551615, k: .5}
    verb: read
    impact: {rows: -3}
    expect: deny
  - name: defaults
    resource: "file:///srv/a b"
    server: files
    expect: allow
`
	f, err := parse("dir/t.yaml", []byte(strings.Replace(src, "a b", "a%20b", 1)))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{Path: "dir/t.yaml", Cases: []Case{
		{
			Name: "all overrides", File: "dir/t.yaml", Line: 9, Expect: "deny",
			Request: policy.Request{
				Session: "s-2", Agent: "writer", Groups: []string{}, Trust: 0,
				Action: policy.ActionGetPrompt, Server: "docs", Name: "docs.sum",
				Arguments: json.RawMessage(`{"a":1,"b":1.50,"c":1e3,"d":31,"e":7,"f":["x",null,true],"g":{"h":null},"i":"2001-12-14","j":18446744073709551615,"k":0.5}`),
				Verb:      "read", Impact: map[string]int64{"rows": -3},
			},
		},
		{
			Name: "defaults", File: "dir/t.yaml", Line: 21, Expect: "allow",
			Request: policy.Request{
				Session: "s-1", Agent: "reporter", Sponsor: "alice", Groups: []string{"analytics", "ops"}, Depth: 1, Trust: 70,
				Action: policy.ActionReadResource, Server: "files", Name: "file:///srv/a%20b",
			},
		},
	}}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("parse (-want +got):\n%s", diff)
	}

	f, err = parse("t.yaml", []byte("cases: [{name: x, agent: a, call: fs.x, expect: allow}]"))
	if err != nil {
		t.Fatal(err)
	}
	if r := f.Cases[0].Request; r.Session != DefaultSession || r.Trust != DefaultTrust || r.Arguments != nil || r.Groups != nil {
		t.Errorf("defaults not applied: %+v", r)
	}
}

func TestLoadHTTPAndExec(t *testing.T) {
	src := `defaults: {agent: a}
cases:
  - name: defaults
    http: {method: GET, host: api.example.com}
    expect: deny
  - name: plain http
    http: {method: DELETE, scheme: http, host: "::1", path: /a%2Fb}
    taint: [private]
    expect: deny
  - name: everything
    http: {method: POST, scheme: https, host: 10.0.0.7, port: 8443, path: /v1}
    expect: deny
  - name: exec
    exec: {command: /usr/bin/git, args: [push, "", "a b"], cwd: /work}
    taint: [untrusted, private]
    expect: deny
  - name: tunnel
    http: {method: CONNECT, host: db.example}
    expect: deny
  - name: bare exec
    exec: {command: /bin/true}
    expect: deny
  - name: tool with dataset and path
    call: db.export
    dataset: sales
    path: /srv/out.csv
    expect: deny
`
	f, err := parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	base := policy.Request{Session: DefaultSession, Agent: "a", Trust: DefaultTrust}
	with := func(f func(*policy.Request)) policy.Request { r := base; f(&r); return r }
	want := []policy.Request{
		with(func(r *policy.Request) {
			r.Action, r.HTTP = policy.ActionHTTPRequest, &policy.HTTPRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Port: 443, Path: "/"}
		}),
		with(func(r *policy.Request) {
			r.Action, r.HTTP = policy.ActionHTTPRequest, &policy.HTTPRequest{Method: "DELETE", Scheme: "http", Host: "::1", Port: 80, Path: "/a%2Fb"}
			r.Taint = []string{"private"}
		}),
		with(func(r *policy.Request) {
			r.Action, r.HTTP = policy.ActionHTTPRequest, &policy.HTTPRequest{Method: "POST", Scheme: "https", Host: "10.0.0.7", Port: 8443, Path: "/v1"}
		}),
		with(func(r *policy.Request) {
			r.Action, r.Exec = policy.ActionExec, &policy.ExecRequest{Command: "/usr/bin/git", Args: []string{"push", "", "a b"}, Dir: "/work"}
			r.Taint = []string{"untrusted", "private"}
		}),
		with(func(r *policy.Request) {
			r.Action, r.HTTP = policy.ActionHTTPRequest, &policy.HTTPRequest{Method: "CONNECT", Host: "db.example", Port: 443}
		}),
		with(func(r *policy.Request) {
			r.Action, r.Exec = policy.ActionExec, &policy.ExecRequest{Command: "/bin/true"}
		}),
		with(func(r *policy.Request) {
			r.Action, r.Server, r.Name, r.Dataset, r.Path = policy.ActionCallTool, "db", "db.export", "sales", "/srv/out.csv"
		}),
	}
	var got []policy.Request
	for _, c := range f.Cases {
		got = append(got, c.Request)
		if err := c.Request.Validate(); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	const ok = "name: a, agent: a, call: fs.x, expect: deny"
	for _, tc := range []struct{ name, src, want string }{
		{"empty", "", "t.yaml:1:1: empty file: want a mapping with cases"},
		{"comments only", "# nothing\n", "t.yaml:1:1: empty file: want a mapping with cases"},
		{"syntax", "cases: [\n", "t.yaml:1: yaml: did not find expected node content"},
		{"not a mapping", "- a\n", "t.yaml:1:1: test file: want a mapping, got a list"},
		{"second document", "cases: [{" + ok + "}]\n---\ncases: []\n", "t.yaml:2:1: a second YAML document: want one"},
		{"unknown top-level key", "polices: [x]\ncases: [{" + ok + "}]\n",
			`t.yaml:1:1: unknown key "polices" in test file (want one of policies, defaults, cases)`},
		{"missing cases", "policies: [p]\n", "t.yaml:1:1: missing cases"},
		{"no cases", "cases: []\n", "t.yaml:1:8: cases: empty list: a file must test something"},
		{"cases not a list", "cases: {a: b}\n", "t.yaml:1:8: cases: want a list, got a mapping"},
		{"policies not strings", "policies: [1]\ncases: [{" + ok + "}]\n", "t.yaml:1:12: policies: want a string, got an integer"},
		{"unknown default", "defaults: {agent: a, role: x}\ncases: [{" + ok + "}]\n",
			`t.yaml:1:22: unknown key "role" in defaults (want one of session, agent, sponsor, groups, depth, trust)`},
		{"unknown case key", "cases:\n  - name: a\n    call: fs.x\n    expect: deny\n    agent: a\n    colour: red\n",
			`t.yaml:6:5: unknown key "colour" in case (want one of session, agent, sponsor, groups, depth, trust, name, call, prompt, resource, http, exec, server, arguments, verb, impact, dataset, path, taint, expect, policies, approvals)`},
		{"repeated key", "cases:\n  - name: a\n    call: fs.x\n    expect: deny\n    agent: a\n    expect: allow\n",
			`t.yaml:6:5: case: key "expect" repeated (first at line 4)`},
		{"case not a mapping", "cases: [x]\n", "t.yaml:1:9: case: want a mapping, got a string"},
		{"missing expect", "cases:\n  - name: a\n    agent: a\n    call: fs.x\n", "t.yaml:2:5: case: missing expect (allow, deny or escalate)"},
		{"bad expect", "cases:\n  - name: a\n    call: fs.x\n    expect: maybe\n    agent: a\n", `t.yaml:4:13: expect: "maybe" is not allow, deny or escalate`},
		{"expect not a string", "cases:\n  - name: a\n    call: fs.x\n    expect: [allow]\n    agent: a\n", `t.yaml:4:13: expect: want a string, got a list`},
		{"missing name", "cases:\n  - {agent: a, call: fs.x, expect: deny}\n", "t.yaml:2:5: case: missing name"},
		{"name with a newline", "cases:\n  - {name: \"a\\nPASS  b\", agent: a, call: fs.x, expect: deny}\n", "t.yaml:2:12: name: want 1-200 characters of printable text on one line"},
		{"duplicate name", "cases:\n  - {" + ok + "}\n  - {" + ok + "}\n", `t.yaml:3:5: duplicate case name "a" (first at line 2)`},
		{"no agent", "cases:\n  - {name: a, call: fs.x, expect: deny}\n", "t.yaml:2:5: case: no agent (set agent in the case or in defaults)"},
		{"empty agent", "defaults: {agent: \"\"}\ncases: [{name: a, call: fs.x, expect: deny}]\n", "t.yaml:1:19: agent: empty string\nt.yaml:2:9: case: no agent (set agent in the case or in defaults)"},
		{"negative depth", "cases: [{" + ok + ", depth: -1}]\n", "t.yaml:1:62: depth: -1 is not in 0-1000"},
		{"trust too high", "cases: [{" + ok + ", trust: 101}]\n", "t.yaml:1:62: trust: 101 is not in 0-100"},
		{"depth not an integer", "cases: [{" + ok + ", depth: one}]\n", "t.yaml:1:62: depth: want an integer, got a string"},
		{"no target", "cases:\n  - {name: a, agent: a, expect: deny}\n", "t.yaml:2:5: case: missing call, prompt, resource, http or exec"},
		{"call and resource", "cases:\n  - name: a\n    call: fs.x\n    resource: file:///x\n    server: fs\n    expect: deny\n    agent: a\n",
			"t.yaml:4:5: both call and resource: give exactly one of call, prompt, resource, http and exec"},
		{"resource before prompt", "cases:\n  - name: a\n    resource: file:///x\n    prompt: fs.x\n    expect: deny\n    agent: a\n",
			"t.yaml:4:5: both prompt and resource: give exactly one of call, prompt, resource, http and exec"},
		{"no dot", "cases:\n  - name: a\n    call: nodot\n    expect: deny\n    agent: a\n", `t.yaml:3:11: call "nodot": want "server.name"`},
		{"bad server", "cases:\n  - name: a\n    call: FS.read\n    expect: deny\n    agent: a\n",
			`t.yaml:3:11: call "FS.read": server "FS": only a-z, 0-9, '_' and '-' are allowed`},
		{"empty server", "cases:\n  - name: a\n    prompt: .read\n    expect: deny\n    agent: a\n", `t.yaml:3:13: prompt ".read": server "" must be 1-32 characters`},
		{"empty tool", "cases:\n  - name: a\n    call: \"fs.\"\n    expect: deny\n    agent: a\n",
			`t.yaml:3:11: call "fs.": name "" must be 1-128 characters without white space or control characters`},
		{"tool with a space", "cases:\n  - name: a\n    call: fs.read file\n    expect: deny\n    agent: a\n",
			`t.yaml:3:11: call "fs.read file": name "read file" must be 1-128 characters without white space or control characters`},
		{"server with call", "cases:\n  - name: a\n    call: fs.x\n    server: fs\n    expect: deny\n    agent: a\n",
			"t.yaml:4:5: server: only for a resource (a call names its server before the dot)"},
		{"resource without server", "cases:\n  - name: a\n    resource: file:///x\n    expect: deny\n    agent: a\n",
			"t.yaml:3:5: resource: needs server, the upstream that serves it"},
		{"resource without scheme", "cases:\n  - name: a\n    resource: /x\n    server: fs\n    expect: deny\n    agent: a\n",
			`t.yaml:3:15: resource "/x": want a URI with a scheme, without white space or control characters`},
		{"arguments not a mapping", "cases: [{" + ok + ", arguments: [1]}]\n", "t.yaml:1:66: arguments: want a mapping, got a list"},
		{"arguments infinity", "cases: [{" + ok + ", arguments: {x: .inf}}]\n", "t.yaml:1:70: arguments.x: .inf is not a JSON number"},
		{"arguments alias", "cases: [{" + ok + ", arguments: {x: &a 1, y: *a}}]\n", "t.yaml:1:79: arguments.y: aliases are not supported"},
		{"arguments custom tag", "cases: [{" + ok + ", arguments: {x: !thing 1}}]\n", "t.yaml:1:70: arguments.x: unsupported tag !thing"},
		{"arguments non-string key", "cases: [{" + ok + ", arguments: {1: x}}]\n", "t.yaml:1:67: arguments: keys must be strings, got an integer"},
		{"arguments repeated key", "cases: [{" + ok + ", arguments: {x: 1, x: 2}}]\n", `t.yaml:1:73: arguments: key "x" repeated (first at line 1)`},
		{"arguments too deep", "cases: [{" + ok + ", arguments: " + strings.Repeat("{a: ", 65) + "1" + strings.Repeat("}", 65) + "}]\n",
			"t.yaml:1:322: arguments.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a: nested deeper than 64 levels"},
		{"impact not an integer", "cases: [{" + ok + ", impact: {rows: many}}]\n", "t.yaml:1:70: impact.rows: want a 64-bit integer, got a string"},
		{"policies twice", "cases: [{" + ok + ", policies: [p, p]}]\n", `t.yaml:1:69: policies: "p" listed twice`},
		{"approvals without escalate", "cases: [{" + ok + ", approvals: [\"1 of group:dba\"]}]\n", "t.yaml:1:55: approvals: only for expect: escalate"},
		{"approvals empty", "cases: [{name: a, agent: a, call: fs.x, expect: escalate, approvals: []}]\n",
			"t.yaml:1:70: approvals: empty list: an escalation always asks for at least one"},
		{"bad approval", "cases: [{name: a, agent: a, call: fs.x, expect: escalate, approvals: [\"one of dba\"]}]\n",
			`t.yaml:1:71: approvals: @escalate("one of dba"): quorum must be a whole number from 1 to 100`},
		{"http and exec", "cases:\n  - name: a\n    http: {method: GET, host: a.b}\n    exec: {command: /bin/sh}\n    expect: deny\n    agent: a\n",
			"t.yaml:4:5: both http and exec: give exactly one of call, prompt, resource, http and exec"},
		{"http not a mapping", "cases: [{name: a, agent: a, expect: deny, http: https://a.b/}]\n", "t.yaml:1:49: http: want a mapping, got a string"},
		{"http without method and host", "cases: [{name: a, agent: a, expect: deny, http: {path: /x}}]\n", "t.yaml:1:49: http: missing method\nt.yaml:1:49: http: missing host"},
		{"http unknown key", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: a.b, url: x}}]\n",
			`t.yaml:1:74: unknown key "url" in http (want one of method, scheme, host, port, path)`},
		{"http port not an integer", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: a.b, port: https}}]\n", "t.yaml:1:80: port: want an integer, got a string"},
		{"http port out of range", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: a.b, port: 0}}]\n", "t.yaml:1:80: port: 0 is not in 1-65535"},
		{"http host with a port", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: \"a.b:80\"}}]\n",
			`t.yaml:1:49: http: host "a.b:80" is neither a name nor an IP address (a port goes in Port)`},
		{"http uppercase host", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: A.b}}]\n", `t.yaml:1:49: http: host "A.b" is not in canonical form "a.b"`},
		{"http lowercase method", "cases: [{name: a, agent: a, expect: deny, http: {method: get, host: a.b}}]\n",
			`t.yaml:1:49: http: method "get" is not an HTTP method: 1-32 characters of an RFC 9110 token without lowercase letters`},
		{"http query in path", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: a.b, path: \"/x?y\"}}]\n",
			`t.yaml:1:49: http: path holds '?' at offset 2: a query or fragment is not part of the path`},
		{"http scheme", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: a.b, scheme: ftp}}]\n", `t.yaml:1:49: http: scheme "ftp" is not http or https`},
		{"exec without command", "cases: [{name: a, agent: a, expect: deny, exec: {args: [x]}}]\n", "t.yaml:1:49: exec: missing command"},
		{"exec relative command", "cases: [{name: a, agent: a, expect: deny, exec: {command: git}}]\n", `t.yaml:1:49: exec: command "git" is not an absolute, clean path`},
		{"exec args not a list", "cases: [{name: a, agent: a, expect: deny, exec: {command: /bin/sh, args: -c}}]\n", "t.yaml:1:74: args: want a list of strings, got a string"},
		{"exec arg not a string", "cases: [{name: a, agent: a, expect: deny, exec: {command: /bin/sh, args: [1]}}]\n", "t.yaml:1:75: args: want a string, got an integer"},
		{"exec relative cwd", "cases: [{name: a, agent: a, expect: deny, exec: {command: /bin/sh, cwd: tmp}}]\n", `t.yaml:1:49: exec: cwd "tmp" is not an absolute, clean path`},
		{"arguments for http", "cases: [{name: a, agent: a, expect: deny, http: {method: GET, host: a.b}, arguments: {x: 1}, server: s}]\n",
			"t.yaml:1:94: server: not for an http case\nt.yaml:1:75: arguments: not for an http case"},
		{"path for exec", "cases: [{name: a, agent: a, expect: deny, exec: {command: /bin/sh}, path: /x}]\n", "t.yaml:1:69: path: not for an exec case"},
		{"bad taint label", "cases: [{" + ok + ", taint: [private, Untrusted]}]\n",
			`t.yaml:1:72: taint label "Untrusted" is not 1-64 characters of a-z, 0-9, '.', '_' and '-' starting with a letter or digit`},
		{"taint not a list", "cases: [{" + ok + ", taint: private}]\n", "t.yaml:1:62: taint: want a list of strings, got a string"},
		{"unclean path", "cases: [{" + ok + ", path: /a/../b}]\n", `t.yaml:1:61: path "/a/../b" is not an absolute, clean path`},
		{"two errors", "cases:\n  - {name: a, agent: a, call: x, expect: deny}\n  - {name: b, agent: a, call: fs.x, expect: no}\n",
			"t.yaml:2:31: call \"x\": want \"server.name\"\nt.yaml:3:45: expect: \"no\" is not allow, deny or escalate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parse("t.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("loaded %+v, want error %s", f, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "t.yaml" {
				t.Errorf("error %v is not an *Error naming the file", err)
			}
		})
	}
}

func TestArgumentsDepth(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("{a: ", n) + "1" + strings.Repeat("}", n) }
	src := func(n int) string {
		return "cases: [{name: a, agent: a, call: fs.x, expect: allow, arguments: " + nest(n) + "}]"
	}
	f, err := parse("t.yaml", []byte(src(policy.MaxArgumentDepth)))
	if err != nil {
		t.Fatalf("depth %d: %v", policy.MaxArgumentDepth, err)
	}
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte("permit (principal, action, resource);")})
	if err != nil {
		t.Fatal(err)
	}
	if rs := Run(f, set); !rs[0].Pass {
		t.Errorf("the deepest arguments allowed are refused by Decide: %s", rs[0].Why)
	}
	_, err = parse("t.yaml", []byte(src(policy.MaxArgumentDepth+1)))
	if err == nil || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Errorf("depth %d: error %v", policy.MaxArgumentDepth+1, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "load policy tests: open ") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	body := "cases: [{name: a, agent: a, call: fs.x, expect: deny}]\n"
	if err := os.WriteFile(big, []byte(body+"#"+strings.Repeat("x", MaxFileSize-len(body))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || err.Error() != big+": larger than 1048576 bytes" {
		t.Errorf("oversize file: %v", err)
	}
	if err := os.Truncate(big, MaxFileSize); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(big); err != nil || len(f.Cases) != 1 {
		t.Errorf("file of exactly MaxFileSize bytes: %v", err)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestWriteTextError(t *testing.T) {
	rs := []Result{{Case: Case{Name: "a"}, Pass: true}, {Case: Case{Name: "b"}, Pass: true}}
	for n := range 3 {
		if err := WriteText(&failWriter{n: n}, rs); err == nil || err.Error() != "disk full" {
			t.Errorf("failing after %d writes: %v", n, err)
		}
	}
	if err := WriteText(&failWriter{n: 3}, rs); err != nil {
		t.Errorf("3 writes: %v", err)
	}
}

func TestSummary(t *testing.T) {
	p, f := Summary([]Result{{Pass: true}, {}, {Pass: true}})
	if p != 2 || f != 1 {
		t.Errorf("Summary = %d, %d; want 2, 1", p, f)
	}
	if p, f := Summary(nil); p != 0 || f != 0 {
		t.Errorf("Summary(nil) = %d, %d", p, f)
	}
}

// TestDocExample checks that the test file in the package comment loads.
func TestDocExample(t *testing.T) {
	src, err := os.ReadFile("policytest.go")
	if err != nil {
		t.Fatal(err)
	}
	var yml []string
	in := false
	for line := range strings.Lines(string(src)) {
		switch {
		case strings.HasPrefix(line, "// A test file is YAML"):
			in = true
		case in && strings.HasPrefix(line, "//\t"):
			yml = append(yml, strings.TrimPrefix(line, "//\t"))
		case in && len(yml) > 0:
			in = false
		}
	}
	f, err := parse("policies_test.yaml", []byte(strings.Join(yml, "")))
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(yml, ""))
	}
	if len(f.Cases) != 7 || f.Cases[1].Name != "nobody else" || f.Cases[1].Line != 14 {
		t.Errorf("doc example: %d cases, second %q at line %d", len(f.Cases), f.Cases[1].Name, f.Cases[1].Line)
	}
}
