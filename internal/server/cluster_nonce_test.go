package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// recordingTransport remembers the last request it sent.
type recordingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	last *http.Request
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.last = req
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

// TestClusterDPoPNonce: with DPoPNonce, a proof accepted by node A and
// replayed to node B behind the same URL (a load balancer: same Host) is
// refused by B with use_dpop_nonce, as it is by A as a replay. Before
// nonces, each node's replay cache was its own, so B accepted the proof
// once. ward's own client gets through on either node with one retry.
func TestClusterDPoPNonce(t *testing.T) {
	a, b := twoNodes(t, server.Config{DPoPNonce: true})
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := a.startSession("scribe", "notes", nil, "")
	plain := creds.HTTPClient(false)
	rec := &recordingTransport{base: plain.Transport.(*sessioncred.Transport).Base}
	plain.Transport.(*sessioncred.Transport).Base = rec
	hc := &http.Client{Transport: plain.Transport}
	if code, body := whoami(t, a, hc); code != http.StatusOK {
		t.Fatalf("on A: %d %s", code, body)
	}
	captured := rec.last
	replay := func(n *testNode) *http.Response {
		req, _ := http.NewRequest("GET", n.url+"/v1/session", nil)
		req.Host = captured.Host
		req.Header.Set("Authorization", captured.Header.Get("Authorization"))
		req.Header.Set("DPoP", captured.Header.Get("DPoP"))
		resp, err := (&http.Client{Transport: rec.base}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := replay(b); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce") || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("A's proof replayed to B: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := replay(a); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("A's proof replayed to A: %d", resp.StatusCode)
	}
	// The session's own client: B asks for its nonce, the retry passes.
	if code, body := whoami(t, b, creds.HTTPClient(false)); code != http.StatusOK {
		t.Fatalf("on B: %d %s", code, body)
	}
	// An MCP client (its POST bodies sent again on the retry) through B.
	cs := b.connect(t, creds.HTTPClient(false), nil)
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}})
	if err != nil || res.IsError {
		t.Fatalf("MCP call on B with nonces: %v %+v", err, res)
	}
}

// TestSidecarDPoPNonce: an MCP client through `ward mcp serve`'s sidecar
// works with a node that asks for DPoP nonces (the sidecar's request sent
// again with the nonce, body and all, is checked alone by
// sessioncred.TestSidecarNonce).
func TestSidecarDPoPNonce(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly, DPoPNonce: true})
	n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("scribe", "notes", nil, "")
	cs := sidecarClient(t, n, creds, nil)
	res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.read_note", Arguments: map[string]any{"name": "welcome"}})
	if err != nil || res.IsError {
		t.Fatalf("MCP call through the sidecar with nonces: %v %+v", err, res)
	}
}
