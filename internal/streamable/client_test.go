package streamable

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// collect reads messages until the response with id arrives and returns
// the messages read before it and the response.
func collect(t *testing.T, ctx context.Context, cc *ClientConn, id jsonrpc.ID) ([]jsonrpc.Message, *jsonrpc.Response) {
	t.Helper()
	var before []jsonrpc.Message
	for {
		m, err := cc.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if r, ok := m.(*jsonrpc.Response); ok && r.ID == id {
			return before, r
		}
		before = append(before, m)
	}
}

func TestClientConnAgainstGoSDKServer(t *testing.T) {
	server := mcp.NewServer(&mcp.Implementation{Name: "sdk-server", Version: "1.0.0"}, nil)
	type args struct {
		Steps int `json:"steps"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "work", Description: "works with progress"},
		func(ctx context.Context, req *mcp.CallToolRequest, in args) (*mcp.CallToolResult, any, error) {
			for i := 1; i <= in.Steps; i++ {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: req.Params.GetProgressToken(), Progress: float64(i), Total: float64(in.Steps),
				}); err != nil {
					return nil, nil, err
				}
			}
			if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "work", Data: "worked"}); err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("did %d steps", in.Steps)}}}, nil, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := Dial(ctx, ClientConfig{URL: srv.URL, Header: http.Header{"X-Upstream-Token": {"secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	init := roundTrip(t, ctx, cc, "initialize", 1, nil)
	if !strings.Contains(string(init.Result), `"sdk-server"`) {
		t.Fatalf("initialize result %s", init.Result)
	}
	if cc.SessionID() == "" {
		t.Fatal("no session id recorded")
	}
	if cc.ProtocolVersion() != "2025-11-25" {
		t.Fatalf("protocol version %q", cc.ProtocolVersion())
	}
	roundTrip(t, ctx, cc, "logging/setLevel", 2, json.RawMessage(`{"level":"debug"}`))
	list := roundTrip(t, ctx, cc, "tools/list", 3, nil)
	if !strings.Contains(string(list.Result), `"work"`) {
		t.Fatalf("tools/list result %s", list.Result)
	}

	if err := cc.Write(ctx, &jsonrpc.Request{ID: mustID(4), Method: "tools/call",
		Params: json.RawMessage(`{"name":"work","arguments":{"steps":3},"_meta":{"progressToken":"pt"}}`)}); err != nil {
		t.Fatal(err)
	}
	before, resp := collect(t, ctx, cc, mustID(4))
	if resp.Error != nil || !strings.Contains(string(resp.Result), "did 3 steps") {
		t.Fatalf("tools/call response %s %v", resp.Result, resp.Error)
	}
	var progress []string
	logged := false
	for _, m := range before {
		req, ok := m.(*jsonrpc.Request)
		if !ok {
			t.Fatalf("unexpected message %T", m)
		}
		switch req.Method {
		case "notifications/progress":
			var p struct {
				Token    string  `json:"progressToken"`
				Progress float64 `json:"progress"`
			}
			_ = json.Unmarshal(req.Params, &p)
			progress = append(progress, fmt.Sprintf("%s:%v", p.Token, p.Progress))
		case "notifications/message":
			logged = strings.Contains(string(req.Params), `"worked"`)
		}
	}
	if strings.Join(progress, ",") != "pt:1,pt:2,pt:3" {
		t.Errorf("progress = %v", progress)
	}
	if !logged {
		t.Error("log notification not received")
	}

	// A server→client notification not tied to a request arrives on the
	// standalone GET stream.
	var ss *mcp.ServerSession
	for s := range server.Sessions() {
		ss = s
	}
	if ss == nil {
		t.Fatal("no server session")
	}
	if err := ss.Log(ctx, &mcp.LoggingMessageParams{Level: "warning", Logger: "bg", Data: "standalone"}); err != nil {
		t.Fatal(err)
	}
	m, err := cc.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if req, ok := m.(*jsonrpc.Request); !ok || req.Method != "notifications/message" || !strings.Contains(string(req.Params), "standalone") {
		t.Fatalf("standalone message %+v", m)
	}

	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := cc.Read(ctx); err == nil {
		t.Fatal("Read after Close succeeded")
	}
	if err := cc.Write(ctx, &jsonrpc.Request{Method: "notifications/x"}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestClientConnErrors(t *testing.T) {
	ts := newTestServer(t, HandlerConfig{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := Dial(ctx, ClientConfig{URL: "ftp://example.com"}); err == nil {
		t.Error("Dial accepted a non-http URL")
	}

	// Open refusing: Write fails with the status and the body excerpt.
	denied, err := Dial(ctx, ClientConfig{URL: ts.srv.URL, Header: http.Header{"X-Deny": {"1"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = denied.Write(ctx, &jsonrpc.Request{ID: mustID(1), Method: "initialize", Params: json.RawMessage(`{}`)})
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || !strings.Contains(he.Excerpt, "denied by test") {
		t.Fatalf("denied Write = %v", err)
	}
	denied.Close()

	// The session ends on the server: the next Write gets 404 and Read
	// reports ErrSessionExpired.
	cc, err := Dial(ctx, ClientConfig{URL: ts.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	roundTrip(t, ctx, cc, "initialize", 1, nil)
	ts.session(t, 0).s.Close()
	err = cc.Write(ctx, &jsonrpc.Request{ID: mustID(2), Method: "tools/list"})
	if !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("Write on expired session = %v", err)
	}
	if _, err := cc.Read(ctx); !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("Read on expired session = %v", err)
	}
}

func TestClientConnAgainstServerEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed; skipping the server-everything interop test")
	}
	entry, _ := filepath.Abs("../../testdata/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if _, err := os.Stat(entry); err != nil {
		t.Skipf("@modelcontextprotocol/server-everything not installed at %s; skipping", entry)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, entry, "streamableHttp")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "listening on port") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("server-everything did not start")
	}

	cc, err := Dial(ctx, ClientConfig{URL: fmt.Sprintf("http://127.0.0.1:%d/mcp", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	init := roundTrip(t, ctx, cc, "initialize", 1, nil)
	if !strings.Contains(string(init.Result), `"protocolVersion"`) || cc.SessionID() == "" {
		t.Fatalf("initialize: %s (session %q)", init.Result, cc.SessionID())
	}
	list := roundTrip(t, ctx, cc, "tools/list", 2, nil)
	if !strings.Contains(string(list.Result), `"echo"`) {
		t.Fatalf("tools/list has no echo tool: %s", list.Result)
	}
	echo := roundTrip(t, ctx, cc, "tools/call", 3, json.RawMessage(`{"name":"echo","arguments":{"message":"hello ward"}}`))
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(echo.Result, &res); err != nil || len(res.Content) == 0 || !strings.Contains(res.Content[0].Text, "hello ward") {
		t.Fatalf("echo result %s", echo.Result)
	}
}
