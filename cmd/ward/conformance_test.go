package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/server"
)

// conformanceDir holds the official MCP conformance suite and its reference
// server (testdata/conformance, installed by make test).
func conformanceDir(t *testing.T) string {
	dir := filepath.Join(repoRoot(), "testdata", "conformance")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", "conformance")); err != nil {
		if os.Getenv("WARD_REQUIRE_NPM") != "" {
			t.Fatal("the conformance suite is not installed (make test installs it)")
		}
		t.Skip("the conformance suite is not installed; make test installs it")
	}
	return dir
}

// startProcess runs cmd in its own process group, killed at cleanup, and
// returns a reader of its standard output.
func startProcess(t *testing.T, cmd *exec.Cmd) *bufio.Reader {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return bufio.NewReader(out)
}

// waitLine reads r until a line matches re, and returns the match.
func waitLine(t *testing.T, r *bufio.Reader, re *regexp.Regexp, what string) []string {
	t.Helper()
	found := make(chan []string, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if m := re.FindStringSubmatch(line); m != nil {
				found <- m
				io.Copy(io.Discard, r)
				return
			}
			if err != nil {
				found <- nil
				return
			}
		}
	}()
	select {
	case m := <-found:
		if m == nil {
			t.Fatalf("%s: the process ended first", what)
		}
		return m
	case <-time.After(90 * time.Second):
		t.Fatalf("%s: nothing after 90 s", what)
	}
	return nil
}

// TestConformanceThroughWard runs the official MCP conformance suite
// (@modelcontextprotocol/conformance, server scenarios, pinned in
// testdata/conformance) unmodified against its reference server behind
// ward, as a user deploys it: a node whose policy allows everything, one
// ward session, and the session's sidecar (`ward mcp serve`, the real
// binary) as the URL under test. Every check must pass, as it does
// directly.
func TestConformanceThroughWard(t *testing.T) {
	dir := conformanceDir(t)
	bin := buildWard(t)

	// The reference server, on a port of its own.
	refPort := freePort(t)
	ref := exec.Command(filepath.Join(dir, "node_modules", ".bin", "tsx"), "everything-server.ts")
	ref.Dir = dir
	ref.Env = append(os.Environ(), "PORT="+refPort)
	refOut := startProcess(t, ref)
	waitLine(t, refOut, regexp.MustCompile(`running on`), "reference server")

	pol := t.TempDir()
	os.WriteFile(filepath.Join(pol, "all.cedar"), []byte(`@id("everything") permit (principal, action, resource);`), 0o600)
	data := t.TempDir()
	startNode(t, server.Config{Data: data, Policies: []string{pol}, Upstreams: []server.Upstream{
		{Name: "ref", URL: "http://127.0.0.1:" + refPort + "/mcp"},
	}})
	mustCLI(t, "sponsor", "create", "qa", "--kind", "platform", "--allow", "tool:*", "--allow", "resource:*", "--allow", "prompt:*")
	mustCLI(t, "agent", "register", "conformance", "--sponsor", "qa", "--allow", "tool:*", "--allow", "resource:*", "--allow", "prompt:*")
	var s struct{ Session string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "conformance", "--objective", "run the MCP conformance suite", "--ttl", "1h", "-o", "json")), &s)
	if s.Session == "" {
		t.Fatal("no session")
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	side := exec.Command(bin, "mcp", "serve", "--session", s.Session, "--listen", "127.0.0.1:"+freePort(t), "--token-file", tokenFile)
	side.Env = os.Environ()
	sideOut := startProcess(t, side)
	endpoint := waitLine(t, sideOut, regexp.MustCompile(`MCP endpoint (http://\S+)`), "ward mcp serve")[1]
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	// The suite takes the URL only: the token goes in its path, as the
	// README offers to clients that cannot set a header.
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	suite := exec.CommandContext(ctx, filepath.Join(dir, "node_modules", ".bin", "conformance"), "server", "--url", endpoint+"/"+strings.TrimSpace(string(token)))
	suite.Dir = results
	out, err := suite.CombinedOutput()
	summary := regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`).FindSubmatch(out)
	if summary == nil {
		t.Fatalf("conformance suite: %v, no summary:\n%s", err, out)
	}
	passed, failed := string(summary[1]), string(summary[2])
	if failed != "0" || passed != "40" {
		var bad []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "✗") {
				bad = append(bad, line)
			}
		}
		t.Fatalf("conformance through ward: %s passed, %s failed (want 40 and 0):\n%s\n\nfull output:\n%s", passed, failed, strings.Join(bad, "\n"), out)
	}

	// The checks ran through ward: every call was decided and recorded
	// under the one session.
	out2 := mustCLI(t, "audit", "search", "--data", data, "--session", s.Session, "--type", "decision", "-o", "json")
	decided := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out2), "\n") {
		var e struct {
			Data struct{ Method, Decision string }
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Data.Decision == "allow" {
			decided[e.Data.Method]++
		}
	}
	for _, m := range []string{"tools/call", "resources/read", "prompts/get", "resources/subscribe"} {
		if decided[m] == 0 {
			t.Errorf("no %s was decided by ward (decisions: %v)", m, decided)
		}
	}
}
