package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/server"
)

// TestRulesDeclarationsAndTrust: controlled-English rules load next to
// Cedar; a tool declaration gives calls a verb and an impact read from the
// arguments; an impact that is not an integer denies; a policy can require a
// minimum trust score.
func TestRulesDeclarationsAndTrust(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "team.rules"), []byte(`# demo rules
any agent may call demo.add.
any agent may call demo.echo.
never execute more than 1000 units without approval from 1 of group:dba.
`), 0o600)
	os.WriteFile(filepath.Join(dir, "trust.cedar"), []byte(`
@id("echo-needs-trust") forbid (principal, action, resource == Tool::"demo.echo") when { principal.trust < 60 };
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: -1,
		Tools: map[string]enforce.ToolDeclaration{"demo.add": {Verb: "execute", Impact: map[string]string{"units": "a"}}}})
	n.setupAgent("calc", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("calc", "add numbers", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)
	add := func(a any) error {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.add", Arguments: map[string]any{"a": a, "b": 1}})
		return err
	}
	if err := add(5); err != nil {
		t.Fatalf("small call: %v", err)
	}
	if err := add(5000); err == nil || !strings.Contains(err.Error(), "for approval") || !strings.Contains(err.Error(), "team.rules:4") {
		t.Fatalf("large call: %v", err)
	}
	if err := add(12.5); err == nil || !strings.Contains(err.Error(), "must be an integer") {
		t.Fatalf("fractional impact: %v", err)
	}
	// Trust: 50 by default, the policy wants 60.
	echo := &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hi"}}
	if _, err := cs.CallTool(ctx, echo); err == nil || !strings.Contains(err.Error(), "echo-needs-trust") {
		t.Fatalf("low trust: %v", err)
	}
	if status, b := n.call(n.admin, "POST", "/v1/agents/calc/trust", map[string]int{"trust": 70}); status != http.StatusOK {
		t.Fatalf("set trust: %d %s", status, b)
	}
	if _, err := cs.CallTool(ctx, echo); err != nil {
		t.Fatalf("after raising trust: %v", err)
	}
}

// TestRuleFilesValidate: everything the rules compiler emits for its own
// golden inputs loads through ward's loader, schema validation included.
func TestRuleFilesValidate(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "internal", "rules", "testdata", "*.rules"))
	if len(files) == 0 {
		t.Fatal("no rule files found")
	}
	for _, f := range files {
		if _, err := server.LoadPolicies([]string{f}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.cedar")
	os.WriteFile(bad, []byte("permit (principal, action, resource)\nwhen { principal.turst > 3 };\n"), 0o600)
	if _, err := server.LoadPolicies([]string{bad}); err == nil || !strings.Contains(err.Error(), "bad.cedar:1:1") || !strings.Contains(err.Error(), "turst") {
		t.Fatalf("schema error: %v", err)
	}
}

// TestObjectiveTags: the tags a session declares with its objective reach
// policies as context.objective_tags, and sub-agents inherit them.
func TestObjectiveTags(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tags.cedar"), []byte(`
@id("reporting-reads-notes") permit (principal, action == Action::"call_tool", resource == Tool::"demo.read_note")
when { context.objective_tags.contains("reporting") };
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	read := &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}}

	key := sessioncredKey(t)
	v := n.startSessionWith(key, map[string]any{"agent": "reporter", "objective": "weekly report", "objective_tags": []string{"reporting"}})
	cs := n.connect(t, n.credentials(key, v).HTTPClient(false), nil)
	if _, err := cs.CallTool(ctxT(t), read); err != nil {
		t.Fatalf("tagged session: %v", err)
	}
	var shown struct {
		Tags []string `json:"objective_tags"`
	}
	n.must("GET", "/v1/sessions/"+v.Session, nil, &shown)
	if len(shown.Tags) != 1 || shown.Tags[0] != "reporting" {
		t.Fatalf("session tags %v", shown.Tags)
	}

	creds, _ := n.startSession("reporter", "something else", nil, "")
	cs2 := n.connect(t, creds.HTTPClient(false), nil)
	if _, err := cs2.CallTool(ctxT(t), read); err == nil {
		t.Fatal("an untagged session read the note")
	}
	if status, b := n.call(n.admin, "POST", "/v1/sessions", map[string]any{"agent": "reporter", "objective": "x", "objective_tags": []string{"Not A Tag"}, "csr": "AA"}); status != http.StatusBadRequest || !strings.Contains(string(b), "objective tag") {
		t.Fatalf("bad tag: %d %s", status, b)
	}
}

// TestDeclaredPathAndDataset: a tool declaration exposes the file and the
// dataset a call touches, read from its arguments, as context.path and
// context.dataset; a declared argument of the wrong shape denies.
func TestDeclaredPathAndDataset(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("demo") permit (principal, action == Action::"call_tool", resource);
@id("no-etc") forbid (principal, action == Action::"call_tool", resource) when { context has path && context.path like "/etc/*" };
@id("no-hr") forbid (principal, action == Action::"call_tool", resource) when { context has dataset && context.dataset == Dataset::"hr" };
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, Tools: map[string]enforce.ToolDeclaration{
		"demo.echo":      {Verb: "read", Path: "text"},
		"demo.read_note": {Verb: "read", Dataset: "name"},
	}})
	n.setupAgent("clerk", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("clerk", "read notes", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	call := func(tool string, args map[string]any) error {
		r, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: tool, Arguments: args})
		if err == nil && r.IsError {
			return nil // the upstream answered: ward let it through
		}
		return err
	}
	for _, c := range []struct {
		tool string
		args map[string]any
		want string // "" allowed
	}{
		{"demo.echo", map[string]any{"text": "/srv/report.txt"}, ""},
		{"demo.echo", map[string]any{"text": "/srv/../etc/shadow"}, "no-etc"},
		{"demo.echo", map[string]any{"text": "notes.txt"}, "must be an absolute path"},
		{"demo.read_note", map[string]any{"name": "welcome"}, ""},
		{"demo.read_note", map[string]any{"name": "hr"}, "no-hr"},
	} {
		err := call(c.tool, c.args)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s %v: %v, want %q", c.tool, c.args, err, c.want)
		}
	}
}
