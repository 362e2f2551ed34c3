package server_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/rules"
	"github.com/ward-dev/ward/internal/server"
)

// readmeBlocks returns the fenced code blocks of the README in language
// lang ("cedar", "rules", "yaml").
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```" + lang + "\n(.*?)^```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// TestReadmePoliciesLoad: every policy the README shows loads as written
// (Cedar against ward's schema, rules compiled to Cedar).
func TestReadmePoliciesLoad(t *testing.T) {
	cedar, rs := readmeBlocks(t, "cedar"), readmeBlocks(t, "rules")
	if len(cedar) < 2 || len(rs) < 1 {
		t.Fatalf("README has %d cedar and %d rules blocks; the examples are fenced as ```cedar and ```rules", len(cedar), len(rs))
	}
	for i, src := range cedar {
		set, err := policy.Parse(map[string][]byte{"readme.cedar": []byte(src)})
		if err == nil {
			err = set.Validate()
		}
		if err != nil {
			t.Errorf("README cedar block %d does not load: %v\n%s", i+1, err, src)
		}
	}
	for i, src := range rs {
		out, err := rules.CompileToCedar("readme.rules", []byte(src))
		if err == nil {
			var set *policy.Set
			if set, err = policy.Parse(map[string][]byte{"readme.cedar": out}); err == nil {
				err = set.Validate()
			}
		}
		if err != nil {
			t.Errorf("README rules block %d does not load: %v\n%s", i+1, err, src)
		}
	}
}

// TestReadmePathPoliciesHold runs every README policy about file paths,
// with the README's server configuration (roots), in front of the real
// MCP filesystem server, and attacks it the ways an independent pass did:
// "..", a symlink to a file outside the allowed tree, a symlink to a
// parent directory, an absolute symlink, relative paths, quotes, spaces,
// "~". Only the allowed file is ever served.
func TestReadmePathPoliciesHold(t *testing.T) {
	var pathPolicies []string
	for _, src := range readmeBlocks(t, "cedar") {
		if strings.Contains(src, "path") {
			pathPolicies = append(pathPolicies, src)
		}
	}
	if len(pathPolicies) == 0 {
		t.Fatal("the README shows no policy about paths")
	}
	if !slicesContainsSub(readmeBlocks(t, "yaml"), "roots: [/srv/share]") {
		t.Fatal("the README's file-server configuration does not give the server its roots")
	}
	for i, src := range pathPolicies {
		t.Run(strings.Fields(src)[0], func(t *testing.T) {
			root := t.TempDir()
			allowed := filepath.Join(root, "allowed")
			must(t, os.Mkdir(allowed, 0o755))
			must(t, os.WriteFile(filepath.Join(root, "secret.txt"), []byte("TOP-SECRET-VALUE\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(allowed, "ok.txt"), []byte("fine to read\n"), 0o644))
			must(t, os.Symlink("../secret.txt", filepath.Join(allowed, "link")))
			must(t, os.Symlink("..", filepath.Join(allowed, "up")))
			must(t, os.Symlink(filepath.Join(root, "secret.txt"), filepath.Join(allowed, "abs")))
			must(t, os.Symlink("../missing.txt", filepath.Join(allowed, "dangling")))
			must(t, os.Mkdir(filepath.Join(allowed, "sub"), 0o755))
			must(t, os.Symlink("../../secret.txt", filepath.Join(allowed, "sub", "deep")))

			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "readme.cedar"), []byte(strings.ReplaceAll(src, "/srv/share", root)), 0o600))
			n := startNode(t, server.Config{
				Policies:  []string{dir},
				Upstreams: []server.Upstream{{Name: "fs", Command: npmServer(t, "server-filesystem", root), Roots: []string{root}}},
			})
			n.setupAgent("reader", nil, map[string][]string{"tools": {"fs.*"}})
			creds, _ := n.startSession("reader", "read the allowed notes", nil, "")
			cs := n.connect(t, creds.HTTPClient(false), nil)
			ctx := ctxT(t)
			read := func(args map[string]any) (string, error) {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: args})
				if err != nil {
					return "", err
				}
				if res.IsError {
					return "", &toolError{textOf(res)}
				}
				return textOf(res), nil
			}
			got, err := read(map[string]any{"path": filepath.Join(allowed, "ok.txt")})
			if err != nil || !strings.Contains(got, "fine to read") {
				t.Fatalf("README policy %d: the allowed file: %q, %v", i+1, got, err)
			}
			if got, err := read(map[string]any{"path": filepath.Join(allowed, ".", "sub", "..", "ok.txt")}); err != nil || !strings.Contains(got, "fine to read") {
				t.Fatalf("README policy %d: the allowed file through . and ..: %q, %v", i+1, got, err)
			}
			for _, p := range []string{
				allowed + "/../secret.txt",
				filepath.Join(allowed, "link"),
				filepath.Join(allowed, "up", "secret.txt"),
				filepath.Join(allowed, "up", "allowed", "..", "secret.txt"),
				filepath.Join(allowed, "abs"),
				filepath.Join(allowed, "sub", "deep"),
				filepath.Join(allowed, "dangling"),
				"allowed/link",
				"allowed/../secret.txt",
				"secret.txt",
				" " + filepath.Join(allowed, "link"),
				`"` + filepath.Join(root, "secret.txt") + `"`,
				"~/secret.txt",
				filepath.Join(root, "secret.txt"),
				allowed + "//..//secret.txt",
			} {
				got, err := read(map[string]any{"path": p})
				if err == nil || strings.Contains(got, "TOP-SECRET") {
					t.Errorf("README policy %d: read %q was served: %q", i+1, p, got)
				}
			}
			// Other tools of the server, other argument names.
			for _, call := range []mcp.CallToolParams{
				{Name: "fs.read_multiple_files", Arguments: map[string]any{"paths": []string{filepath.Join(allowed, "ok.txt"), filepath.Join(allowed, "link")}}},
				{Name: "fs.get_file_info", Arguments: map[string]any{"path": filepath.Join(allowed, "link")}},
				{Name: "fs.read_media_file", Arguments: map[string]any{"path": filepath.Join(allowed, "up", "secret.txt")}},
			} {
				res, err := cs.CallTool(ctx, &call)
				if err == nil && !res.IsError && strings.Contains(textOf(res), "TOP-SECRET") {
					t.Errorf("README policy %d: %s %v served the secret", i+1, call.Name, call.Arguments)
				}
			}
			b, _ := os.ReadFile(filepath.Join(root, "secret.txt"))
			if string(b) != "TOP-SECRET-VALUE\n" {
				t.Fatal("the secret file changed")
			}
		})
	}
}

type toolError struct{ msg string }

func (e *toolError) Error() string { return e.msg }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func slicesContainsSub(blocks []string, sub string) bool {
	for _, b := range blocks {
		if strings.Contains(b, sub) {
			return true
		}
	}
	return false
}
