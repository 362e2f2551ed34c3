package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// Real durations of the end-to-end stream tests: a tool call longer than
// the 30 s write deadline that used to reset every stream (and than the
// sidecar's 30 s body deadline), and an idle standalone stream spanning
// several keep-alive intervals and two such deadlines. The mechanism is proven quickly, with shrunk knobs, by
// internal/streamable's TestStreamsOutliveWriteTimeout; these prove that
// the node as assembled keeps its promise at the durations users hit.
const (
	longCallDuration   = 40 * time.Second
	idleStreamDuration = 60 * time.Second
)

// countingTransport counts the GET requests a client sends: a stream that
// drops is resumed with GET and Last-Event-ID, so on loopback every GET
// beyond the standalone stream's own is a stream ward dropped.
type countingTransport struct {
	base    http.RoundTripper
	gets    atomic.Int32
	resumes atomic.Int32

	want string // the protocol every answer must come over

	mu     sync.Mutex
	protos map[string]bool
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		c.gets.Add(1)
		if r.Header.Get("Last-Event-ID") != "" {
			c.resumes.Add(1)
		}
	}
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.protos[resp.Proto] = true
		c.mu.Unlock()
	}
	return resp, err
}

// checkProtocol marks the test failed unless every answer came over the
// protocol wanted.
func (c *countingTransport) checkProtocol(t *testing.T) bool {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.protos) != 1 || !c.protos[c.want] {
		t.Errorf("answers came over %v, want %s only", c.protos, c.want)
		return false
	}
	return true
}

// slowUpstream is an MCP server (the official Go SDK's) over Streamable
// HTTP on loopback with a tool "wait" that answers after its "seconds"
// argument, and a way to log to the sessions connected to it.
type slowUpstream struct {
	srv *mcp.Server
	url string

	mu       sync.Mutex
	sessions []*mcp.ServerSession
}

func startSlowUpstream(t *testing.T) *slowUpstream {
	t.Helper()
	u := &slowUpstream{}
	u.srv = mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1"}, &mcp.ServerOptions{
		InitializedHandler: func(_ context.Context, req *mcp.InitializedRequest) {
			u.mu.Lock()
			u.sessions = append(u.sessions, req.Session)
			u.mu.Unlock()
		},
	})
	type waitArgs struct {
		Seconds float64 `json:"seconds"`
	}
	mcp.AddTool(u.srv, &mcp.Tool{Name: "wait", Description: "answers after the given number of seconds"},
		func(ctx context.Context, _ *mcp.CallToolRequest, a waitArgs) (*mcp.CallToolResult, any, error) {
			t := time.NewTimer(time.Duration(a.Seconds * float64(time.Second)))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "waited"}}}, nil, nil
		})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return u.srv }, nil))
	t.Cleanup(func() { hs.CloseClientConnections(); hs.Close() })
	u.url = hs.URL
	return u
}

// logAll sends a log message to every session of the upstream.
func (u *slowUpstream) logAll(ctx context.Context, text string) error {
	u.mu.Lock()
	ss := append([]*mcp.ServerSession(nil), u.sessions...)
	u.mu.Unlock()
	for _, s := range ss {
		if err := s.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "slow", Data: text}); err != nil {
			return err
		}
	}
	return nil
}

func slowNode(t *testing.T, up *slowUpstream) *testNode {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "slow.cedar"), []byte(`permit (principal, action, resource in Server::"slow");`), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: []server.Upstream{{Name: "slow", URL: up.url}}})
	n.setupAgent("waiter", nil, map[string][]string{"tools": {"slow.*"}})
	return n
}

// connectCounting connects the official Go SDK client to the node over
// path (a member of paths) through a transport that counts GETs.
func (n *testNode) connectCounting(t *testing.T, path, objective string, opts *mcp.ClientOptions) (*mcp.ClientSession, *countingTransport) {
	t.Helper()
	creds, _ := n.startSession("waiter", objective, nil, "")
	hc := creds.HTTPClient(false)
	endpoint, proto := n.url+"/mcp", path
	switch path {
	case "HTTP/2.0", "HTTP/1.1":
		// With its own TLS configuration a transport speaks HTTP/2 only
		// when forced to (ward's session clients keep HTTP/1.1
		// connections alive; other clients may well speak HTTP/2).
		hc.Transport.(*sessioncred.Transport).Base.(*http.Transport).ForceAttemptHTTP2 = path == "HTTP/2.0"
	case "sidecar":
		// ward mcp serve, with its bounds on slow clients, in front.
		token := sessioncred.NewToken()
		target, _ := url.Parse(endpoint)
		sc, err := sessioncred.NewSidecar(sessioncred.SidecarConfig{Target: target, Transport: hc.Transport, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := sessioncred.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sc.Serve(ctx, ln) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sidecar: %v", err)
			}
		})
		endpoint, proto = "http://"+ln.Addr().String()+"/mcp", "HTTP/1.1"
		hc = &http.Client{Transport: headerTransport{"Authorization", "Bearer " + token}}
	}
	ct := &countingTransport{base: hc.Transport, want: proto, protos: map[string]bool{}}
	hc.Transport = ct
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "ward-test", Version: "1"}, opts).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("%s: connect: %v", path, err)
	}
	t.Cleanup(func() { cs.Close() })
	if !ct.checkProtocol(t) {
		t.FailNow()
	}
	return cs, ct
}

// headerTransport adds one header to every request.
type headerTransport struct{ k, v string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.k, h.v)
	return http.DefaultTransport.RoundTrip(r)
}

// paths are the ways agents reach the node: HTTP/2 and HTTP/1.1 straight
// to it, and through the sidecar (ward mcp serve).
var paths = []string{"HTTP/2.0", "HTTP/1.1", "sidecar"}

// TestLongStreamsThroughNode: through the node, with the official Go SDK
// client (protocol 2025-11-25, with priming events), over HTTP/2, HTTP/1.1
// and the sidecar at once:
//
//   - a tool call that takes 40 s, longer than the 30 s write deadline of
//     an SSE write, is answered on the stream of its POST, which is never
//     dropped;
//   - the standalone stream of a session that does nothing for 60 s stays
//     open (pings keep it alive, no write deadline ends it) and then
//     delivers a server notification.
//
// Every stream used to be reset 30 s after its priming event. The clients
// run concurrently in one test, so it takes about 60 s of wall time and
// one slot of -parallel.
func TestLongStreamsThroughNode(t *testing.T) {
	t.Parallel()
	up := startSlowUpstream(t)
	n := slowNode(t, up)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), idleStreamDuration+2*time.Minute)
	defer cancel()

	type idler struct {
		path string
		ct   *countingTransport
		logs chan string
	}
	var idlers []idler
	for _, path := range paths {
		logs := make(chan string, 4)
		cs, ct := n.connectCounting(t, path, "stay connected", &mcp.ClientOptions{
			LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
				if s, ok := req.Params.Data.(string); ok {
					logs <- s
				}
			},
		})
		if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatalf("%s: set logging level through the node: %v", path, err)
		}
		idlers = append(idlers, idler{path, ct, logs})
	}
	expect := func(want string) {
		t.Helper()
		for _, id := range idlers {
			select {
			case got := <-id.logs:
				if got != want {
					t.Fatalf("%s: log %q, want %q", id.path, got, want)
				}
			case <-ctx.Done():
				t.Fatalf("%s: the log %q did not arrive on the standalone stream", id.path, want)
			}
		}
	}
	// The standalone streams are open once a log sent now arrives.
	if err := up.logAll(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	expect("before")

	for _, path := range paths {
		cs, ct := n.connectCounting(t, path, "wait for a slow tool", nil)
		if v := cs.InitializeResult().ProtocolVersion; v != "2025-11-25" {
			t.Fatalf("negotiated protocol %q; this test is about 2025-11-25 (priming events)", v)
		}
		wg.Go(func() {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow.wait", Arguments: map[string]any{"seconds": longCallDuration.Seconds()}})
			switch {
			case err != nil:
				t.Errorf("%s: a %v tool call through the node failed: %v", path, longCallDuration, err)
			case res.IsError || textOf(res) != "waited":
				t.Errorf("%s: a %v tool call through the node answered %+v", path, longCallDuration, res)
			}
			if r := ct.resumes.Load(); r != 0 {
				t.Errorf("%s: the client resumed %d dropped streams during a %v call; on loopback ward must drop none", path, r, longCallDuration)
			}
			ct.checkProtocol(t)
		})
	}

	idle := time.NewTimer(idleStreamDuration)
	<-idle.C
	if err := up.logAll(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	expect("after")
	for _, id := range idlers {
		if g, r := id.ct.gets.Load(), id.ct.resumes.Load(); g != 1 || r != 0 {
			t.Errorf("%s: the client sent %d GETs (%d resumes) in %v: the standalone stream was dropped; on loopback it must stay open", id.path, g, r, idleStreamDuration)
		}
		id.ct.checkProtocol(t)
	}
}
