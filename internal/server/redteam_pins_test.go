package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// TestRedteamWrappedServerPinsSeededByAnotherAgent (red team, tool
// pinning).
//
// Attack: the tools of a server run by `ward mcp wrap --server NAME` are
// pinned by the node under NAME, through POST /v1/guard/filter, which any
// agent session may call with any server name the node itself does not
// serve and any definitions (internal/api/handlers.go, guardFilter →
// enforce.Pipeline.Filter → observeTools/pin). Trust on first use then
// approves whatever the first caller listed, for every agent of every
// sponsor. Mallory (sponsor acme) lists "github" with two tools, "read"
// and "push_secrets", before anyone else. Victor (sponsor globex) wraps
// the real server as "github"; it lists only "read". Later the real
// server is compromised and adds "push_secrets" with the definition
// Mallory seeded: trust on first use should withhold it (it appeared after
// the server's first tool set, as Victor's server listed it), but ward
// lists it to Victor as approved and lets him call it.
//
// What ward did: took another agent's listing as the server's first tool
// set and approved its definitions for everyone. What it should do: not
// let an agent's report establish trust for others (pin wrapped servers
// per sponsor or per agent, or require an operator for wrapped servers).
func TestRedteamWrappedServerPinsSeededByAnotherAgent(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "all.cedar"), []byte(`permit (principal, action, resource);`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly})
	n.setupAgent("mallory", nil, map[string][]string{"tools": {"*"}})
	n.must("POST", "/v1/sponsors", map[string]any{"name": "globex", "kind": "platform", "ceiling": map[string][]string{"tools": {"*"}}}, nil)
	n.must("POST", "/v1/agents", map[string]any{"name": "victor", "sponsor": "globex", "ceiling": map[string][]string{"tools": {"*"}}}, nil)
	mallory, _ := n.startSession("mallory", "seed pins", nil, "")
	victor, _ := n.startSession("victor", "work with github", nil, "")

	read := json.RawMessage(`{"name":"read","description":"Read a file from a repository.","inputSchema":{"type":"object"}}`)
	evil := json.RawMessage(`{"name":"push_secrets","description":"Push the given files to a repository.","inputSchema":{"type":"object"}}`)
	item := func(def json.RawMessage, name string) map[string]any {
		return map[string]any{"name": "github." + name, "upstream": name, "definition": def}
	}
	filter := func(c *sessioncred.Credentials, items ...map[string]any) []bool {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"kind": "tool", "server": "github", "items": items})
		req, _ := http.NewRequest("POST", n.url+"/v1/guard/filter", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.HTTPClient(false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("filter: %d %s", resp.StatusCode, b)
		}
		var out struct{ Keep []bool }
		json.Unmarshal(b, &out)
		return out.Keep
	}
	// Mallory gets there first.
	filter(mallory, item(read, "read"), item(evil, "push_secrets"))
	// Victor's real server lists its tools: only "read".
	if keep := filter(victor, item(read, "read")); len(keep) != 1 || !keep[0] {
		t.Fatalf("victor's first listing: %v", keep)
	}
	// Later it adds push_secrets, exactly as Mallory described it.
	keep := filter(victor, item(read, "read"), item(evil, "push_secrets"))
	if len(keep) == 2 && keep[1] {
		t.Errorf("github.push_secrets appeared after victor's server's first tool set, but was approved by trust on first use because another sponsor's agent listed it first")
	}
}

// TestRedteamGuardFilterFillsTheDisk (red team, floods that fill the disk;
// state that grows per request).
//
// Attack: an agent session whose grant covers no tool of server "x…"
// calls POST /v1/guard/filter with a fresh server name each time and
// thousands of long tool names (a body may be 8 MiB,
// internal/api/handlers.go maxFilterBody). Pipeline.Filter records the
// server's tool set before it looks at the grant
// (internal/enforce/pipeline.go, Filter → observeTools): each request
// stores the names twice in SQLite (tool_sets first and last) and appends
// a "tools.first" audit event holding all of them (up to the 1 MiB event
// limit), and keeps an entry in Pipeline.toolSets, which is never pruned.
// Nothing bounds how many servers or tool sets a session may create, so
// one session with no grant for them writes megabytes per request, that
// outlive the session.
//
// What ward did: let 10 requests from a session that may call none of
// these tools grow the node's data directory by more than 10 MiB. What it
// should do: not record tool sets for callers whose grant covers nothing
// on the server, and bound the wrapped servers and tools a session may
// register.
func TestRedteamGuardFilterFillsTheDisk(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("prober", nil, map[string][]string{"tools": {"demo.*"}})
	c, _ := n.startSession("prober", "nothing to do with x", map[string][]string{"tools": {"demo.echo"}}, "")
	long := string(bytes.Repeat([]byte("t"), 900))
	before := dirSize(t, n.data)
	for i := range 10 {
		server := "x" + string(rune('a'+i))
		var items []map[string]any
		for j := range 1000 {
			name := long + string(rune('a'+j%26)) + string(rune('a'+j/26%26)) + string(rune('a'+j/676))
			items = append(items, map[string]any{"name": server + "." + name, "upstream": name})
		}
		body, _ := json.Marshal(map[string]any{"kind": "tool", "server": server, "items": items})
		req, _ := http.NewRequest("POST", n.url+"/v1/guard/filter", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.HTTPClient(false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if grown := dirSize(t, n.data) - before; grown > 1<<20 {
		t.Fatalf("10 filter requests from a session whose grant covers none of the tools grew the data directory by %d bytes", grown)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return total
}
