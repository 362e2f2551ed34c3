package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/redact"
)

// Secrets the recording tests send and receive; none may reach the log.
const (
	password  = "hunter2"
	awsKey    = "AKIAABCDEFGHIJKLMNOP"
	ghToken   = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	promptPin = "correct-horse-battery"
)

// mailServer offers tools that take any arguments, one of which answers
// with a secret, a prompt and a resource.
func mailServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mail", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "send", Description: "Send mail."}, func(ctx context.Context, req *mcp.CallToolRequest, in map[string]any) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sent"}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "lookup", Description: "Look up."}, func(ctx context.Context, req *mcp.CallToolRequest, in map[string]any) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "found token " + ghToken + " for bob"}}}, nil, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "login", Arguments: []*mcp.PromptArgument{{Name: "user"}, {Name: "password"}}}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "log in as " + req.Params.Arguments["user"]}}}}, nil
	})
	s.AddResource(&mcp.Resource{URI: "mail://config", Name: "config"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "smtp://app:" + promptPin + "@smtp.example.com"}}}, nil
	})
	return s
}

// recordFixture is a fixture whose gateway fronts mailServer with a guard
// that records as rec says, everything permitted.
func recordFixture(t *testing.T, rec enforce.Record) (*fixture, *gateway.Caller) {
	t.Helper()
	f := newFixture(t, enforce.PinTrustOnFirstUse)
	set, err := policy.Parse(map[string][]byte{"all.cedar": []byte(`permit (principal, action, resource);`)})
	if err != nil {
		t.Fatal(err)
	}
	f.guard, err = enforce.New(enforce.Config{Policies: func() *policy.Set { return set }, Pins: f.st, Audit: f.log, Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	f.g, err = gateway.New(gateway.Config{Guard: f.guard, Upstreams: []gateway.Upstream{gateway.InProcess("mail", mailServer)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.g.Close)
	c := *caller
	c.Scope = grant.Scope{Tools: []string{"mail.*"}, Prompts: []string{"mail.*"}, Resources: []string{"mail://*"}}
	return f, &c
}

func newRedactor(t *testing.T, rules ...redact.Rule) *redact.Redactor {
	t.Helper()
	r, err := redact.New(redact.Config{Rules: rules, Salt: []byte("test salt, sixteen bytes or more")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// recorded returns the data of the audit events of type typ, in order.
func recorded(t *testing.T, log *audit.Log, typ string) []map[string]json.RawMessage {
	t.Helper()
	events, err := log.Read(0, log.Size())
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]json.RawMessage
	for _, e := range events {
		if e.Type != typ {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(e.Data, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// logBytes closes f's audit log and returns its files as stored.
func logBytes(t *testing.T, f *fixture) []byte {
	t.Helper()
	if err := f.log.Close(); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, name := range []string{"entries", "checkpoints"} {
		b, err := os.ReadFile(filepath.Join(f.logDir, name))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return s
}

// TestRecordRedacted: arguments and configured results are recorded with
// secrets replaced by their markers, per-tool rules apply to their tool
// only, and no secret reaches the log's files.
func TestRecordRedacted(t *testing.T) {
	r := newRedactor(t, redact.Rule{Tool: "mail.send", Path: "subject"})
	f, c := recordFixture(t, enforce.Record{Arguments: true, Results: []string{"mail.lookup", "mail://*"}, Redactor: r})
	cs := f.connect(c)
	ctx := context.Background()
	args := map[string]any{"to": "bob@example.com", "password": password, "note": "key " + awsKey, "subject": "s1"}
	if _, err := call(cs, "mail.send", args); err != nil {
		t.Fatal(err)
	}
	if _, err := call(cs, "mail.lookup", map[string]any{"subject": "s2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "mail.login", Arguments: map[string]string{"user": "bob", "password": promptPin}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mail://config"}); err != nil {
		t.Fatal(err)
	}

	decisions, results := recorded(t, f.log, "decision"), recorded(t, f.log, "result")
	if len(decisions) != 4 || len(results) != 4 {
		t.Fatalf("%d decisions and %d results recorded, want 4 each", len(decisions), len(results))
	}
	// mail.send: arguments recorded, secrets and the per-tool path redacted.
	var got map[string]string
	if err := json.Unmarshal(decisions[0]["arguments"], &got); err != nil {
		t.Fatalf("arguments %s: %v", decisions[0]["arguments"], err)
	}
	want := map[string]string{"to": "bob@example.com", "password": r.Hash([]byte(password)), "note": "key " + r.Hash([]byte(awsKey)), "subject": r.Hash([]byte("s1"))}
	if !maps.Equal(got, want) {
		t.Errorf("mail.send arguments recorded as %v, want %v", got, want)
	}
	var paths []string
	_ = json.Unmarshal(decisions[0]["redacted"], &paths)
	if !slices.Equal(paths, []string{"note", "password", "subject"}) {
		t.Errorf("redacted paths %v", paths)
	}
	if len(str(t, decisions[0]["arguments_sha256"])) != 64 {
		t.Errorf("arguments digest missing: %s", decisions[0]["arguments_sha256"])
	}
	if _, ok := results[0]["result"]; ok {
		t.Errorf("result of mail.send recorded though not configured: %s", results[0]["result"])
	}
	// mail.lookup: the mail.send rule does not apply; its result is recorded,
	// the token in it redacted.
	if a := string(decisions[1]["arguments"]); a != `{"subject":"s2"}` {
		t.Errorf("mail.lookup arguments recorded as %s", a)
	}
	var res mcp.CallToolResult
	if err := json.Unmarshal(results[1]["result"], &res); err != nil || len(res.Content) != 1 {
		t.Fatalf("mail.lookup result recorded as %s: %v", results[1]["result"], err)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; text != "found token "+r.Hash([]byte(ghToken))+" for bob" {
		t.Errorf("mail.lookup result text recorded as %q", text)
	}
	if p := string(results[1]["redacted"]); p != `["content.0.text"]` {
		t.Errorf("result redacted paths %s", p)
	}
	// prompts/get: its arguments are recorded and redacted like a tool's.
	got = nil
	if err := json.Unmarshal(decisions[2]["arguments"], &got); err != nil || !maps.Equal(got, map[string]string{"user": "bob", "password": r.Hash([]byte(promptPin))}) {
		t.Errorf("prompt arguments recorded as %s (%v)", decisions[2]["arguments"], err)
	}
	if _, ok := results[2]["result"]; ok {
		t.Errorf("prompt result recorded though not configured")
	}
	// resources/read: matched by URI; the password in the URL is redacted.
	if !strings.Contains(string(results[3]["result"]), `smtp://app:`+r.Hash([]byte(promptPin))+`@smtp.example.com`) {
		t.Errorf("resource result recorded as %s", results[3]["result"])
	}

	raw := logBytes(t, f)
	for _, secret := range []string{password, awsKey, ghToken, promptPin} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the audit log's files hold %q", secret)
		}
	}
	if !bytes.Contains(raw, []byte("bob@example.com")) {
		t.Error("the recorded arguments are not in the log's files")
	}
}

// TestRecordLimits: arguments over MaxBytes, and what is not JSON the
// redactor accepts, are recorded by digest only, saying why.
func TestRecordLimits(t *testing.T) {
	r := newRedactor(t)
	f, c := recordFixture(t, enforce.Record{Arguments: true, Results: []string{"mail.*"}, Redactor: r, MaxBytes: 100})
	cs := f.connect(c)
	if _, err := call(cs, "mail.send", map[string]any{"body": strings.Repeat("x", 200), "password": password}); err != nil {
		t.Fatal(err)
	}
	// Short arguments whose redacted form is longer than MaxBytes.
	if _, err := call(cs, "mail.send", map[string]any{"password": password, "token": "t"}); err != nil {
		t.Fatal(err)
	}
	decisions, results := recorded(t, f.log, "decision"), recorded(t, f.log, "result")
	for i, want := range []string{"bytes, more than the 100 recorded", "bytes once redacted, more than the 100 recorded"} {
		d := decisions[i]
		if _, ok := d["arguments"]; ok {
			t.Errorf("call %d: oversize arguments recorded: %s", i, d["arguments"])
		}
		if why := str(t, d["arguments_omitted"]); !strings.Contains(why, want) {
			t.Errorf("call %d: arguments_omitted = %q, want %q", i, why, want)
		}
		if len(str(t, d["arguments_sha256"])) != 64 {
			t.Errorf("call %d: digest missing", i)
		}
		// The results ("sent") are small enough.
		if _, ok := results[i]["result"]; !ok {
			t.Errorf("call %d: result not recorded: %s", i, results[i])
		}
	}
	if bytes.Contains(logBytes(t, f), []byte(password)) {
		t.Error("the audit log's files hold the password")
	}
}

// TestRecordOff: without Record, arguments and results are recorded by
// digest only, as they always were.
func TestRecordOff(t *testing.T) {
	f, c := recordFixture(t, enforce.Record{})
	cs := f.connect(c)
	if _, err := call(cs, "mail.lookup", map[string]any{"password": password, "to": "bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	d, res := recorded(t, f.log, "decision")[0], recorded(t, f.log, "result")[0]
	for _, k := range []string{"arguments", "arguments_omitted", "redacted"} {
		if _, ok := d[k]; ok {
			t.Errorf("decision records %q: %s", k, d[k])
		}
	}
	for _, k := range []string{"result", "result_omitted", "redacted"} {
		if _, ok := res[k]; ok {
			t.Errorf("result records %q: %s", k, res[k])
		}
	}
	if len(str(t, d["arguments_sha256"])) != 64 || len(str(t, res["result_sha256"])) != 64 {
		t.Errorf("digests missing: %s %s", d["arguments_sha256"], res["result_sha256"])
	}
	raw := logBytes(t, f)
	for _, s := range []string{password, "bob@example.com", ghToken} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the audit log's files hold %q", s)
		}
	}
}

func TestNewLocalRecordConfig(t *testing.T) {
	f := newFixture(t, enforce.PinTrustOnFirstUse)
	r := newRedactor(t)
	set := func() *policy.Set { return nil }
	for _, tc := range []struct {
		name string
		rec  enforce.Record
		want string // "" for valid
	}{
		{"arguments without a redactor", enforce.Record{Arguments: true}, "needs a redactor"},
		{"results without a redactor", enforce.Record{Results: []string{"mail.*"}}, "needs a redactor"},
		{"star inside a pattern", enforce.Record{Results: []string{"mail.*.x"}, Redactor: r}, `pattern "mail.*.x"`},
		{"empty pattern", enforce.Record{Results: []string{""}, Redactor: r}, `pattern ""`},
		{"negative size", enforce.Record{Arguments: true, Redactor: r, MaxBytes: -1}, "negative record size limit"},
		{"redactor alone records nothing", enforce.Record{Redactor: r}, ""},
		{"valid", enforce.Record{Arguments: true, Results: []string{"mail.send", "file:///*"}, Redactor: r, MaxBytes: 1 << 10}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := enforce.New(enforce.Config{Policies: set, Pins: f.st, Audit: f.log, Record: tc.rec})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("NewLocal = %v, want %q", err, tc.want)
			}
		})
	}
}
