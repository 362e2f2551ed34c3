package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// repoRoot is the module root, for testdata shared by packages.
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// npmServer returns the argv that runs one of the real MCP servers installed
// by `make test` under testdata/npm, or skips if they are not installed.
func npmServer(t testing.TB, pkg string, args ...string) []string {
	t.Helper()
	js := filepath.Join(repoRoot(t), "testdata", "npm", "node_modules", "@modelcontextprotocol", pkg, "dist", "index.js")
	if _, err := os.Stat(js); err != nil {
		if os.Getenv("WARD_REQUIRE_NPM") != "" {
			t.Fatalf("%s is not installed (run make test): %v", pkg, err)
		}
		t.Skipf("%s is not installed; `make test` installs it", pkg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	return append([]string{node, js}, args...)
}

// testNode is a ward node serving on loopback for one test.
type testNode struct {
	*server.Node
	t     testing.TB
	url   string
	admin string
	pool  *x509.CertPool
	data  string
}

func startNode(t testing.TB, cfg server.Config) *testNode {
	t.Helper()
	if cfg.Data == "" {
		cfg.Data = t.TempDir()
	}
	cfg.Addr = "127.0.0.1:0"
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "test.ward"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx := context.Background()
	n, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	if err := n.Listen(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		n.Close()
		<-done
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.CA.BundlePEM())
	return &testNode{Node: n, t: t, url: n.URL(), admin: n.AdminCredential, pool: pool, data: cfg.Data}
}

func (n *testNode) tlsClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool}}}
}

// call does a JSON API request with a bearer credential ("" for none) and
// returns the status and body.
func (n *testNode) call(token, method, path string, body any) (int, []byte) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.tlsClient().Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must does an admin API call that must succeed and decodes the answer.
func (n *testNode) must(method, path string, body, out any) {
	n.t.Helper()
	status, b := n.call(n.admin, method, path, body)
	if status >= 300 {
		n.t.Fatalf("%s %s: HTTP %d: %s", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			n.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// setupAgent registers sponsor "acme" (if needed; its ceiling is
// everything, hosts included) and an agent.
func (n *testNode) setupAgent(name string, groups []string, ceiling map[string][]string) {
	n.t.Helper()
	if status, _ := n.call(n.admin, "GET", "/v1/agents/"+name, nil); status == http.StatusOK {
		return
	}
	status, b := n.call(n.admin, "POST", "/v1/sponsors", map[string]any{"name": "acme", "kind": "platform",
		"ceiling": map[string][]string{"tools": {"*"}, "resources": {"*"}, "prompts": {"*"}, "hosts": {"*"}}})
	if status != http.StatusCreated && status != http.StatusConflict {
		n.t.Fatalf("create sponsor: %d %s", status, b)
	}
	n.must("POST", "/v1/agents", map[string]any{"name": name, "sponsor": "acme", "groups": groups, "ceiling": ceiling}, nil)
}

// startSession starts a session the way the CLI does: the key is made here.
func (n *testNode) startSession(agent, objective string, scope map[string][]string, ttl string) (*sessioncred.Credentials, api.IssuedView) {
	n.t.Helper()
	key, err := sessioncred.NewKey()
	if err != nil {
		n.t.Fatal(err)
	}
	csr, err := sessioncred.CSR(key)
	if err != nil {
		n.t.Fatal(err)
	}
	req := map[string]any{"agent": agent, "objective": objective, "csr": base64.RawURLEncoding.EncodeToString(csr)}
	if scope != nil {
		req["scope"] = scope
	}
	if ttl != "" {
		req["ttl"] = ttl
	}
	var v api.IssuedView
	n.must("POST", "/v1/sessions", req, &v)
	return n.credentials(key, v), v
}

// startSessionWith starts a session from a raw request body (the key's CSR
// is added).
func (n *testNode) startSessionWith(key *ecdsa.PrivateKey, req map[string]any) api.IssuedView {
	n.t.Helper()
	csr, err := sessioncred.CSR(key)
	if err != nil {
		n.t.Fatal(err)
	}
	req["csr"] = base64.RawURLEncoding.EncodeToString(csr)
	var v api.IssuedView
	n.must("POST", "/v1/sessions", req, &v)
	return v
}

func sessioncredKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := sessioncred.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (n *testNode) credentials(key *ecdsa.PrivateKey, v api.IssuedView) *sessioncred.Credentials {
	n.t.Helper()
	chain, err := sessioncred.ParseCertificates([]byte(v.X509SVID))
	if err != nil {
		n.t.Fatalf("svid: %v", err)
	}
	c := &sessioncred.Credentials{
		Info: sessioncred.Info{Session: v.Session, SPIFFEID: v.SPIFFEID, Agent: v.Agent, Server: n.url, Expires: v.Expires},
		Key:  key, SVID: chain, Bundle: n.pool, Grant: v.Grant, JWTSVID: v.JWTSVID,
	}
	return c
}

// connect opens an MCP client session through the gateway.
func (n *testNode) connect(t testing.TB, hc *http.Client, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "ward-test", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: n.url + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func toolNames(tools []*mcp.Tool) map[string]bool {
	m := map[string]bool{}
	for _, t := range tools {
		m[t.Name] = true
	}
	return m
}

func textOf(r *mcp.CallToolResult) string {
	var s string
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			s += tc.Text
		}
	}
	return s
}

var _ = fmt.Sprintf

// tlogWriter sends the node's log to the test log.
type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startSessionWithTags starts a session declaring objective tags.
func (n *testNode) startSessionWithTags(agent, objective string, tags []string) (*sessioncred.Credentials, api.IssuedView) {
	n.t.Helper()
	key := sessioncredKey(n.t)
	v := n.startSessionWith(key, map[string]any{"agent": agent, "objective": objective, "objective_tags": tags})
	return n.credentials(key, v), v
}
