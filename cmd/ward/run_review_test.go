package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
)

// TestRunLinksOutside: symlinks the program leaves in the workspace that
// point out of it, whatever their shape, are kept for review rather than
// applied, and the reason says so; hard links land as plain files; links
// that stay inside are applied.
func TestRunLinksOutside(t *testing.T) {
	_, bin := runtimeNode(t)
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "notes.txt"), []byte("mine\n"), 0o644)
	os.Mkdir(filepath.Join(ws, "d"), 0o755)
	original := treeHash(t, ws)
	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "tidy", "--workspace", ws, "--", "/bin/sh", "-c", `
ln -s /proc/1/root/etc/shadow evil
mkdir -p a/b && ln -s ../../../etc/passwd a/b/deep
ln -s .. d/x && ln -s d/x/.. y
ln -s notes.txt good
ln notes.txt hard
ln /usr/bin/env hard-outside 2>/dev/null || echo cross-device
true`)
	t.Logf("stderr:\n%s", stderr)
	if code != 0 || !strings.Contains(stderr, "not applied: symbolic links point outside the workspace") {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"evil -> /proc/1/root/etc/shadow", "a/b/deep -> ../../../etc/passwd", "y -> d/x/.."} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the reason does not name %s", want)
		}
	}
	if strings.Contains(stderr, "good -> notes.txt (") {
		t.Error("a link inside the workspace is named as leaving it")
	}
	if treeHash(t, ws) != original {
		t.Fatal("links out of the workspace were applied without review")
	}
	session := sessionRE.FindStringSubmatch(stderr)[1]
	out := mustCLI(t, "changes", "show", session)
	if !strings.Contains(out, "outside") || !strings.Contains(out, "evil") {
		t.Errorf("changes show does not say why:\n%s", out)
	}
	// After review, the operator applies them as they are.
	mustCLI(t, "changes", "apply", session)
	if target, err := os.Readlink(filepath.Join(ws, "evil")); err != nil || target != "/proc/1/root/etc/shadow" {
		t.Errorf("evil after apply: %q, %v", target, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ws, "hard"), &st); err != nil || st.Nlink != 1 {
		t.Errorf("hard after apply: %+v, %v: want a file of its own", st.Nlink, err)
	}

	// Links that stay inside are applied at once.
	code, _, stderr = runWard(t, bin, "--agent", "coder", "--objective", "tidy", "--workspace", ws, "--", "/bin/sh", "-c",
		"ln -s notes.txt good2 && ln -s ../notes.txt d/up && ln notes.txt hard2")
	if code != 0 || !strings.Contains(stderr, "applied to "+ws) {
		t.Fatalf("inside links: exit %d\n%s", code, stderr)
	}
	if target, err := os.Readlink(filepath.Join(ws, "d", "up")); err != nil || target != "../notes.txt" {
		t.Errorf("d/up: %q, %v", target, err)
	}
}

// TestRunRollbackKeepsNoContent: --rollback discards the changes: their
// summary is recorded, their content is not copied to the host's disk,
// and there is nothing to apply later.
func TestRunRollbackKeepsNoContent(t *testing.T) {
	_, bin := runtimeNode(t)
	ws := t.TempDir()
	original := treeHash(t, ws)
	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "try", "--workspace", ws, "--rollback", "--",
		"/bin/sh", "-c", "head -c 1048576 /dev/urandom > big.bin; echo x > small.txt")
	if code != 0 || !strings.Contains(stderr, "rolled back") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if treeHash(t, ws) != original {
		t.Fatal("--rollback changed the workspace")
	}
	session := sessionRE.FindStringSubmatch(stderr)[1]
	var bytes int64
	filepath.Walk(filepath.Join(runsDir(), session), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			bytes += fi.Size()
		}
		return nil
	})
	if bytes > 64<<10 {
		t.Errorf("a rolled-back run left %d bytes in %s", bytes, filepath.Join(runsDir(), session))
	}
	out := mustCLI(t, "changes", "show", session)
	if !strings.Contains(out, "rolled back") || !strings.Contains(out, "A big.bin") || !strings.Contains(out, "A small.txt") {
		t.Errorf("changes show:\n%s", out)
	}
	if code, _, errOut := wardCLI("changes", "apply", session); code == 0 || !strings.Contains(errOut, "rolled back") {
		t.Errorf("apply of a rolled-back run: %d %s", code, errOut)
	}
}

// TestRunLimitsSayWhy: a program the OOM killer ends is reported as such,
// in ward run's output and in the session's audit trail, not as a bare
// exit status.
func TestRunLimitsSayWhy(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, for a cgroup")
	}
	_, bin := runtimeNode(t)
	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "x", "--memory", "64M", "--",
		"python3", "-c", `b = b"x" * (512 << 20)`)
	if code == 0 || !strings.Contains(stderr, "out of memory") || !strings.Contains(stderr, "64 MiB") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	m := sessionRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("ward run named no session:\n%s", stderr)
	}
	session := m[1]
	if ev := fmt.Sprint(auditEvents(t, session, "runtime")); !strings.Contains(ev, "out of memory") {
		t.Errorf("the audit trail does not say why: %s", ev)
	}
}

// TestRunKilled: when `ward run` itself is killed (SIGKILL, nothing of it
// runs any more), its runtime dies with it, the node ends the session at
// once rather than at its TTL, and the next `ward run` removes the
// cgroups and directories it left.
func TestRunKilled(t *testing.T) {
	_, bin := runtimeNode(t)
	marker := "ward-killed-" + fmt.Sprint(time.Now().UnixNano())
	cmd := exec.Command(bin, "run", "--agent", "coder", "--objective", "wait", "--timeout", "1h", "--", "/bin/sh", "-c",
		"sleep 300; echo "+marker)
	errPipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(errPipe)
	session := ""
	for sc.Scan() {
		if m := sessionRE.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "program started") {
			session = m[1]
			break
		}
	}
	if session == "" {
		t.Fatal("ward run did not start the program")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	cmd.Process.Kill()
	cmd.Wait()

	c, err := operatorClient()
	if err != nil {
		t.Fatal(err)
	}
	var v api.SessionView
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := c.do("GET", "/v1/sessions/"+url.PathEscape(session), nil, &v); err != nil {
			t.Fatal(err)
		}
		if v.Status != "active" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v.Status == "active" {
		t.Fatal("the session of a killed ward run stays active")
	}
	if !strings.Contains(v.EndReason, "runtime") {
		t.Errorf("end reason %q does not say the runtime is gone", v.EndReason)
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Errorf("the runtime outlived its ward run: %v", left)
	}
	// What it left: its run directory (which names its session) and the
	// cgroups that directory records.
	var runDir string
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "ward-run-*"))
	for _, d := range dirs {
		if b, _ := os.ReadFile(filepath.Join(d, "session")); string(b) == session {
			runDir = d
		}
	}
	if runDir == "" {
		t.Fatal("no run directory names the session: nothing to reap?")
	}
	var rec struct{ Cgroups []string }
	b, _ := os.ReadFile(filepath.Join(runDir, "runtime.json"))
	json.Unmarshal(b, &rec)
	if os.Getuid() == 0 && len(rec.Cgroups) == 0 {
		t.Fatalf("the run directory records no cgroup: %s", b)
	}

	// The next ward run cleans up.
	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "x", "--", "true")
	if code != 0 {
		t.Fatalf("next ward run: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "cleaned up after a runtime") {
		t.Errorf("the next ward run does not say it cleaned up:\n%s", stderr)
	}
	for _, d := range append(rec.Cgroups, runDir) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", d, err)
		}
	}
}

// TestRuntimeLiveChannel: the node keeps a session whose liveness channel
// ends with "end", and ends one whose channel closes without it or
// carries anything else, saying why; a channel for a session that is not
// active is refused.
func TestRuntimeLiveChannel(t *testing.T) {
	runtimeNode(t)
	c, err := operatorClient()
	if err != nil {
		t.Fatal(err)
	}
	start := func() string {
		out := mustCLI(t, "session", "start", "--agent", "coder", "--objective", "live", "-o", "json")
		var v struct{ Session string }
		if err := json.Unmarshal([]byte(out), &v); err != nil || v.Session == "" {
			t.Fatalf("session start: %s", out)
		}
		return v.Session
	}
	// live sends body on a liveness channel and returns the node's
	// answer: its status and last line.
	live := func(id, body string) (int, string) {
		req, _ := http.NewRequest("POST", c.base+"/v1/sessions/"+url.PathEscape(id)+"/runtime/live", io.NopCloser(strings.NewReader(body)))
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ls := strings.Split(strings.TrimSpace(string(b)), "\n")
		return resp.StatusCode, ls[len(ls)-1]
	}
	status := func(id string) api.SessionView {
		var v api.SessionView
		if err := c.do("GET", "/v1/sessions/"+url.PathEscape(id), nil, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	kept := start()
	if code, last := live(kept, "alive\nalive\nend\n"); code != http.StatusOK || last != "end" || status(kept).Status != "active" {
		t.Errorf("clean end: HTTP %d %q, session %s", code, last, status(kept).Status)
	}
	for body, why := range map[string]string{
		"alive\n":                   "closed without the session ending",
		"alive\nhello\n":            "something other than alive or end",
		"alive\nend":                "broke off",
		strings.Repeat("a", 64):     "too long",
		"":                          "closed without the session ending",
		"alive\nalive\nalive\nen":   "broke off",
		"alive\r\nend\r\n":          "something other",
		"alive\nend\nmore\nlines\n": "",
	} {
		id := start()
		code, last := live(id, body)
		v := status(id)
		if why == "" {
			if code != http.StatusOK || last != "end" || v.Status != "active" {
				t.Errorf("%q: HTTP %d %q, session %s", body, code, last, v.Status)
			}
			continue
		}
		if code != http.StatusOK || !strings.HasPrefix(last, "gone: its runtime is gone: ") || v.Status == "active" ||
			!strings.Contains(v.EndReason, "its runtime is gone: ") || !strings.Contains(v.EndReason, why) {
			t.Errorf("%q: HTTP %d %q, session %s (%q), want ended because %s", body, code, last, v.Status, v.EndReason, why)
		}
	}
	mustCLI(t, "session", "end", kept)
	if code, _ := live(kept, "alive\n"); code != http.StatusConflict {
		t.Errorf("channel for an ended session: HTTP %d", code)
	}
}

// TestRuntimeLiveNodeRestart: a node that shuts down lets go of the
// runtimes' liveness channels without ending their sessions: their ward
// runs connect again to the node that follows.
func TestRuntimeLiveNodeRestart(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	token := n.AdminCredential
	mustCLI(t, "agent", "register", "coder", "--sponsor", "admin", "--allow", "tool:demo.*")
	out := mustCLI(t, "session", "start", "--agent", "coder", "--objective", "live", "-o", "json")
	var started struct{ Session string }
	json.Unmarshal([]byte(out), &started)
	c, err := operatorClient()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", c.base+"/v1/sessions/"+url.PathEscape(started.Session)+"/runtime/live", pr)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer := bufio.NewScanner(resp.Body)
	if !answer.Scan() || answer.Text() != "live" {
		t.Fatalf("the node does not hold the channel: HTTP %d %q", resp.StatusCode, answer.Text())
	}
	io.WriteString(pw, "alive\n")
	n.Close()
	if !answer.Scan() || answer.Text() != "closing" {
		t.Errorf("at shutdown the node says %q, %v; want closing", answer.Text(), answer.Err())
	}
	startNode(t, server.Config{Data: data, Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	t.Setenv("WARD_TOKEN", token)
	c, _ = operatorClient()
	var v api.SessionView
	if err := c.do("GET", "/v1/sessions/"+url.PathEscape(started.Session), nil, &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != "active" {
		t.Errorf("after a node restart the session is %s (%s)", v.Status, v.EndReason)
	}
}
