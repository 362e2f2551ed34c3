package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/server"
)

// TestSecretsNeverReachTheLog: with arguments and results recorded, a
// secret in a tool call's arguments, in its result and in an agent-posted
// prompt is in the log only as a salted marker, which an operator holding
// DATA/keys/redact.salt can recompute; the rest is in clear.
func TestSecretsNeverReachTheLog(t *testing.T) {
	const secret = "AKIAABCDEFGHIJKLMNOP"
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly, Record: server.Record{Arguments: true, Results: []string{"demo.echo"},
		Rules: []redact.Rule{{Tool: "demo.echo", Pattern: `ticket-(?P<secret>\d+)`}}}})
	n.setupAgent("clerk", nil, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSession("clerk", "echo things", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := context.Background()
	text := "deploy with " + secret + " for ticket-31415926535"
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": text}}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"kind": "prompt", "content": map[string]string{"role": "user", "api_key": "hunter2-hunter2", "text": "summarise"}})
	resp, err := creds.HTTPClient(false).Post(n.url+"/v1/records", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("post record: %d", resp.StatusCode)
	}

	raw, err := os.ReadFile(filepath.Join(data, "audit", "entries"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, "31415926535", "hunter2"} {
		if bytes.Contains(raw, []byte(s)) {
			i := bytes.Index(raw, []byte(s))
			t.Fatalf("the log holds %q in clear: %s", s, raw[max(0, i-300):i+50])
		}
	}
	salt, err := os.ReadFile(filepath.Join(data, "keys", "redact.salt"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := redact.New(redact.Config{Salt: salt})
	if err != nil {
		t.Fatal(err)
	}
	events, err := n.Audit.Read(0, n.Audit.Size())
	if err != nil {
		t.Fatal(err)
	}
	var decision, result, record string
	for _, e := range events {
		if e.Session != v.Session {
			continue
		}
		switch e.Type {
		case "decision":
			decision = string(e.Data)
		case "result":
			result = string(e.Data)
		case "agent.record":
			record = string(e.Data)
		}
	}
	want := "deploy with " + r.Hash([]byte(secret)) + " for ticket-" + r.Hash([]byte("31415926535"))
	for name, got := range map[string]string{"decision": decision, "result": result} {
		if !strings.Contains(got, want) {
			t.Fatalf("%s event does not hold the redacted text %q:\n%s", name, want, got)
		}
	}
	if !strings.Contains(record, r.Hash([]byte("hunter2-hunter2"))) || !strings.Contains(record, `"summarise"`) {
		t.Fatalf("agent record not redacted as expected: %s", record)
	}
	if _, err := audit.Verify(filepath.Join(data, "audit"), mustVerifier(t, data), "test.ward/audit"); err != nil {
		t.Fatal(err)
	}
}

func mustVerifier(t *testing.T, data string) interface {
	Name() string
	KeyHash() uint32
	Verify(msg, sig []byte) bool
} {
	t.Helper()
	v, _, err := server.AuditVerifier(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
