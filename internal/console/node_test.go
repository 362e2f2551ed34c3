package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// node is a ward node serving on loopback for one test.
type node struct {
	*server.Node
	t    testing.TB
	url  string
	pool *x509.CertPool
	data string
}

func startNode(t testing.TB, cfg server.Config) *node {
	t.Helper()
	cfg.Data = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.TrustDomain = "test.ward"
	cfg.Logger = slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.Upstreams == nil {
		cfg.Upstreams = []server.Upstream{{Name: "demo", Builtin: "demo"}}
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
	return &node{Node: n, t: t, url: n.URL(), pool: pool, data: cfg.Data}
}

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// addUser creates a console account and returns its password.
func (n *node) addUser(name string, role console.Role) string {
	n.t.Helper()
	pw, err := console.AddUser(filepath.Join(n.data, filepath.FromSlash(console.UsersFile)), name, role)
	if err != nil {
		n.t.Fatal(err)
	}
	return pw
}

// admin does an API call with the bootstrap admin credential.
func (n *node) admin(method, path string, body, out any) {
	n.t.Helper()
	status, b := n.do(n.client(), method, path, body, map[string]string{"Authorization": "Bearer " + n.AdminCredential})
	if status >= 300 {
		n.t.Fatalf("%s %s: HTTP %d: %s", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			n.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// client is an HTTP client trusting the node, with a cookie jar.
func (n *node) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool}}}
}

func (n *node) do(c *http.Client, method, path string, body any, hdr map[string]string) (int, []byte) {
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
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// setupAgent registers sponsor "acme" and an agent allowed demo.*.
func (n *node) setupAgent(name string) {
	n.t.Helper()
	status, b := n.do(n.client(), "POST", "/v1/sponsors", map[string]any{"name": "acme", "kind": "platform",
		"ceiling": map[string][]string{"tools": {"*"}, "resources": {"*"}, "prompts": {"*"}, "hosts": {"*"}}},
		map[string]string{"Authorization": "Bearer " + n.AdminCredential})
	if status != http.StatusCreated && status != http.StatusConflict {
		n.t.Fatalf("create sponsor: %d %s", status, b)
	}
	n.admin("POST", "/v1/agents", map[string]any{"name": name, "sponsor": "acme", "ceiling": map[string][]string{"tools": {"demo.*"}}}, nil)
}

// startSession starts a session of agent and returns its credentials.
func (n *node) startSession(agent, objective string) *sessioncred.Credentials {
	n.t.Helper()
	key, err := sessioncred.NewKey()
	if err != nil {
		n.t.Fatal(err)
	}
	csr, err := sessioncred.CSR(key)
	if err != nil {
		n.t.Fatal(err)
	}
	var v api.IssuedView
	n.admin("POST", "/v1/sessions", map[string]any{"agent": agent, "objective": objective, "csr": base64.RawURLEncoding.EncodeToString(csr)}, &v)
	chain, err := sessioncred.ParseCertificates([]byte(v.X509SVID))
	if err != nil {
		n.t.Fatal(err)
	}
	return &sessioncred.Credentials{
		Info: sessioncred.Info{Session: v.Session, SPIFFEID: v.SPIFFEID, Agent: v.Agent, Server: n.url, Expires: v.Expires},
		Key:  key, SVID: chain, Bundle: n.pool, Grant: v.Grant, JWTSVID: v.JWTSVID,
	}
}
