package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// The client formats, as each client's documentation gives them (see
// mcpconfig.go). Decoding into them with unknown fields refused checks
// that an output holds nothing the client does not know.
type (
	// claudeCodeFile is .mcp.json.
	claudeCodeFile struct {
		MCPServers map[string]struct {
			Type    string            `json:"type"`
			URL     string            `json:"url,omitempty"`
			Headers map[string]string `json:"headers,omitempty"`
			Command string            `json:"command,omitempty"`
			Args    []string          `json:"args,omitempty"`
			Env     map[string]string `json:"env,omitempty"`
		} `json:"mcpServers"`
	}
	// cursorFile is ~/.cursor/mcp.json: no type; url or command.
	cursorFile struct {
		MCPServers map[string]struct {
			URL     string            `json:"url,omitempty"`
			Headers map[string]string `json:"headers,omitempty"`
			Command string            `json:"command,omitempty"`
			Args    []string          `json:"args,omitempty"`
			Env     map[string]string `json:"env,omitempty"`
		} `json:"mcpServers"`
	}
	// vscodeFile is .vscode/mcp.json.
	vscodeFile struct {
		Inputs []struct {
			Type        string `json:"type"`
			ID          string `json:"id"`
			Description string `json:"description"`
			Password    bool   `json:"password"`
		} `json:"inputs,omitempty"`
		Servers map[string]struct {
			Type    string            `json:"type"`
			URL     string            `json:"url,omitempty"`
			Headers map[string]string `json:"headers,omitempty"`
			Command string            `json:"command,omitempty"`
			Args    []string          `json:"args,omitempty"`
			Env     map[string]string `json:"env,omitempty"`
		} `json:"servers"`
	}
	// inspectorFile is the MCP Inspector's --config file.
	inspectorFile struct {
		MCPServers map[string]struct {
			Type    string            `json:"type"`
			URL     string            `json:"url,omitempty"`
			Command string            `json:"command,omitempty"`
			Args    []string          `json:"args,omitempty"`
			Env     map[string]string `json:"env,omitempty"`
		} `json:"mcpServers"`
	}
	// codexServer is one [mcp_servers.NAME] table of ~/.codex/config.toml.
	codexServer struct {
		URL               string            `json:"url,omitempty"`
		BearerTokenEnvVar string            `json:"bearer_token_env_var,omitempty"`
		HTTPHeaders       map[string]string `json:"http_headers,omitempty"`
		Command           string            `json:"command,omitempty"`
		Args              []string          `json:"args,omitempty"`
		Env               map[string]string `json:"env,omitempty"`
	}
)

// entry is what a client would use of a configuration: where it connects
// and with which headers, or what it starts.
type entry struct {
	URL     string
	Headers map[string]string
	Command string
	Args    []string
	Env     map[string]string
}

func strictDecode(t *testing.T, what, doc string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: not the client's format: %v\n%s", what, err, doc)
	}
	if dec.More() {
		t.Fatalf("%s: more than one document:\n%s", what, doc)
	}
}

// parseTOML parses TOML with Python's standard tomllib, an implementation
// independent of the one that wrote it.
func parseTOML(t *testing.T, doc string) map[string]any {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 (3.11 or later, for tomllib) is needed to parse Codex's TOML")
	}
	cmd := exec.Command(py, "-c", "import json, sys, tomllib; print(json.dumps(tomllib.loads(sys.stdin.read())))")
	cmd.Stdin = strings.NewReader(doc)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "No module named 'tomllib'") {
			t.Skip("python3 has no tomllib (3.11 or later)")
		}
		t.Fatalf("not TOML: %v\n%s", err, doc)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// parseClientConfig reads doc as client's format and returns the entry
// named name, checking the fields each form must have.
func parseClientConfig(t *testing.T, client, name, doc string) entry {
	t.Helper()
	var e entry
	switch client {
	case "claude-code":
		var f claudeCodeFile
		strictDecode(t, client, doc, &f)
		s, ok := f.MCPServers[name]
		if !ok || len(f.MCPServers) != 1 {
			t.Fatalf("%s: servers %v", client, f.MCPServers)
		}
		if (s.Type == "http") != (s.URL != "") || (s.Type == "stdio") != (s.Command != "") {
			t.Fatalf("%s: type %q does not match the entry %+v", client, s.Type, s)
		}
		e = entry{s.URL, s.Headers, s.Command, s.Args, s.Env}
	case "cursor":
		var f cursorFile
		strictDecode(t, client, doc, &f)
		s, ok := f.MCPServers[name]
		if !ok || len(f.MCPServers) != 1 || (s.URL == "") == (s.Command == "") {
			t.Fatalf("%s: servers %+v", client, f.MCPServers)
		}
		e = entry{s.URL, s.Headers, s.Command, s.Args, s.Env}
	case "vscode":
		var f vscodeFile
		strictDecode(t, client, doc, &f)
		s, ok := f.Servers[name]
		if !ok || len(f.Servers) != 1 || (s.Type == "http") != (s.URL != "") || (s.Type == "stdio") != (s.Command != "") {
			t.Fatalf("%s: servers %+v", client, f.Servers)
		}
		// Every ${input:ID} the entry names is declared, as a password.
		for _, v := range s.Headers {
			if i := strings.Index(v, "${input:"); i >= 0 {
				id := strings.TrimSuffix(v[i+len("${input:"):], "}")
				found := false
				for _, in := range f.Inputs {
					found = found || in.ID == id && in.Type == "promptString" && in.Password
				}
				if !found {
					t.Fatalf("%s: input %q is not declared as a password prompt: %+v", client, id, f.Inputs)
				}
			}
		}
		e = entry{s.URL, s.Headers, s.Command, s.Args, s.Env}
	case "inspector":
		var f inspectorFile
		strictDecode(t, client, doc, &f)
		s, ok := f.MCPServers[name]
		if !ok || len(f.MCPServers) != 1 || (s.Type == "streamable-http") != (s.URL != "") || (s.Type == "stdio") != (s.Command != "") {
			t.Fatalf("%s: servers %+v", client, f.MCPServers)
		}
		e = entry{URL: s.URL, Command: s.Command, Args: s.Args, Env: s.Env}
	case "codex":
		m := parseTOML(t, doc)
		servers, _ := m["mcp_servers"].(map[string]any)
		if len(m) != 1 || len(servers) != 1 || servers[name] == nil {
			t.Fatalf("%s: %v", client, m)
		}
		b, _ := json.Marshal(servers[name])
		var s codexServer
		strictDecode(t, client, string(b), &s)
		if (s.URL == "") == (s.Command == "") || s.URL != "" && (s.BearerTokenEnvVar == "") == (s.HTTPHeaders == nil) {
			t.Fatalf("%s: server %+v", client, s)
		}
		e = entry{URL: s.URL, Headers: s.HTTPHeaders, Command: s.Command, Args: s.Args, Env: s.Env}
		if s.BearerTokenEnvVar != "" {
			e.Headers = map[string]string{"Authorization": "Bearer $" + s.BearerTokenEnvVar}
		}
	default:
		t.Fatalf("no parser for %s", client)
	}
	return e
}

// expand resolves the token references a client would resolve.
func expand(h map[string]string, token string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		for _, ref := range []string{"${WARD_MCP_TOKEN}", "${env:WARD_MCP_TOKEN}", "${input:ward-mcp-token}", "$WARD_MCP_TOKEN"} {
			v = strings.ReplaceAll(v, ref, token)
		}
		out[k] = v
	}
	return out
}

type headerTransport struct {
	h    map[string]string
	next http.RoundTripper
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header.Set(k, v)
	}
	return t.next.RoundTrip(r)
}

// useEntry connects as the client would with e, lists the tools and calls
// demo.echo, and returns what the call answered.
func useEntry(t *testing.T, e entry) string {
	t.Helper()
	ctx := context.Background()
	var tr mcp.Transport
	if e.Command != "" {
		cmd := exec.Command(e.Command, e.Args...)
		cmd.Env = os.Environ()
		for k, v := range e.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Stderr = os.Stderr
		tr = &mcp.CommandTransport{Command: cmd}
	} else {
		tr = &mcp.StreamableClientTransport{Endpoint: e.URL, HTTPClient: &http.Client{Transport: headerTransport{e.Headers, http.DefaultTransport}}}
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "configured-client", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect with %+v: %v", e, err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("list tools: %v %v", err, tools)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "through the configuration"}})
	if err != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("call: %v %+v", err, res)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// startSidecar runs `ward mcp serve` as a process and waits until it
// serves.
func startSidecar(t *testing.T, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"mcp", "serve"}, args...)...)
	cmd.Env = os.Environ()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "serves uid") {
			go func() {
				for sc.Scan() {
				}
			}()
			return
		}
	}
	t.Fatal("ward mcp serve did not start")
}

// TestMCPConfigClients: `ward mcp config` prints, for each client, a
// configuration that parses as that client's format and works: the HTTP
// form reaches the session's sidecar with the token the client resolves,
// the stdio form starts `ward mcp serve --stdio`. No form prints a token
// the user is not configuring.
func TestMCPConfigClients(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	_ = n
	bin := buildWard(t)
	mustCLI(t, "sponsor", "create", "alice", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "scribe", "--sponsor", "alice", "--allow", "tool:demo.*")
	var s struct{ Session string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "scribe", "--objective", "use my editor", "-o", "json")), &s)

	port := freePort(t)
	listen := "127.0.0.1:" + port
	tokenFile := filepath.Join(t.TempDir(), "mcp.token")
	startSidecar(t, bin, "--session", s.Session, "--listen", listen, "--token-file", tokenFile)
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	config := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"mcp", "config"}, args...)...)
		cmd.Env = os.Environ()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("ward mcp config %v: %v\n%s", args, err, errb.String())
		}
		return out.String(), errb.String()
	}
	for _, client := range mcpClients {
		t.Run(client, func(t *testing.T) {
			// HTTP, the token referred to: nothing secret is printed.
			doc, hints := config("--client", client, "--listen", listen, "--name", "work-ward")
			if strings.Contains(doc+hints, token) || strings.Contains(doc+hints, "wmcp_") {
				t.Fatalf("the token was printed although the user did not ask to configure it:\n%s%s", doc, hints)
			}
			e := parseClientConfig(t, client, "work-ward", doc)
			if e.URL != "http://"+listen+"/mcp" {
				t.Fatalf("url %q", e.URL)
			}
			if client == "inspector" {
				// The Inspector's file holds no headers: its command line
				// does, as printed.
				if !strings.Contains(hints, `--header "Authorization: Bearer $WARD_MCP_TOKEN"`) {
					t.Fatalf("no header for the Inspector's command line:\n%s", hints)
				}
				e.Headers = map[string]string{"Authorization": "Bearer $WARD_MCP_TOKEN"}
			}
			if got := useEntry(t, entry{URL: e.URL, Headers: expand(e.Headers, token)}); got != "through the configuration" {
				t.Fatalf("echo through the HTTP form: %q", got)
			}
			// Without the token the same configuration gets nothing.
			if c, err := mcp.NewClient(&mcp.Implementation{Name: "x", Version: "1"}, nil).Connect(context.Background(),
				&mcp.StreamableClientTransport{Endpoint: e.URL, HTTPClient: &http.Client{Transport: headerTransport{expand(e.Headers, "wmcp_wrong"), http.DefaultTransport}}}, nil); err == nil {
				c.Close()
				t.Fatal("the sidecar served a client with a wrong token")
			}

			// HTTP, the token written in: the one in the token file.
			doc, hints = config("--client", client, "--listen", listen, "--token-file", tokenFile)
			e = parseClientConfig(t, client, "ward", doc)
			if client == "inspector" {
				if strings.Contains(doc, token) || !strings.Contains(hints, "$(cat "+tokenFile+")") {
					t.Fatalf("inspector with --token-file:\n%s%s", doc, hints)
				}
				e.Headers = map[string]string{"Authorization": "Bearer " + token}
			} else if e.Headers["Authorization"] != "Bearer "+token {
				t.Fatalf("--token-file: headers %v", e.Headers)
			}
			if !strings.Contains(hints, "keep its file private") {
				t.Errorf("no warning that the configuration holds the token:\n%s", hints)
			}
			if got := useEntry(t, e); got != "through the configuration" {
				t.Fatalf("echo with the written token: %q", got)
			}

			// stdio: the client starts ward itself.
			doc, _ = config("--client", client, "--transport", "stdio", "--session", s.Session)
			e = parseClientConfig(t, client, "ward", doc)
			if e.Command != bin || strings.Join(e.Args, " ") != "mcp serve --stdio --session "+s.Session || e.Env["WARD_HOME"] != os.Getenv("WARD_HOME") {
				t.Fatalf("stdio entry %+v", e)
			}
			if got := useEntry(t, e); got != "through the configuration" {
				t.Fatalf("echo through the stdio form: %q", got)
			}
		})
	}
}

// TestMCPConfigBadInput: what cannot make a working configuration is a
// usage error that says why.
func TestMCPConfigBadInput(t *testing.T) {
	t.Setenv("WARD_HOME", t.TempDir())
	t.Setenv("WARD_SESSION", "")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--listen", "127.0.0.1:7777"}, 2, "--client"},
		{[]string{"--client", "emacs", "--listen", "127.0.0.1:7777"}, 2, "want one of claude-code, cursor, vscode, codex, inspector"},
		{[]string{"--client", "cursor"}, 2, "--listen"},
		{[]string{"--client", "cursor", "--listen", "127.0.0.1:0"}, 2, "fixed port"},
		{[]string{"--client", "cursor", "--listen", "0.0.0.0:7777"}, 2, "loopback"},
		{[]string{"--client", "cursor", "--listen", "unix:/tmp/x.sock"}, 2, "names a URL"},
		{[]string{"--client", "cursor", "--listen", "127.0.0.1:7777", "--name", "has space"}, 2, "--name"},
		{[]string{"--client", "cursor", "--listen", "127.0.0.1:7777", "--name", "a]b"}, 2, "--name"},
		{[]string{"--client", "cursor", "--listen", "127.0.0.1:7777", "--token-env", "A-B"}, 2, "--token-env"},
		{[]string{"--client", "codex", "--listen", "127.0.0.1:7777", "--token-env", "X", "--token-file", "/tmp/x"}, 2, "give one"},
		{[]string{"--client", "codex", "--transport", "stdio"}, 2, "--session"},
		{[]string{"--client", "codex", "--transport", "stdio", "--session", "s1", "--listen", "127.0.0.1:7777"}, 2, "--listen is for --transport http"},
		{[]string{"--client", "codex", "--transport", "stdio", "--session", "nosuch"}, 1, "ward session start"},
		{[]string{"--client", "codex", "--transport", "sse", "--listen", "127.0.0.1:7777"}, 2, "want http or stdio"},
	} {
		code, out, errOut := wardCLI(append([]string{"mcp", "config"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("ward mcp config %v: exit %d, stdout %q, stderr %q; want exit %d mentioning %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

// TestTOMLString: what Codex's file gets is TOML whatever the text.
func TestTOMLString(t *testing.T) {
	vals := []string{"plain", `quo"te`, `back\slash`, "new\nline", "tab\tand\x7fdel", "ünïcødé", "${X}", "a'b", "\x00"}
	var doc strings.Builder
	for i, v := range vals {
		doc.WriteString("k" + strconv.Itoa(i) + " = " + tomlString(v) + "\n")
	}
	doc.WriteString("arr = " + tomlArray(vals) + "\n")
	doc.WriteString("tab = " + tomlInline(map[string]string{`we"ird key`: "v", "n\nl": `x\y`}) + "\n")
	m := parseTOML(t, doc.String())
	for i, v := range vals {
		if m["k"+strconv.Itoa(i)] != v {
			t.Errorf("%q came back as %q", v, m["k"+strconv.Itoa(i)])
		}
	}
	if arr, _ := m["arr"].([]any); len(arr) != len(vals) || arr[3] != "new\nline" {
		t.Errorf("array: %v", m["arr"])
	}
	if tab, _ := m["tab"].(map[string]any); tab[`we"ird key`] != "v" || tab["n\nl"] != `x\y` {
		t.Errorf("inline table: %v", m["tab"])
	}
}
