package policytest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/policy"
)

func load(t *testing.T, path string) (*File, *policy.Set) {
	t.Helper()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.LoadDir(f.PolicyPaths[0])
	if err != nil {
		t.Fatal(err)
	}
	return f, set
}

func TestPassingFile(t *testing.T) {
	f, set := load(t, "testdata/pass.yaml")
	rs := Run(f, set)
	var out bytes.Buffer
	WriteText(&out, f.Path, rs)
	if p, fl := Summary(rs); p != 5 || fl != 0 {
		t.Fatalf("%d passed, %d failed:\n%s", p, fl, out.String())
	}
	if !strings.HasSuffix(out.String(), "5 passed, 0 failed\n") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestFailingFile(t *testing.T) {
	f, set := load(t, "testdata/fail.yaml")
	rs := Run(f, set)
	var out bytes.Buffer
	WriteText(&out, f.Path, rs)
	want := []string{
		`FAIL  wrongly expects a write to pass (testdata/fail.yaml:4): expected allow, got deny: no policy permits call_tool on Tool::"fs.write_file" (default deny)`,
		`FAIL  right outcome, wrong policy (testdata/fail.yaml:8): decided by [fs-read-shared], expected [someone-else]`,
		`0 passed, 2 failed`,
	}
	if got := strings.TrimSpace(out.String()); got != strings.Join(want, "\n") {
		t.Fatalf("output:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"cases:\n  - name: a\n    call: fs.x\n    expect: maybe\n    agent: a\n", `t.yaml:2: case "a": expect "maybe": want allow, deny or escalate`},
		{"cases:\n  - name: a\n    call: fs.x\n    resource: file:///x\n    expect: deny\n    agent: a\n", "exactly one of call, prompt and resource"},
		{"cases:\n  - name: a\n    call: nodot\n    expect: deny\n    agent: a\n", `"nodot": names are SERVER.NAME`},
		{"cases:\n  - name: a\n    call: fs.x\n    expect: deny\n", "no agent"},
		{"cases:\n  - name: a\n    call: fs.x\n    expect: deny\n    agent: a\n    colour: red\n", `t.yaml:2: unknown key "colour" in case (line 6)`},
		{"cases:\n  - {name: a, call: fs.x, expect: deny, agent: a}\n  - {name: a, call: fs.y, expect: deny, agent: a}\n", `t.yaml:3: case name "a" also used at line 2`},
		{"polices: [x]\ncases: []\n", "field polices not found"},
		{"", "no cases"},
		{"cases: [\n", "t.yaml"},
	} {
		_, err := Parse("t.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
	}
}

// FuzzParse: arbitrary files never panic, and every loaded case is
// decidable with a valid expectation.
func FuzzParse(f *testing.F) {
	f.Add([]byte("cases:\n  - {name: a, call: fs.x, expect: deny, agent: a}\n"))
	f.Add([]byte("defaults: {agent: b, groups: [g]}\ncases:\n  - {name: r, resource: \"file:///x\", expect: allow}\n"))
	set, _ := policy.Parse(map[string][]byte{"p.cedar": []byte(`permit (principal, action, resource);`)})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("f.yaml", b)
		if err != nil {
			return
		}
		for _, r := range Run(file, set) {
			switch r.Case.Expect {
			case "allow", "deny", "escalate":
			default:
				t.Fatalf("loaded a case expecting %q", r.Case.Expect)
			}
			if r.Case.Request.Agent == "" || r.Case.Request.Name == "" {
				t.Fatalf("loaded an incomplete request %+v", r.Case.Request)
			}
		}
	})
}
