package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamUnicodeEquivalentPathEscapesPolicy (red team, path decisions).
//
// Attack: the MCP filesystem server installed under testdata/npm resolves a
// path it cannot find (realpath fails with ENOENT) component by component,
// taking a directory entry whose NFC form equals the NFC form of the
// requested component (lib.js, resolveUnicodeEquivalentPath). ward's
// ResolvePath (internal/enforce/paths.go, resolveExisting) treats a
// component that does not exist byte for byte as "a file to be written",
// keeps it as written and decides on that text. So the agent sends the
// same name in another Unicode form:
//
//   - root/prive\u0301/secret.txt (NFD) for the directory "privé" (NFC),
//     which a policy forbids by its name;
//   - root/\u212aeys/id.txt (KELVIN SIGN) for the directory "Keys": NFC maps
//     U+212A to the ASCII letter K, so even an all-ASCII name is reachable
//     under a text no policy about "Keys" matches;
//   - allowed/cafe\u0301 for a symlink "café" (NFC) inside the allowed tree
//     that points out of it: ward never follows a symlink it did not find,
//     the server follows the one it found by equivalence.
//
// ward allowed each call (the policy saw a path it does not forbid, or one
// under allowed/), forwarded the text, and the server served the file the
// policy was written to protect. ward should decide on what the server
// opens: refuse (or resolve as the server does) a component that does not
// exist but has a Unicode-equivalent entry in its directory.
func TestRedteamUnicodeEquivalentPathEscapesPolicy(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	must(t, os.Mkdir(allowed, 0o755))
	must(t, os.WriteFile(filepath.Join(allowed, "ok.txt"), []byte("fine to read\n"), 0o644))
	private := filepath.Join(root, "priv\u00e9") // NFC
	must(t, os.Mkdir(private, 0o755))
	must(t, os.WriteFile(filepath.Join(private, "secret.txt"), []byte("TOP-SECRET-PRIVE\n"), 0o644))
	keys := filepath.Join(root, "Keys")
	must(t, os.Mkdir(keys, 0o755))
	must(t, os.WriteFile(filepath.Join(keys, "id.txt"), []byte("TOP-SECRET-KEY\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "outside.txt"), []byte("TOP-SECRET-OUTSIDE\n"), 0o644))
	must(t, os.Symlink("../outside.txt", filepath.Join(allowed, "caf\u00e9"))) // NFC name

	dir := t.TempDir()
	policies := `
@id("fs-all") permit (principal, action == Action::"call_tool", resource in Server::"fs");
@id("no-private") forbid (principal, action == Action::"call_tool", resource in Server::"fs")
  when { context.arguments has path && context.arguments.path like "ROOT/priv` + "\u00e9" + `/*" };
@id("no-keys") forbid (principal, action == Action::"call_tool", resource in Server::"fs")
  when { context.arguments has path && context.arguments.path like "ROOT/Keys/*" };
@id("only-allowed-for-reader") forbid (principal in Group::"readers", action == Action::"call_tool", resource in Server::"fs")
  when { context.arguments has path && !(context.arguments.path like "ROOT/allowed/*") };
`
	must(t, os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(strings.ReplaceAll(policies, "ROOT", root)), 0o600))
	n := startNode(t, server.Config{
		Policies:  []string{dir},
		Upstreams: []server.Upstream{{Name: "fs", Command: npmServer(t, "server-filesystem", root), Roots: []string{root}}},
	})
	n.setupAgent("reader", []string{"readers"}, map[string][]string{"tools": {"fs.*"}})
	n.setupAgent("worker", nil, map[string][]string{"tools": {"fs.*"}})
	ctx := ctxT(t)
	reader := func(agent string) func(string) (string, bool) {
		creds, _ := n.startSession(agent, "read the notes", nil, "")
		cs := n.connect(t, creds.HTTPClient(false), nil)
		return func(p string) (string, bool) {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: map[string]any{"path": p}})
			if err != nil || res.IsError {
				return "", false
			}
			return textOf(res), true
		}
	}
	readR, readW := reader("reader"), reader("worker")
	// The policies hold for the names as written.
	if got, ok := readR(filepath.Join(allowed, "ok.txt")); !ok || !strings.Contains(got, "fine") {
		t.Fatalf("the allowed file was not served: %q", got)
	}
	for _, c := range []struct {
		read func(string) (string, bool)
		path string
	}{{readW, filepath.Join(private, "secret.txt")}, {readW, filepath.Join(keys, "id.txt")}, {readR, filepath.Join(allowed, "caf\u00e9")}} {
		if got, ok := c.read(c.path); ok {
			t.Fatalf("control: %q was served: %q", c.path, got)
		}
	}
	// The same files under Unicode-equivalent names.
	for _, c := range []struct {
		read func(string) (string, bool)
		path string
	}{
		{readW, filepath.Join(root, "prive\u0301", "secret.txt")}, // NFD of privé
		{readW, filepath.Join(root, "\u212aeys", "id.txt")},       // KELVIN SIGN for K
		{readR, filepath.Join(allowed, "cafe\u0301")},             // NFD of the symlink café
	} {
		if got, ok := c.read(c.path); ok && strings.Contains(got, "TOP-SECRET") {
			t.Errorf("%+q was allowed by ward and the server served %q", c.path, strings.TrimSpace(got))
		}
	}
}

// TestRedteamAgentRewritesTheServersRoots (red team, path decisions: the
// server's own confinement).
//
// Attack: an operator runs the MCP filesystem server on one directory
// (its command line) and relies on that confinement, without giving ward
// the roots (README: a policy on paths holds only with roots; nothing
// says the server's own directory can be changed). The filesystem server
// replaces its allowed directories with whatever its MCP client lists in
// roots/list (dist/index.js, updateAllowedDirectoriesFromRoots). Behind
// ward, that client is the agent: the gateway forwards the client's
// initialize (roots capability included), passes the server's roots/list
// request to the agent and the agent's answer back
// (internal/gateway/conn.go, serverRequest/clientResponse; only recorded
// as server.request), and forwards notifications/roots/list_changed. The
// agent answers with a directory outside the share, and the server then
// serves a file there.
//
// What ward did: let the agent reconfigure the server's boundary and read
// a file outside the directory the operator gave the server. What it
// should do: not let the agent answer roots/list for an upstream (answer
// with the configured roots, or none), and not forward the client's roots
// capability.
func TestRedteamAgentRewritesTheServersRoots(t *testing.T) {
	share := t.TempDir()
	must(t, os.WriteFile(filepath.Join(share, "ok.txt"), []byte("fine to read\n"), 0o644))
	elsewhere := t.TempDir()
	secret := filepath.Join(elsewhere, "secret.txt")
	must(t, os.WriteFile(secret, []byte("TOP-SECRET-ELSEWHERE\n"), 0o644))
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`@id("fs") permit (principal, action == Action::"call_tool", resource in Server::"fs");`), 0o600))
	n := startNode(t, server.Config{Policies: []string{dir},
		Upstreams: []server.Upstream{{Name: "fs", Command: npmServer(t, "server-filesystem", share)}}})
	n.setupAgent("reader", nil, map[string][]string{"tools": {"fs.*"}})
	creds, _ := n.startSession("reader", "read the share", nil, "")
	ctx := ctxT(t)
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	client.AddRoots(&mcp.Root{URI: "file://" + elsewhere, Name: "mine"})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: n.url + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	read := func(p string) (string, bool) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: map[string]any{"path": p}})
		if err != nil || res.IsError {
			return "", false
		}
		return textOf(res), true
	}
	// The server asks for roots after initialization; wait until it has
	// taken the agent's answer (or give up).
	var got string
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, ok = read(secret); ok {
			break
		}
	}
	if ok && strings.Contains(got, "TOP-SECRET") {
		t.Fatalf("the agent answered roots/list with %s and the server, started on %s only, served %s: %q", elsewhere, share, secret, strings.TrimSpace(got))
	}
}
