package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/egress"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// mcpClient is a small MCP client in Python's standard library, as an
// agent inside the runtime would carry: it initializes a session on
// $WARD_MCP_URL and calls demo.echo.
const mcpClient = `
import json, os, urllib.request, urllib.error
url = os.environ["WARD_MCP_URL"]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def rpc(body, sid=None):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if sid: h["Mcp-Session-Id"] = sid
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        r = opener.open(req, timeout=20)
    except urllib.error.HTTPError as e:
        raise SystemExit("HTTP %d: %s" % (e.code, e.read().decode()[:300]))
    with r:
        sid = r.headers.get("Mcp-Session-Id") or sid
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("data:"):
            text = line[5:].strip()
    return sid, (json.loads(text) if text.strip() else None)
sid, _ = rpc({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"agent","version":"1"}}})
rpc({"jsonrpc":"2.0","method":"notifications/initialized"}, sid)
_, res = rpc({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo.echo","arguments":{"text":"via-ward"}}}, sid)
print("MCP", json.dumps(res))
`

// attempts is what the scripted agent tries. Each line it prints is
// "NAME ok" or "NAME refused (...)"; the test reads them back.
const attempts = `
try() { name=$1; shift; if out=$("$@" 2>&1); then echo "$name ok $out"; else echo "$name refused ($(echo $out | head -c 200))"; fi; }
try direct-connect python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)' $FORBIDDEN_PORT
try dns python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01", ("127.0.0.1", int(sys.argv[1]))); s.settimeout(2); s.recv(512)' $RESOLVER_PORT
try raw-socket python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'
try read-secret cat $SECRET
try read-shadow cat /etc/shadow
try list-data ls $DATA
try write-usr sh -c 'echo x > /usr/evil'
try write-outside sh -c "echo x > $OUTSIDE/evil"
try kill-ward kill -9 $WARD_PID
try kill-init kill -9 1
try ptrace-init python3 -c 'import ctypes,sys; libc=ctypes.CDLL(None, use_errno=True); r=libc.ptrace(16, 1, 0, 0); sys.exit(0 if r == 0 else 1)'
try unshare unshare -U true
try pids sh -c 'n=$(ls -d /proc/[0-9]* | wc -l); test $n -lt 10 && echo $n'
try proxy-allowed curl -sS --fail --max-time 10 http://127.0.0.1:$ALLOWED_PORT/ok
try proxy-other-host curl -sS --fail --max-time 10 http://127.0.0.2:$ALLOWED_PORT/ok
try mcp python3 -c "$MCP"
echo changed > /workspace/notes.txt
echo created > /workspace/new.txt
rm /workspace/old.txt
(setsid sh -c 'sleep 300; echo $LINGER' </dev/null >/dev/null 2>&1 &)
echo done
`

// runtimeNode starts a node with an egress proxy that may reach loopback
// test servers, and an agent whose ceiling holds loopback hosts.
func runtimeNode(t testing.TB) (*server.Node, string) {
	return runtimeNodeWith(t, &server.Egress{})
}

// runtimeNodeWith is runtimeNode with more egress configuration (brokered
// credentials); its address and allowed addresses are set here.
func runtimeNodeWith(t testing.TB, eg *server.Egress) (*server.Node, string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Log("not root: the runtime runs in a user namespace without cgroup limits")
	}
	eg.Addr, eg.AllowAddr = "127.0.0.1:0", func(a netip.Addr) bool { return a.IsLoopback() }
	n := startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}, Egress: eg})
	mustCLI(t, "agent", "register", "coder", "--sponsor", "admin", "--allow", "tool:demo.*", "--allow", "host:127.0.0.1", "--allow", "host:127.0.0.2")
	return n, buildWard(t)
}

// runWard runs `ward run ARGS` as a separate process with the test's
// environment; it returns the exit code and both outputs.
func runWard(t testing.TB, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ward run did not end within 90s\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// treeHash hashes a directory: paths, types, modes, contents.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %v\n", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// auditEvents returns a session's audit events of one type.
func auditEvents(t *testing.T, session, typ string) []map[string]any {
	t.Helper()
	c, err := operatorClient()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if err := c.do("GET", "/v1/audit/events?session="+session+"&type="+typ+"&limit=500", nil, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var sessionRE = regexp.MustCompile(`session (s_[A-Za-z0-9_-]+|[A-Za-z0-9_-]{10,})[;:]`)

func leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"/sys/fs/cgroup/pids/ward-*", "/sys/fs/cgroup/memory/*/*/ward-*", "/sys/fs/cgroup/memory/ward-*", "/sys/fs/cgroup/*/ward-*"} {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	return out
}

// newSince lists what is in after but not in before (a later ward run
// may also have removed some of before, left by killed ones).
func newSince(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

// processesWith lists host processes whose command line holds marker.
func processesWith(marker string) []string {
	var out []string
	ds, _ := os.ReadDir("/proc")
	for _, d := range ds {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		c, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(c, []byte(marker)) {
			out = append(out, d.Name())
		}
	}
	return out
}

// TestRun runs real programs (sh, curl, python3) in ward's runtime: every
// way around ward fails and is recorded, the ways through ward work, and
// the workspace is rolled back exactly or changed as the program changed it.
func TestRun(t *testing.T) {
	for _, p := range []string{"/bin/sh", "/usr/bin/curl", "/usr/bin/python3"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is needed: %v", p, err)
		}
	}
	n, bin := runtimeNode(t)
	before := leftovers(t)

	// Listeners on the host's loopback that the program must not reach.
	forbidden, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer forbidden.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := forbidden.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	resolver, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer resolver.Close()
	var queries atomic.Int32
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := resolver.ReadFrom(buf); err != nil {
				return
			}
			queries.Add(1)
		}
	}()
	// The one upstream the session may reach, through the proxy.
	var upstreamHits atomic.Int32
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		io.WriteString(w, "upstream-says-hi")
	}))
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream.Listener = upLn
	upstream.Start()
	defer upstream.Close()
	upPort := strconv.Itoa(upLn.Addr().(*net.TCPAddr).Port)

	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "api-key.txt")
	os.WriteFile(secret, []byte("sk-live-very-secret"), 0o600)
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "notes.txt"), []byte("original\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "old.txt"), []byte("to be deleted\n"), 0o644)
	os.MkdirAll(filepath.Join(ws, "src"), 0o755)
	os.WriteFile(filepath.Join(ws, "src", "main.go"), []byte("package main\n"), 0o644)
	original := treeHash(t, ws)
	linger := "ward-linger-" + strconv.FormatInt(time.Now().UnixNano(), 36)

	script := strings.NewReplacer("$FORBIDDEN_PORT", strconv.Itoa(forbidden.Addr().(*net.TCPAddr).Port),
		"$RESOLVER_PORT", strconv.Itoa(resolver.LocalAddr().(*net.UDPAddr).Port), "$SECRET", secret,
		"$DATA", filepath.Dir(os.Getenv("WARD_CA")), "$OUTSIDE", secretDir, "$WARD_PID", strconv.Itoa(os.Getpid()),
		"$ALLOWED_PORT", upPort, "$LINGER", linger).Replace(attempts)
	script = "export MCP='" + strings.ReplaceAll(mcpClient, "'", `'"'"'`) + "'\n" + script

	code, stdout, stderr := runWard(t, bin, "--agent", "coder", "--objective", "tidy the notes", "--workspace", ws,
		"--allow-host", "127.0.0.1", "--rollback", "--", "/bin/sh", "-c", script)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	if code != 0 || !strings.Contains(stdout, "\ndone") {
		t.Fatalf("ward run: exit %d", code)
	}
	results := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if name, rest, ok := strings.Cut(line, " "); ok {
			results[name] = rest
		}
	}
	for _, name := range []string{"direct-connect", "dns", "raw-socket", "read-secret", "read-shadow", "list-data", "write-usr",
		"write-outside", "kill-ward", "kill-init", "ptrace-init", "unshare", "proxy-other-host"} {
		if !strings.HasPrefix(results[name], "refused") {
			t.Errorf("%s: %q, want refused", name, results[name])
		}
	}
	for name, want := range map[string]string{"pids": "ok", "proxy-allowed": "ok upstream-says-hi", "mcp": "ok MCP"} {
		if !strings.HasPrefix(results[name], want) {
			t.Errorf("%s: %q, want %q…", name, results[name], want)
		}
	}
	if strings.Contains(stdout, "sk-live") {
		t.Error("the program read the host's secret")
	}
	if !strings.Contains(results["mcp"], "via-ward") {
		t.Errorf("MCP tool result: %q", results["mcp"])
	}
	if accepted.Load() != 0 || queries.Load() != 0 {
		t.Errorf("the host's loopback listeners were reached: %d connections, %d datagrams", accepted.Load(), queries.Load())
	}
	if upstreamHits.Load() != 1 {
		t.Errorf("upstream hits = %d, want 1 (the allowed request only)", upstreamHits.Load())
	}
	if got := treeHash(t, ws); got != original {
		t.Error("--rollback left the workspace changed")
	}
	if left := processesWith(linger); len(left) > 0 {
		t.Errorf("processes of the runtime outlived it: %v", left)
	}
	if got := newSince(before, leftovers(t)); len(got) > 0 {
		t.Errorf("cgroups left behind: %v", got)
	}
	if _, err := os.Stat(filepath.Join(secretDir, "evil")); err == nil {
		t.Error("the program wrote outside the workspace")
	}

	// Every refused attempt is in the audit log, with the session's
	// exec decision and egress denial.
	m := sessionRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatal("no session id in ward run's output")
	}
	session := m[1]
	var details []string
	for _, e := range auditEvents(t, session, "runtime") {
		b, _ := json.Marshal(e)
		details = append(details, string(b))
	}
	all := strings.Join(details, "\n")
	for _, want := range []string{
		"connect to 127.0.0.1:" + strconv.Itoa(forbidden.Addr().(*net.TCPAddr).Port) + " refused",
		"sendto to 127.0.0.1:" + strconv.Itoa(resolver.LocalAddr().(*net.UDPAddr).Port) + " refused",
		"AF_PACKET", "kill(pid=" + strconv.Itoa(os.Getpid()), "PID 1 is the runtime's init", "ptrace(", "unshare(",
		`"kind":"start"`, `"kind":"end"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("audit: no runtime event with %q", want)
		}
	}
	if ex := auditEvents(t, session, "exec"); len(ex) != 1 || !strings.Contains(fmt.Sprint(ex[0]), "allow") {
		t.Errorf("exec events: %v", ex)
	}
	if eg := fmt.Sprint(auditEvents(t, session, "egress")); !strings.Contains(eg, "127.0.0.2") || !strings.Contains(eg, "not in the session's grant") {
		t.Errorf("egress events lack the refused host: %s", eg)
	}
	_ = n

	// Without --rollback, the changes are applied, exactly.
	code, _, stderr = runWard(t, bin, "--agent", "coder", "--objective", "tidy the notes", "--workspace", ws, "--",
		"/bin/sh", "-c", "echo changed > notes.txt; echo created > new.txt; rm old.txt; chmod 755 src/main.go")
	if code != 0 || !strings.Contains(stderr, "applied to "+ws) {
		t.Fatalf("ward run (keep): exit %d\n%s", code, stderr)
	}
	for name, want := range map[string]string{"notes.txt": "changed\n", "new.txt": "created\n"} {
		if b, err := os.ReadFile(filepath.Join(ws, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(ws, "old.txt")); !os.IsNotExist(err) {
		t.Errorf("old.txt not deleted: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(ws, "src", "main.go")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("src/main.go mode: %v %v", fi, err)
	}
}

// TestRunBrokersCredentials: an upstream secret configured in ward reaches
// the upstream through the egress proxy, for a program in the runtime
// that never holds it: not in its environment, not in its files, not in
// what it receives.
func TestRunBrokersCredentials(t *testing.T) {
	const secret = "Bearer s3cret/Tok+en_0123456789"
	var got atomic.Value
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
		// A careless upstream echoes what it received, in the forms
		// servers encode text in.
		forms := echoForms(r.Header.Get("Authorization"), false)
		w.Header().Set("X-Echo", forms[1])
		io.WriteString(w, "brokered-hello\n"+strings.Join(forms, "\n")+"\n")
	}))
	defer upstream.Close()
	roots := x509.NewCertPool()
	roots.AddCert(upstream.Certificate())
	_, bin := runtimeNodeWith(t, &server.Egress{UpstreamRoots: roots,
		Credentials: []egress.Credential{{Host: "127.0.0.1", Header: "Authorization", Value: secret}}})
	code, stdout, stderr := runWard(t, bin, "--agent", "coder", "--objective", "fetch the report", "--allow-host", "127.0.0.1", "--",
		"/bin/sh", "-c", `curl -sS -i --fail --max-time 10 -H 'Authorization: Bearer agent-guess' `+upstream.URL+`/data; echo
echo env=$(env | grep -c s3cret)
echo files=$(grep -rl s3cret /run/ward /workspace /home/agent /tmp /etc 2>/dev/null | wc -l)`)
	if code != 0 || !strings.Contains(stdout, "brokered-hello") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "env=0") || !strings.Contains(stdout, "files=0") || strings.Contains(stdout+stderr, "s3cret") {
		t.Errorf("the program saw the secret:\n%s\n%s", stdout, stderr)
	}
	for _, f := range echoForms(secret[len("Bearer "):], true) {
		if strings.Contains(stdout, f) {
			t.Errorf("the program saw the secret as %q:\n%s", f, stdout)
		}
	}
	if got.Load() != secret {
		t.Errorf("the upstream saw %q, want the brokered secret", got.Load())
	}
}

// echoForms are s as servers commonly give text back: JSON-escaped,
// lowercased, base64 (both alphabets, with and without padding, after
// one or two other bytes), hex, percent-encoded. With core, a base64 form
// is cut to the characters that encode s alone, as found inside another
// string's encoding.
func echoForms(s string, core bool) []string {
	forms := []string{strings.ReplaceAll(s, "/", `\/`), strings.ToLower(s), strings.ToUpper(s), hex.EncodeToString([]byte(s)),
		url.QueryEscape(s), url.PathEscape(s)}
	for _, prefix := range []string{"", "a", "ab"} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			b := enc.EncodeToString(append([]byte(prefix), s...))
			if core {
				b = b[3 : len(b)-4]
			}
			forms = append(forms, b)
		}
	}
	return forms
}

// TestRunProtectedAndLater: a change to a protected path is not applied;
// the operator applies the kept change set later, and that is recorded.
func TestRunProtectedAndLater(t *testing.T) {
	_, bin := runtimeNode(t)
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "README"), []byte("hi\n"), 0o644)
	original := treeHash(t, ws)
	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "fix the build", "--workspace", ws, "--",
		"/bin/sh", "-c", "mkdir .git && echo evil > .git/hooks-post && echo more >> README")
	if code != 0 || !strings.Contains(stderr, "not applied: protected paths changed") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if treeHash(t, ws) != original {
		t.Fatal("a protected change reached the workspace without approval")
	}
	session := sessionRE.FindStringSubmatch(stderr)[1]
	out := mustCLI(t, "changes", "show", session)
	if !strings.Contains(out, ".git") || !strings.Contains(out, "README") {
		t.Fatalf("changes show:\n%s", out)
	}
	mustCLI(t, "changes", "apply", session)
	if b, _ := os.ReadFile(filepath.Join(ws, "README")); string(b) != "hi\nmore\n" {
		t.Fatalf("README after apply: %q", b)
	}
	if ev := fmt.Sprint(auditEvents(t, session, "runtime")); !strings.Contains(ev, "changes.apply") {
		t.Fatalf("the operator's apply was not recorded: %s", ev)
	}
	if code, _, errOut := wardCLI("changes", "apply", session); code == 0 || !strings.Contains(errOut, "already applied") {
		t.Fatalf("second apply: %d %s", code, errOut)
	}
}

// TestRunStopsWithSession: ending (or quarantining) the session stops the
// runtime within the watch interval, and nothing of it survives.
func TestRunStopsWithSession(t *testing.T) {
	_, bin := runtimeNode(t)
	marker := "ward-stop-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ws := t.TempDir()
	cmd := exec.Command(bin, "run", "--agent", "coder", "--objective", "wait", "--workspace", ws, "--", "/bin/sh", "-c",
		"echo partial > half-done.txt; sleep 300; echo "+marker)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var session string
	deadline := time.Now().Add(30 * time.Second)
	for session == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		out := mustCLI(t, "session", "list", "--agent", "coder", "-o", "json")
		var vs []struct{ ID, Status string }
		json.Unmarshal([]byte(out), &vs)
		for _, v := range vs {
			if v.Status == "active" {
				session = v.ID
			}
		}
	}
	if session == "" {
		t.Fatal("no active session")
	}
	time.Sleep(300 * time.Millisecond) // let the program start
	mustCLI(t, "agent", "quarantine", "coder")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the runtime outlived its quarantined session\n%s", errb.String())
	}
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(errb.String(), "runtime stopped: session") {
		t.Fatalf("exit %d\n%s", cmd.ProcessState.ExitCode(), errb.String())
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Fatalf("processes outlived the session: %v", left)
	}
	// What the program had changed is kept for review, not applied.
	if _, err := os.Stat(filepath.Join(ws, "half-done.txt")); !os.IsNotExist(err) {
		t.Fatal("a stopped runtime's changes reached the workspace")
	}
	if out := mustCLI(t, "changes", "show", session); !strings.Contains(out, "half-done.txt") || !strings.Contains(out, "session") {
		t.Fatalf("changes show:\n%s", out)
	}
}

// TestRunBadInput: clear errors, limits that hold, a clean host.
func TestRunBadInput(t *testing.T) {
	_, bin := runtimeNode(t)
	before := leftovers(t)
	tmpBefore, _ := filepath.Glob(filepath.Join(os.TempDir(), "ward-run-*"))

	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "x", "--workspace", "/nonexistent/ws", "--", "true")
	if code != 1 || !strings.Contains(stderr, "workspace: stat /nonexistent/ws: no such file or directory") {
		t.Errorf("missing workspace: exit %d %s", code, stderr)
	}
	code, _, stderr = runWard(t, bin, "--agent", "coder", "--objective", "x", "--", "no-such-program-xyz")
	if code != 1 || !strings.Contains(stderr, "no-such-program-xyz: command not found") {
		t.Errorf("missing command: exit %d %s", code, stderr)
	}
	// A path to show is checked as what it names: /var/run is /run here.
	if fi, err := os.Lstat("/var/run"); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		code, _, stderr = runWard(t, bin, "--agent", "coder", "--objective", "x", "--ro", "/var/run/lock", "--", "true")
		if code != 1 || !strings.Contains(stderr, `read-only path "/var/run/lock" (really /run/lock): the runtime has its own /run`) {
			t.Errorf("--ro through a symlink: exit %d %s", code, stderr)
		}
	}
	code, _, stderr = runWard(t, bin, "--agent", "coder", "--objective", "x")
	if code != 2 || !strings.Contains(stderr, "usage: ward run") {
		t.Errorf("no command: exit %d %s", code, stderr)
	}

	// A fork bomb meets the process limit; the program goes on, and its
	// children die with the runtime.
	code, stdout, stderr := runWard(t, bin, "--agent", "coder", "--objective", "x", "--pids", "64", "--", "python3", "-c", `
import os, time
n = 0
for i in range(2000):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
    except OSError as e:
        print("refused", e.strerror)
        break
print("started=%d" % n)
`)
	if m := regexp.MustCompile(`started=(\d+)`).FindStringSubmatch(stdout); m == nil || !strings.Contains(stdout, "refused Resource temporarily unavailable") {
		t.Errorf("fork bomb: exit %d\n%s\n%s", code, stdout, stderr)
	} else if k, _ := strconv.Atoi(m[1]); k >= 64 {
		t.Errorf("fork bomb: %d processes started under a limit of 64", k)
	}
	if os.Getuid() == 0 && !strings.Contains(stderr, "limit reached: processes: ") {
		t.Errorf("fork bomb: ward run does not say the process limit was reached:\n%s", stderr)
	}
	// Filling the disk stops at the scratch limit.
	code, stdout, stderr = runWard(t, bin, "--agent", "coder", "--objective", "x", "--disk", "16M", "--rollback", "--", "/bin/sh", "-c",
		`dd if=/dev/zero of=/workspace/big bs=1M count=64 2>&1; echo exit=$?`)
	if !strings.Contains(stdout, "No space left on device") || !strings.Contains(stderr, "limit reached: disk: the 16 MiB of scratch space") {
		t.Errorf("disk fill: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// A sparse file costs the scratch nothing but would be copied out in
	// full: it is not captured.
	code, stdout, stderr = runWard(t, bin, "--agent", "coder", "--objective", "x", "--disk", "16M", "--", "/bin/sh", "-c",
		`truncate -s 2G /workspace/sparse && echo truncated`)
	if !strings.Contains(stdout, "truncated") || !strings.Contains(stderr, "sparse files or hard links") {
		t.Errorf("sparse file: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got := newSince(before, leftovers(t)); len(got) > 0 {
		t.Errorf("cgroups left behind: %v", got)
	}
	if tmpAfter, _ := filepath.Glob(filepath.Join(os.TempDir(), "ward-run-*")); len(newSince(tmpBefore, tmpAfter)) > 0 {
		t.Errorf("run directories left behind: %v", newSince(tmpBefore, tmpAfter))
	}
}

// fetchLoop times n sequential GETs of a URL, each on a new connection,
// through whatever proxy the environment names, and prints the mean.
const fetchLoop = `
import sys, time, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
for i in range(n):
    urllib.request.urlopen(url, timeout=10).read()
print("mean_us=%d" % ((time.perf_counter() - t0) / n * 1e6))
`

var meanRE = regexp.MustCompile(`mean_us=(\d+)`)
var startedRE = regexp.MustCompile(`program started in ([0-9.]+)(µs|ms|s)`)

// BenchmarkRun compares running /bin/true directly with `ward run` (a
// session created, its key generated inside the runtime, the exec
// decided, the runtime built, torn down and the session ended), and the
// time to a program's first instruction; and an HTTP request from inside
// the runtime through ward's relays and egress proxy with the same request
// made directly on the host.
func BenchmarkRun(b *testing.B) {
	_, bin := runtimeNode(b)
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ward-run", func(b *testing.B) {
		var started float64
		for b.Loop() {
			code, _, stderr := runWard(b, bin, "--agent", "coder", "--objective", "bench", "--", "/bin/true")
			m := startedRE.FindStringSubmatch(stderr)
			if code != 0 || m == nil {
				b.Fatalf("exit %d\n%s", code, stderr)
			}
			d, _ := time.ParseDuration(m[1] + m[2])
			started += float64(d.Microseconds())
		}
		b.ReportMetric(started/float64(b.N)/1000, "to-first-instruction-ms")
	})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer upstream.Close()
	const n = 200
	// meanOf runs the fetch loop b.N times through run (which returns
	// what it printed) and reports the mean time per request.
	meanOf := func(b *testing.B, run func() string) {
		var mean float64
		for b.Loop() {
			out := run()
			m := meanRE.FindStringSubmatch(out)
			if m == nil {
				b.Fatalf("no mean in:\n%s", out)
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			mean += v
		}
		b.ReportMetric(mean/float64(b.N), "µs/request")
	}
	fetch := []string{"python3", "-c", fetchLoop, upstream.URL, strconv.Itoa(n)}
	b.Run("http-direct", func(b *testing.B) {
		meanOf(b, func() string {
			out, _ := exec.Command(fetch[0], fetch[1:]...).CombinedOutput()
			return string(out)
		})
	})
	b.Run("http-via-proxy-on-host", func(b *testing.B) {
		// The same requests through the node's egress proxy from the
		// host, without the runtime's relays.
		out := mustCLI(b, "session", "start", "--agent", "coder", "--objective", "bench", "--allow", "tool:demo.*", "--allow", "host:127.0.0.1", "-o", "json")
		var started struct{ Credentials string }
		json.Unmarshal([]byte(out), &started)
		creds, err := sessioncred.Load(started.Credentials)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := creds.HTTPClient(false).Post(os.Getenv("WARD_SERVER")+"/v1/egress/token", "application/json", strings.NewReader("{}"))
		if err != nil {
			b.Fatal(err)
		}
		var tok struct {
			ProxyURL string `json:"proxy_url"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		meanOf(b, func() string {
			cmd := exec.Command(fetch[0], fetch[1:]...)
			cmd.Env = append(os.Environ(), "HTTP_PROXY="+tok.ProxyURL, "http_proxy="+tok.ProxyURL, "NO_PROXY=", "no_proxy=")
			out, _ := cmd.CombinedOutput()
			return string(out)
		})
	})
	b.Run("http-via-runtime-proxy", func(b *testing.B) {
		meanOf(b, func() string {
			_, stdout, stderr := runWard(b, bin, append([]string{"--agent", "coder", "--objective", "bench", "--allow-host", "127.0.0.1", "--"}, fetch...)...)
			return stdout + stderr
		})
	})
}
