package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// listAsSession lists the tools of the node as a new session of agent,
// which pins every definition the listing shows.
func listAsSession(t *testing.T, n *server.Node, agent string) {
	t.Helper()
	var s struct{ Credentials string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", agent, "--objective", "look around", "-o", "json")), &s)
	creds, err := sessioncred.Load(s.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "lister", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: n.URL() + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// TestToolsListShowsTreatment: `ward tools list` says, for each pinned
// tool of the real filesystem server, whether the gateway treats its calls
// as a sink and why (declared in the configuration, annotated read-only
// and closed-world, or neither), with the same rule the gateway decides
// by; withheld definitions come with the command that approves them.
func TestToolsListShowsTreatment(t *testing.T) {
	fs := fsServer(t)
	share := t.TempDir()
	yes, no := true, false
	n := startNode(t, server.Config{PinMode: enforce.PinManual,
		Upstreams: []server.Upstream{{Name: "fs", Command: append(fs, share), Roots: []string{share}}},
		Tools: map[string]enforce.ToolDeclaration{
			"fs.read_file":  {Sink: &yes},                // annotated read-only, declared a sink: the declaration wins
			"fs.write_file": {Sink: &no},                 // declared not a sink
			"fs.move_file":  {Verb: "write"},             // declared, but not whether it is a sink: the rule decides
			"fs.nonesuch":   {Sink: &no, Verb: "delete"}, // declared for a tool the server does not have
		}})
	mustCLI(t, "sponsor", "create", "alice", "--allow", "tool:fs.*")
	mustCLI(t, "agent", "register", "scribe", "--sponsor", "alice", "--allow", "tool:fs.*")
	listAsSession(t, n, "scribe")

	out := mustCLI(t, "tools", "list")
	row := func(tool string) string {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tool) + ` .*$`).FindString(out)
		if m == "" {
			t.Fatalf("tools list has no row for %s:\n%s", tool, out)
		}
		return strings.Join(strings.Fields(m), " ")
	}
	for tool, want := range map[string]string{
		"fs.read_text_file":   "pending not a sink (annotated read-only, closed world)",
		"fs.list_directory":   "not a sink (annotated read-only, closed world)",
		"fs.read_file":        "sink (declared sink: true)",
		"fs.write_file":       "not a sink (declared sink: false)",
		"fs.move_file":        "sink (default: not annotated read-only and closed-world)",
		"fs.create_directory": "sink (default: not annotated read-only and closed-world)",
	} {
		if r := row(tool); !strings.Contains(r, want) {
			t.Errorf("%s: row %q lacks %q", tool, r, want)
		}
	}
	if strings.Contains(out, "fs.nonesuch") {
		t.Errorf("a declaration without a tool is listed as a tool:\n%s", out)
	}
	// Under manual pinning every definition is withheld; each has its
	// exact approve command, with the whole hash.
	var views []toolView
	if err := json.Unmarshal([]byte(mustCLI(t, "tools", "list", "-o", "json")), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) < 10 {
		t.Fatalf("%d pinned tools", len(views))
	}
	for _, v := range views {
		if want := "  ward tools approve '" + v.Name + "' --hash " + v.Hash + "\n"; !strings.Contains(out, want) {
			t.Errorf("no approve command for the withheld %s:\n%s", v.Name, out)
		}
		if v.Kind != "tool" || v.Sink == nil || v.SinkReason == "" || v.Status != "pending" || !strings.HasPrefix(v.Hash, "sha256:") {
			t.Errorf("json view %+v", v)
		}
		// The JSON says what the gateway decides by.
		var decl enforce.ToolDeclaration
		declared := false
		switch v.Name {
		case "fs.read_file":
			decl, declared = enforce.ToolDeclaration{Sink: &yes}, true
		case "fs.write_file":
			decl, declared = enforce.ToolDeclaration{Sink: &no}, true
		case "fs.move_file":
			decl, declared = enforce.ToolDeclaration{Verb: "write"}, true
		}
		if sink := enforce.Sink(decl, declared, v.Definition); sink != *v.Sink {
			t.Errorf("%s: listed sink %v, the gateway's rule says %v", v.Name, *v.Sink, sink)
		}
		if declared != (v.Declaration == v.Name) {
			t.Errorf("%s: declaration %q", v.Name, v.Declaration)
		}
	}
	// Approved, a definition needs no command any more.
	for _, v := range views {
		if v.Name == "fs.read_text_file" {
			mustCLI(t, "tools", "approve", v.Name, "--hash", v.Hash)
		}
	}
	out = mustCLI(t, "tools", "list")
	if r := row("fs.read_text_file"); !strings.Contains(r, "approved not a sink") || strings.Contains(out, "approve 'fs.read_text_file'") {
		t.Errorf("after approval: %q\n%s", r, out)
	}
}

// TestDeclarationName: pins of servers run by `ward mcp wrap` are declared
// under the server's own name; prompts are not tools.
func TestDeclarationName(t *testing.T) {
	for _, tc := range []struct {
		server, tool, want string
		ok                 bool
	}{
		{"fs", "read_file", "fs.read_file", true},
		{"wrap-fs~indexer", "read_file", "fs.read_file", true},
		{"wrap-fs~team~bot", "read_file", "fs.read_file", true},
		{"wrap-my_srv-2~a", "x", "my_srv-2.x", true},
		{"prompts#fs", "summarize", "", false},
		{"prompts#wrap-fs~a", "summarize", "", false},
	} {
		got, ok := declarationName(api.PinView{Server: tc.server, Tool: tc.tool})
		if got != tc.want || ok != tc.ok {
			t.Errorf("declarationName(%s, %s) = %q, %v; want %q, %v", tc.server, tc.tool, got, ok, tc.want, tc.ok)
		}
	}
}
