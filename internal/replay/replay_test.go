package replay

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testSet(t testing.TB) *policy.Set {
	b, err := os.ReadFile("testdata/policies.cedar")
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse(map[string][]byte{"policies.cedar": b})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestExampleTrace(t *testing.T) {
	f, err := os.Open("testdata/example.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Run(testSet(t), f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"allow", "deny", "escalate", "deny", "deny"}
	if len(rep.Calls) != len(want) {
		t.Fatalf("%d calls, want %d", len(rep.Calls), len(want))
	}
	for i, c := range rep.Calls {
		if c.Outcome != want[i] {
			t.Errorf("line %d: %s, want %s (%s)", c.Line, c.Outcome, want[i], c.Reason)
		}
	}
	if c := rep.Calls[2]; len(c.Approvals) != 1 || c.Approvals[0] != "1 of group:dba" {
		t.Errorf("escalation approvals %v", c.Approvals)
	}
	s := rep.Summary
	if s.Sessions != 2 || s.Calls != 5 || s.Allowed != 1 || s.Denied != 3 || s.Escalated != 1 || s.ByPolicy["fs-read-shared"] != 1 || s.ByPolicy["big-deletes"] != 1 {
		t.Fatalf("summary %+v", s)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/example.txt"
	if *update {
		os.WriteFile(golden, out.Bytes(), 0o644)
	}
	g, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(g) {
		t.Fatalf("text report differs from %s (run with -update):\n%s", golden, out.String())
	}
	out.Reset()
	rep.WriteJSON(&out)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !json.Valid([]byte(lines[5])) || !strings.Contains(lines[5], `"summary"`) {
		t.Fatalf("JSON report:\n%s", out.String())
	}
}

func TestBadTraces(t *testing.T) {
	for _, tc := range []struct{ trace, want string }{
		{`{"type":"call","method":"tools/call","name":"a.b"}`, "trace line 1: call before any session record"},
		{"\n\n" + `{"type":"session","session":"s","agent":"a","foo":1}`, `trace line 3: json: unknown field "foo"`},
		{`{"type":"session","session":"s","agent":"a"}` + "\n" + `{"type":"call","method":"tools/delete","name":"a.b"}`, `trace line 2: method "tools/delete" is not one ward decides`},
		{`{"type":"session","session":"s","agent":"a","agent":"b"}`, "trace line 1: malformed JSON"},
		{`{"type":"session","session":"s"}`, "trace line 1: a session record needs session and agent"},
		{`{"type":"session","session":"s","agent":"a"}` + "\n" + `{"type":"call","method":"tools/call","name":"nodot"}`, "SERVER.NAME"},
		{`{"type":"session","session":"s","agent":"a"}` + "\n" + `{"type":"call","method":"resources/read","name":"file:///x"}`, "needs its server"},
		{`{"type":"session","session":"s","agent":"a"}` + "\n" + `{"type":"call","method":"tools/call","server":"x","name":"y.z"}`, "does not match"},
		{`{"type":"bogus"}`, `unknown record type "bogus"`},
		{`{"type":"session","session":"s","agent":"a"} {"x":1}`, "trace line 1"},
		{`[1,2]`, "trace line 1"},
	} {
		_, err := Run(testSet(t), strings.NewReader(tc.trace), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.trace, err, tc.want)
		}
	}
	long := `{"type":"session","session":"s","agent":"` + strings.Repeat("a", 200) + `"}`
	if _, err := Run(testSet(t), strings.NewReader(long), Options{MaxLineBytes: 100}); err == nil || !strings.Contains(err.Error(), "longer than 100 bytes") {
		t.Errorf("long line: %v", err)
	}
	many := strings.Repeat(`{"type":"session","session":"s","agent":"a"}`+"\n", 11)
	if _, err := Run(testSet(t), strings.NewReader(many), Options{MaxLines: 10}); err == nil || !strings.Contains(err.Error(), "more than 10 lines") {
		t.Errorf("many lines: %v", err)
	}
}

// FuzzRun: arbitrary traces never panic; a successful replay's summary
// counts its calls, and each call's outcome is what Decide says.
func FuzzRun(f *testing.F) {
	b, _ := os.ReadFile("testdata/example.jsonl")
	f.Add(b)
	f.Add([]byte(`{"type":"session","session":"s","agent":"a","trust":90}` + "\n" + `{"type":"call","method":"prompts/get","name":"p.q"}`))
	set := testSet(f)
	f.Fuzz(func(t *testing.T, trace []byte) {
		rep, err := Run(set, bytes.NewReader(trace), Options{MaxLines: 1000})
		if err != nil {
			return
		}
		s := rep.Summary
		if s.Calls != len(rep.Calls) || s.Allowed+s.Denied+s.Escalated != s.Calls {
			t.Fatalf("summary %+v for %d calls", s, len(rep.Calls))
		}
		for _, c := range rep.Calls {
			switch c.Outcome {
			case "allow", "deny", "escalate":
			default:
				t.Fatalf("outcome %q", c.Outcome)
			}
		}
	})
}

func BenchmarkRun(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"type":"session","session":"s1","agent":"reporter","groups":["analytics"]}` + "\n")
	for i := 0; i < 10000; i++ {
		buf.WriteString(`{"type":"call","method":"tools/call","name":"fs.read_text_file","arguments":{"path":"/srv/share/q3.csv"}}` + "\n")
	}
	set := testSet(b)
	data := buf.Bytes()
	for b.Loop() {
		if _, err := Run(set, bytes.NewReader(data), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
