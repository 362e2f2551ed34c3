package server_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// mtlsWays are the two ways a client reaches the node by mutual TLS with a
// session's X.509-SVID: one hop (the client presents the certificate
// itself) and through the session's sidecar (`ward mcp serve`'s code,
// which presents it for the client).
var mtlsWays = []struct {
	name    string
	connect func(t *testing.T, n *testNode, creds *sessioncred.Credentials) *mcp.ClientSession
}{
	{"one hop", func(t *testing.T, n *testNode, creds *sessioncred.Credentials) *mcp.ClientSession {
		return n.connect(t, creds.HTTPClient(true), nil)
	}},
	{"sidecar", func(t *testing.T, n *testNode, creds *sessioncred.Credentials) *mcp.ClientSession {
		return connectURL(t, mtlsSidecar(t, n, creds), http.DefaultClient)
	}},
}

// mtlsSidecar serves creds' sidecar on loopback, forwarding to the node by
// mutual TLS as `ward mcp serve` does, and returns its MCP URL.
func mtlsSidecar(t testing.TB, n *testNode, creds *sessioncred.Credentials) string {
	return sidecarURL(t, n, creds.MTLSTransport(nil))
}

// sidecarURL serves a sidecar on loopback that forwards to the node
// through rt, and returns its MCP URL.
func sidecarURL(t testing.TB, n *testNode, rt http.RoundTripper) string {
	t.Helper()
	target, _ := url.Parse(n.url + "/mcp")
	token := sessioncred.NewToken()
	sc, err := sessioncred.NewSidecar(sessioncred.SidecarConfig{Target: target, Transport: rt, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sc.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String() + "/mcp/" + token
}

func connectURL(t testing.TB, endpoint string, hc *http.Client) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "ward-test", Version: "1"}, nil).
		Connect(ctxT(t), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func echo(t *testing.T, cs *mcp.ClientSession, text string) error {
	t.Helper()
	r, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": text}})
	if err == nil && r.IsError {
		return fmt.Errorf("tool error: %s", textOf(r))
	}
	if err == nil && textOf(r) != text {
		t.Fatalf("echo answered %q, want %q", textOf(r), text)
	}
	return err
}

// TestMutualTLSRefusesOnTheNextCall: over mutual TLS, one hop or through
// the sidecar, on an MCP session (and a TLS connection) already open and
// used, the next call is refused once the session is ended or its agent
// quarantined (the node closes the session's MCP sessions, and checks the
// certificate's session on every request besides), and so is a new
// connection.
func TestMutualTLSRefusesOnTheNextCall(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	for _, way := range mtlsWays {
		t.Run(way.name, func(t *testing.T) {
			cases := []struct {
				name   string
				revoke func(agent string, creds *sessioncred.Credentials, v api.IssuedView) *sessioncred.Credentials
			}{
				{"session ended", func(_ string, creds *sessioncred.Credentials, v api.IssuedView) *sessioncred.Credentials {
					n.must("POST", "/v1/sessions/"+v.Session+"/end", map[string]string{"reason": "done"}, nil)
					return creds
				}},
				{"agent quarantined", func(agent string, creds *sessioncred.Credentials, _ api.IssuedView) *sessioncred.Credentials {
					n.must("POST", "/v1/agents/"+agent+"/quarantine", struct{}{}, nil)
					return creds
				}},
			}
			for i, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					agent := strings.ReplaceAll(way.name, " ", "-") + "-" + string(rune('a'+i))
					n.setupAgent(agent, nil, map[string][]string{"tools": {"demo.*"}})
					creds, v := n.startSession(agent, "echo over mTLS", nil, "")
					cs := way.connect(t, n, creds)
					if err := echo(t, cs, "first"); err != nil {
						t.Fatalf("call before: %v", err)
					}
					c.revoke(agent, creds, v)
					if err := echo(t, cs, "after"); err == nil {
						t.Fatalf("%s: the next call over the open connection went through", c.name)
					}
					// A new connection is refused too.
					if _, err := mcp.NewClient(&mcp.Implementation{Name: "x", Version: "1"}, nil).Connect(ctxT(t),
						&mcp.StreamableClientTransport{Endpoint: n.url + "/mcp", HTTPClient: creds.HTTPClient(true)}, nil); err == nil {
						t.Fatalf("%s: a new mTLS connection was accepted", c.name)
					}
				})
			}
		})
	}
}

// TestMutualTLSSubAgent: a sub-agent presenting its own X.509-SVID is held
// to its own narrowed grant, not its parent's, one hop or through its
// sidecar; ending the parent refuses the sub-agent's next call.
func TestMutualTLSSubAgent(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("planner", nil, map[string][]string{"tools": {"demo.*"}})
	for _, way := range mtlsWays {
		t.Run(way.name, func(t *testing.T) {
			parent, pv := n.startSession("planner", "plan over mTLS", map[string][]string{"tools": {"demo.echo", "demo.read_note"}}, "")
			status, out, childKey := exchange(t, n, parent, url.Values{"scope": {"tool:demo.echo"}})
			if status != http.StatusOK {
				t.Fatalf("exchange: %d %v", status, out)
			}
			var cv api.IssuedView
			if err := json.Unmarshal(out["session"], &cv); err != nil {
				t.Fatal(err)
			}
			child := n.credentials(childKey, cv)
			pcs, ccs := way.connect(t, n, parent), way.connect(t, n, child)
			ctx := ctxT(t)
			read := &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}}
			if r, err := pcs.CallTool(ctx, read); err != nil || r.IsError {
				t.Fatalf("the parent reading a note: %v %v", err, r)
			}
			tools, err := ccs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := toolNames(tools.Tools); got["read_note"] || got["demo.read_note"] {
				t.Fatalf("the sub-agent is shown %v, beyond its grant", got)
			}
			if _, err := ccs.CallTool(ctx, read); err == nil || !strings.Contains(err.Error(), "grant does not cover") {
				t.Fatalf("the sub-agent calling what only its parent's grant covers: %v", err)
			}
			if err := echo(t, ccs, "child"); err != nil {
				t.Fatalf("the sub-agent within its grant: %v", err)
			}
			n.must("POST", "/v1/sessions/"+pv.Session+"/end", map[string]string{"reason": "done"}, nil)
			if err := echo(t, ccs, "after"); err == nil {
				t.Fatal("the sub-agent's next call went through after its parent ended")
			}
		})
	}
}

// TestMutualTLSExpiredCertificate: a certificate signed by the node's own
// CA for a live session, naming the session's SPIFFE ID and key, is
// refused once it has expired (and before it is valid), and the refusal is
// recorded.
func TestMutualTLSExpiredCertificate(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	n.setupAgent("clock", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("clock", "present an expired certificate", nil, "")
	caKey, _, err := identity.LoadOrCreateECKey(filepath.Join(data, "ca", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(data, "ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caCerts, err := sessioncred.ParseCertificates(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, c := range []struct {
		name              string
		notBefore, expiry time.Time
	}{
		// Within the CA's own validity (from an hour before it was made).
		{"expired", now.Add(-30 * time.Minute), now.Add(-time.Minute)},
		{"not yet valid", now.Add(time.Hour), now.Add(2 * time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmpl := *creds.SVID[0]
			tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
			tmpl.NotBefore, tmpl.NotAfter = c.notBefore, c.expiry
			der, err := x509.CreateCertificate(rand.Reader, &tmpl, caCerts[0], &creds.Key.PublicKey, caKey)
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool,
				Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: creds.Key}}}}}
			status, body := mcpPost(t, n, hc, initBody, nil)
			if status != http.StatusUnauthorized || !strings.Contains(body, "client certificate") {
				t.Fatalf("%s certificate: %d %s, want 401 naming the client certificate", c.name, status, body)

			}
		})
	}
	// The session's own certificate still works: the refusals were the
	// certificates' validity, not the session.
	if status, body := mcpPost(t, n, creds.HTTPClient(true), initBody, nil); status != http.StatusOK {
		t.Fatalf("the session's valid certificate: %d %s", status, body)
	}
	found := 0
	for _, e := range auditEvents(t, n) {
		if strings.HasPrefix(e.Type, "refusal") && strings.Contains(string(e.Data), "client certificate") && strings.Contains(string(e.Data), creds.Session) {
			found++
		}
	}
	if found == 0 {
		t.Fatal("the refused certificates left no record")
	}
}

// TestOneHopFromCredentialFiles: the README's one-hop deployment. A
// standard MCP client (the Go SDK over net/http) given nothing but the
// files `ward session start` writes (svid.pem, key.pem, bundle.pem),
// loaded with crypto/tls, calls a tool straight on the node's /mcp.
func TestOneHopFromCredentialFiles(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("files", nil, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSession("files", "one hop from files", nil, "")
	dir := filepath.Join(t.TempDir(), "session")
	if err := sessioncred.Save(dir, creds, []byte(v.X509SVID), []byte(v.Bundle)); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("bundle.pem holds no certificate")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	cs := connectURL(t, n.url+"/mcp", hc)
	if err := echo(t, cs, "one hop"); err != nil {
		t.Fatal(err)
	}
}

// TestNodeTransportBehindTLSProxy: a sidecar (`ward mcp serve`, `ward
// run`) forwards by mutual TLS when the node sees the session's
// certificate, and falls back to DPoP when a proxy in front of the node
// terminates TLS (the node never sees the certificate): calls work either
// way, and the choice is said.
func TestNodeTransportBehindTLSProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := "https://" + ln.Addr().String()
	// The proxy passes the Host it was sent, so proofs naming it match.
	n := startNode(t, server.Config{Upstreams: demoOnly})
	cert, err := n.CA.ServerCertificate([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := url.Parse(n.url)
	rp := httputil.NewSingleHostReverseProxy(back)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool}}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	srv := &http.Server{Handler: rp, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	n.setupAgent("proxied", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("proxied", "echo behind a proxy", nil, "")
	for _, c := range []struct {
		server, how string
	}{
		{n.url, "mutual TLS"},
		{front, "DPoP"},
	} {
		rt, how, err := creds.NodeTransport(ctxT(t), c.server, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.server, err)
		}
		if !strings.HasPrefix(how, c.how) {
			t.Fatalf("%s: forwarding with %q, want %s", c.server, how, c.how)
		}
		target, _ := url.Parse(c.server + "/mcp")
		token := sessioncred.NewToken()
		sc, err := sessioncred.NewSidecar(sessioncred.SidecarConfig{Target: target, Transport: rt, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		sln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); sc.Serve(ctx, sln) }()
		t.Cleanup(func() { cancel(); <-done })
		cs := connectURL(t, "http://"+sln.Addr().String()+"/mcp/"+token, http.DefaultClient)
		if err := echo(t, cs, c.how); err != nil {
			t.Fatalf("through the sidecar with %s: %v", c.how, err)
		}
	}
	// A session the node no longer honours is refused both ways: no
	// transport is offered for it.
	n.must("POST", "/v1/sessions/"+creds.Session+"/end", map[string]string{"reason": "done"}, nil)
	if _, _, err := creds.NodeTransport(ctxT(t), n.url, nil); err == nil {
		t.Fatal("a transport was offered for an ended session")
	}
}

// TestMutualTLSSessionBoundToCertificate: an MCP session opened with one
// session's certificate cannot be used with another's, nor without one:
// every request is authenticated again, not only the first.
func TestMutualTLSSessionBoundToCertificate(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("owner", nil, map[string][]string{"tools": {"demo.*"}})
	a, _ := n.startSession("owner", "open an MCP session", nil, "")
	b, _ := n.startSession("owner", "borrow another's MCP session", nil, "")
	post := func(hc *http.Client, sid, body string) (int, string, string) {
		req, _ := http.NewRequest("POST", n.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), string(out)
	}
	status, sid, body := post(a.HTTPClient(true), "", initBody)
	if status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %q %s", status, sid, body)
	}
	if status, _, body := post(a.HTTPClient(true), sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status/100 != 2 {
		t.Fatalf("initialized: %d %s", status, body)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	for _, c := range []struct {
		name string
		hc   *http.Client
	}{
		{"another session's certificate", b.HTTPClient(true)},
		{"no certificate and no grant", n.tlsClient()},
	} {
		if status, _, body := post(c.hc, sid, list); status == http.StatusOK {
			t.Fatalf("%s used session %s's MCP session: %d %s", c.name, a.Session, status, body)
		}
	}
	if status, _, body := post(a.HTTPClient(true), sid, list); status != http.StatusOK || !strings.Contains(body, "echo") {
		t.Fatalf("the owner's own certificate: %d %s", status, body)
	}
}
