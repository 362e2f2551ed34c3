package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/google/go-cmp/cmp"
)

func mustParse(t testing.TB, src string) *Set {
	t.Helper()
	s, err := Parse(map[string][]byte{"test.cedar": []byte(src)})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

// toolReq is a call of server.tool by session s1 of agent bot in group
// analytics, sponsored by alice.
func toolReq(server, tool, args string) Request {
	r := Request{
		Session: "s1",
		Agent:   "bot",
		Sponsor: "alice",
		Groups:  []string{"analytics"},
		Action:  ActionCallTool,
		Server:  server,
		Name:    server + "." + tool,
	}
	if args != "" {
		r.Arguments = json.RawMessage(args)
	}
	return r
}

func reasonIDs(d Decision) []string {
	var ids []string
	for _, r := range d.Reasons {
		ids = append(ids, r.PolicyID)
	}
	return ids
}

func TestDecide(t *testing.T) {
	const policies = `
@id("permit-read")
permit (principal, action == Action::"call_tool", resource == Tool::"fs.read_file");

@id("permit-write")
permit (principal, action == Action::"call_tool", resource == Tool::"fs.write_file");

@id("no-writes")
forbid (principal, action, resource == Tool::"fs.write_file");

@id("analytics-db")
permit (principal in Group::"analytics", action == Action::"call_tool", resource == Tool::"db.query");

@id("mail-server")
permit (principal, action == Action::"call_tool", resource in Server::"mail");

@id("tmp-only")
permit (principal, action == Action::"call_tool", resource == Tool::"files.open")
when { context.arguments.path like "/tmp/*" };

@id("needs-owner")
permit (principal, action == Action::"call_tool", resource == Tool::"crm.lookup")
when { context.arguments.owner == principal.sponsor };

@id("sponsor-prompt")
permit (principal, action == Action::"get_prompt", resource == Prompt::"docs.summary")
when { principal.sponsor == Sponsor::"alice" && principal.agent == Agent::"bot" && context.name == "summary" };

@id("docs-resources")
permit (principal, action == Action::"read_resource", resource in Server::"docs")
when { context.server == "docs" && context.name like "file:///docs/*" };

@id("root-only")
forbid (principal, action, resource in Server::"shell") when { principal.depth > 0 };

@id("shell")
permit (principal is Session, action, resource is Tool in Server::"shell");
`
	set := mustParse(t, policies)

	other := toolReq("db", "query", "")
	other.Groups = []string{"finance"}
	delegated := toolReq("shell", "run", "")
	delegated.Depth = 2
	noSponsor := toolReq("crm", "lookup", `{"owner": "x"}`)
	noSponsor.Sponsor = ""
	prompt := Request{Session: "s1", Agent: "bot", Sponsor: "alice", Action: ActionGetPrompt, Server: "docs", Name: "docs.summary"}
	promptBob := prompt
	promptBob.Sponsor = "bob"
	res := Request{Session: "s1", Agent: "bot", Action: ActionReadResource, Server: "docs", Name: "file:///docs/a.md"}
	resOutside := res
	resOutside.Name = "file:///etc/passwd"

	tests := []struct {
		name      string
		req       Request
		allow     bool
		reasons   []string
		errSubstr string // in Errors[0] when set
	}{
		{name: "permit", req: toolReq("fs", "read_file", `{"path": "/x"}`), allow: true, reasons: []string{"permit-read"}},
		{name: "forbid wins over permit", req: toolReq("fs", "write_file", ""), reasons: []string{"no-writes"}},
		{name: "no policy", req: toolReq("fs", "delete", "")},
		{name: "group member", req: toolReq("db", "query", ""), allow: true, reasons: []string{"analytics-db"}},
		{name: "not a group member", req: other},
		{name: "server scope", req: toolReq("mail", "send", ""), allow: true, reasons: []string{"mail-server"}},
		{name: "server scope other server", req: toolReq("mailx", "send", "")},
		{name: "argument condition holds", req: toolReq("files", "open", `{"path": "/tmp/report.csv"}`), allow: true, reasons: []string{"tmp-only"}},
		{name: "argument condition fails", req: toolReq("files", "open", `{"path": "/etc/passwd"}`)},
		{name: "argument missing errors", req: toolReq("files", "open", `{}`), errSubstr: `policy "tmp-only"`},
		{name: "argument of wrong type errors", req: toolReq("files", "open", `{"path": 7}`), errSubstr: `policy "tmp-only"`},
		{name: "no arguments errors", req: toolReq("files", "open", ""), errSubstr: `policy "tmp-only"`},
		{name: "missing sponsor attribute errors", req: noSponsor, errSubstr: `test.cedar:21:1: policy "needs-owner"`},
		{name: "entity attributes", req: prompt, allow: true, reasons: []string{"sponsor-prompt"}},
		{name: "entity attributes mismatch", req: promptBob},
		{name: "resource uri", req: res, allow: true, reasons: []string{"docs-resources"}},
		{name: "resource uri outside", req: resOutside},
		{name: "root session uses shell", req: toolReq("shell", "run", ""), allow: true, reasons: []string{"shell"}},
		{name: "delegated session denied shell", req: delegated, reasons: []string{"root-only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := set.Decide(tt.req)
			if d.Allow != tt.allow {
				t.Fatalf("Allow = %v, want %v (%s)", d.Allow, tt.allow, d.Explain(tt.req))
			}
			if diff := cmp.Diff(tt.reasons, reasonIDs(d)); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			if tt.errSubstr == "" {
				if len(d.Errors) > 0 {
					t.Errorf("unexpected errors %q", d.Errors)
				}
			} else if len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tt.errSubstr) {
				t.Errorf("Errors = %q, want one containing %q", d.Errors, tt.errSubstr)
			}
		})
	}
}

func TestDefaultDeny(t *testing.T) {
	empty, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	commentsOnly := mustParse(t, "// nothing here\n")
	dir, err := LoadDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	req := toolReq("fs", "read_file", `{"path": "/tmp/x"}`)
	for name, s := range map[string]*Set{"nil": nil, "zero": {}, "empty": empty, "comments": commentsOnly, "empty dir": dir} {
		t.Run(name, func(t *testing.T) {
			if s.Len() != 0 {
				t.Errorf("Len = %d", s.Len())
			}
			d := s.Decide(req)
			if d.Allow || len(d.Reasons) != 0 || len(d.Errors) != 0 {
				t.Errorf("Decide = %+v, want plain default deny", d)
			}
			if s.MayAllow(req) {
				t.Error("MayAllow = true")
			}
		})
	}
}

func TestReasonsInPolicyOrder(t *testing.T) {
	set, err := Parse(map[string][]byte{
		"b.cedar": []byte(`permit (principal, action, resource);`),
		"a.cedar": []byte("permit (principal, action, resource);\n@id(\"z\") permit (principal, action, resource) when { true };"),
	})
	if err != nil {
		t.Fatal(err)
	}
	req := toolReq("fs", "read_file", "")
	want := []Reason{
		{PolicyID: "a.cedar:1", Effect: "permit", Position: "a.cedar:1:1"},
		{PolicyID: "z", Effect: "permit", Position: "a.cedar:2:1"},
		{PolicyID: "b.cedar:1", Effect: "permit", Position: "b.cedar:1:1"},
	}
	for range 20 { // map iteration in cedar-go must not leak into the order
		d := set.Decide(req)
		if diff := cmp.Diff(want, d.Reasons); diff != "" {
			t.Fatalf("reasons (-want +got):\n%s", diff)
		}
	}
}

func TestInvalidRequest(t *testing.T) {
	set := mustParse(t, `permit (principal, action, resource);`)
	base := toolReq("fs", "read_file", "")
	with := func(f func(*Request)) Request { r := base; f(&r); return r }
	tests := []struct {
		name string
		req  Request
		diag string
	}{
		{"array arguments", with(func(r *Request) { r.Arguments = json.RawMessage(`[1,2]`) }), "arguments must be a JSON object, got an array"},
		{"string arguments", with(func(r *Request) { r.Arguments = json.RawMessage(`"x"`) }), "arguments must be a JSON object, got a string"},
		{"number arguments", with(func(r *Request) { r.Arguments = json.RawMessage(`12`) }), "arguments must be a JSON object, got a number"},
		{"boolean arguments", with(func(r *Request) { r.Arguments = json.RawMessage(`true`) }), "arguments must be a JSON object, got a boolean"},
		{"invalid JSON", with(func(r *Request) { r.Arguments = json.RawMessage(`{"a":`) }), "arguments are not valid JSON"},
		{"not JSON", with(func(r *Request) { r.Arguments = json.RawMessage(`secret-token`) }), "arguments are not valid JSON"},
		{"duplicate member", with(func(r *Request) { r.Arguments = json.RawMessage(`{"path":"/tmp/a","path":"/etc"}`) }), "duplicate"},
		{"trailing data", with(func(r *Request) { r.Arguments = json.RawMessage(`{} {}`) }), "data after the object"},
		{"invalid UTF-8", with(func(r *Request) { r.Arguments = json.RawMessage("{\"a\":\"\xff\"}") }), "UTF-8"},
		{"too deep", with(func(r *Request) {
			r.Arguments = json.RawMessage(`{"a":` + strings.Repeat("[", MaxArgumentDepth) + strings.Repeat("]", MaxArgumentDepth) + `}`)
		}), "nested deeper than 64 levels"},
		{"no session", with(func(r *Request) { r.Session = "" }), "no session"},
		{"no agent", with(func(r *Request) { r.Agent = "" }), "no agent"},
		{"no server", with(func(r *Request) { r.Server = "" }), "no server"},
		{"no name", with(func(r *Request) { r.Name = "" }), "no resource name"},
		{"negative depth", with(func(r *Request) { r.Depth = -1 }), "negative delegation depth"},
		{"unknown action", with(func(r *Request) { r.Action = "delete_everything" }), `unknown action "delete_everything"`},
		{"tool outside its server", with(func(r *Request) { r.Name = "other.read_file" }), `call_tool name "other.read_file" is not of the form "fs.NAME"`},
		{"tool without name", with(func(r *Request) { r.Name = "fs." }), `is not of the form`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := set.Decide(tt.req)
			if d.Allow {
				t.Fatal("allowed an invalid request")
			}
			if len(d.Errors) != 1 || !strings.HasPrefix(d.Errors[0], "invalid request: ") || !strings.Contains(d.Errors[0], tt.diag) {
				t.Fatalf("Errors = %q, want one invalid request diagnostic containing %q", d.Errors, tt.diag)
			}
			if strings.Contains(d.Errors[0], "secret-token") {
				t.Errorf("diagnostic quotes the arguments: %q", d.Errors[0])
			}
			if got := d.Explain(tt.req); got != "denied: "+d.Errors[0] {
				t.Errorf("Explain = %q", got)
			}
		})
	}
	// Just under the depth limit is accepted; null means no arguments.
	for _, args := range []string{
		`{"a":` + strings.Repeat("[", MaxArgumentDepth-1) + strings.Repeat("]", MaxArgumentDepth-1) + `}`,
		`null`, ` {} `,
	} {
		if d := set.Decide(with(func(r *Request) { r.Arguments = json.RawMessage(args) })); !d.Allow {
			t.Errorf("arguments %.40q: %v", args, d.Errors)
		}
	}
}

func TestArgumentsValue(t *testing.T) {
	rec := func(m types.RecordMap) types.Value { return types.NewRecord(m) }
	tests := []struct {
		in   string
		want types.Value
	}{
		{``, rec(nil)},
		{`null`, rec(nil)},
		{`{}`, rec(nil)},
		{`{"s":"x","t":true,"f":false,"n":null}`, rec(types.RecordMap{"s": types.String("x"), "t": types.True, "f": types.False})},
		{`{"i":42,"neg":-7,"zero":-0}`, rec(types.RecordMap{"i": types.Long(42), "neg": types.Long(-7), "zero": types.Long(0)})},
		{`{"max":9223372036854775807,"big":9223372036854775808}`, rec(types.RecordMap{"max": types.Long(9223372036854775807), "big": types.String("9223372036854775808")})},
		{`{"f":1.5,"e":1e3,"E":2E-1,"one":1.0}`, rec(types.RecordMap{"f": types.String("1.5"), "e": types.String("1e3"), "E": types.String("2E-1"), "one": types.String("1.0")})},
		{`{"a":[1,"x",null,1,[true]]}`, rec(types.RecordMap{"a": types.NewSet(types.Long(1), types.String("x"), types.NewSet(types.True))})},
		{`{"o":{"p":{"q":"\u00e9\n"}}}`, rec(types.RecordMap{"o": rec(types.RecordMap{"p": rec(types.RecordMap{"q": types.String("é\n")})})})},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := argumentsValue([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // prefix of the error
	}{
		{"parser error", "permit (principal, action, resource);\n\npermit (principal action, resource);", "policies/base.cedar:3:25: parse error: expected \",\", got \"action\""},
		{"scanner error", "permit (principal, action, resource)\nwhen { \"unterminated };", "policies/base.cedar:2:8: parse error: literal not terminated"},
		{"unexpected end", "permit (principal, action, resource)", "policies/base.cedar:1:37: parse error: "},
		{"bad escape", "permit (principal, action, resource);\n  permit (principal, action, resource) when { context.a == \"\\q\" };", "policies/base.cedar:2:60: parse error: invalid char escape"},
		{"no cedar position", "permit (principal, action, resource); // x;\n\n  permit (principal, action, resource) when { context.a == 99999999999999999999 };", "policies/base.cedar:3:3: parse error: in this policy: "},
		{"no cedar position in first policy", "// c;\n permit (principal, action, resource) when { context.a == -99999999999999999999 };", "policies/base.cedar:2:2: parse error: in this policy: "},
		{"invalid UTF-8", "permit (principal, action, resource);\n// caf\xe9\n", "policies/base.cedar:2:1: parse error: invalid UTF-8"},
		{"invalid UTF-8 reported at 0:0", "permit (principal, action, resource);\n  \xaa", "policies/base.cedar:2:3: parse error: invalid UTF-8"},
		{"empty id", `@id("") permit (principal, action, resource);`, "policies/base.cedar:1:1: parse error: empty @id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"policies/base.cedar": []byte(tt.src)})
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %q, want prefix %q", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "policies/base.cedar" {
				t.Fatalf("error %v is not a *ParseError for the file", err)
			}
		})
	}

	// Every file's first error is reported, in file order.
	_, err := Parse(map[string][]byte{
		"b.cedar":  []byte("forbid (principal, action, resource)"),
		"a.cedar":  []byte("permit (principal, action);"),
		"ok.cedar": []byte("permit (principal, action, resource);"),
	})
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "a.cedar:1:") || !strings.HasPrefix(lines[1], "b.cedar:1:") {
		t.Fatalf("errors %q, want one per bad file", lines)
	}
}

func TestDuplicateID(t *testing.T) {
	_, err := Parse(map[string][]byte{
		"a.cedar": []byte(`@id("same") permit (principal, action, resource);`),
		"b.cedar": []byte("\n@id(\"same\") forbid (principal, action, resource);"),
	})
	want := `b.cedar:2:1: duplicate policy id "same" (also at a.cedar:1:1)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	// An explicit id may not take a generated one either.
	_, err = Parse(map[string][]byte{
		"a.cedar": []byte("permit (principal, action, resource);\n@id(\"a.cedar:1\") permit (principal, action, resource);"),
	})
	if err == nil || !strings.Contains(err.Error(), `duplicate policy id "a.cedar:1"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPolicies(t *testing.T) {
	src := "// leading comment\n@id(\"p\") @escalate(\"1 of group:finance\")\npermit (principal, action, resource)\n  when { context.name == \"a;b\" }; // trailing\n" +
		"forbid (principal, action, resource); forbid (principal, action == Action::\"get_prompt\", resource);\n"
	set, err := Parse(map[string][]byte{"x.cedar": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	want := []PolicyInfo{
		{ID: "p", Effect: "permit", Position: "x.cedar:2:1",
			Text:        "@id(\"p\") @escalate(\"1 of group:finance\")\npermit (principal, action, resource)\n  when { context.name == \"a;b\" };",
			Annotations: map[string]string{"id": "p", "escalate": "1 of group:finance"}},
		{ID: "x.cedar:5:1", Effect: "forbid", Position: "x.cedar:5:1", Text: "forbid (principal, action, resource);", Annotations: map[string]string{}},
		{ID: "x.cedar:5:39", Effect: "forbid", Position: "x.cedar:5:39", Text: "forbid (principal, action == Action::\"get_prompt\", resource);", Annotations: map[string]string{}},
	}
	got := set.Policies()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Policies (-want +got):\n%s", diff)
	}
	got[0].Annotations["id"] = "mutated"
	if set.Policies()[0].Annotations["id"] != "p" {
		t.Error("Policies exposes the set's annotations")
	}
	if set.Len() != 3 {
		t.Errorf("Len = %d", set.Len())
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("b.cedar", `permit (principal, action, resource);`)
	write("a.cedar", `@id("a") forbid (principal, action, resource == Tool::"fs.rm");`)
	write("notes.txt", `this is not cedar`)
	if err := os.Mkdir(filepath.Join(dir, "sub.cedar"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("sub.cedar/c.cedar", `garbage`)

	set, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range set.Policies() {
		ids = append(ids, p.ID)
	}
	if want := []string{"a", filepath.Join(dir, "b.cedar") + ":1"}; !slices.Equal(ids, want) {
		t.Errorf("ids = %q, want %q", ids, want)
	}
	if d := set.Decide(toolReq("fs", "rm", "")); d.Allow || d.Reasons[0].Position != filepath.Join(dir, "a.cedar")+":1:1" {
		t.Errorf("Decide = %+v", d)
	}

	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadDir of a missing directory succeeded")
	}
	_, err = LoadFiles(filepath.Join(dir, "a.cedar"), filepath.Join(dir, "missing1.cedar"), filepath.Join(dir, "missing2.cedar"))
	if err == nil || strings.Count(err.Error(), "read policy file") != 2 {
		t.Errorf("LoadFiles err = %v, want both missing files", err)
	}
	set, err = LoadFiles(filepath.Join(dir, "b.cedar"))
	if err != nil || set.Len() != 1 {
		t.Errorf("LoadFiles = %v, %v", set, err)
	}
	if set, err := LoadFiles(); err != nil || set.Len() != 0 {
		t.Errorf("LoadFiles() = %v, %v", set, err)
	}
}

func TestMayAllow(t *testing.T) {
	const policies = `
@id("tmp") permit (principal, action == Action::"call_tool", resource == Tool::"fs.read_file")
when { context.arguments.path like "/tmp/*" };

@id("any") permit (principal, action == Action::"call_tool", resource in Server::"fs");
@id("rm") forbid (principal, action, resource == Tool::"fs.rm");

@id("no-force") forbid (principal, action, resource == Tool::"fs.move") when { context.arguments.force == true };

@id("has-args") permit (principal, action == Action::"call_tool", resource == Tool::"git.push")
when { context has arguments && context.arguments has branch };

@id("deep") forbid (principal, action, resource in Server::"git") when { principal.depth > 0 };

@id("other-server") permit (principal, action == Action::"call_tool", resource == Tool::"db.query")
when { context.server == "other" };

@id("analysts") permit (principal in Group::"analytics", action == Action::"get_prompt", resource in Server::"docs")
when { context.arguments.topic == "sales" };
`
	set := mustParse(t, policies)
	delegated := toolReq("git", "push", "")
	delegated.Depth = 1
	prompt := Request{Session: "s", Agent: "a", Groups: []string{"analytics"}, Action: ActionGetPrompt, Server: "docs", Name: "docs.brief"}
	outsider := prompt
	outsider.Groups = nil
	tests := []struct {
		name string
		req  Request
		want bool
	}{
		{"argument-conditioned permit", toolReq("fs", "read_file", ""), true},
		{"unconditional permit", toolReq("fs", "list", ""), true},
		{"unconditional forbid", toolReq("fs", "rm", ""), false},
		{"argument-conditioned forbid", toolReq("fs", "move", ""), true},
		{"has arguments", toolReq("git", "push", ""), true},
		{"argument-independent forbid holds", delegated, false},
		{"no permit", toolReq("web", "fetch", ""), false},
		{"permit whose other condition fails", toolReq("db", "query", ""), false},
		{"group and argument condition", prompt, true},
		{"not in group", outsider, false},
		{"invalid request", Request{Action: ActionCallTool, Server: "fs", Name: "fs.list"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := set.MayAllow(tt.req); got != tt.want {
				t.Errorf("MayAllow = %v, want %v", got, tt.want)
			}
		})
	}
	// MayAllow must agree with Decide on some witness arguments.
	if !set.Decide(toolReq("fs", "read_file", `{"path":"/tmp/a"}`)).Allow || !set.Decide(toolReq("git", "push", `{"branch":"x"}`)).Allow {
		t.Error("witness arguments not allowed")
	}
}

func TestExplain(t *testing.T) {
	set, err := Parse(map[string][]byte{"policies/base.cedar": []byte(`
@id("read-only") permit (principal, action == Action::"call_tool", resource == Tool::"fs.read_file");
@id("read-any") permit (principal, action, resource in Server::"fs") when { context.name == "read_file" };
@id("no-writes") forbid (principal, action, resource == Tool::"fs.write_file");
@id("broken") permit (principal, action, resource == Tool::"fs.stat") when { context.arguments.missing };
`)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		req  Request
		want string
	}{
		{toolReq("fs", "write_file", ""), `denied by policy "no-writes" (policies/base.cedar:4:1)`},
		{toolReq("fs", "read_file", ""), `allowed by policies "read-only" (policies/base.cedar:2:1), "read-any" (policies/base.cedar:3:1)`},
		{toolReq("fs", "delete", ""), `no policy permits call_tool on Tool::"fs.delete" (default deny)`},
		{Request{Session: "s", Agent: "a", Action: ActionReadResource, Server: "fs", Name: "file:///x"}, `no policy permits read_resource on Resource::"file:///x" (default deny)`},
		{toolReq("fs", "stat", ""), `no policy permits call_tool on Tool::"fs.stat" (default deny); 1 policy failed to evaluate: policies/base.cedar:5:1: policy "broken": record does not have the attribute ` + "`missing`"},
		{toolReq("fs", "stat", "[]"), `denied: invalid request: arguments must be a JSON object, got an array`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := set.Decide(tt.req).Explain(tt.req)
			if got != tt.want {
				t.Errorf("Explain =\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}

func TestConcurrentDecide(t *testing.T) {
	set := mustParse(t, `permit (principal in Group::"analytics", action, resource in Server::"fs") when { context.arguments.n > 3 };`)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				req := toolReq("fs", "read_file", `{"n": `+string(rune('0'+(i+j)%10))+`}`)
				want := (i+j)%10 > 3
				if d := set.Decide(req); d.Allow != want {
					t.Errorf("n=%d: Allow = %v", (i+j)%10, d.Allow)
					return
				}
				if !set.MayAllow(req) {
					t.Error("MayAllow = false")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestExampleFile(t *testing.T) {
	set, err := LoadDir("testdata/policies")
	if err != nil {
		t.Fatal(err)
	}
	tool := func(name, args string, depth int) Request {
		r := toolReq(strings.Split(name, ".")[0], strings.Split(name, ".")[1], args)
		r.Depth = depth
		return r
	}
	tests := []struct {
		req  Request
		want string
	}{
		{tool("fs.read_file", `{"path": "/tmp/report.csv"}`, 0), `allowed by policy "analytics-fs-tmp" (testdata/policies/base.cedar:2:1)`},
		{tool("fs.read_file", `{"path": "/etc/passwd"}`, 0), `no policy permits call_tool on Tool::"fs.read_file" (default deny)`},
		{tool("fs.write_file", `{"path": "/tmp/x"}`, 0), `denied by policy "no-writes" (testdata/policies/base.cedar:14:1)`},
		{tool("shell.run", `{}`, 1), `denied by policy "testdata/policies/base.cedar:18" (testdata/policies/base.cedar:18:1)`},
	}
	for _, tt := range tests {
		if got := set.Decide(tt.req).Explain(tt.req); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.req.Name, tt.req.Arguments, got, tt.want)
		}
	}
}

func TestPreparedCacheBounded(t *testing.T) {
	set := mustParse(t, `permit (principal in Group::"analytics", action, resource) when { principal.depth == 0 };`)
	for i := range preparedCacheSize + 10 {
		req := toolReq("fs", "read_file", "")
		req.Session = strings.Repeat("s", 1+i%7) + string(rune('a'+i%26)) + strings.Repeat("x", i/182)
		req.Depth = i % 2
		if i%3 == 0 {
			req.Groups = nil
		}
		want := req.Depth == 0 && i%3 != 0
		for range 2 { // miss, then hit
			if d := set.Decide(req); d.Allow != want {
				t.Fatalf("request %d: Allow = %v, want %v", i, d.Allow, want)
			}
		}
	}
	set.cache.mu.RLock()
	n := len(set.cache.m)
	set.cache.mu.RUnlock()
	if n > preparedCacheSize {
		t.Errorf("cache holds %d entries, bound is %d", n, preparedCacheSize)
	}
	// Keys distinguish fields whose concatenations coincide.
	a := Request{Session: "ab", Agent: "c", Groups: []string{"x", "y"}}
	b := Request{Session: "a", Agent: "bc", Groups: []string{"x/y"}}
	if preparedKey(a) == preparedKey(b) {
		t.Error("distinct requests share a cache key")
	}
}
