package gateway_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/policy"
)

// pathFixture is a gateway with the real pipeline in front of a
// rawUpstream named "up" whose roots are root, under policies (Cedar, with
// ROOT standing for root) and tool declarations.
func pathFixture(t *testing.T, root, policies string, tools map[string]enforce.ToolDeclaration) (*rawUpstream, func(raw string) (ok bool, why string)) {
	t.Helper()
	return pathFixtureWith(t, &rawUpstream{}, root, policies, tools)
}

// pathFixtureWith is pathFixture in front of up.
func pathFixtureWith(t *testing.T, up *rawUpstream, root, policies string, tools map[string]enforce.ToolDeclaration) (*rawUpstream, func(raw string) (ok bool, why string)) {
	t.Helper()
	roots, err := enforce.CanonicalRoots([]string{root})
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte(strings.ReplaceAll(policies, "ROOT", roots[0]))})
	if err != nil {
		t.Fatal(err)
	}
	p, _, _ := redteamPipeline(t, enforce.Config{Policies: func() *policy.Set { return set }, Roots: map[string][]string{"up": roots}, Tools: tools})
	g, err := gateway.New(gateway.Config{Guard: p, Upstreams: []gateway.Upstream{{Name: "up", Dial: up.dial}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	d := newDownstream()
	c := *rawCaller
	c.Scope.Resources = []string{"file://*", "FILE://*"}
	s := g.NewSession(&c, d)
	t.Cleanup(s.Close)
	send(t, s, d, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	send(t, s, d, `{"jsonrpc":"2.0","id":"tools","method":"tools/list"}`)
	send(t, s, d, `{"jsonrpc":"2.0","id":"templates","method":"resources/templates/list"}`)
	id := 0
	return up, func(raw string) (bool, string) {
		id++
		resp := send(t, s, d, fmt.Sprintf(raw, id))
		if resp.Error != nil {
			return false, resp.Error.Error()
		}
		return true, ""
	}
}

// TestRedteamDeclaredPathResolvedWithFiles (red team, path decisions).
//
// Attack: a tool declared {path: target, files: [source]} (a copy: the
// file it writes is context.path, the one it reads a file argument). With
// files set, only the listed arguments were resolved beneath the roots;
// the declared path was cleaned as text only, so a symlink inside
// allowed/ pointing at ../secret.txt passed a policy on context.path and
// the server wrote through it. The declared path is a file argument
// whatever files lists.
func TestRedteamDeclaredPathResolvedWithFiles(t *testing.T) {
	root := t.TempDir()
	must(t, os.Mkdir(filepath.Join(root, "allowed"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "allowed", "in.txt"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "secret.txt"), []byte("s"), 0o644))
	must(t, os.Symlink("../secret.txt", filepath.Join(root, "allowed", "link")))
	up, call := pathFixture(t, root, `
@id("all") permit (principal, action, resource);
@id("write-only-allowed") forbid (principal, action == Action::"call_tool", resource)
  when { context has path && !(context.path like "ROOT/allowed/*") };`,
		map[string]enforce.ToolDeclaration{"up.send": {Path: "target", Files: []string{"source"}}})
	real, _ := filepath.EvalSymlinks(root)
	if ok, why := call(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"up.send","arguments":{"source":"` + real + `/allowed/in.txt","target":"` + real + `/allowed/out.txt"}}}`); !ok {
		t.Fatalf("control: a copy inside allowed/ was refused: %s", why)
	}
	before := len(up.requests("tools/call"))
	if ok, _ := call(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"up.send","arguments":{"source":"` + real + `/allowed/in.txt","target":"` + real + `/allowed/link"}}}`); ok {
		got := up.requests("tools/call")
		t.Fatalf("a write through allowed/link (-> ../secret.txt) was allowed; the server received %s", got[len(got)-1].Params)
	}
	if len(up.requests("tools/call")) != before {
		t.Fatal("the refused call reached the upstream")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRedteamFileURIsDecidedAsOpened (red team, path decisions: resource
// URIs).
//
// Attack: a server with roots that also serves file:// resources
// (resources/read, completion/complete on a resource template) opens the
// URI's path as a file: decoded (%73 is "s"), with "//" and a "localhost"
// host ignored, following symlinks. ward decided resource URIs as text
// only, so a policy on file:///ROOT/allowed/* let through a symlink in
// allowed/ to ../secret.txt, and a forbid on file:///ROOT/secret* was
// passed by file:///ROOT//secret.txt, file://localhost/ROOT/secret.txt and
// file:///ROOT/%73ecret.txt. On a server with roots a file URI is decided
// only in its resolved form; any other spelling is refused with the form
// to ask for.
func TestRedteamFileURIsDecidedAsOpened(t *testing.T) {
	root := t.TempDir()
	must(t, os.Mkdir(filepath.Join(root, "allowed"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "allowed", "ok.txt"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "secret.txt"), []byte("s"), 0o644))
	must(t, os.Symlink("../secret.txt", filepath.Join(root, "allowed", "link")))
	real, _ := filepath.EvalSymlinks(root)
	for _, tc := range []struct {
		policy  string
		attacks []string
	}{{
		policy: `@id("only-allowed") forbid (principal, action == Action::"read_resource", resource)
  when { !(context.name like "file://ROOT/allowed/*") };`,
		attacks: []string{
			"file://" + real + "/allowed/link",
			"file://" + real + "/allowed/x?/../../../secret.txt",
			"file://" + real + "/allowed/x#/../../../secret.txt",
		},
	}, {
		policy: `@id("no-secret") forbid (principal, action == Action::"read_resource", resource)
  when { context.name like "file://ROOT/secret*" };`,
		attacks: []string{
			"file://" + real + "//secret.txt",
			"file://localhost" + real + "/secret.txt",
			"file://" + real + "/%73ecret.txt",
			"file://" + real + "/./secret.txt",
			"FILE://" + real + "/secret.txt",
		},
	}} {
		up, call := pathFixture(t, root, `@id("all") permit (principal, action, resource);`+"\n"+tc.policy, nil)
		read := func(uri string) (bool, string) {
			return call(`{"jsonrpc":"2.0","id":%d,"method":"resources/read","params":{"uri":"` + uri + `"}}`)
		}
		if ok, why := read("file://" + real + "/allowed/ok.txt"); !ok {
			t.Fatalf("control: the allowed file was refused: %s", why)
		}
		if ok, _ := read("file://" + real + "/secret.txt"); ok {
			t.Fatal("control: the secret was allowed")
		}
		for _, uri := range tc.attacks {
			before := len(up.requests("resources/read"))
			if ok, _ := read(uri); ok {
				t.Errorf("%s was allowed", uri)
			}
			if len(up.requests("resources/read")) != before {
				t.Errorf("%s reached the upstream", uri)
			}
		}
	}
}

// TestRedteamArgumentSpelledInAnotherCase (red team, decide on exactly what
// is forwarded: case variants).
//
// Attack: arguments {"Path": "/etc/passwd"} for a tool whose input schema
// names "path". ward reads member names exactly: the file argument "path"
// is absent, so nothing was resolved beneath the roots and a policy on
// context.arguments.path saw nothing; a server that matches names without
// regard to case (System.Text.Json with case-insensitive binding, encoding/json
// into a struct) opened /etc/passwd. Two members differing only in case
// were already refused; one alone, differing from the name the tool
// declares, is refused too.
func TestRedteamArgumentSpelledInAnotherCase(t *testing.T) {
	root := t.TempDir()
	must(t, os.WriteFile(filepath.Join(root, "ok.txt"), []byte("x"), 0o644))
	up, call := pathFixtureWith(t, &rawUpstream{tools: func() string {
		return `[{"name":"read","description":"Read a file.","inputSchema":{"type":"object","properties":{"path":{"type":"string"},"head":{"type":"number"}}}}]`
	}}, root, `
@id("all") permit (principal, action, resource);
@id("no-passwd") forbid (principal, action == Action::"call_tool", resource)
  when { context.arguments has path && context.arguments.path like "*passwd*" };`, nil)
	real, _ := filepath.EvalSymlinks(root)
	if ok, why := call(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"up.read","arguments":{"path":"` + real + `/ok.txt","head":1,"extra":true}}}`); !ok {
		t.Fatalf("control: %s", why)
	}
	for _, args := range []string{`{"Path":"/etc/passwd"}`, `{"PATH":"/etc/passwd"}`, `{"path":"` + real + `/ok.txt","HEAD":1}`} {
		before := len(up.requests("tools/call"))
		if ok, _ := call(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"up.read","arguments":` + args + `}}`); ok {
			t.Errorf("arguments %s were allowed", args)
		}
		if len(up.requests("tools/call")) != before {
			t.Errorf("arguments %s reached the upstream", args)
		}
	}
}
