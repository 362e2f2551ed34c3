package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestRunWithoutEgressProxy: against a node that runs no egress proxy
// (the Quick start's), `ward run` refuses a run that asks for hosts,
// before the program starts, and says what to configure; a run that asks
// for none goes ahead, is told its program reaches no host, and the
// program's name lookups fail quietly: no refusal is printed or recorded
// for them (the runtime's libc asks no resolver).
func TestRunWithoutEgressProxy(t *testing.T) {
	for _, p := range []string{"/bin/sh", "/usr/bin/curl", "/usr/bin/getent"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is needed: %v", p, err)
		}
	}
	startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	bin := buildWard(t)
	mustCLI(t, "agent", "register", "coder", "--sponsor", "admin", "--allow", "tool:demo.*", "--allow", "host:api.github.com", "--allow", "host:*.example.com")

	for _, hosts := range [][]string{
		{"--allow-host", "api.github.com"},
		{"--allow", "tool:demo.*", "--allow", "host:*.example.com"},
		{"--allow-host", "api.github.com", "--allow-host", "www.example.com"},
	} {
		args := append([]string{"--agent", "coder", "--objective", "fetch the issues"}, hosts...)
		code, stdout, stderr := runWard(t, bin, append(args, "--", "sh", "-c", "echo PROGRAM-RAN")...)
		if code != 1 || !strings.Contains(stderr, "no egress proxy for the session (the node runs no egress proxy), so the program could reach none of these hosts") ||
			!strings.Contains(stderr, "egress: {listen: 127.0.0.1:3128}") {
			t.Errorf("ward run %v: exit %d\n%s", hosts, code, stderr)
		}
		for _, h := range hosts {
			if h = strings.TrimPrefix(h, "host:"); !strings.HasPrefix(h, "--") && !strings.HasPrefix(h, "tool:") && !strings.Contains(stderr, h) {
				t.Errorf("the refusal does not name %s: %s", h, stderr)
			}
		}
		if strings.Contains(stdout, "PROGRAM-RAN") {
			t.Errorf("ward run %v: the program ran although its hosts were unreachable", hosts)
		}
		if strings.Contains(stderr, "Unsolicited response") {
			t.Errorf("the liveness channel's connection was reused: %s", stderr)
		}
		if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
			t.Errorf("the refusal is not one line: %q", stderr)
		}
	}
	// The refused runs' sessions are ended.
	if out := mustCLI(t, "session", "list"); strings.Contains(out, "active") {
		t.Errorf("a refused run left its session active:\n%s", out)
	}

	code, stdout, stderr := runWard(t, bin, "--agent", "coder", "--objective", "look around", "--", "sh", "-c",
		`curl -sS --max-time 5 https://api.github.com/ 2>/dev/null; echo "curl=$?"; getent hosts example.com; echo "getent=$?"`)
	if code != 0 || !strings.Contains(stdout, "curl=6\n") || !strings.Contains(stdout, "getent=2\n") {
		t.Fatalf("run without hosts: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "ward run: no egress proxy (the node runs no egress proxy): the program can reach no host") {
		t.Errorf("a run without hosts is not told it reaches none:\n%s", stderr)
	}
	if strings.Contains(stderr, "refused:") {
		t.Errorf("name lookups printed refusals:\n%s", stderr)
	}
	m := sessionRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no session in %s", stderr)
	}
	events := auditEvents(t, m[1], "runtime")
	if len(events) < 2 {
		t.Fatalf("the run's start and end are not recorded: %v", events)
	}
	for _, e := range events {
		if b, _ := json.Marshal(e); strings.Contains(string(b), "refused") {
			t.Errorf("a name lookup was recorded as a refusal: %s", b)
		}
	}
}
