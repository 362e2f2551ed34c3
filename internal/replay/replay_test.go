package replay

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ward-dev/ward/internal/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt from WriteText's output")

// testSet parses testdata/policies.cedar.
func testSet(t testing.TB) *policy.Set {
	t.Helper()
	b, err := os.ReadFile("testdata/policies.cedar")
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse(map[string][]byte{"policies.cedar": b})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil { // as ward's loader requires
		t.Fatal(err)
	}
	return set
}

const (
	analyst = `{"type":"session","session":"s1","agent":"reporter","sponsor":"alice","groups":["analytics"]}`
	intern  = `{"type":"session","session":"s2","agent":"intern","groups":["sales"],"trust":10}`
)

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// want is what one replayed call must show.
type want struct {
	line      int
	outcome   string
	policies  []string
	approvals []string
	reason    string // substring of Reason
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		trace   string
		calls   []want
		summary Summary
	}{{
		name: "allow by permit",
		trace: lines(analyst,
			`{"type":"call","method":"tools/call","server":"fs","name":"fs.read_text_file","arguments":{"path":"/srv/share/q3.csv"}}`),
		calls:   []want{{2, "allow", []string{"fs-read-shared"}, nil, `allowed by policy "fs-read-shared" (policies.cedar:2:1)`}},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 1, Allowed: 1}, ByPolicy: map[string]int{"fs-read-shared": 1}},
	}, {
		name: "default deny, server derived from the name",
		trace: lines(analyst,
			`{"type":"call","method":"tools/call","name":"fs.read_text_file","arguments":{"path":"/etc/shadow"}}`),
		calls:   []want{{2, "deny", nil, nil, `no policy permits call_tool on Tool::"fs.read_text_file" (default deny)`}},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 1, Denied: 1}, ByPolicy: map[string]int{}},
	}, {
		name: "forbid wins over permit",
		trace: lines(analyst,
			`{"type":"call","method":"tools/call","server":"db","name":"db.drop_table","arguments":{"table":"orders"}}`),
		calls:   []want{{2, "deny", []string{"no-drops"}, nil, `denied by policy "no-drops" (policies.cedar:26:1)`}},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 1, Denied: 1}, ByPolicy: map[string]int{"no-drops": 1}},
	}, {
		name: "forbid that fails to evaluate denies",
		trace: lines(analyst,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query","arguments":{"limit":"all"}}`,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query","arguments":{"limit":100000}}`,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query","arguments":{"limit":10}}`),
		calls: []want{
			{2, "deny", []string{"huge-queries"}, nil, `forbid policy "huge-queries" (policies.cedar:21:1) could not be evaluated`},
			{3, "deny", []string{"huge-queries"}, nil, `denied by policy "huge-queries"`},
			{4, "allow", []string{"db-query"}, nil, `allowed by policy "db-query"`},
		},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 3, Allowed: 1, Denied: 2}, ByPolicy: map[string]int{"huge-queries": 2, "db-query": 1}},
	}, {
		name: "escalations: forbid with impact, permit with sponsor",
		trace: lines(analyst,
			`{"type":"call","method":"tools/call","server":"db","name":"db.delete_rows","verb":"delete","impact":{"rows":500}}`,
			`{"type":"call","method":"tools/call","server":"db","name":"db.delete_rows","verb":"delete","impact":{"rows":5}}`,
			`{"type":"call","method":"tools/call","server":"db","name":"db.export"}`),
		calls: []want{
			{2, "escalate", []string{"big-deletes"}, []string{"1 of group:dba"}, `needs approval by 1 of group:dba (policy "big-deletes")`},
			{3, "allow", []string{"db-deletes"}, nil, `allowed by policy "db-deletes"`},
			{4, "escalate", []string{"exports"}, []string{"2 of group:finance, group:cfo"}, `needs approval by 2 of group:finance, group:cfo (policy "exports")`},
		},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 3, Allowed: 1, Escalated: 2}, ByPolicy: map[string]int{"big-deletes": 1, "db-deletes": 1, "exports": 1}},
	}, {
		name: "resources, prompts and trust",
		trace: lines(intern,
			`{"type":"call","method":"resources/read","server":"docs","name":"docs://handbook"}`,
			`{"type":"call","method":"resources/subscribe","server":"docs","name":"docs://handbook"}`,
			`{"type":"call","method":"prompts/get","server":"tmpl","name":"tmpl.summary"}`,
			analyst,
			`{"type":"call","method":"prompts/get","server":"tmpl","name":"tmpl.summary"}`),
		calls: []want{
			{2, "allow", []string{"read-docs"}, nil, `allowed by policy "read-docs"`},
			{3, "allow", []string{"read-docs"}, nil, `allowed by policy "read-docs"`},
			{4, "deny", nil, nil, `no policy permits get_prompt on Prompt::"tmpl.summary"`},
			{6, "allow", []string{"trusted-prompts"}, nil, `allowed by policy "trusted-prompts"`}, // default trust 50
		},
		summary: Summary{Sessions: 2, Counts: Counts{Calls: 4, Allowed: 3, Denied: 1}, ByPolicy: map[string]int{"read-docs": 2, "trusted-prompts": 1}},
	}, {
		name: "multiple sessions: calls belong to the latest session record",
		trace: lines(analyst,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query"}`,
			"", "  \t",
			`{"type":"session","session":"s1.1","agent":"helper","groups":["analytics"],"depth":1}`,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query"}`,
			intern,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query"}`),
		calls: []want{
			{2, "allow", []string{"db-query"}, nil, `allowed by policy "db-query"`},
			{6, "deny", []string{"policies.cedar:30"}, nil, `denied by policy "policies.cedar:30" (policies.cedar:30:1)`},
			{8, "deny", nil, nil, "(default deny)"},
		},
		summary: Summary{Sessions: 3, Counts: Counts{Calls: 3, Allowed: 1, Denied: 2}, ByPolicy: map[string]int{"db-query": 1, "policies.cedar:30": 1}},
	}, {
		name: "arguments that are not an object are denied as ward would",
		trace: lines(analyst,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query","arguments":[1,2]}`,
			`{"type":"call","method":"tools/call","server":"db","name":"db.query","arguments":null}`),
		calls: []want{
			{2, "deny", nil, nil, "denied: invalid request: "},
			{3, "allow", []string{"db-query"}, nil, `allowed by policy "db-query"`},
		},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 2, Allowed: 1, Denied: 1}, ByPolicy: map[string]int{"db-query": 1}},
	}, {
		name: "http requests: defaults, taint, invalid requests denied as ward would",
		trace: lines(`{"type":"session","session":"s3","agent":"reporter","groups":["analytics"]}`,
			`{"type":"http","method":"GET","host":"api.example.com","path":"/v1/a"}`,
			`{"type":"http","method":"GET","scheme":"http","host":"api.example.com","port":80,"path":"/v1/a","taint":null}`,
			`{"type":"http","method":"GET","host":"api.example.com","path":"/v1/a","taint":["private","untrusted"]}`,
			`{"type":"http","method":"GET","host":"api.example.com"}`,
			`{"type":"http","method":"POST","host":"api.example.com","path":"/v1/a"}`,
			`{"type":"http","method":"GET","host":"api.example.com:443","path":"/v1/a"}`,
			`{"type":"http","method":"CONNECT","host":"api.example.com"}`),
		calls: []want{
			{2, "allow", []string{"api-read"}, nil, `allowed by policy "api-read"`},
			{3, "allow", []string{"api-read"}, nil, `allowed by policy "api-read"`},
			{4, "deny", []string{"lethal-trifecta"}, nil, `denied by policy "lethal-trifecta"`},
			{5, "deny", nil, nil, `no policy permits http_request on Host::"api.example.com" (default deny)`}, // path "/"
			{6, "escalate", []string{"api-write"}, []string{"1 of group:leads"}, `needs approval by 1 of group:leads`},
			{7, "deny", nil, nil, `denied: invalid request: host "api.example.com:443" is neither a name nor an IP address (a port goes in Port)`},
			{8, "deny", nil, nil, `no policy permits http_request on Host::"api.example.com" (default deny)`}, // a tunnel
		},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 7, Allowed: 2, Denied: 4, Escalated: 1}, ByPolicy: map[string]int{"api-read": 2, "lethal-trifecta": 1, "api-write": 1}},
	}, {
		name: "programs and tainted sessions",
		trace: lines(`{"type":"session","session":"s4","agent":"builder","groups":["dev"]}`,
			`{"type":"exec","command":"/usr/bin/git","args":["push","--force"]}`,
			`{"type":"exec","command":"/usr/bin/git","args":["push","--force"],"taint":["untrusted"],"cwd":"/work"}`,
			`{"type":"exec","command":"/usr/bin/git","cwd":"work"}`,
			`{"type":"exec","command":"/bin/sh"}`),
		calls: []want{
			{2, "allow", []string{"git"}, nil, `allowed by policy "git"`},
			{3, "deny", []string{"no-tainted-force-push"}, nil, `denied by policy "no-tainted-force-push"`},
			{4, "deny", nil, nil, `denied: invalid request: cwd "work" is not an absolute, clean path`},
			{5, "deny", nil, nil, `no policy permits exec on Path::"/bin/sh" (default deny)`},
		},
		summary: Summary{Sessions: 1, Counts: Counts{Calls: 4, Allowed: 1, Denied: 3}, ByPolicy: map[string]int{"git": 1, "no-tainted-force-push": 1}},
	}, {
		name:    "session without calls, CRLF line endings, nulls as absent",
		trace:   `{"type":"session","session":"s9","agent":"a","sponsor":null,"groups":null,"trust":null}` + "\r\n",
		summary: Summary{Sessions: 1, ByPolicy: map[string]int{}},
	}}
	set := testSet(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(set, strings.NewReader(tc.trace), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Calls) != len(tc.calls) {
				t.Fatalf("%d calls, want %d: %+v", len(rep.Calls), len(tc.calls), rep.Calls)
			}
			for i, w := range tc.calls {
				c := rep.Calls[i]
				got := want{c.Line, c.Outcome, c.Policies, c.Approvals, w.reason}
				if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
					t.Errorf("call %d (-want +got):\n%s", i, diff)
				}
				if !strings.Contains(c.Reason, w.reason) {
					t.Errorf("line %d: reason %q, want it to contain %q", c.Line, c.Reason, w.reason)
				}
			}
			// Session verdicts are TestSessions' business.
			verdicts := cmpopts.IgnoreFields(Summary{}, "Completed", "NeedsHuman", "Interrupted", "Attacks", "AttacksStopped", "Benign", "BenignInterrupted")
			if diff := cmp.Diff(tc.summary, rep.Summary, verdicts); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunCallFields(t *testing.T) {
	rep, err := Run(testSet(t), strings.NewReader(lines(analyst,
		`{"type":"call","method":"prompts/get","name":"tmpl.summary","arguments":{"topic":"Q3"}}`)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Call{Line: 2, Session: "s1", Method: "prompts/get", Server: "tmpl", Name: "tmpl.summary",
		Arguments: json.RawMessage(`{"topic":"Q3"}`), Outcome: "allow",
		Reason: `allowed by policy "trusted-prompts" (policies.cedar:11:1)`, Policies: []string{"trusted-prompts"}}
	if diff := cmp.Diff([]Call{want}, rep.Calls); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
}

func TestRunHTTPAndExecFields(t *testing.T) {
	rep, err := Run(testSet(t), strings.NewReader(lines(analyst,
		`{"type":"http","method":"GET","scheme":"http","host":"::1","path":"/x","taint":["private"]}`,
		`{"type":"exec","command":"/usr/bin/git","args":["log","a b"],"cwd":"/w"}`,
		`{"type":"http","method":"CONNECT","host":"a.example","port":8443}`,
		`{"type":"call","method":"tools/call","name":"fs.stat","dataset":"sales","path":"/srv/a","taint":["untrusted"]}`)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Call{
		{Line: 2, Session: "s1", Method: "http", Name: "::1", Taint: []string{"private"},
			HTTP:    &policy.HTTPRequest{Method: "GET", Scheme: "http", Host: "::1", Port: 80, Path: "/x"},
			Outcome: "deny", Reason: `no policy permits http_request on Host::"::1" (default deny)`},
		{Line: 3, Session: "s1", Method: "exec", Name: "/usr/bin/git",
			Exec:    &policy.ExecRequest{Command: "/usr/bin/git", Args: []string{"log", "a b"}, Dir: "/w"},
			Outcome: "deny", Reason: `no policy permits exec on Path::"/usr/bin/git" (default deny)`},
		{Line: 4, Session: "s1", Method: "http", Name: "a.example",
			HTTP:    &policy.HTTPRequest{Method: "CONNECT", Host: "a.example", Port: 8443},
			Outcome: "deny", Reason: `no policy permits http_request on Host::"a.example" (default deny)`},
		{Line: 5, Session: "s1", Method: "tools/call", Server: "fs", Name: "fs.stat", Dataset: "sales", Path: "/srv/a", Taint: []string{"untrusted"}, Sink: true,
			Outcome: "deny", Reason: `no policy permits call_tool on Tool::"fs.stat" (default deny)`},
	}
	if diff := cmp.Diff(want, rep.Calls); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"L2 s1 deny  http GET http://[::1]/x — ",
		`L3 s1 deny  exec /usr/bin/git log "a b" — `,
		"L4 s1 deny  http CONNECT a.example:8443 — ",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, out.String())
		}
	}
	if err := rep.WriteJSON(&out); err != nil || !strings.Contains(out.String(), `"http":{"method":"GET","scheme":"http","host":"::1","port":80,"path":"/x"}`) {
		t.Errorf("JSON report: %v\n%s", err, out.String())
	}
}

func TestRunErrors(t *testing.T) {
	const s = `{"type":"session","session":"s","agent":"a"}`
	tests := []struct {
		name  string
		trace string
		opt   Options
		want  string
	}{
		{"call first", "\n" + `{"type":"call","method":"tools/call","name":"a.b"}`, Options{},
			"trace line 2: call before any session record"},
		{"unknown field", "\n\n" + `{"type":"session","session":"s","agent":"a","foo":1}`, Options{},
			`trace line 3: unknown field "foo"`},
		{"call field in session", `{"type":"session","session":"s","agent":"a","method":"tools/call"}`, Options{},
			`trace line 1: unknown field "method"`},
		{"session field in call", lines(s, `{"type":"call","method":"tools/call","name":"a.b","agent":"x"}`), Options{},
			`trace line 2: unknown field "agent"`},
		{"field names are case-sensitive", `{"type":"session","Session":"s","agent":"a"}`, Options{},
			`trace line 1: unknown field "Session"`},
		{"unknown method", lines(s, "", "", "", "", "", "", "", `{"type":"call","method":"tools/delete","name":"a.b"}`), Options{},
			`trace line 9: method "tools/delete" is not one ward decides (tools/call, prompts/get, resources/read, resources/subscribe)`},
		{"duplicate key", `{"type":"session","session":"s","agent":"a","agent":"b"}`, Options{},
			`trace line 1: duplicate key "agent"`},
		{"nested duplicate key", lines(s, `{"type":"call","method":"tools/call","name":"a.b","arguments":{"x":1,"x":2}}`), Options{},
			`trace line 2: duplicate key "x" in "/arguments"`},
		{"invalid JSON", lines(s, `{"type":"call",`), Options{},
			"trace line 2: invalid JSON: unexpected end of line"},
		{"invalid UTF-8", "{\"type\":\"session\",\"session\":\"s\xff\",\"agent\":\"a\"}", Options{},
			`trace line 1: invalid JSON: invalid UTF-8 within "/session" after offset 30`},
		{"not an object", `[1,2]`, Options{}, "trace line 1: a record must be a JSON object"},
		{"two values", s + ` {"x":1}`, Options{}, "trace line 1: more than one JSON value on the line"},
		{"no type", `{"session":"s","agent":"a"}`, Options{}, `trace line 1: record has no "type"`},
		{"unknown type", `{"type":"bogus"}`, Options{}, `trace line 1: unknown record type "bogus" (want "session", "call", "notice", "http" or "exec")`},
		{"type not a string", `{"type":1}`, Options{}, `trace line 1: field "type" must be a string`},
		{"no agent", `{"type":"session","session":"s"}`, Options{}, `trace line 1: a session record needs "agent"`},
		{"no session id", `{"type":"session","agent":"a"}`, Options{}, `trace line 1: a session record needs "session"`},
		{"duplicate session", lines(s, s), Options{}, `trace line 2: session "s" already started at line 1`},
		{"negative depth", `{"type":"session","session":"s","agent":"a","depth":-1}`, Options{},
			`trace line 1: field "depth" must be an integer from 0 to 2147483647`},
		{"fractional depth", `{"type":"session","session":"s","agent":"a","depth":1.5}`, Options{},
			`trace line 1: field "depth" must be an integer from 0 to 2147483647`},
		{"trust out of range", `{"type":"session","session":"s","agent":"a","trust":101}`, Options{},
			`trace line 1: field "trust" must be an integer from 0 to 100`},
		{"groups not strings", `{"type":"session","session":"s","agent":"a","groups":[1]}`, Options{},
			`trace line 1: field "groups" must be an array of strings`},
		{"impact not integers", lines(s, `{"type":"call","method":"tools/call","name":"a.b","impact":{"rows":1.5}}`), Options{},
			`trace line 2: field "impact" must be an object of integers`},
		{"bad time", lines(s, `{"type":"call","method":"tools/call","name":"a.b","time":"yesterday"}`), Options{},
			`trace line 2: field "time" must be an RFC 3339 time, got "yesterday"`},
		{"no method", lines(s, `{"type":"call","name":"a.b"}`), Options{}, `trace line 2: a call record needs "method"`},
		{"notice without server", lines(s, `{"type":"notice","method":"notifications/message"}`), Options{},
			`trace line 2: a notice record needs "server" (the server that sent the message)`},
		{"notice without method", lines(s, `{"type":"notice","server":"mail"}`), Options{},
			`trace line 2: a notice record needs "method" (for example notifications/message or sampling/createMessage)`},
		{"notice params not an object", lines(s, `{"type":"notice","server":"mail","method":"notifications/message","params":"x"}`), Options{},
			`trace line 2: field "params" must be an object (the message's params as the server sent them)`},
		{"notice with a call field", lines(s, `{"type":"notice","server":"mail","method":"notifications/message","name":"mail.x"}`), Options{},
			`trace line 2: unknown field "name"`},
		{"notice first", `{"type":"notice","server":"mail","method":"notifications/message"}`, Options{}, "trace line 1: notice before any session record"},
		{"no name", lines(s, `{"type":"call","method":"tools/call"}`), Options{}, `trace line 2: a call record needs "name"`},
		{"tool name without server", lines(s, `{"type":"call","method":"tools/call","name":"nodot"}`), Options{},
			`trace line 2: name "nodot": a tools/call name is SERVER.NAME`},
		{"tool name without tool", lines(s, `{"type":"call","method":"prompts/get","name":"a."}`), Options{},
			`trace line 2: name "a.": a prompts/get name is SERVER.NAME`},
		{"server does not match", lines(s, `{"type":"call","method":"tools/call","server":"x","name":"y.z"}`), Options{},
			`trace line 2: server "x" does not match name "y.z"`},
		{"resource without server", lines(s, `{"type":"call","method":"resources/read","name":"file:///x"}`), Options{},
			`trace line 2: a resources/read call needs "server"`},
		{"line too long", lines(s, `{"type":"call","method":"tools/call","name":"a.b","arguments":{"x":"`+strings.Repeat("a", 200)+`"}}`),
			Options{MaxLineBytes: 100}, "trace line 2: line longer than 100 bytes"},
		{"last line too long", s + "\n" + strings.Repeat(" ", 101), Options{MaxLineBytes: 100},
			"trace line 2: line longer than 100 bytes"},
		{"too many lines", s + strings.Repeat("\n", 10) + "x", Options{MaxLines: 10},
			"trace line 11: trace has more than 10 lines"},
		{"empty", "\n \n", Options{}, "trace has no session record"},
		{"http first", `{"type":"http","method":"GET","host":"a.b"}`, Options{}, "trace line 1: http before any session record"},
		{"http without host", lines(s, `{"type":"http","method":"GET"}`), Options{}, `trace line 2: an http record needs "host"`},
		{"http without method", lines(s, `{"type":"http","host":"a.b"}`), Options{}, `trace line 2: an http record needs "method"`},
		{"http port 0", lines(s, `{"type":"http","method":"GET","host":"a.b","port":0}`), Options{}, `trace line 2: field "port" must be an integer from 1 to 65535`},
		{"http port a string", lines(s, `{"type":"http","method":"GET","host":"a.b","port":"443"}`), Options{}, `trace line 2: field "port" must be an integer from 1 to 65535`},
		{"http with a call field", lines(s, `{"type":"http","method":"GET","host":"a.b","name":"a.b"}`), Options{}, `trace line 2: unknown field "name"`},
		{"exec without command", lines(s, `{"type":"exec","args":["x"]}`), Options{}, `trace line 2: an exec record needs "command"`},
		{"exec args not strings", lines(s, `{"type":"exec","command":"/bin/sh","args":"-c"}`), Options{}, `trace line 2: field "args" must be an array of strings`},
		{"exec with an http field", lines(s, `{"type":"exec","command":"/bin/sh","host":"a.b"}`), Options{}, `trace line 2: unknown field "host"`},
		{"call with an exec field", lines(s, `{"type":"call","method":"tools/call","name":"a.b","command":"/bin/sh"}`), Options{}, `trace line 2: unknown field "command"`},
		{"taint not strings", lines(s, `{"type":"call","method":"tools/call","name":"a.b","taint":[1]}`), Options{}, `trace line 2: field "taint" must be an array of strings`},
		{"taint in a session", `{"type":"session","session":"s","agent":"a","taint":["x"]}`, Options{}, `trace line 1: unknown field "taint"`},
		{"negative option", s, Options{MaxLines: -1}, "replay options: negative MaxLines -1"},
	}
	set := testSet(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(set, strings.NewReader(tc.trace), tc.opt)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if rep != nil {
				t.Fatalf("report %+v with error", rep)
			}
		})
	}
}

// TestRunLimitsInclusive: a line of exactly MaxLineBytes and a trace of
// exactly MaxLines lines are accepted.
func TestRunLimitsInclusive(t *testing.T) {
	s := `{"type":"session","session":"s","agent":"a"}`
	trace := s + "\r\n" + strings.Repeat("\n", 8) + s[:len(s)-1] + strings.Repeat(" ", 10) + `,"trust":1}`
	trace = strings.Replace(trace, `"session":"s","agent":"a" `, `"session":"t","agent":"a" `, 1)
	n := len(trace[strings.LastIndexByte(trace, '\n')+1:])
	rep, err := Run(testSet(t), strings.NewReader(trace), Options{MaxLines: 10, MaxLineBytes: n})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Sessions != 2 {
		t.Fatalf("sessions %d, want 2", rep.Summary.Sessions)
	}
}

// TestWriteTextGolden replays the example traces and compares the reports
// with testdata/*.txt.
func TestWriteTextGolden(t *testing.T) {
	for _, name := range []string{"example", "egress"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open("testdata/" + name + ".jsonl")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := Run(testSet(t), f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := rep.WriteText(&out); err != nil {
				t.Fatal(err)
			}
			golden := "testdata/" + name + ".txt"
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
				t.Fatalf("WriteText differs from %s (-want +got; rerun with -update if intended):\n%s", golden, diff)
			}
		})
	}
}

// TestWriteTextQuotes: strings from the trace cannot forge report lines or
// carry terminal escapes.
func TestWriteTextQuotes(t *testing.T) {
	trace := lines(`{"type":"session","session":"evil\nL99 s1 allow","agent":"a"}`,
		`{"type":"call","method":"resources/read","server":"fs","name":"file:///x\u001b[2J y"}`)
	rep, err := Run(testSet(t), strings.NewReader(trace), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	first, _, _ := strings.Cut(got, "\n")
	want := `L2 "evil\nL99 s1 allow" deny  resources/read "file:///x\x1b[2J y" — "file:///x\x1b[2J y" is not a resource name ward accepts`
	if first != want {
		t.Fatalf("first line\n%s\nwant\n%s", first, want)
	}
	if strings.ContainsRune(got, '\x1b') {
		t.Fatalf("escape character in report:\n%q", got)
	}
}

func TestWriteJSON(t *testing.T) {
	f, err := os.Open("testdata/example.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Run(testSet(t), f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	ls := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(ls) != len(rep.Calls)+1 {
		t.Fatalf("%d lines for %d calls:\n%s", len(ls), len(rep.Calls), out.String())
	}
	var calls []Call
	for _, l := range ls[:len(ls)-1] {
		var c Call
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		calls = append(calls, c)
	}
	if diff := cmp.Diff(rep.Calls, calls); diff != "" {
		t.Errorf("calls round trip (-report +json):\n%s", diff)
	}
	var sum struct{ Summary Summary }
	dec := json.NewDecoder(strings.NewReader(ls[len(ls)-1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sum); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rep.Summary, sum.Summary); diff != "" {
		t.Errorf("summary round trip (-report +json):\n%s", diff)
	}
	if !strings.HasPrefix(ls[len(ls)-1], `{"summary":{"sessions":2,"calls":11,"allowed":3,"denied":6,"escalated":2,"by_policy":{`) {
		t.Errorf("summary line %s", ls[len(ls)-1])
	}
}
