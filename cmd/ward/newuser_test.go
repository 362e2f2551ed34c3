package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
)

// newUser is a shell of a new user: the real ward binary, run with the
// environment `ward up` told them to export, from their working directory.
type newUser struct {
	t    *testing.T
	bin  string
	dir  string
	env  []string
	node *exec.Cmd
}

// ward runs `ward ARGS` and returns its exit code and outputs.
func (u *newUser) ward(args ...string) (int, string, string) {
	u.t.Helper()
	cmd := exec.Command(u.bin, args...)
	cmd.Dir, cmd.Env = u.dir, u.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		u.t.Fatalf("ward %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// must runs `ward ARGS` and fails the test unless it succeeds.
func (u *newUser) must(args ...string) string {
	u.t.Helper()
	code, out, errOut := u.ward(args...)
	if code != 0 {
		u.t.Fatalf("ward %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// up starts `ward up ARGS` and takes in the environment it prints.
func (u *newUser) up(args ...string) string {
	u.t.Helper()
	cmd := exec.Command(u.bin, append([]string{"up"}, args...)...)
	cmd.Dir, cmd.Env = u.dir, u.env
	stdout, _ := cmd.StdoutPipe()
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	u.node = cmd
	u.t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	var text strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		text.WriteString(line + "\n")
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
			u.env = append(u.env, strings.Fields(f)...)
		}
		if strings.Contains(line, "Ctrl-C stops") {
			go func() {
				for sc.Scan() {
				}
			}()
			return text.String()
		}
	}
	u.t.Fatalf("ward up did not start:\n%s\n%s", text.String(), logs.String())
	return ""
}

// TestNewUserFilesystem walks the README's "Connect a real server" as a
// new user would, with the real binary and the real MCP filesystem server:
// start a node with the server, give an agent a session, configure a
// client with `ward mcp config`, see how each tool is treated, list and
// read at once, have a write held for the default approver (the admin
// made at first start) and approved, and see that the admin cannot
// approve a call of an agent it sponsors itself but can deny it.
func TestNewUserFilesystem(t *testing.T) {
	fsServer(t) // installed by make deps, or skipped
	npx, err := exec.LookPath("npx")
	if err != nil {
		t.Skip("npx is needed: the README runs the server with it")
	}
	u := &newUser{t: t, bin: buildWard(t), dir: t.TempDir()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARD_") {
			u.env = append(u.env, kv)
		}
	}
	u.env = append(u.env, "WARD_HOME="+filepath.Join(u.dir, "home"))
	share := filepath.Join(u.dir, "share")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(share, "hello.txt"), []byte("hello\n"), 0o644) // as the README makes it

	// The README's ward.yaml, with npx kept off the network: it runs the
	// copy `make deps` installed (--offline, from that directory).
	section := readmeSection(t, "## Connect a real server")
	for _, want := range newUserCommands {
		if !strings.Contains(section, want) {
			t.Fatalf("the README's \"Connect a real server\" no longer says %q: update this test with it", want)
		}
	}
	start := strings.Index(section, "cat > ward.yaml <<EOF\n")
	end := strings.Index(section, "\nEOF\n")
	if start < 0 || end < start {
		t.Fatal("the README's \"Connect a real server\" has no ward.yaml")
	}
	cfg := section[start+len("cat > ward.yaml <<EOF\n") : end+1]
	cfg = strings.ReplaceAll(cfg, "$PWD", u.dir)
	offline := "[" + npx + ", --offline, -y,"
	if !strings.Contains(cfg, "[npx, -y,") {
		t.Fatalf("the README's ward.yaml does not run the server with npx -y:\n%s", cfg)
	}
	cfg = strings.Replace(cfg, "[npx, -y,", offline, 1)
	cfg = strings.Replace(cfg, "    roots:", "    dir: "+filepath.Join(repoRoot(), "testdata", "npm")+"\n    roots:", 1)
	if err := os.WriteFile(filepath.Join(u.dir, "ward.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	banner := u.up("--config", "ward.yaml", "--addr", "127.0.0.1:0")
	if !strings.Contains(banner, "approvers     group security: admin") || !strings.Contains(banner, "[demo fs]") {
		t.Fatalf("ward up does not say who approves, or which servers it has:\n%s", banner)
	}

	// An accountable sponsor, an agent, a session.
	sponsorOut := u.must("sponsor", "create", "carol", "--kind", "human", "--allow", "tool:fs.*")
	carolCred := credRE.FindString(sponsorOut)
	u.must("agent", "register", "tidier", "--sponsor", "carol", "--allow", "tool:fs.*")
	var s struct{ Session string }
	if err := json.Unmarshal([]byte(u.must("session", "start", "--agent", "tidier", "--objective", "tidy the share", "-o", "json")), &s); err != nil {
		t.Fatal(err)
	}

	// The sidecar, and a client configured by ward mcp config.
	listen := "127.0.0.1:" + freePort(t)
	tokenFile := filepath.Join(u.dir, "home", "mcp.token")
	sidecar := exec.Command(u.bin, "mcp", "serve", "--session", s.Session, "--listen", listen, "--token-file", tokenFile)
	sidecar.Dir, sidecar.Env = u.dir, u.env
	sout, _ := sidecar.StdoutPipe()
	if err := sidecar.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sidecar.Process.Kill(); sidecar.Wait() })
	sc := bufio.NewScanner(sout)
	for sc.Scan() && !strings.Contains(sc.Text(), "serves uid") {
	}
	go func() {
		for sc.Scan() {
		}
	}()
	doc := u.must("mcp", "config", "--client", "claude-code", "--listen", listen, "--session", s.Session)
	e := parseClientConfig(t, "claude-code", "ward", doc)
	token := strings.TrimSpace(string(must(os.ReadFile(tokenFile))))
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "new-user-client", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: e.URL, HTTPClient: &http.Client{Transport: headerTransport{expand(e.Headers, token), http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx := context.Background()

	// List: the agent sees the server's tools (by whichever name the
	// gateway exposes them; calls may name them SERVER.TOOL).
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"read_text_file", "write_file", "list_directory"} {
		if !slicesHasSuffix(names, want) {
			t.Fatalf("tools/list lacks %s: %v", want, names)
		}
	}
	// How each tool is treated, and why.
	list := u.must("tools", "list", "--server", "fs")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^fs\.read_text_file\s+approved\s+not a sink \(annotated read-only, closed world\)`),
		regexp.MustCompile(`(?m)^fs\.write_file\s+approved\s+sink \(default: not annotated read-only and closed-world\)`),
	} {
		if !want.MatchString(list) {
			t.Fatalf("tools list does not match %s:\n%s", want, list)
		}
	}

	// List and read: at once, no approval.
	call := func(cs *mcp.ClientSession, name string, args map[string]any) (string, error) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			return "", err
		}
		if res.IsError || len(res.Content) == 0 {
			return "", fmt.Errorf("%s failed: %+v", name, res.Content)
		}
		return res.Content[0].(*mcp.TextContent).Text, nil
	}
	if out, err := call(cs, "fs.list_directory", map[string]any{"path": share}); err != nil || !strings.Contains(out, "hello.txt") {
		t.Fatalf("list_directory: %q %v", out, err)
	}
	if out, err := call(cs, "fs.read_text_file", map[string]any{"path": filepath.Join(share, "hello.txt")}); err != nil || out != "hello\n" {
		t.Fatalf("read_text_file: %q %v", out, err)
	}
	if n := pendingApprovals(t, u); len(n) != 0 {
		t.Fatalf("reads were escalated: %v", n)
	}

	// A write is held for the default approver.
	write := map[string]any{"path": filepath.Join(share, "notes.txt"), "content": "written through ward\n"}
	done := make(chan error, 1)
	go func() { _, err := call(cs, "fs.write_file", write); done <- err }()
	req := waitPending(t, u, "fs.write_file")
	if req.Requirement.Quorum != 1 || strings.Join(req.Requirement.Groups, ",") != "security" || req.Agent != "tidier" || req.Sponsor != "carol" {
		t.Fatalf("the held write: %+v", req)
	}
	if _, err := os.Stat(filepath.Join(share, "notes.txt")); err == nil {
		t.Fatal("the write happened before it was approved")
	}
	// The agent's sponsor is no approver by default.
	code, _, errOut := withToken(u, carolCred).ward("approvals", "approve", req.ID)
	if code == 0 || !strings.Contains(errOut, "not eligible") {
		t.Fatalf("the sponsor approved its own agent's write: exit %d %s", code, errOut)
	}
	// The admin made at first start is.
	if out := u.must("approvals", "approve", req.ID, "--reason", "a notes file is fine"); !strings.Contains(out, "(approved)") {
		t.Fatalf("approve: %s", out)
	}
	if err := <-done; err != nil {
		// The hold ran out first: the agent retries the same call.
		if !strings.Contains(err.Error(), "retry the same call once it is approved") {
			t.Fatalf("held write: %v", err)
		}
		if _, err := call(cs, "fs.write_file", write); err != nil {
			t.Fatalf("retried write: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(share, "notes.txt")); err != nil || string(b) != "written through ward\n" {
		t.Fatalf("the approved write: %q %v", b, err)
	}

	// The server stops (crashes, is killed): the agent is told the server
	// is unavailable, not that the tool is unknown, and the attempt is in
	// the log; a new MCP session starts the server again.
	if out, err := exec.Command("pkill", "-f", "server-filesystem.*"+share).CombinedOutput(); err != nil {
		t.Fatalf("stopping the filesystem server: %v %s", err, out)
	}
	var stopped error
	for range 100 {
		if _, stopped = call(cs, "read_text_file", map[string]any{"path": filepath.Join(share, "hello.txt")}); stopped != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if stopped == nil || !strings.Contains(stopped.Error(), "server fs is unavailable") {
		t.Fatalf("a call to the stopped server: %v", stopped)
	}
	if _, err := call(cs, "list_directory", map[string]any{"path": share}); err == nil || !strings.Contains(err.Error(), "server fs is unavailable") {
		t.Fatalf("another call to the stopped server: %v", err)
	}
	// Read offline from the running node's files: an event is there once
	// a checkpoint covers it (the log signs one every 200 ms).
	var found string
	for range 50 {
		if found = u.must("audit", "search", "--data", filepath.Join(u.dir, "ward-data"), "--session", s.Session, "--tool", "fs.list_directory", "-o", "json"); strings.Contains(found, "unavailable") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(found, "unavailable") {
		t.Fatalf("the call to the stopped server is not in the log:\n%s", found)
	}
	cs.Close()
	cs, err = mcp.NewClient(&mcp.Implementation{Name: "new-user-client", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: e.URL, HTTPClient: &http.Client{Transport: headerTransport{expand(e.Headers, token), http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := call(cs, "read_text_file", map[string]any{"path": filepath.Join(share, "hello.txt")}); err != nil || out != "hello\n" {
		t.Fatalf("read in a new MCP session after the server was stopped: %q %v", out, err)
	}

	// An agent the admin sponsors: the admin cannot approve its
	// escalations (a sponsor never approves its own agent's), but can
	// deny them, so they are still decided.
	u.must("agent", "register", "helper", "--sponsor", "admin", "--allow", "tool:fs.*")
	var h struct{ Session string }
	json.Unmarshal([]byte(u.must("session", "start", "--agent", "helper", "--objective", "help out", "-o", "json")), &h)
	helperCmd := exec.Command(u.bin, "mcp", "serve", "--stdio", "--session", h.Session)
	helperCmd.Dir, helperCmd.Env = u.dir, u.env
	hs, err := mcp.NewClient(&mcp.Implementation{Name: "helper", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: helperCmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	go func() {
		_, err := call(hs, "fs.write_file", map[string]any{"path": filepath.Join(share, "helper.txt"), "content": "x"})
		done <- err
	}()
	req = waitPending(t, u, "fs.write_file")
	if code, _, errOut := u.ward("approvals", "approve", req.ID); code == 0 || !strings.Contains(errOut, "self-approval") {
		t.Fatalf("the admin approved its own agent's write: exit %d %s", code, errOut)
	}
	u.must("approvals", "deny", req.ID, "--reason", "not now")
	if err := <-done; err == nil {
		t.Fatal("a denied write succeeded")
	}
	if _, err := os.Stat(filepath.Join(share, "helper.txt")); err == nil {
		t.Fatal("a denied write happened")
	}
}

// pendingApprovals lists the approval requests waiting for a vote.
func pendingApprovals(t *testing.T, u *newUser) []approvalView {
	t.Helper()
	var rs []approvalView
	if err := json.Unmarshal([]byte(u.must("approvals", "list", "-o", "json")), &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

type approvalView struct {
	ID          string
	Name        string
	Agent       string
	Sponsor     string
	Requirement struct {
		Quorum int
		Groups []string
	}
}

// waitPending waits until a request for tool is pending (the call that
// makes it runs on another goroutine) and returns it.
func waitPending(t *testing.T, u *newUser, tool string) approvalView {
	t.Helper()
	for range 600 {
		for _, r := range pendingApprovals(t, u) {
			if r.Name == tool || strings.HasSuffix(tool, "."+r.Name) {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no approval request for %s appeared", tool)
	return approvalView{}
}

// withToken is u acting with another credential.
func withToken(u *newUser, token string) *newUser {
	v := *u
	v.env = append(append([]string(nil), u.env...), "WARD_TOKEN="+token)
	return &v
}

func slicesHasSuffix(names []string, suffix string) bool {
	for _, n := range names {
		if n == suffix || strings.HasSuffix(n, "."+suffix) {
			return true
		}
	}
	return false
}

// newUserCommands are the README's commands this test runs (with the
// session, port and approval ids it gets).
var newUserCommands = []string{
	"ward up --config ward.yaml",
	"ward sponsor create carol --kind human --allow 'tool:fs.*'",
	"ward agent register tidier --sponsor carol --allow 'tool:fs.*'",
	`ward session start --agent tidier --objective "tidy the share"`,
	"ward mcp serve --session k3v… --listen 127.0.0.1:7777 --token-file ~/.ward/mcp.token",
	"ward mcp config --client claude-code --listen 127.0.0.1:7777 > .mcp.json",
	`export WARD_MCP_TOKEN="$(cat ~/.ward/mcp.token)"`,
	"ward tools list",
	"ward approvals list",
	`ward approvals approve ID --reason "a notes file is fine"`,
	"mkdir -p share && echo hello > share/hello.txt",
}

// readmeSection returns the README's section under heading, up to the next
// heading of its level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("the README has no section %q", heading)
	}
	rest := text[i+len(heading)+2:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
