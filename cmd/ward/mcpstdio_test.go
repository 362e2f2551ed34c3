package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// TestMCPServeStdio: `ward mcp serve --stdio` is the session's MCP endpoint
// on stdin and stdout. A script that writes its requests and closes stdin
// gets every answer, in order; a line ward cannot read one way is answered
// with a JSON-RPC error, never forwarded, and recorded with the node; calls
// are decided by the node as the session's; once the session ends, a call
// is answered with an error instead of hanging.
func TestMCPServeStdio(t *testing.T) {
	startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	bin := buildWard(t)
	mustCLI(t, "sponsor", "create", "alice", "--allow", "tool:demo.*")
	mustCLI(t, "agent", "register", "scribe", "--sponsor", "alice", "--allow", "tool:demo.*")
	var s struct{ Session string }
	json.Unmarshal([]byte(mustCLI(t, "session", "start", "--agent", "scribe", "--objective", "script it", "-o", "json")), &s)

	script := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"script","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo.echo","arguments":{"text":"one"}},"params":{"name":"demo.write_note","arguments":{"name":"x","text":"y"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo.echo","arguments":{"text":"two"}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"demo.write_note","arguments":{"name":"x","text":"y"}}}`,
	}, "\n") + "\n"
	cmd := exec.Command(bin, "mcp", "serve", "--stdio", "--session", s.Session)
	cmd.Env = os.Environ()
	cmd.Stdin = strings.NewReader(script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ward mcp serve --stdio: %v\n%s", err, errb.String())
	}
	byID := map[string]map[string]any{}
	var unreadable int
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		if m["id"] == nil {
			unreadable++
			continue
		}
		byID[string(must(json.Marshal(m["id"])))] = m
	}
	if unreadable != 1 || len(byID) != 3 {
		t.Fatalf("answers: %d to unreadable lines, %v\nstdout:\n%s\nstderr:\n%s", unreadable, byID, out.String(), errb.String())
	}
	if !strings.Contains(string(must(json.Marshal(byID["3"]))), `"two"`) {
		t.Errorf("echo: %v", byID["3"])
	}
	if e, _ := byID["4"]["error"].(map[string]any); e == nil || !strings.Contains(e["message"].(string), "default deny") {
		t.Errorf("a write the policy does not permit: %v", byID["4"])
	}
	if !strings.Contains(errb.String(), "refused a message from the client") {
		t.Errorf("the refusal is not said on stderr: %s", errb.String())
	}
	// The refused line was recorded with the node, and nothing of it was
	// decided as a call.
	var found bool
	for _, e := range auditEvents(t, s.Session, "refusal") {
		found = found || strings.Contains(string(must(json.Marshal(e))), "cannot read in one way")
	}
	for _, e := range auditEvents(t, s.Session, "decision") {
		if b := string(must(json.Marshal(e))); strings.Contains(b, `"demo.write_note"`) && strings.Contains(b, `"allow"`) {
			t.Errorf("a write was allowed: %s", b)
		}
	}
	if !found {
		t.Error("the unreadable line is not in the session's audit trail")
	}

	// A client that stays connected while its session ends gets an error
	// for its next call, not silence.
	cmd = exec.Command(bin, "mcp", "serve", "--stdio", "--session", s.Session)
	cmd.Env = os.Environ()
	cmd.Stderr = &errb
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "editor", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "before"}}); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "session", "end", s.Session)
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "after"}}); err == nil && !res.IsError {
		t.Fatalf("a call after the session ended was served: %+v", res)
	}

	// --stdio is not combined with the listening sidecar's flags.
	if code, _, errOut := wardCLI("mcp", "serve", "--stdio", "--session", s.Session, "--listen", "127.0.0.1:7777"); code != 2 || !strings.Contains(errOut, "--listen") {
		t.Errorf("--stdio with --listen: exit %d %s", code, errOut)
	}
}
