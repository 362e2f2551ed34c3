package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// everythingPolicy allows everything on the "every" servers except the tool
// that dumps the server's environment.
const everythingPolicy = `
@id("everything-allowed")
permit (principal, action, resource in Server::"every");

@id("everything-over-http-allowed")
permit (principal, action, resource in Server::"everyhttp");

@id("no-env-dump")
forbid (principal, action == Action::"call_tool", resource)
when { resource in [Tool::"every.get-env", Tool::"everyhttp.get-env"] };
`

// startEverythingHTTP runs the real server-everything in Streamable HTTP mode
// on a free loopback port and returns its endpoint.
func startEverythingHTTP(t *testing.T) string {
	t.Helper()
	argv := npmServer(t, "server-everything", "streamableHttp")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			c.Close()
			return endpoint
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("server-everything did not start listening")
	return ""
}

// recorder collects what the server sends to the client.
type recorder struct {
	mu       sync.Mutex
	progress []float64
	logs     []string
	updated  []string
	sampled  []string
	elicited []string
}

func (r *recorder) options() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			var prompt string
			if len(req.Params.Messages) > 0 {
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					prompt = tc.Text
				}
			}
			r.sampled = append(r.sampled, prompt)
			return &mcp.CreateMessageResult{Model: "test-model", Role: "assistant", Content: &mcp.TextContent{Text: "sampled-by-the-client"}}, nil
		},
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.elicited = append(r.elicited, req.Params.Message)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada Lovelace", "check": true}}, nil
		},
		ProgressNotificationHandler: func(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.progress = append(r.progress, req.Params.Progress)
		},
		LoggingMessageHandler: func(ctx context.Context, req *mcp.LoggingMessageRequest) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.logs = append(r.logs, fmt.Sprint(req.Params.Data))
		},
		ResourceUpdatedHandler: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.updated = append(r.updated, req.Params.URI)
		},
	}
}

func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func everythingNode(t *testing.T, extra ...server.Upstream) *testNode {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "every.cedar"), []byte(everythingPolicy), 0o600)
	ups := append([]server.Upstream{{Name: "every", Command: npmServer(t, "server-everything", "stdio")}}, extra...)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: ups})
	n.setupAgent("explorer", nil, map[string][]string{"tools": {"*"}, "resources": {"*"}, "prompts": {"*"}})
	return n
}

// directEverything connects the SDK client straight to server-everything,
// for comparison with what comes through the gateway.
func directEverything(t *testing.T) *mcp.ClientSession {
	argv := npmServer(t, "server-everything", "stdio")
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "direct", Version: "1"}, nil).
		Connect(ctxT(t), &mcp.CommandTransport{Command: exec.Command(argv[0], argv[1:]...)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestWholeProtocolThroughGateway exercises tools, resources, templates,
// subscriptions, prompts, completion, logging, progress, sampling and
// elicitation against the real server-everything, through the gateway over
// Streamable HTTP, and again through the session sidecar.
func TestWholeProtocolThroughGateway(t *testing.T) {
	n := everythingNode(t)
	direct := directEverything(t)
	paths := []struct {
		name    string
		connect func(t *testing.T, opts *mcp.ClientOptions) *mcp.ClientSession
	}{
		{"gateway", func(t *testing.T, opts *mcp.ClientOptions) *mcp.ClientSession {
			creds, _ := n.startSession("explorer", "explore the protocol", nil, "")
			return n.connect(t, creds.HTTPClient(false), opts)
		}},
		{"sidecar", func(t *testing.T, opts *mcp.ClientOptions) *mcp.ClientSession {
			creds, _ := n.startSession("explorer", "explore through the sidecar", nil, "")
			return sidecarClient(t, n, creds, opts)
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			rec := &recorder{}
			cs := p.connect(t, rec.options())
			exerciseEverything(t, cs, direct, rec, "every")
		})
	}
}

// TestHTTPUpstream: the gateway reaches an upstream over Streamable HTTP.
func TestHTTPUpstream(t *testing.T) {
	endpoint := startEverythingHTTP(t)
	n := everythingNode(t, server.Upstream{Name: "everyhttp", URL: endpoint})
	creds, _ := n.startSession("explorer", "use both upstreams", nil, "")
	rec := &recorder{}
	cs := n.connect(t, creds.HTTPClient(false), rec.options())
	ctx := ctxT(t)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everyhttp.echo", Arguments: map[string]any{"message": "over http"}})
	if err != nil || !strings.Contains(textOf(res), "over http") {
		t.Fatalf("echo over the HTTP upstream: %v %v", err, res)
	}
	progressTok := "http-progress"
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "everyhttp.trigger-long-running-operation",
		Arguments: map[string]any{"duration": 1, "steps": 3}, Meta: mcp.Meta{"progressToken": progressTok}})
	if err != nil || res.IsError {
		t.Fatalf("long-running over HTTP: %v", err)
	}
	rec.waitFor(t, "progress over the HTTP upstream", func() bool { return len(rec.progress) >= 3 })
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everyhttp.get-env", Arguments: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "no-env-dump") {
		t.Fatalf("get-env over HTTP: %v", err)
	}
}

func sidecarClient(t *testing.T, n *testNode, creds *sessioncred.Credentials, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	target, _ := url.Parse(n.url + "/mcp")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv := httptest.NewUnstartedServer(sessioncred.Sidecar(target, creds.HTTPClient(false).Transport, port))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	// DNS rebinding: another Host or a foreign Origin is refused.
	for _, hdr := range []map[string]string{{"Host": "evil.example:80"}, {"Origin": "http://evil.example"}} {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/mcp", port), strings.NewReader(initBody))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("sidecar accepted %v: %d", hdr, resp.StatusCode)
		}
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "sidecar-client", Version: "1"}, opts).
		Connect(ctxT(t), &mcp.StreamableClientTransport{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/mcp", port)}, nil)
	if err != nil {
		t.Fatalf("connect through the sidecar: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func exerciseEverything(t *testing.T, cs, direct *mcp.ClientSession, rec *recorder, srv string) {
	ctx := ctxT(t)
	tool := func(name string) string { return srv + "." + name }

	// Tools, including those server-everything registers only for clients
	// that declared sampling and elicitation.
	var names map[string]bool
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		names = toolNames(res.Tools)
		// One upstream: its tools are listed under their own names.
		if names["trigger-sampling-request"] && names["trigger-elicitation-request"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"echo", "get-tiny-image", "trigger-long-running-operation", "trigger-sampling-request", "trigger-elicitation-request"} {
		if !names[want] {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	if names["get-env"] || names[tool("get-env")] {
		t.Error("tools/list shows get-env, which policy forbids outright")
	}

	// Content must come through byte-for-byte as the server sent it.
	viaGW, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool("get-tiny-image"), Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	viaDirect, err := direct.CallTool(ctx, &mcp.CallToolParams{Name: "get-tiny-image", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(viaGW)
	b, _ := json.Marshal(viaDirect)
	if string(a) != string(b) {
		t.Fatalf("image result differs through the gateway:\n gw: %.300s\n direct: %.300s", a, b)
	}
	var sawImage bool
	for _, c := range viaGW.Content {
		if img, ok := c.(*mcp.ImageContent); ok && len(img.Data) > 0 && img.MIMEType == "image/png" {
			sawImage = true
		}
	}
	if !sawImage {
		t.Fatal("no image content came through")
	}

	// Progress notifications reach the client.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool("trigger-long-running-operation"),
		Arguments: map[string]any{"duration": 1, "steps": 3}, Meta: mcp.Meta{"progressToken": "tok-" + t.Name()}})
	if err != nil || res.IsError {
		t.Fatalf("long-running operation: %v %v", err, res)
	}
	rec.waitFor(t, "3 progress notifications", func() bool { return len(rec.progress) >= 3 })

	// Sampling: the server asks the client's model, through the gateway.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: tool("trigger-sampling-request"), Arguments: map[string]any{"prompt": "say hi", "maxTokens": 10}})
	if err != nil || !strings.Contains(textOf(res), "sampled-by-the-client") {
		t.Fatalf("sampling round trip: %v %q", err, textOf(res))
	}

	// Elicitation: the server asks the user, through the gateway.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: tool("trigger-elicitation-request"), Arguments: map[string]any{}})
	if err != nil || !strings.Contains(textOf(res), "Ada Lovelace") {
		t.Fatalf("elicitation round trip: %v %q", err, textOf(res))
	}

	// Resources: list, read, templates, read through a template, subscribe.
	rl, err := cs.ListResources(ctx, nil)
	if err != nil || len(rl.Resources) == 0 {
		t.Fatalf("resources/list: %v", err)
	}
	first := rl.Resources[0].URI
	got, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: first})
	if err != nil {
		t.Fatalf("resources/read %s: %v", first, err)
	}
	want, err := direct.ReadResource(ctx, &mcp.ReadResourceParams{URI: first})
	if err != nil {
		t.Fatal(err)
	}
	a, _ = json.Marshal(got)
	b, _ = json.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("resource %s differs through the gateway", first)
	}
	tl, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(tl.ResourceTemplates) == 0 {
		t.Fatalf("resources/templates/list: %v", err)
	}
	dyn := "demo://resource/dynamic/text/7"
	if r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: dyn}); err != nil || len(r.Contents) == 0 {
		t.Fatalf("read through a template: %v", err)
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: first}); err != nil {
		t.Fatalf("resources/subscribe: %v", err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool("toggle-subscriber-updates"), Arguments: map[string]any{}}); err != nil {
		t.Fatalf("toggle-subscriber-updates: %v", err)
	}
	rec.waitFor(t, "a resource update notification", func() bool { return len(rec.updated) > 0 })

	// Prompts and completion.
	pl, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var prompts []string
	for _, p := range pl.Prompts {
		prompts = append(prompts, p.Name)
	}
	if !strings.Contains(","+strings.Join(prompts, ",")+",", ",simple-prompt,") {
		t.Fatalf("prompts/list = %v", prompts)
	}
	gp, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "args-prompt", Arguments: map[string]string{"city": "Paris", "state": "TX"}})
	if err != nil || len(gp.Messages) == 0 {
		t.Fatalf("prompts/get: %v", err)
	}
	comp, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "completable-prompt"},
		Argument: mcp.CompleteParamsArgument{Name: "department", Value: "Eng"}})
	if err != nil || len(comp.Completion.Values) == 0 || comp.Completion.Values[0] != "Engineering" {
		t.Fatalf("completion/complete: %v %+v", err, comp)
	}

	// Logging: level set, simulated log messages arrive.
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatalf("logging/setLevel: %v", err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool("toggle-simulated-logging"), Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "a log message", func() bool { return len(rec.logs) > 0 })

	// And the policy still holds on this server.
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool("get-env"), Arguments: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "no-env-dump") {
		t.Fatalf("get-env: %v", err)
	}
}
