package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// mcpServeSession starts a node with the demo server and a session whose
// agent may call it; it returns the session id.
func mcpServeSession(t *testing.T) string {
	t.Helper()
	startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	mustCLI(t, "sponsor", "create", "alice", "--kind", "human", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "scribe", "--sponsor", "alice", "--allow", "tool:demo.*")
	var s struct{ Session string }
	if err := json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "scribe", "--objective", "tidy the notes", "-o", "json")), &s); err != nil {
		t.Fatal(err)
	}
	return s.Session
}

// startMCPServe runs the real `ward mcp serve ARGS` as the test's user; it
// returns what the sidecar printed once ready and a function that stops it
// (SIGTERM) and returns its standard error.
func startMCPServe(t *testing.T, bin string, args ...string) (string, func() string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"mcp", "serve"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() string {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		return stderr.String()
	}
	t.Cleanup(func() { stop() })
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Host and Origin checked") {
			return out.String(), stop
		}
	}
	t.Fatalf("ward mcp serve did not start:\n%s\n%s", out.String(), stop())
	return "", nil
}

var (
	endpointRE = regexp.MustCompile(`MCP endpoint (http://\S+/mcp)`)
	bearerRE   = regexp.MustCompile(`Authorization: Bearer (\S+)`)
)

// curlAsNobody sends an MCP initialize with curl running as uid 65534 and
// returns the HTTP status (0 if it could not connect), the body and curl's
// error output.
func curlAsNobody(t *testing.T, url string, extra ...string) (int, string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	args := append([]string{"-sS", "-m", "30", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
		"-H", "Accept: application/json, text/event-stream", "-d", initializeBody}, extra...)
	cmd := exec.Command("curl", append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	body, code := "", out.String()
	if i := strings.LastIndex(code, "\n"); i >= 0 {
		body, code = code[:i], code[i+1:]
	}
	var status int
	fmt.Sscan(code, &status)
	return status, body, errb.String()
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`

// headers adds fixed headers to every request.
type headers struct {
	base http.RoundTripper
	h    map[string]string
}

func (t headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header.Set(k, v)
	}
	return t.base.RoundTrip(r)
}

// echoThrough connects an MCP client to endpoint and calls demo.echo.
func echoThrough(t *testing.T, endpoint string, hc *http.Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "sidecar-client", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "through the sidecar"}})
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	if len(res.Content) == 0 || res.Content[0].(*mcp.TextContent).Text != "through the sidecar" {
		return fmt.Errorf("echo answered %+v", res)
	}
	return nil
}

// TestMCPServeOwnerOnly: another local user (nobody) is refused by the
// TCP sidecar, without the token and with it; the owner needs the token
// and then works, by header or by URL; the refusals are in the session's
// audit log and the sidecar's log, and the token in neither.
func TestMCPServeOwnerOnly(t *testing.T) {
	session := mcpServeSession(t)
	bin := buildWard(t)
	out, stop := startMCPServe(t, bin, "--session", session)
	m := endpointRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no endpoint in %q", out)
	}
	endpoint := m[1]

	// Another user, without the token.
	status, body, errOut := curlAsNobody(t, endpoint)
	if status != http.StatusForbidden || !strings.Contains(body, "comes from uid 65534") {
		t.Fatalf("another local user was not refused: %d %s %s", status, body, errOut)
	}
	b := bearerRE.FindStringSubmatch(out)
	if b == nil {
		t.Fatalf("no token in %q", out)
	}
	token := b[1]
	if !strings.Contains(out, endpoint+"/"+token) {
		t.Fatalf("no URL with the token in %q", out)
	}
	// With the token too: the token is not enough for another user.
	for _, tc := range []struct {
		url   string
		extra []string
	}{{endpoint, []string{"-H", "Authorization: Bearer " + token}}, {endpoint + "/" + token, nil}} {
		if status, body, errOut := curlAsNobody(t, tc.url, tc.extra...); status != http.StatusForbidden || !strings.Contains(body, "comes from uid 65534") {
			t.Fatalf("another local user with the token: %d %s %s", status, body, errOut)
		}
	}

	// The owner without the token: 401 and what to do.
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(initializeBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("the owner without the token: %d", resp.StatusCode)
	}
	// The owner with the token, by header and by URL.
	if err := echoThrough(t, endpoint, &http.Client{Transport: headers{http.DefaultTransport, map[string]string{"Authorization": "Bearer " + token}}}); err != nil {
		t.Fatalf("the owner with the token in a header: %v", err)
	}
	if err := echoThrough(t, endpoint+"/"+token, http.DefaultClient); err != nil {
		t.Fatalf("the owner with the token in the URL: %v", err)
	}

	logs := stop()
	if !strings.Contains(logs, "not the owner (uid 65534)") || strings.Contains(logs, token) {
		t.Fatalf("the sidecar's log does not name the refused user, or shows the token:\n%s", logs)
	}
	var refused int
	for _, ev := range auditEvents(t, session, "agent.record") {
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), token) {
			t.Fatal("the token is in the audit log")
		}
		if strings.Contains(string(raw), "ward mcp serve refused requests") && strings.Contains(string(raw), `"uid":65534`) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("the refusals are not in the session's audit log")
	}
}

// TestMCPServeOrigin: a client that sends the sidecar's own Origin (as a
// browser page would) initialises and calls a tool through the sidecar and
// a real node: the sidecar checks the Origin and does not pass it on.
func TestMCPServeOrigin(t *testing.T) {
	session := mcpServeSession(t)
	bin := buildWard(t)
	out, _ := startMCPServe(t, bin, "--session", session)
	endpoint := endpointRE.FindStringSubmatch(out)[1]
	h := map[string]string{"Origin": strings.TrimSuffix(endpoint, "/mcp")}
	if b := bearerRE.FindStringSubmatch(out); b != nil {
		h["Authorization"] = "Bearer " + b[1]
	}
	if err := echoThrough(t, endpoint, &http.Client{Transport: headers{http.DefaultTransport, h}}); err != nil {
		t.Fatalf("a client sending the sidecar's own Origin: %v", err)
	}
	// A foreign Origin is still refused, by the sidecar.
	h["Origin"] = "http://evil.example"
	if err := echoThrough(t, endpoint, &http.Client{Transport: headers{http.DefaultTransport, h}}); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("a foreign Origin: %v", err)
	}
}

// TestMCPServeUnix: on a Unix socket the owner works without a token;
// another user cannot connect; a directory others may enter is refused
// before anything listens.
func TestMCPServeUnix(t *testing.T) {
	session := mcpServeSession(t)
	bin := buildWard(t)
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		os.Chmod(d, 0o755) // let other users walk up to the socket's directory
	}
	sock := filepath.Join(base, "run", "mcp.sock")
	out, _ := startMCPServe(t, bin, "--session", session, "--listen", "unix:"+sock)
	if strings.Contains(out, "Bearer") {
		t.Fatalf("a Unix socket sidecar printed a token: %q", out)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if err := echoThrough(t, "http://localhost/mcp", hc); err != nil {
		t.Fatalf("the owner over the socket: %v", err)
	}
	if status, body, errOut := curlAsNobody(t, "http://localhost/mcp", "--unix-socket", sock); status != 0 || !strings.Contains(errOut, "connect") {
		t.Fatalf("another user reached the socket: %d %s %s", status, body, errOut)
	}
	// Opened up by mistake, the socket lets the other user connect; the
	// peer credentials refuse it.
	os.Chmod(filepath.Dir(sock), 0o755)
	os.Chmod(sock, 0o666)
	if status, body, errOut := curlAsNobody(t, "http://localhost/mcp", "--unix-socket", sock); status != http.StatusForbidden || !strings.Contains(body, "comes from uid 65534") {
		t.Fatalf("another user on an open socket: %d %s %s", status, body, errOut)
	}

	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "mcp", "serve", "--session", session, "--listen", "unix:"+filepath.Join(open, "s"))
	errOut, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(errOut), "chmod 700") {
		t.Fatalf("a socket directory others may enter: exit %d %s", cmd.ProcessState.ExitCode(), errOut)
	}
}

// TestMCPServeTokenFile: with --token-file the token is made once, printed
// only then (-o json), kept across restarts, and works.
func TestMCPServeTokenFile(t *testing.T) {
	session := mcpServeSession(t)
	bin := buildWard(t)
	file := filepath.Join(t.TempDir(), "token")
	start := func() mcpServeInfo {
		cmd := exec.Command(bin, "mcp", "serve", "--session", session, "--token-file", file, "-o", "json")
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
		var info mcpServeInfo
		if err := json.NewDecoder(stdout).Decode(&info); err != nil {
			t.Fatalf("ward mcp serve -o json: %v", err)
		}
		return info
	}
	first := start()
	if first.Token == "" || first.TokenURL != first.Endpoint+"/"+first.Token || first.TokenFile != file {
		t.Fatalf("first start: %+v", first)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", err, st)
	}
	second := start()
	if second.Token != "" || second.TokenURL != "" {
		t.Fatalf("a kept token was printed again: %+v", second)
	}
	if err := echoThrough(t, second.Endpoint+"/"+first.Token, http.DefaultClient); err != nil {
		t.Fatalf("the kept token after a restart: %v", err)
	}
	os.Chmod(file, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "mcp", "serve", "--session", session, "--token-file", file).CombinedOutput()
	if !strings.Contains(string(out), "chmod 600") || strings.Contains(string(out), first.Token) {
		t.Fatalf("a token file others can read: %s", out)
	}
}
