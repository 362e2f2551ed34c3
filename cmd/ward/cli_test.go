package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// wardCLI runs `ward ARGS` in process and returns exit code, stdout, stderr.
func wardCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// startNode runs a node in process and points the CLI's environment at it.
func startNode(t testing.TB, cfg server.Config) *server.Node {
	t.Helper()
	if cfg.Data == "" {
		cfg.Data = t.TempDir()
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.TrustDomain = "cli.test"
	ctx, cancel := context.WithCancel(context.Background())
	n, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); n.Serve(ctx) }()
	t.Cleanup(func() { cancel(); n.Close(); <-done })
	t.Setenv("WARD_SERVER", n.URL())
	t.Setenv("WARD_CA", filepath.Join(cfg.Data, "bundle.pem"))
	t.Setenv("WARD_TOKEN", n.AdminCredential)
	t.Setenv("WARD_HOME", t.TempDir())
	return n
}

func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	code, out, errOut := wardCLI(args...)
	if code != 0 {
		t.Fatalf("ward %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

var credRE = regexp.MustCompile(`ward_[A-Za-z0-9_-]{43}`)

func TestCLISessionLifecycle(t *testing.T) {
	startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})

	out := mustCLI(t, "sponsor", "create", "alice", "--kind", "human", "--allow", "tool:demo.*", "--allow", "resource:note://*")
	if !credRE.MatchString(out) {
		t.Fatalf("sponsor create did not show the new credential: %q", out)
	}
	mustCLI(t, "agent", "register", "scribe", "--sponsor", "alice", "--group", "writers", "--allow", "tool:demo.*")
	if code, _, errOut := wardCLI("agent", "register", "greedy", "--sponsor", "alice", "--allow", "tool:fs.*"); code != 1 || !strings.Contains(errOut, "ceiling") {
		t.Fatalf("agent above its sponsor's ceiling: exit %d: %s", code, errOut)
	}

	var started struct {
		Session     string `json:"session"`
		SPIFFEID    string `json:"spiffe_id"`
		Credentials string `json:"credentials"`
	}
	out = mustCLI(t, "session", "start", "--agent", "scribe", "--objective", "keep the notes tidy", "-o", "json")
	if strings.Contains(out, "PRIVATE KEY") {
		t.Fatal("session start printed the private key")
	}
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(started.Credentials, "key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session key file: %v %v", err, st)
	}
	if !strings.HasPrefix(started.SPIFFEID, "spiffe://cli.test/agent/scribe/session/") {
		t.Fatalf("spiffe id %q", started.SPIFFEID)
	}

	// Sub-agent: narrower works, wider is refused with the pattern named.
	if code, _, errOut := wardCLI("token", "exchange", "--session", started.Session, "--allow", "tool:fs.read_file"); code != 1 || !strings.Contains(errOut, "fs.read_file") {
		t.Fatalf("widening exchange: exit %d: %s", code, errOut)
	}
	var child struct {
		Session string          `json:"session"`
		Parent  string          `json:"parent"`
		Act     json.RawMessage `json:"act"`
	}
	out = mustCLI(t, "token", "exchange", "--session", started.Session, "--allow", "tool:demo.echo", "-o", "json")
	json.Unmarshal([]byte(out), &child)
	if child.Parent != started.Session || !strings.Contains(string(child.Act), child.Session) {
		t.Fatalf("child %+v", child)
	}

	// The session's credentials work against the gateway (and pin the tools).
	creds, err := sessioncred.Load(started.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "cli-test", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: creds.Server + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "a", "text": "b"}}); err != nil {
		t.Fatalf("writer's call: %v", err)
	}
	cs.Close()
	out = mustCLI(t, "tools", "list")
	if !strings.Contains(out, "demo.write_note") || !strings.Contains(out, "approved") {
		t.Fatalf("tools list: %s", out)
	}
	// The node refuses it as bad input (HTTP 400): exit 2.
	if code, _, errOut := wardCLI("tools", "approve", "demo.echo"); code != 2 || !strings.Contains(errOut, "sha256:") {
		t.Fatalf("tools approve without the reviewed hash: exit %d %s", code, errOut)
	}
	var pins []struct{ Name, Hash string }
	json.Unmarshal([]byte(mustCLI(t, "tools", "list", "-o", "json")), &pins)
	for _, p := range pins {
		if p.Name == "demo.echo" {
			out = mustCLI(t, "tools", "approve", "demo.echo", "--hash", p.Hash)
		}
	}
	if !strings.Contains(out, "approved at sha256:") {
		t.Fatalf("tools approve: %s", out)
	}

	out = mustCLI(t, "session", "end", started.Session, "--reason", "done")
	if !strings.Contains(out, started.Session) || !strings.Contains(out, child.Session) {
		t.Fatalf("ending the parent did not end the child: %s", out)
	}
	out = mustCLI(t, "session", "show", child.Session)
	if !strings.Contains(out, "ended") {
		t.Fatalf("child after parent ended: %s", out)
	}
	out = mustCLI(t, "agent", "list", "-o", "json")
	if !strings.Contains(out, `"scribe"`) {
		t.Fatalf("agent list: %s", out)
	}
	if code, _, errOut := wardCLI("agent", "quarantine", "scribe"); code != 0 {
		t.Fatalf("quarantine: %s", errOut)
	}
	if code, _, errOut := wardCLI("session", "start", "--agent", "scribe", "--objective", "again"); code != 1 || !strings.Contains(errOut, "quarantined") {
		t.Fatalf("session for a quarantined agent: exit %d %s", code, errOut)
	}
}

func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cedar")
	os.WriteFile(bad, []byte("permit (principal, action, resource)\nwhen { context.x = };\n"), 0o600)
	cfg := filepath.Join(dir, "ward.yaml")
	os.WriteFile(cfg, []byte("trust_domain: a.test\nlisten: 127.0.0.1:0\nsevers: []\n"), 0o600)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, ""},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"session", "start"}, 2, "--agent"},
		{[]string{"session", "launch"}, 2, "unknown subcommand"},
		{[]string{"agent", "list", "-o", "yaml"}, 2, "-o"},
		{[]string{"policy", "check", bad}, 1, "bad.cedar:2:"},
		{[]string{"policy", "check", filepath.Join(dir, "missing.cedar")}, 1, "missing.cedar"},
		{[]string{"up", "--config", cfg}, 1, "severs"},
		{[]string{"audit", "verify", "--data", dir}, 2, "holds no audit log"},
		{[]string{"mcp", "serve", "--session", "x", "--listen", "0.0.0.0:9999"}, 2, "loopback"},
		{[]string{"mcp", "wrap", "--server", "fs"}, 2, "see ward mcp wrap --help"},
	}
	for _, tc := range cases {
		code, _, errOut := wardCLI(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("ward %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if strings.Count(strings.TrimSpace(errOut), "\n") > 0 && tc.args != nil {
			t.Errorf("ward %v: error is not one line: %q", tc.args, errOut)
		}
	}
	// Without a credential, client commands say what to set.
	t.Setenv("WARD_TOKEN", "")
	if code, _, errOut := wardCLI("agent", "list"); code != 1 || !strings.Contains(errOut, "WARD_TOKEN") {
		t.Fatalf("no credential: %d %s", code, errOut)
	}
}

func TestCLIAuditVerify(t *testing.T) {
	n := startNode(t, server.Config{})
	data := filepath.Dir(filepath.Join(os.Getenv("WARD_CA")))
	mustCLI(t, "sponsor", "create", "bob", "--allow", "tool:*")
	n.Close()
	// Without a pinned key, no plain ok.
	out := mustCLI(t, "audit", "verify", "--data", data)
	if strings.Contains(out, "ok:") || !strings.HasPrefix(out, "UNPINNED: ") || !strings.Contains(out, "the directory under test") {
		t.Fatalf("verify without --key: %s", out)
	}
	key := filepath.Join(t.TempDir(), "audit.pub") // the operator's record of the key
	os.WriteFile(key, must(os.ReadFile(filepath.Join(data, "keys", "audit.pub"))), 0o600)
	out = mustCLI(t, "audit", "verify", "--data", data, "--key", key)
	if !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "ward's remembered head") {
		t.Fatalf("verify: %s", out)
	}
	out = mustCLI(t, "audit", "tail", "--data", data, "-n", "5")
	if !strings.Contains(out, "sponsor.create") {
		t.Fatalf("tail: %s", out)
	}
	out = mustCLI(t, "audit", "prove", "--data", data, "2", "-o", "json")
	var p struct {
		Index  uint64   `json:"index"`
		Size   uint64   `json:"tree_size"`
		Hashes [][]byte `json:"hashes"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.Index != 2 || p.Size < 3 || len(p.Hashes) == 0 {
		t.Fatalf("prove: %v %s", err, out)
	}
	entries := filepath.Join(data, "audit", "entries")
	b, _ := os.ReadFile(entries)
	os.WriteFile(entries, bytes.Replace(b, []byte(`"bob"`), []byte(`"eve"`), 1), 0o600)
	code, _, errOut := wardCLI("audit", "verify", "--data", data)
	if code != 1 || !strings.Contains(errOut, "FAILED VERIFICATION") {
		t.Fatalf("tampered log: exit %d %s", code, errOut)
	}
}

// buildWard compiles the ward binary once per test run.
func buildWard(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ward")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(repoRoot(), "cmd", "ward")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func fsServer(t *testing.T) []string {
	js := filepath.Join(repoRoot(), "testdata", "npm", "node_modules", "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
	if _, err := os.Stat(js); err != nil {
		if os.Getenv("WARD_REQUIRE_NPM") != "" {
			t.Fatal("server-filesystem not installed (make test installs it)")
		}
		t.Skip("server-filesystem not installed; make test installs it")
	}
	return []string{"node", js}
}

// TestMCPWrap: a stdio-only MCP client runs the filesystem server through
// `ward mcp wrap`; ward decides and records every call.
func TestMCPWrap(t *testing.T) {
	fs := fsServer(t)
	bin := buildWard(t)
	pol := t.TempDir()
	os.WriteFile(filepath.Join(pol, "fs.cedar"), []byte(`
@id("fs-reads") permit (principal, action == Action::"call_tool", resource in Server::"fs") when { context.name like "read_*" || context.name like "list_*" };
`), 0o600)
	startNode(t, server.Config{Policies: []string{pol}})
	mustCLI(t, "sponsor", "create", "ops", "--kind", "platform", "--allow", "tool:fs.*")
	mustCLI(t, "agent", "register", "indexer", "--sponsor", "ops", "--allow", "tool:fs.*")
	out := mustCLI(t, "session", "start", "--agent", "indexer", "--objective", "index the share", "-o", "json")
	var s struct{ Session string }
	json.Unmarshal([]byte(out), &s)

	share := t.TempDir()
	os.WriteFile(filepath.Join(share, "a.txt"), []byte("alpha"), 0o644)
	cmd := exec.Command(bin, append([]string{"mcp", "wrap", "--server", "fs", "--session", s.Session, "--"}, append(fs, share)...)...)
	cmd.Env = os.Environ()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "stdio-client", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tl := range tools.Tools {
		seen[tl.Name] = true
	}
	if !seen["read_text_file"] || seen["write_file"] || seen["fs.write_file"] {
		t.Fatalf("wrapped tools/list = %v", seen)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: map[string]any{"path": filepath.Join(share, "a.txt")}})
	if err != nil || len(res.Content) == 0 || res.Content[0].(*mcp.TextContent).Text != "alpha" {
		t.Fatalf("wrapped read: %v %v", err, res)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.write_file", Arguments: map[string]any{"path": filepath.Join(share, "b.txt"), "content": "x"}}); err == nil || !strings.Contains(err.Error(), "default deny") {
		t.Fatalf("wrapped write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(share, "b.txt")); err == nil {
		t.Fatal("denied write happened")
	}
	// Ending the session cuts the wrapper off: the next call is denied.
	mustCLI(t, "session", "end", s.Session)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fs.read_text_file", Arguments: map[string]any{"path": filepath.Join(share, "a.txt")}}); err == nil {
		t.Fatal("wrapped call succeeded after the session ended")
	}
}

// TestUpFirstStart runs the real binary: first start prints where things are
// and the admin credential once, never a private key; a restart does not
// print a credential; the node serves TLS meanwhile.
func TestUpFirstStart(t *testing.T) {
	bin := buildWard(t)
	data := filepath.Join(t.TempDir(), "data")
	start := func() (string, string, *exec.Cmd) {
		cmd := exec.Command(bin, "up", "--data", data, "--addr", "127.0.0.1:0")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		url := ""
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			text.WriteString(line + "\n")
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "JSON" {
				url = strings.TrimSuffix(f[2], "/v1/")
			}
			if strings.Contains(line, "Ctrl-C stops") {
				break
			}
		}
		go func() {
			for sc.Scan() {
			}
		}()
		return text.String(), url, cmd
	}
	out, url, cmd := start()
	if !credRE.MatchString(out) || !strings.Contains(out, "shown once") {
		t.Fatalf("first start did not show an admin credential:\n%s", out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Fatal("ward up printed a private key")
	}
	for _, f := range []string{"ca/ca.key", "keys/grant.key", "keys/audit.key", "ward.db", "bundle.pem", "policies/default.cedar"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("first start did not create %s: %v", f, err)
		}
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(filepath.Join(data, "bundle.pem"))
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(url + "/.well-known/spiffe-bundle")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bundle over TLS: %v %v", err, resp)
	}
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	out, _, cmd = start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if credRE.MatchString(out) {
		t.Fatalf("restart printed a credential again:\n%s", out)
	}
	if !strings.Contains(out, "ward admin credential --data") {
		t.Fatalf("restart does not say how to get an admin credential:\n%s", out)
	}
}

func TestCLIPolicyTest(t *testing.T) {
	dir := filepath.Join(repoRoot(), "internal", "policytest", "testdata")
	if code, out, errOut := wardCLI("policy", "test", filepath.Join(dir, "pass.yaml")); code != 0 || !strings.Contains(out, "5 passed, 0 failed") {
		t.Fatalf("passing file: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := wardCLI("policy", "test", filepath.Join(dir, "fail.yaml"))
	if code != 1 || !strings.Contains(out, "FAIL  wrongly expects a write to pass") || !strings.Contains(errOut, "2 of 2 policy test cases failed") {
		t.Fatalf("failing file: exit %d\n%s%s", code, out, errOut)
	}
	// The same cases against other policies given on the command line.
	if code, _, _ := wardCLI("policy", "test", filepath.Join(dir, "pass.yaml"), t.TempDir()); code != 1 {
		t.Fatalf("against an empty policy directory every allow must fail: exit %d", code)
	}
}

func TestCLIReplay(t *testing.T) {
	dir := filepath.Join(repoRoot(), "internal", "replay", "testdata")
	code, out, errOut := wardCLI("replay", filepath.Join(dir, "example.jsonl"), "--policies", filepath.Join(dir, "policies.cedar"))
	if code != 0 || !strings.Contains(out, "2 sessions, 11 calls: 3 allowed, 6 denied, 2 escalated") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte(`{"type":"call","method":"tools/call","name":"a.b"}`+"\n"), 0o600)
	if code, _, errOut := wardCLI("replay", bad, "--policies", filepath.Join(dir, "policies.cedar")); code != 1 || !strings.Contains(errOut, "line 1: call before any session record") {
		t.Fatalf("bad trace: exit %d %s", code, errOut)
	}

	// Directory mode over the labelled evaluation set, with the node
	// config's taint and tools sections.
	eval := filepath.Join(dir, "eval")
	code, out, errOut = wardCLI("replay", eval, "--policies", filepath.Join(eval, "policies.cedar"), "--config", filepath.Join(eval, "ward.yaml"))
	if code != 0 || !strings.Contains(out, "\nattacks: 11 of 12 stopped before or at the harmful call, 1 missed\nbenign: 7 of 13 interrupted, 6 completed\n") ||
		!strings.Contains(out, "mail-attack.jsonl:1 mail-a1 attack interrupted 3 calls: 1 allowed, 0 escalated, 2 denied; stopped at L3, harmful L3\n") {
		t.Fatalf("replay dir: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = wardCLI("replay", eval, "-o", "json", "--policies", filepath.Join(eval, "policies.cedar"), "--config", filepath.Join(eval, "ward.yaml"))
	if code != 0 || !strings.Contains(out, `"attacks":12,"attacks_stopped":11,"benign":13,"benign_interrupted":7}}`) {
		t.Fatalf("replay dir -o json: exit %d\n%s%s", code, out, errOut)
	}
	// Without the config every result is untrusted and no tool is declared.
	if code, out, errOut = wardCLI("replay", eval, "--policies", filepath.Join(eval, "policies.cedar")); code != 0 || !strings.Contains(out, "25 sessions, 58 calls:") {
		t.Fatalf("replay dir without config: exit %d\n%s%s", code, out, errOut)
	}
}

func TestCLIReceiptsAndClaims(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	data := filepath.Dir(os.Getenv("WARD_CA"))
	mustCLI(t, "sponsor", "create", "carol", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "clerk", "--sponsor", "carol", "--allow", "tool:demo.*")
	var s struct{ Session, Credentials string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "clerk", "--objective", "echo", "-o", "json")), &s)
	creds, err := sessioncred.Load(s.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: n.URL() + "/mcp", HTTPClient: creds.HTTPClient(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hi"}}); err != nil {
		t.Fatal(err)
	}
	cs.Close()
	var envs []json.RawMessage
	json.Unmarshal([]byte(mustCLI(t, "receipts", "--session", s.Session)), &envs)
	if len(envs) != 1 {
		t.Fatalf("%d receipts", len(envs))
	}
	bundle := filepath.Join(t.TempDir(), "bundle.json")
	key := filepath.Join(data, "keys", "audit.pub")
	// While the session is open, its bundle cannot prove that no later
	// event exists.
	if out := mustCLI(t, "audit", "export", "--data", data, "--session", s.Session, "--out", bundle); !strings.Contains(out, "tlog-proof") || !strings.Contains(out, "not sealed") {
		t.Fatalf("export: %s", out)
	}
	if code, _, errOut := wardCLI("audit", "verify-bundle", "--key", key, bundle); code != 1 || !strings.Contains(errOut, "is not sealed") {
		t.Fatalf("verify-bundle of an open session: %d %s", code, errOut)
	}
	if out := mustCLI(t, "audit", "verify-bundle", "--key", key, "--allow-unsealed", bundle); !strings.Contains(out, "NOT PROVEN COMPLETE") {
		t.Fatalf("verify-bundle --allow-unsealed: %s", out)
	}
	mustCLI(t, "session", "end", s.Session)
	mustCLI(t, "audit", "export", "--data", data, "--session", s.Session, "--out", bundle)
	if out := mustCLI(t, "audit", "verify-bundle", "--key", key, "--session", s.Session, bundle); !strings.Contains(out, "ok:") || !strings.Contains(out, "session "+s.Session+": all ") {
		t.Fatalf("verify-bundle: %s", out)
	}
	if code, _, errOut := wardCLI("audit", "verify-bundle", "--key", key, "--session", "someone-else", bundle); code != 1 || !strings.Contains(errOut, "not \"someone-else\"") {
		t.Fatalf("verify-bundle of another session: %d %s", code, errOut)
	}
	if code, _, errOut := wardCLI("audit", "verify-bundle", bundle); code != 2 || !strings.Contains(errOut, "pinned") {
		t.Fatalf("verify-bundle without a pinned key: %d %s", code, errOut)
	}
	raw, _ := os.ReadFile(bundle)
	var b map[string]any
	json.Unmarshal(raw, &b)
	b["checkpoint"] = strings.Replace(b["checkpoint"].(string), "\n", "\n\n", 1)
	raw, _ = json.Marshal(b)
	os.WriteFile(bundle, raw, 0o600)
	if code, _, errOut := wardCLI("audit", "verify-bundle", "--key", filepath.Join(data, "keys", "audit.pub"), bundle); code != 1 || !strings.Contains(errOut, "FAILED") {
		t.Fatalf("tampered bundle: %d %s", code, errOut)
	}
	out := mustCLI(t, "audit", "search", "--data", data, "--session", s.Session, "--type", "decision", "--decision", "allow", "-o", "json")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"demo.echo"`) {
		t.Fatalf("search: %s", out)
	}
	file := filepath.Join(t.TempDir(), "receipt.json")
	os.WriteFile(file, envs[0], 0o600)
	out = mustCLI(t, "claim", "verify", "--data", data, "--session", s.Session, "--tool", "demo.echo", "--receipt", file)
	if !strings.Contains(out, "claim holds") {
		t.Fatalf("claim verify: %s", out)
	}
	if code, _, errOut := wardCLI("claim", "verify", "--data", data, "--session", s.Session, "--tool", "demo.echo", "--outcome", "error", "--receipt", file); code != 1 || !strings.Contains(errOut, "claim refused") {
		t.Fatalf("false claim: exit %d %s", code, errOut)
	}
	// A claim about the arguments holds only for the arguments ward forwarded.
	var env struct{ Payload string }
	json.Unmarshal(envs[0], &env)
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	var st struct {
		Predicate struct {
			Args string `json:"arguments_sha256"`
		}
	}
	json.Unmarshal(payload, &st)
	if len(st.Predicate.Args) != 64 {
		t.Fatalf("receipt without an arguments digest: %s", payload)
	}
	out = mustCLI(t, "claim", "verify", "--data", data, "--session", s.Session, "--tool", "demo.echo", "--arguments-sha256", st.Predicate.Args, "--receipt", file)
	if !strings.Contains(out, "claim holds") {
		t.Fatalf("claim verify with arguments: %s", out)
	}
	if code, _, errOut := wardCLI("claim", "verify", "--data", data, "--session", s.Session, "--tool", "demo.echo", "--arguments-sha256", strings.Repeat("1", 64), "--receipt", file); code != 1 || !strings.Contains(errOut, "other arguments") {
		t.Fatalf("claim about other arguments: exit %d %s", code, errOut)
	}
}
