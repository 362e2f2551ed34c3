package server_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// initMCP opens an MCP session with a raw initialize and returns its id,
// or the status and body of the refusal.
func initMCP(t *testing.T, hc *http.Client, url string) (string, int, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"no-delete","version":"1"}}}`
	req, _ := http.NewRequest("POST", url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		sb.WriteString(sc.Text() + "\n")
	}
	return resp.Header.Get("Mcp-Session-Id"), resp.StatusCode, sb.String()
}

// pingMCP sends a ping on an MCP session and returns the status.
func pingMCP(t *testing.T, hc *http.Client, url, id string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestClientsThatNeverDelete: a client that opens MCP session after MCP
// session and never sends DELETE (the TypeScript SDK, the Inspector) is
// never refused: at the per-session bound the session idle longest is
// retired (and answers 404, so its client starts over), while sessions
// that are in use (a stream open) are never retired. Only when all of
// them are in use is a new one refused, saying why.
func TestClientsThatNeverDelete(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	n.setupAgent("churner", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("churner", "open many sessions", map[string][]string{"tools": {"demo.*"}}, "")
	hc := creds.HTTPClient(false)

	var ids []string
	for i := 0; i < 40; i++ {
		id, status, body := initMCP(t, hc, n.url)
		if status != http.StatusOK || id == "" {
			t.Fatalf("initialize %d: %d %s", i, status, body)
		}
		ids = append(ids, id)
	}
	// The 24 oldest were retired, oldest first; the newest 16 still serve.
	for i, id := range ids {
		got := pingMCP(t, hc, n.url, id)
		if want := http.StatusOK; i >= 24 && got != want {
			t.Fatalf("session %d (kept): ping %d", i, got)
		}
		if i < 24 && got != http.StatusNotFound {
			t.Fatalf("session %d (retired): ping %d, want 404", i, got)
		}
	}

	// Hold a stream open on each of the 16: none is idle.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	ready := make(chan struct{}, 16)
	for _, id := range ids[24:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/mcp", nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Mcp-Session-Id", id)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			resp, err := hc.Do(req)
			if err != nil {
				ready <- struct{}{}
				return
			}
			defer resp.Body.Close()
			ready <- struct{}{}
			buf := make([]byte, 1024)
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	for range 16 {
		<-ready
	}
	_, status, body := initMCP(t, hc, n.url)
	if status != http.StatusForbidden || !strings.Contains(body, "every one is in use") {
		t.Fatalf("initialize with every session in use: %d %s", status, body)
	}
	for i, id := range ids[24:] {
		if got := pingMCP(t, hc, n.url, id); got != http.StatusOK {
			t.Fatalf("in-use session %d retired: ping %d", i, got)
		}
	}
	cancel()
	wg.Wait()
}

// fsProcesses counts the running filesystem servers serving dir.
func fsProcesses(t *testing.T, dir string) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "server-filesystem.*"+dir).Output()
	return len(strings.Fields(string(out)))
}

// TestSharedServerOneProcess: a client that opens an MCP session per call
// (and never deletes them) ran one filesystem server process per session;
// with share: true the sessions of one ward session share one process,
// and each session still gets its own answers. Without it, one each.
func TestSharedServerOneProcess(t *testing.T) {
	for _, share := range []bool{true, false} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "a.txt"), []byte("alpha"), 0o644)
		pol := t.TempDir()
		os.WriteFile(filepath.Join(pol, "p.cedar"), []byte(`permit (principal, action == Action::"call_tool", resource in Server::"fs");`), 0o600)
		n := startNode(t, server.Config{Policies: []string{pol}, Upstreams: []server.Upstream{
			{Name: "fs", Command: npmServer(t, "server-filesystem", dir), Share: share}}})
		n.setupAgent("opener", nil, map[string][]string{"tools": {"fs.*"}})
		creds, _ := n.startSession("opener", "read a file many times", map[string][]string{"tools": {"fs.*"}}, "")
		for i := 0; i < 4; i++ {
			cs := n.connect(t, creds.HTTPClient(false), nil)
			res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": filepath.Join(dir, "a.txt")}})
			if err != nil || textOf(res) != "alpha" {
				t.Fatalf("share=%v, session %d: %v %v", share, i, err, res)
			}
		}
		want := 4
		if share {
			want = 1
		}
		if got := fsProcesses(t, dir); got != want {
			t.Fatalf("share=%v: %d filesystem server processes for 4 MCP sessions, want %d", share, got, want)
		}
	}
}

// TestMCPSessionBoundIsExact: many MCP sessions of one ward session opened
// at once leave exactly the bound (16) serving: counting, retiring and
// admitting happen in one critical section, so concurrent initializes
// cannot each see room and all be admitted. Every initialize is either
// admitted (and later retired, answering 404) or refused saying why.
func TestMCPSessionBoundIsExact(t *testing.T) {
	const bound, clients = 16, 64
	n := startNode(t, server.Config{Upstreams: []server.Upstream{{Name: "demo", Builtin: "demo"}}})
	n.setupAgent("churner", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("churner", "open many sessions at once", map[string][]string{"tools": {"demo.*"}}, "")
	hc := creds.HTTPClient(false)

	type opened struct {
		id     string
		status int
		body   string
	}
	results := make(chan opened, clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			<-start
			id, status, body := initMCP(t, hc, n.url)
			results <- opened{id, status, body}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	var admitted []string
	refused := 0
	for r := range results {
		switch {
		case r.status == http.StatusOK && r.id != "":
			admitted = append(admitted, r.id)
		case r.status == http.StatusForbidden && strings.Contains(r.body, "every one is in use"):
			refused++
		default:
			t.Fatalf("initialize: %d %s", r.status, r.body)
		}
	}
	if len(admitted) < bound {
		t.Fatalf("only %d of %d initializes admitted; the test needs at least %d", len(admitted), clients, bound)
	}
	serving := 0
	for _, id := range admitted {
		switch got := pingMCP(t, hc, n.url, id); got {
		case http.StatusOK:
			serving++
		case http.StatusNotFound:
		default:
			t.Fatalf("ping: %d", got)
		}
	}
	if serving != bound {
		t.Fatalf("%d MCP sessions serve after %d concurrent initializes (%d refused); the bound is %d", serving, clients, refused, bound)
	}
}
