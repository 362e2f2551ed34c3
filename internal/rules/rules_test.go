package rules

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/google/go-cmp/cmp"

	wardpolicy "github.com/ward-dev/ward/internal/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.cedar from the compiler's output")

// TestGolden compiles every testdata/*.rules file and compares the Cedar
// with testdata/*.cedar byte for byte. The output must also parse with
// cedar-go, one policy per rule.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.rules")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(in)
			got, err := CompileToCedar(name, src)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			want := strings.TrimSuffix(in, ".rules") + ".cedar"
			if *update {
				if err := os.WriteFile(want, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if diff := cmp.Diff(string(exp), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got):\n%s", want, diff)
			}
			rules, err := Compile(name, src)
			if err != nil {
				t.Fatal(err)
			}
			list, err := cedar.NewPolicyListFromBytes(name, got)
			if err != nil {
				t.Fatalf("cedar-go rejects the output: %v", err)
			}
			if len(list) != len(rules) {
				t.Fatalf("cedar-go parsed %d policies, want %d", len(list), len(rules))
			}
			if _, err := cedar.NewPolicySetFromBytes(name, got); err != nil {
				t.Fatalf("cedar-go rejects the output as a set: %v", err)
			}
			ids := map[string]bool{}
			for i, p := range list {
				a := p.Annotations()
				id, rule := string(a["id"]), string(a["rule"])
				if ids[id] {
					t.Errorf("duplicate @id %q", id)
				}
				ids[id] = true
				if rule != rules[i].Text {
					t.Errorf("policy %d: @rule %q, want %q", i, rule, rules[i].Text)
				}
				if !strings.HasPrefix(id, name+":") {
					t.Errorf("policy %d: @id %q does not name the file", i, id)
				}
				// Each Rule's Cedar parses on its own too.
				if _, err := cedar.NewPolicyListFromBytes(name, []byte(rules[i].Cedar)); err != nil {
					t.Errorf("rule %d alone: %v", i, err)
				}
			}
		})
	}
}

// request is a call in ward's model; see internal/policy's prepare.
type request struct {
	agent, sponsor string
	groups         []string
	depth          int
	action         string // call_tool, read_resource, get_prompt
	server, name   string // name: "server.tool" or the URI
	args           types.Record
	verb           string // context.verb, "" for absent
	impact         types.Record
}

// build puts r into Cedar entities and a request the way internal/policy
// does (Session in Agent in Group, resource in Server, context
// {arguments, server, name}), plus the gateway's verb and impact.
func (r request) build() (types.EntityMap, types.Request) {
	session := types.NewEntityUID("Session", "s1")
	agent := types.NewEntityUID("Agent", types.String(r.agent))
	server := types.NewEntityUID("Server", types.String(r.server))
	var resource types.EntityUID
	ctxName := r.name
	switch r.action {
	case "call_tool":
		resource = types.NewEntityUID("Tool", types.String(r.name))
		ctxName = strings.TrimPrefix(r.name, r.server+".")
	case "get_prompt":
		resource = types.NewEntityUID("Prompt", types.String(r.name))
		ctxName = strings.TrimPrefix(r.name, r.server+".")
	default:
		resource = types.NewEntityUID("Resource", types.String(r.name))
	}
	groups := make([]types.EntityUID, len(r.groups))
	ents := types.EntityMap{}
	for i, g := range r.groups {
		groups[i] = types.NewEntityUID("Group", types.String(g))
		ents[groups[i]] = types.Entity{UID: groups[i]}
	}
	sattrs := types.RecordMap{"agent": agent, "depth": types.Long(r.depth)}
	var aattrs types.RecordMap
	if r.sponsor != "" {
		sp := types.NewEntityUID("Sponsor", types.String(r.sponsor))
		sattrs["sponsor"] = sp
		aattrs = types.RecordMap{"sponsor": sp}
		ents[sp] = types.Entity{UID: sp}
	}
	ents[session] = types.Entity{UID: session, Parents: types.NewEntityUIDSet(agent), Attributes: types.NewRecord(sattrs)}
	ents[agent] = types.Entity{UID: agent, Parents: types.NewEntityUIDSet(groups...), Attributes: types.NewRecord(aattrs)}
	ents[server] = types.Entity{UID: server}
	ents[resource] = types.Entity{UID: resource, Parents: types.NewEntityUIDSet(server)}
	args := r.args
	if args.Len() == 0 {
		args = types.NewRecord(nil)
	}
	ctx := types.RecordMap{"arguments": args, "server": types.String(r.server), "name": types.String(ctxName)}
	if r.verb != "" {
		ctx["verb"] = types.String(r.verb)
	}
	if r.impact.Len() > 0 {
		ctx["impact"] = r.impact
	}
	return ents, types.Request{
		Principal: session,
		Action:    types.NewEntityUID("Action", types.String(r.action)),
		Resource:  resource,
		Context:   types.NewRecord(ctx),
	}
}

func rec(kv ...any) types.Record {
	m := types.RecordMap{}
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case int:
			m[types.String(kv[i].(string))] = types.Long(v)
		case string:
			m[types.String(kv[i].(string))] = types.String(v)
		case bool:
			m[types.String(kv[i].(string))] = types.Boolean(v)
		case types.Value:
			m[types.String(kv[i].(string))] = v
		}
	}
	return types.NewRecord(m)
}

// TestDecisions compiles rules, loads them with cedar-go and checks
// decisions: whether the request is allowed, and which escalations the
// determining policies carry.
func TestDecisions(t *testing.T) {
	base := request{agent: "reporter", sponsor: "alice", groups: []string{"analytics"}, action: "call_tool", server: "postgres", name: "postgres.query"}
	with := func(f func(*request)) request { r := base; f(&r); return r }
	tests := []struct {
		name     string
		rules    string
		req      request
		allow    bool
		escalate string // @escalate of a determining policy, "" if none
	}{
		{"group permit", "agents in group analytics may call postgres.query.", base, true, ""},
		{"group permit other group", "agents in group analytics may call postgres.query.", with(func(r *request) { r.groups = []string{"ops"} }), false, ""},
		{"group permit other tool", "agents in group analytics may call postgres.query.", with(func(r *request) { r.name = "postgres.exec" }), false, ""},
		{"group permit other action", "agents in group analytics may call postgres.query.", with(func(r *request) { r.action = "get_prompt" }), false, ""},
		{"only to read, verb read", "agents in group analytics may call postgres.query only to read.", with(func(r *request) { r.verb = "read" }), true, ""},
		{"only to read, verb delete", "agents in group analytics may call postgres.query only to read.", with(func(r *request) { r.verb = "delete" }), false, ""},
		{"only to read, no verb", "agents in group analytics may call postgres.query only to read.", base, false, ""},
		{"only to delete at most 100 rows", "agents in group analytics may call postgres.query only to delete at most 100 rows.",
			with(func(r *request) { r.verb = "delete"; r.impact = rec("rows", 100) }), true, ""},
		{"only to delete at most 100 rows, 101", "agents in group analytics may call postgres.query only to delete at most 100 rows.",
			with(func(r *request) { r.verb = "delete"; r.impact = rec("rows", 101) }), false, ""},
		{"agent any tool on server", "agent reporter may call any tool on server fs.", with(func(r *request) { r.server, r.name = "fs", "fs.read_file" }), true, ""},
		{"agent any tool other server", "agent reporter may call any tool on server fs.", base, false, ""},
		{"agent any tool other agent", "agent reporter may call any tool on server fs.", with(func(r *request) { r.agent, r.server, r.name = "writer", "fs", "fs.read_file" }), false, ""},
		{"resources matching", `any agent may read resources matching "file:///srv/share/*".`,
			with(func(r *request) { r.action, r.server, r.name = "read_resource", "fs", "file:///srv/share/a/b.txt" }), true, ""},
		{"resources not matching", `any agent may read resources matching "file:///srv/share/*".`,
			with(func(r *request) { r.action, r.server, r.name = "read_resource", "fs", "file:///etc/passwd" }), false, ""},
		{"resources matching is not a tool", `any agent may read resources matching "*".`, base, false, ""},
		{"sponsor prompt", "agents of sponsor alice may get prompt demo.summarize.",
			with(func(r *request) { r.action, r.server, r.name = "get_prompt", "demo", "demo.summarize" }), true, ""},
		{"sponsor prompt other sponsor", "agents of sponsor alice may get prompt demo.summarize.",
			with(func(r *request) {
				r.sponsor, r.action, r.server, r.name = "bob", "get_prompt", "demo", "demo.summarize"
			}), false, ""},
		{"sponsor prompt no sponsor", "agents of sponsor alice may get prompt demo.summarize.",
			with(func(r *request) { r.sponsor, r.action, r.server, r.name = "", "get_prompt", "demo", "demo.summarize" }), false, ""},
		{"never beats may", "agents may call any tool.\nnever call fs.write_file.",
			with(func(r *request) { r.server, r.name = "fs", "fs.write_file" }), false, ""},
		{"never leaves others", "agents may call any tool.\nnever call fs.write_file.",
			with(func(r *request) { r.server, r.name = "fs", "fs.read_file" }), true, ""},
		{"sub-agents never, root", "agents may call any tool.\nsub-agents never call demo.delete_note.",
			with(func(r *request) { r.server, r.name = "demo", "demo.delete_note" }), true, ""},
		{"sub-agents never, child", "agents may call any tool.\nsub-agents never call demo.delete_note.",
			with(func(r *request) { r.depth, r.server, r.name = 2, "demo", "demo.delete_note" }), false, ""},
		{"big delete escalates", "agents may call any tool.\nnever delete more than 10 rows without approval from 1 of group:dba.",
			with(func(r *request) { r.verb = "delete"; r.impact = rec("rows", 11) }), false, "1 of group:dba"},
		{"small delete", "agents may call any tool.\nnever delete more than 10 rows without approval from 1 of group:dba.",
			with(func(r *request) { r.verb = "delete"; r.impact = rec("rows", 10) }), true, ""},
		{"delete without impact", "agents may call any tool.\nnever delete more than 10 rows without approval from 1 of group:dba.",
			with(func(r *request) { r.verb = "delete" }), true, ""},
		{"big read is not a delete", "agents may call any tool.\nnever delete more than 10 rows without approval from 1 of group:dba.",
			with(func(r *request) { r.verb = "read"; r.impact = rec("rows", 1000) }), true, ""},
		{"big payment escalates", "agents may call any tool.\nnever call payments.send with argument amount over 100 without approval from 2 of group:finance.",
			with(func(r *request) { r.server, r.name, r.args = "payments", "payments.send", rec("amount", 101) }), false, "2 of group:finance"},
		{"small payment", "agents may call any tool.\nnever call payments.send with argument amount over 100 without approval from 2 of group:finance.",
			with(func(r *request) { r.server, r.name, r.args = "payments", "payments.send", rec("amount", 100) }), true, ""},
		{"payment without amount", "agents may call any tool.\nnever call payments.send with argument amount over 100 without approval from 2 of group:finance.",
			with(func(r *request) { r.server, r.name = "payments", "payments.send" }), true, ""},
		{"path starts with", `agent x may call fs.read_text_file when argument path starts with "/srv/share/".`,
			with(func(r *request) {
				r.agent, r.server, r.name, r.args = "x", "fs", "fs.read_text_file", rec("path", "/srv/share/a.txt")
			}), true, ""},
		{"path outside", `agent x may call fs.read_text_file when argument path starts with "/srv/share/".`,
			with(func(r *request) {
				r.agent, r.server, r.name, r.args = "x", "fs", "fs.read_text_file", rec("path", "/etc/passwd")
			}), false, ""},
		{"path absent", `agent x may call fs.read_text_file when argument path starts with "/srv/share/".`,
			with(func(r *request) { r.agent, r.server, r.name = "x", "fs", "fs.read_text_file" }), false, ""},
		{"star in literal is literal", `agents may call fs.cat when argument path starts with "/srv/*/".`,
			with(func(r *request) { r.server, r.name, r.args = "fs", "fs.cat", rec("path", "/srv/etc/x") }), false, ""},
		{"star in literal matches star", `agents may call fs.cat when argument path starts with "/srv/*/".`,
			with(func(r *request) { r.server, r.name, r.args = "fs", "fs.cat", rec("path", "/srv/*/x") }), true, ""},
		{"ends with backslash quote", `agents may call fs.cat when argument path ends with "\\\"".`,
			with(func(r *request) { r.server, r.name, r.args = "fs", "fs.cat", rec("path", `a\"`) }), true, ""},
		{"contains", `agents may call fs.grep when argument q contains "x" and argument n at least 2.`,
			with(func(r *request) { r.server, r.name, r.args = "fs", "fs.grep", rec("q", "axb", "n", 2) }), true, ""},
		{"contains, n too small", `agents may call fs.grep when argument q contains "x" and argument n at least 2.`,
			with(func(r *request) { r.server, r.name, r.args = "fs", "fs.grep", rec("q", "axb", "n", 1) }), false, ""},
		{"nested and quoted arguments", `agents may call fs.x when argument opts.mode equals "fast" and argument "in" equals true.`,
			with(func(r *request) {
				r.server, r.name, r.args = "fs", "fs.x", rec("opts", rec("mode", "fast"), "in", true)
			}), true, ""},
		{"nested argument absent", `agents may call fs.x when argument opts.mode equals "fast".`,
			with(func(r *request) { r.server, r.name, r.args = "fs", "fs.x", rec("opts", rec()) }), false, ""},
		{"permit with approval", "agents in group analytics may call postgres.query only with approval from 1 of group:leads within 15m.", base, true, "1 of group:leads"},
		{"never on server by verb", "agents may call any tool.\nnever write on server fs.",
			with(func(r *request) { r.server, r.name, r.verb = "fs", "fs.put", "write" }), false, ""},
		{"never on server by verb, other server", "agents may call any tool.\nnever write on server fs.",
			with(func(r *request) { r.server, r.name, r.verb = "s3", "s3.put", "write" }), true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := CompileToCedar("t.rules", []byte(tc.rules))
			if err != nil {
				t.Fatal(err)
			}
			ps, err := cedar.NewPolicySetFromBytes("t.cedar", out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			ents, req := tc.req.build()
			dec, diag := cedar.Authorize(ps, ents, req)
			if len(diag.Errors) > 0 {
				t.Fatalf("evaluation errors: %v\n%s", diag.Errors, out)
			}
			if got := dec == cedar.Allow; got != tc.allow {
				t.Fatalf("allow = %v, want %v\n%s", got, tc.allow, out)
			}
			esc := ""
			for _, r := range diag.Reasons {
				if e := ps.Get(r.PolicyID).Annotations()["escalate"]; e != "" {
					esc = string(e)
				}
			}
			if esc != tc.escalate {
				t.Fatalf("escalate = %q, want %q\n%s", esc, tc.escalate, out)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		src  string
		want []string
	}{
		{"agents in group analytics may use postgres.query.", []string{`r:1:31: expected "call", "read", "get", "request" or "run" after "may", found "use"`}},
		{"\n\nagent reporter may use fs.x.", []string{`r:3:20: expected "call", "read", "get", "request" or "run" after "may", found "use"`}},
		{"agents in group analytics may run postgres.query.", []string{`r:1:35: expected an absolute program path such as /usr/bin/git, "any" or "commands" after "run", found "postgres.query"`}},
		{"Never call fs.x.", []string{`r:1:1: expected "any", "agent", "agents", "sub-agents" or "never" at the start of a sentence, found "Never"`}},
		{"agents can call fs.x.", []string{`r:1:8: expected "in", "of", "may" or "never" after "agents", found "can"`}},
		{"agent x can call fs.x.", []string{`r:1:9: expected "may" or "never" after "x", found "can"`}},
		{"agent X may call fs.x.", []string{`r:1:7: expected an agent name after "agent", found "X"`}},
		{"agents in group may call fs.x.", []string{`r:1:21: expected "may" or "never" after "may", found "call"`}},
		{"agents in team a may call fs.x.", []string{`r:1:11: expected "group" after "in", found "team"`}},
		{"any agent may call query.", []string{`r:1:20: expected a tool name of the form server.tool or "any" after "call", found "query"`}},
		{"any agent may call fs.x", []string{}},
		{"any agent may call fs.x only to destroy.", []string{`r:1:33: expected a verb (read, list, create, update, write, delete, send, execute) after "to", found "destroy"`}},
		{"any agent may call fs.x run.", []string{`r:1:25: expected "only", "when", "with" or end of sentence after "fs.x", found "run"`}},
		{"any agent may call fs.x when argument p is 3.", []string{`r:1:41: expected "over", "more", "under", "less", "at", "equals", "starts", "ends", "contains" or "matches" after "p", found "is"`}},
		{`any agent may call fs.x when argument p starts with "abc.`, []string{`r:1:53: unterminated string`}},
		{`any agent may call fs.x when argument p starts with "a\nb".`, []string{`r:1:55: invalid escape "\\n" in string: only \" and \\ are allowed`}},
		{"any agent may call fs.x when argument n over 99999999999999999999.", []string{`r:1:46: number 99999999999999999999 is out of range (-9223372036854775808 to 9223372036854775807)`}},
		{"never delete more than 10 rows without approval from 0 of group:dba.", []string{`r:1:54: approval count must be at least 1, found 0`}},
		{"never delete more than 10 rows without approval from 1 of.", []string{`r:1:58: expected a group such as group:dba after "of", found "."`}},
		{"never delete more than 10 rows without approval from 1 of dba.", []string{`r:1:59: expected a group such as group:dba after "of", found "dba"`}},
		{"never delete more than 10 rows without approval from 1 of group:dba,.", []string{`r:1:69: expected a group such as group:dba after ",", found "."`}},
		{"never delete more than 10 rows without approval from 1 of group:dba within 0s.", []string{`r:1:76: duration must be at least 1s, found 0s`}},
		{"never delete more than 10 rows without approval from 1 of group:dba within 169h.", []string{`r:1:76: duration must be at most 168h0m0s, found 169h`}},
		{"never delete more than 10 rows without approval from 101 of group:dba.", []string{`r:1:54: approval count must be at most 100, found 101`}},
		{"never delete more than 10 rows without approval from 1 of group:" + strings.Repeat("a", 65) + ".", []string{`r:1:59: expected a group such as group:dba after "of", found "group:` + strings.Repeat("a", 65) + `"`}},
		{"never delete more than 10 rows without approval from 1 of group:dba within soon.", []string{`r:1:76: expected a duration such as 30s, 15m or 2h after "within", found "soon"`}},
		{"never delete more than ten rows.", []string{`r:1:24: expected a number after "than", found "ten"`}},
		{"never delete more than 10 Rows.", []string{`r:1:27: expected a unit of impact such as rows after "10", found "Rows"`}},
		{"never destroy fs.x.", []string{`r:1:7: expected "call", "read", "get", "request", "run" or a verb (read, list, create, update, write, delete, send, execute) after "never", found "destroy"`}},
		{"never call fs.x when.", []string{`r:1:21: expected "argument", "method" or "the" after "when", found "."`}},
		{"agents may call fs.x with approval from 1 of group:a.", []string{`r:1:27: expected "argument", "method" or "the" after "with", found "approval"`}},
		{"never call fs.x; never call fs.y.", []string{`r:1:16: unexpected character ';'`}},
		{".", []string{`r:1:1: expected a sentence before "."`}},
		{"never read resources matching x.", []string{`r:1:31: expected a URI pattern in double quotes after "matching", found "x"`}},
		{"never read resource.", []string{`r:1:20: expected a resource URI in double quotes after "resource", found "."`}},
		{"never get prompts.", []string{`r:1:11: expected "prompt" or "any" after "get", found "prompts"`}},
		{"never call fs.x when argument \"\" equals 1.", []string{`r:1:31: argument name must not be empty`}},
		{"agents may call \"\".", []string{`r:1:17: expected a tool name of the form server.tool or "any" after "call", found string ""`}},
		{"ok: never call fs.x.", []string{`r:1:1: expected "any", "agent", "agents", "sub-agents" or "never" at the start of a sentence, found "ok:"`}},
		{"never call fs.x.\xff", []string{`r:1:17: invalid UTF-8`}},
		{"never call fs.x \"a\tb\x01\".", []string{`r:1:21: control character U+0001 in string`}},
		// Outgoing HTTP, programs and taint.
		{"agents may request host API.example.com.", []string{`r:1:25: host "API.example.com" is written "api.example.com" in policies`}},
		{"agents may request host example.com:443.", []string{`r:1:25: host "example.com:443" is neither a name nor an IP address (a port goes in Port)`}},
		{"agents may request host 127.1.", []string{`r:1:25: host "127.1" ends in a number, so resolvers may read it as an IPv4 address; write the address in dotted decimal`}},
		{`agents may request host "[::1]".`, []string{`r:1:25: host "[::1]" is written "::1" in policies`}},
		{"agents may request host.", []string{`r:1:24: expected a host such as api.example.com after "host", found "."`}},
		{"agents may request the host a.b.", []string{`r:1:20: expected "host", "hosts" or "any" after "request", found "the"`}},
		{`agents may request hosts matching "*.Example.com".`, []string{`r:1:35: host pattern "*.Example.com" has capitals: hosts are lowercase in policies`}},
		{"agents may request host a.b only with method get.", []string{`r:1:46: expected an HTTP method in capitals such as GET after "method", found "get"`}},
		{"agents may request host a.b only with methods GET,.", []string{`r:1:51: expected an HTTP method in capitals such as GET after ",", found "."`}},
		{"agents may call fs.x only with method GET.", []string{`r:1:22: "only with method" applies to request`}},
		{"agents may request any host only to read.", []string{`r:1:29: "only to" a verb applies to call, read and get`}},
		{"agents may request any host when argument x equals 1.", []string{`r:1:34: "argument" applies to call, read, get and verbs`}},
		{"agents may call fs.x when method GET.", []string{`r:1:27: "method" applies to request`}},
		{`never call fs.x when the command line contains "x".`, []string{`r:1:22: "the command line" applies to run`}},
		{`agents may run any command when the path starts with "/x".`, []string{`r:1:33: "the path" applies to call, read, get, verbs and request`}},
		{"agents may run usr/bin/git.", []string{`r:1:16: expected an absolute program path such as /usr/bin/git, "any" or "commands" after "run", found "usr/bin/git"`}},
		{"agents may run /usr/bin/../bin/git.", []string{`r:1:16: program path "/usr/bin/../bin/git" is not clean: write "/usr/bin/git"`}},
		{"agents may run any program.", []string{`r:1:20: expected "command" after "any", found "program"`}},
		{"never request hosts when the session holds Private.", []string{`r:1:44: expected a taint label such as private or untrusted after "holds", found "Private"`}},
		{"never request hosts when the session holds private and.", []string{`r:1:55: expected a taint label such as private or untrusted after "and", found "."`}},
		{"never request hosts when the session has private.", []string{`r:1:38: expected "holds" after "session", found "has"`}},
		{"never request hosts when the weather is bad.", []string{`r:1:30: expected "session", "command" or "path" after "the", found "weather"`}},
		{"never run any command when the command line over 3.", []string{`r:1:45: expected "equals", "starts", "ends", "contains" or "matches" after "line", found "over"`}},
		{`never run any command when the command line equals 3.`, []string{`r:1:52: expected a string in double quotes after "equals", found "3"`}},
		{"never run /bin/sh without approval.", []string{`r:1:35: expected "from" after "approval", found "."`}},
		// Every bad sentence is reported, good ones in between are not.
		{"agents may use x.\nnever call fs.x.\nagents may call fs.x run. never call y.\n# fine\nnever call \"x", []string{
			`r:1:12: expected "call", "read", "get", "request" or "run" after "may", found "use"`,
			`r:3:22: expected "only", "when", "with" or end of sentence after "fs.x", found "run"`,
			`r:3:38: expected a tool name of the form server.tool or "any" after "call", found "y"`,
			`r:5:12: unterminated string`,
		}},
		// A lexical error after a good sentence on the same line.
		{"agents may use x. never call \"x", []string{
			`r:1:12: expected "call", "read", "get", "request" or "run" after "may", found "use"`,
			`r:1:30: unterminated string`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			rules, err := Compile("r", []byte(tc.src))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; rules %+v", rules)
			}
			if rules != nil {
				t.Errorf("rules returned with an error: %+v", rules)
			}
			var got []string
			for _, e := range unjoin(err) {
				var re *Error
				if !errors.As(e, &re) {
					t.Fatalf("error %v is not an *Error", e)
				}
				got = append(got, re.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if _, err2 := CompileToCedar("r", []byte(tc.src)); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("CompileToCedar error %v, want %v", err2, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestTooLarge(t *testing.T) {
	src := bytes.Repeat([]byte("# padding\n"), MaxSourceSize/10+1)
	_, err := Compile("big.rules", src)
	var re *Error
	if !errors.As(err, &re) || re.Line != 1 || re.Column != 1 || !strings.Contains(re.Msg, "limit") {
		t.Fatalf("err = %v", err)
	}
}

func TestMultipleSentencesPerLine(t *testing.T) {
	rules, err := Compile("m.rules", []byte("never call a.b.  never call c.d # both\nnever call e.f\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line, col int
		text, id  string
	}{
		{1, 1, "never call a.b.", `@id("m.rules:1:1")`},
		{1, 18, "never call c.d", `@id("m.rules:1:18")`},
		{2, 1, "never call e.f", `@id("m.rules:2")`},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules, want %d", len(rules), len(want))
	}
	for i, w := range want {
		r := rules[i]
		if r.Line != w.line || r.Column != w.col || r.Text != w.text || !strings.HasPrefix(r.Cedar, w.id+"\n") {
			t.Errorf("rule %d = %+v, want %+v", i, r, w)
		}
	}
}

func TestEmpty(t *testing.T) {
	for _, src := range []string{"", "\n\n", "# only a comment\n   \t\n"} {
		rules, err := Compile("e", []byte(src))
		if err != nil || len(rules) != 0 {
			t.Errorf("Compile(%q) = %v, %v", src, rules, err)
		}
		out, err := CompileToCedar("e", []byte(src))
		if err != nil || len(out) != 0 {
			t.Errorf("CompileToCedar(%q) = %q, %v", src, out, err)
		}
	}
}

// TestDeterministic compiles the golden inputs repeatedly and requires
// identical bytes each time.
func TestDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.rules")
	for _, in := range files {
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		first, err := CompileToCedar(in, src)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			again, err := CompileToCedar(in, bytes.Clone(src))
			if err != nil || !bytes.Equal(first, again) {
				t.Fatalf("%s: second compilation differs (err %v)", in, err)
			}
		}
	}
}

// TestLongLine compiles a maximal file of one line with many sentences:
// columns must be right at the far end, and the work linear.
func TestLongLine(t *testing.T) {
	s := "never call a.b. "
	n := MaxSourceSize / len(s)
	rules, err := Compile("l", []byte(strings.Repeat(s, n)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != n || rules[n-1].Column != (n-1)*len(s)+1 {
		t.Fatalf("got %d rules, last at column %d", len(rules), rules[n-1].Column)
	}
}

// TestOutputValidates: the Cedar compiled from every golden rule file
// matches ward's schema, as ward's loader requires.
func TestOutputValidates(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.rules")
	for _, in := range files {
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := CompileToCedar(in, src)
		if err != nil {
			t.Fatal(err)
		}
		set, err := wardpolicy.Parse(map[string][]byte{in: out})
		if err != nil {
			t.Fatal(err)
		}
		if err := set.Validate(); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// TestModelDecisions compiles the rules for outgoing HTTP, programs and
// taint and decides requests in ward's model with package policy.
func TestModelDecisions(t *testing.T) {
	src, err := os.ReadFile("testdata/egress.rules")
	if err != nil {
		t.Fatal(err)
	}
	out, err := CompileToCedar("egress.rules", src)
	if err != nil {
		t.Fatal(err)
	}
	set, err := wardpolicy.Parse(map[string][]byte{"egress.cedar": out})
	if err != nil {
		t.Fatal(err)
	}
	web := func(agent, group, method, host, path string, taint ...string) wardpolicy.Request {
		return wardpolicy.Request{
			Session: "s", Agent: agent, Groups: []string{group}, Action: wardpolicy.ActionHTTPRequest, Taint: taint,
			HTTP: &wardpolicy.HTTPRequest{Method: method, Scheme: "https", Host: host, Port: 443, Path: path},
		}
	}
	run := func(agent, group, command string, args []string, taint ...string) wardpolicy.Request {
		return wardpolicy.Request{
			Session: "s", Agent: agent, Groups: []string{group}, Action: wardpolicy.ActionExec, Taint: taint,
			Exec: &wardpolicy.ExecRequest{Command: command, Args: args, Dir: "/work"},
		}
	}
	sub := func(r wardpolicy.Request) wardpolicy.Request { r.Depth = 1; return r }
	tool := func(verb, path string, args string, taint ...string) wardpolicy.Request {
		r := wardpolicy.Request{Session: "s", Agent: "a", Groups: []string{"analytics"}, Action: wardpolicy.ActionCallTool,
			Server: "fs", Name: "fs.read_text_file", Verb: verb, Path: path, Taint: taint}
		if args != "" {
			r.Arguments = []byte(args)
		}
		return r
	}
	tests := []struct {
		name    string
		req     wardpolicy.Request
		outcome string
		policy  string // the one determining policy's line, "" for none
	}{
		{"GET on the granted host", web("a", "analytics", "GET", "api.example.com", "/x"), "allow", "egress.rules:2"},
		{"POST on the granted host", web("a", "analytics", "POST", "api.example.com", "/x"), "deny", ""},
		{"another group", web("a", "sales", "GET", "api.example.com", "/x"), "deny", ""},
		{"host pattern, method and path", web("a", "analytics", "HEAD", "db.internal.example.com", "/v1/q"), "allow", "egress.rules:3"},
		{"host pattern, other path", web("a", "analytics", "HEAD", "db.internal.example.com", "/v2/q"), "deny", ""},
		{"host pattern does not match the apex", web("a", "analytics", "GET", "internal.example.com", "/v1/q"), "deny", ""},
		{"crawler, untrusted", web("crawler", "x", "GET", "news.example", "/", "untrusted"), "allow", "egress.rules:4"},
		{"crawler, clean session", web("crawler", "x", "GET", "news.example", "/"), "deny", ""},
		{"lethal trifecta", web("crawler", "x", "GET", "news.example", "/", "private", "untrusted"), "deny", "egress.rules:6"},
		{"POST needs approval", web("fetcher", "x", "POST", "::1", "/hook"), "escalate", "egress.rules:5"},
		{"never the evil host", web("a", "analytics", "GET", "evil.example.com", "/v1/"), "deny", "egress.rules:7"},
		{"sub-agent DELETE, not permitted anyway", sub(web("a", "analytics", "DELETE", "api.example.com", "/x")), "deny", "egress.rules:8"},
		{"sub-agent PUT, not permitted either", sub(web("fetcher", "x", "PUT", "::1", "/x")), "deny", "egress.rules:8"},
		{"sub-agent GET", sub(web("a", "analytics", "GET", "api.example.com", "/x")), "allow", "egress.rules:2"},
		{"git", run("a", "dev", "/usr/bin/git", []string{"status"}), "allow", "egress.rules:9"},
		{"git, other group", run("a", "ops", "/usr/bin/git", []string{"status"}), "deny", ""},
		{"quoted program, command line and label", run("a", "dev", "/opt/my tools/build", []string{"release", "v1"}, "ci.trusted"), "allow", "egress.rules:10"},
		{"quoted program without the label", run("a", "dev", "/opt/my tools/build", []string{"release", "v1"}), "deny", ""},
		{"program directory", run("builder", "x", "/usr/bin/make", nil), "allow", "egress.rules:11"},
		{"never rm", run("builder", "x", "/bin/rm", []string{"-rf", "/"}), "deny", "egress.rules:12"},
		{"forced and untrusted", run("a", "dev", "/usr/bin/git", []string{"push", "--force"}, "untrusted"), "deny", "egress.rules:13"},
		{"forced, trusted", run("a", "dev", "/usr/bin/git", []string{"push", "--force"}), "allow", "egress.rules:9"},
		{"sub-agents run nothing", sub(run("a", "dev", "/usr/bin/git", nil)), "deny", "egress.rules:14"},
		{"path and argument", tool("read", "/srv/share/q3.csv", `{"mode":"r"}`), "allow", "egress.rules:16"},
		{"path outside", tool("read", "/etc/passwd", `{"mode":"r"}`), "deny", ""},
		{"no path", tool("read", "", `{"mode":"r"}`), "deny", ""},
		{"tainted send", tool("send", "/srv/share/q3.csv", `{"mode":"r"}`, "untrusted", "private"), "escalate", "egress.rules:15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.req.Validate(); err != nil {
				t.Fatal(err)
			}
			d := set.Decide(tt.req)
			if d.Outcome() != tt.outcome || len(d.Errors) > 0 {
				t.Fatalf("%s (errors %q), want %s", d.Explain(tt.req), d.Errors, tt.outcome)
			}
			var ids []string
			for _, r := range d.Reasons {
				ids = append(ids, r.PolicyID)
			}
			if want := []string{tt.policy}; tt.policy != "" && !slices.Equal(ids, want) || tt.policy == "" && len(ids) > 0 {
				t.Errorf("determined by %q, want %q", ids, tt.policy)
			}
		})
	}
}

// TestDocSentences: every example sentence in the package documentation
// compiles, and its Cedar matches ward's schema.
func TestDocSentences(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "//\t")
		if !ok || !strings.HasPrefix(s, "agent") && !strings.HasPrefix(s, "never") && !strings.HasPrefix(s, "any ") && !strings.HasPrefix(s, "sub-") {
			continue
		}
		n++
		out, err := CompileToCedar("doc.rules", []byte(s))
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		set, err := wardpolicy.Parse(map[string][]byte{"doc.cedar": out})
		if err == nil {
			err = set.Validate()
		}
		if err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if n < 15 {
		t.Fatalf("found %d example sentences in doc.go; the extraction is broken", n)
	}
}
