package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ward-dev/ward/internal/sessioncred"
)

// `ward mcp config` prints the configuration an MCP client needs to use a
// session through ward, in that client's own format, on standard output
// (so that it can be redirected into the file), and on standard error
// where that file is and what else to do.
//
// Two forms:
//
//   - http (the default): the client connects to the session's sidecar,
//     `ward mcp serve --session ID --listen 127.0.0.1:PORT`, at
//     http://127.0.0.1:PORT/mcp with the header "Authorization: Bearer
//     TOKEN". The token is referred to through the client's own way of
//     keeping secrets out of its file where it has one (an environment
//     variable, WARD_MCP_TOKEN unless --token-env says otherwise; VS Code
//     asks for it once and keeps it), so nothing secret is printed. With
//     --token-file FILE the token in FILE (the sidecar's own --token-file,
//     made 0600 if missing) is written into the configuration instead:
//     the token being configured, for clients, or users, that want it so.
//   - stdio: the client starts `ward mcp serve --stdio --session ID`
//     itself and speaks MCP on its stdin and stdout; no token exists, and
//     the session's key stays in its credentials directory. This is the
//     form for clients that only start programs. (`ward mcp wrap` is
//     something else: it puts ward in front of an MCP server program the
//     client would otherwise start, rather than giving the client the
//     node's servers.)
//
// The formats, as their documentation gives them (looked up when this was
// written, December 2026):
//
//   - Claude Code, .mcp.json in the project (or ~/.claude.json):
//     {"mcpServers": {NAME: {"type": "http", "url": …, "headers": {…}}}}, or
//     {"type": "stdio", "command": …, "args": […], "env": {…}}; ${VAR} in
//     headers expands from the environment (code.claude.com/docs/en/mcp;
//     docs.anthropic.com/en/docs/claude-code/sdk/sdk-mcp shows
//     "headers": {"X-API-Key": "${API_KEY}"}).
//   - Cursor, ~/.cursor/mcp.json or .cursor/mcp.json: the same
//     "mcpServers" with "url" and "headers" (the transport is worked out)
//     or "command", "args", "env"; ${env:VAR} expands from the environment
//     (cursor.com/docs/mcp).
//   - VS Code, .vscode/mcp.json: {"servers": {NAME: {"type": "http",
//     "url": …, "headers": {…}}}, "inputs": […]}, or "type": "stdio" with
//     "command", "args", "env"; a promptString input with "password": true
//     is asked for once and kept by VS Code, named as ${input:ID}
//     (code.visualstudio.com/docs/copilot/reference/mcp-configuration).
//   - Codex, ~/.codex/config.toml: [mcp_servers.NAME] with "url" and
//     "bearer_token_env_var" (or "http_headers") for streamable HTTP, or
//     "command", "args", "env" (developers.openai.com/codex/mcp; Codex
//     refuses an inline bearer_token, so a written token goes in
//     http_headers).
//   - MCP Inspector: --config FILE --server NAME with
//     {"mcpServers": {NAME: {"type": "streamable-http", "url": …}}} or
//     {"type": "stdio", "command": …, "args": […], "env": {…}}; the file
//     holds no headers, which its CLI takes as --header "NAME: VALUE"
//     (github.com/modelcontextprotocol/inspector, cli/src/cli.ts).
func cmdMCPConfig(args []string, stdout io.Writer) error {
	fs := flags("mcp config")
	clientName := fs.String("client", "", "the MCP client: "+strings.Join(mcpClients, ", "))
	transport := fs.String("transport", "http", "http: the client connects to `ward mcp serve --listen`; stdio: the client starts `ward mcp serve --stdio`")
	name := fs.String("name", "ward", "the server's name in the client's configuration")
	listen := fs.String("listen", "", "http: the address `ward mcp serve --listen` serves on (127.0.0.1:PORT)")
	tokenEnv := fs.String("token-env", "WARD_MCP_TOKEN", "http: the environment variable the client reads the sidecar's token from")
	tokenFile := fs.String("token-file", "", "http: write the token kept in FILE (the sidecar's --token-file; made 0600 if missing) into the configuration instead of referring to it")
	session := fs.String("session", os.Getenv("WARD_SESSION"), "the session the client acts as (default $WARD_SESSION); for http it only completes the command printed to start the sidecar")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	const use = "usage: ward mcp config --client CLIENT [--name NAME] (--listen 127.0.0.1:PORT [--token-env VAR | --token-file FILE] | --transport stdio --session ID)"
	if !contains(mcpClients, *clientName) {
		return usagef("--client %q: want one of %s; %s", *clientName, strings.Join(mcpClients, ", "), use)
	}
	if !serverNameRE.MatchString(*name) {
		return usagef("--name %q: a letter, then letters, digits, '_' or '-' (at most 64)", *name)
	}
	var cfg mcpClientConfig
	var hints []string
	switch *transport {
	case "http":
		// --session only completes the command printed to start the
		// sidecar: the HTTP form names the sidecar, which serves one
		// session.
		sid := "ID"
		if *session != "" {
			sid = *session
		}
		if *listen == "" {
			return usagef("--listen: give the address `ward mcp serve --listen` serves on; %s", use)
		}
		u, err := sidecarURL(*listen)
		if err != nil {
			return usagef("--listen %q: %v", *listen, err)
		}
		cfg = mcpClientConfig{Name: *name, URL: u}
		if *tokenFile != "" {
			if flagGiven(fs, "token-env") {
				return usagef("--token-env and --token-file: give one")
			}
			tok, created, err := sessioncred.TokenFile(*tokenFile)
			if err != nil {
				return err
			}
			cfg.Token, cfg.TokenFile = tok, *tokenFile
			hints = append(hints, fmt.Sprintf("this configuration holds the sidecar's token (from %s): keep its file private (mode 0600) and out of version control", *tokenFile))
			if created {
				hints = append(hints, fmt.Sprintf("a new token was made in %s", *tokenFile))
			}
			hints = append(hints, fmt.Sprintf("start the sidecar with the same token: ward mcp serve --session %s --listen %s --token-file %s", sid, *listen, *tokenFile))
		} else {
			if !envNameRE.MatchString(*tokenEnv) {
				return usagef("--token-env %q: not an environment variable name", *tokenEnv)
			}
			cfg.TokenEnv = *tokenEnv
			hints = append(hints, fmt.Sprintf("start the sidecar: ward mcp serve --session %s --listen %s --token-file ~/.ward/mcp.token", sid, *listen))
			if *clientName != "vscode" {
				hints = append(hints, fmt.Sprintf("and give the client its token in the environment it starts in: export %s=\"$(cat ~/.ward/mcp.token)\"", *tokenEnv))
			}
		}
	case "stdio":
		for _, f := range []string{"listen", "token-env", "token-file"} {
			if flagGiven(fs, f) {
				return usagef("--%s is for --transport http: with stdio the client starts ward itself and no token exists", f)
			}
		}
		if *session == "" {
			return usagef("--session: give the session the client acts as; %s", use)
		}
		if _, err := sessioncred.Load(sessionDir(*session)); err != nil {
			return fmt.Errorf("session %s: %w (credentials are kept in %s; start one with ward session start)", *session, err, sessionDir(*session))
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("where this ward is: %w", err)
		}
		home, err := filepath.Abs(wardHome())
		if err != nil {
			return err
		}
		cfg = mcpClientConfig{Name: *name, Command: exe, Args: []string{"mcp", "serve", "--stdio", "--session", *session},
			Env: map[string]string{"WARD_HOME": home}}
	default:
		return usagef("--transport %q: want http or stdio", *transport)
	}
	doc, more := cfg.render(*clientName)
	if _, err := io.WriteString(stdout, doc); err != nil {
		return err
	}
	for _, h := range append(more, hints...) {
		fmt.Fprintln(os.Stderr, "ward mcp config: "+h)
	}
	return nil
}

// mcpClients are the clients `ward mcp config` writes for.
var mcpClients = []string{"claude-code", "cursor", "vscode", "codex", "inspector"}

var (
	// serverNameRE is what every client accepts as a server's name (VS
	// Code's schema is the narrowest; it is also a bare TOML key).
	serverNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// vscodeInput is the id of the VS Code input that asks for the token.
const vscodeInput = "ward-mcp-token"

// mcpClientConfig is one server entry: URL (with TokenEnv or Token) for
// the HTTP form, Command, Args and Env for stdio.
type mcpClientConfig struct {
	Name     string
	URL      string
	TokenEnv string
	Token    string
	// TokenFile is where Token came from.
	TokenFile string
	Command   string
	Args      []string
	Env       map[string]string
}

// render returns the document for client and what to tell the user
// about where it goes.
func (c mcpClientConfig) render(client string) (string, []string) {
	stdio := c.Command != ""
	// bearer is the Authorization header's value, with the token written
	// the way the client refers to an environment variable.
	bearer := func(ref string) string {
		if c.Token != "" {
			return "Bearer " + c.Token
		}
		return "Bearer " + ref
	}
	server := map[string]any{}
	switch client {
	case "claude-code":
		if stdio {
			server = map[string]any{"type": "stdio", "command": c.Command, "args": c.Args, "env": c.Env}
		} else {
			server = map[string]any{"type": "http", "url": c.URL, "headers": map[string]string{"Authorization": bearer("${" + c.TokenEnv + "}")}}
		}
		return jsonDoc(map[string]any{"mcpServers": map[string]any{c.Name: server}}),
			[]string{"put it in .mcp.json at the root of your project (or merge its server into ~/.claude.json)"}
	case "cursor":
		if stdio {
			server = map[string]any{"command": c.Command, "args": c.Args, "env": c.Env}
		} else {
			server = map[string]any{"url": c.URL, "headers": map[string]string{"Authorization": bearer("${env:" + c.TokenEnv + "}")}}
		}
		return jsonDoc(map[string]any{"mcpServers": map[string]any{c.Name: server}}),
			[]string{"put it in ~/.cursor/mcp.json (every project) or .cursor/mcp.json (this one), merged with the servers already there"}
	case "vscode":
		doc := map[string]any{}
		if stdio {
			server = map[string]any{"type": "stdio", "command": c.Command, "args": c.Args, "env": c.Env}
		} else {
			server = map[string]any{"type": "http", "url": c.URL, "headers": map[string]string{"Authorization": bearer("${input:" + vscodeInput + "}")}}
			if c.Token == "" {
				doc["inputs"] = []map[string]any{{"type": "promptString", "id": vscodeInput, "description": "ward sidecar token (the content of the sidecar's --token-file)", "password": true}}
			}
		}
		doc["servers"] = map[string]any{c.Name: server}
		hints := []string{"put it in .vscode/mcp.json in your workspace, merged with the servers already there"}
		if !stdio && c.Token == "" {
			hints = append(hints, "VS Code asks for the token once, when it first starts the server, and keeps it")
		}
		return jsonDoc(doc), hints
	case "codex":
		var b strings.Builder
		fmt.Fprintf(&b, "[mcp_servers.%s]\n", c.Name)
		switch {
		case stdio:
			fmt.Fprintf(&b, "command = %s\nargs = %s\nenv = %s\n", tomlString(c.Command), tomlArray(c.Args), tomlInline(c.Env))
		case c.Token != "":
			fmt.Fprintf(&b, "url = %s\nhttp_headers = %s\n", tomlString(c.URL), tomlInline(map[string]string{"Authorization": bearer("")}))
		default:
			fmt.Fprintf(&b, "url = %s\nbearer_token_env_var = %s\n", tomlString(c.URL), tomlString(c.TokenEnv))
		}
		return b.String(), []string{"add it to ~/.codex/config.toml (or .codex/config.toml of a trusted project)"}
	}
	// inspector
	if stdio {
		server = map[string]any{"type": "stdio", "command": c.Command, "args": c.Args, "env": c.Env}
	} else {
		server = map[string]any{"type": "streamable-http", "url": c.URL}
	}
	hints := []string{fmt.Sprintf("save it as ward-inspector.json and run: npx @modelcontextprotocol/inspector --config ward-inspector.json --server %s", c.Name)}
	if !stdio {
		header := "Authorization: " + bearer("$"+c.TokenEnv)
		if c.Token != "" {
			header = "Authorization: Bearer $(cat " + c.TokenFile + ")"
		}
		hints = []string{
			fmt.Sprintf("save it as ward-inspector.json; the Inspector's file holds no headers, so give the token on its command line: npx @modelcontextprotocol/inspector --cli --config ward-inspector.json --server %s --header \"%s\" --method tools/list", c.Name, header),
			"in the Inspector's web UI, enter the header Authorization: Bearer TOKEN under Authentication",
		}
	}
	return jsonDoc(map[string]any{"mcpServers": map[string]any{c.Name: server}}), hints
}

// sidecarURL is the MCP endpoint of a sidecar listening on addr.
func sidecarURL(addr string) (string, error) {
	if strings.HasPrefix(addr, "unix:") {
		return "", fmt.Errorf("a client configuration names a URL: give the TCP address the sidecar listens on (a client that speaks HTTP over a Unix socket is configured by hand), or use --transport stdio")
	}
	if err := sessioncred.CheckListen(addr); err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(addr)
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", fmt.Errorf("give the sidecar a fixed port (ward mcp serve --listen 127.0.0.1:7777): a client cannot follow a port chosen at each start")
	}
	return "http://" + net.JoinHostPort(host, port) + "/mcp", nil
}

func jsonDoc(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v) // maps of strings: cannot fail
	return b.String()
}

// tomlString writes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlArray(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = tomlString(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// tomlInline writes m as a TOML inline table with quoted keys, in key
// order.
func tomlInline(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = tomlString(k) + " = " + tomlString(m[k])
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

// flagGiven reports whether the command line set flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			given = true
		}
	})
	return given
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
