package server_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ward-dev/ward/internal/refusal"
	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamEgressRefusalFloodFillsTheLog (red team, floods that fill
// the disk).
//
// Attack: any local process that can reach the egress proxy (it listens
// on loopback; inside `ward run` every program can) sends requests with
// no proxy credentials, or with a made-up session and token, as fast as it
// can. Each is answered 407 and recorded as its own durable "egress" audit
// event (internal/egress/egress.go, refuse → record;
// internal/server/egress.go, recordEgress appends one event per record),
// with no aggregation: unlike the API, whose refusals go through
// internal/refusal (the first 5 per source, principal and kind per
// minute, then one summary), the proxy's refusals cost one fsync'd event
// each, so an unauthenticated flood fills the audit log and the disk
// at the rate it is sent.
//
// What ward did: 300 refused requests from one source became 300 audit
// events. What it should do: aggregate the proxy's refusals as the API
// does, bounding the events a flood costs.
func TestRedteamEgressRefusalFloodFillsTheLog(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly,
		Egress: &server.Egress{Addr: "127.0.0.1:0", AllowAddr: func(a netip.Addr) bool { return a.IsLoopback() }}})
	addr := n.EgressAddr()
	const total = 300
	before := n.Audit.Size()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := range total {
		auth := ""
		if i%2 == 1 {
			// A made-up session and token.
			auth = "Proxy-Authorization: Basic " + basic(fmt.Sprintf("guess%d", i), "token") + "\r\n"
		}
		fmt.Fprintf(conn, "GET http://127.0.0.1:9/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\n%s\r\n", auth)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusProxyAuthRequired {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	bound := uint64(2 * (refusal.DefaultPerKey + 1) * 2) // what the API's aggregation would allow for two keys
	if got := n.Audit.Size() - before; got > bound {
		t.Fatalf("%d unauthenticated proxy requests from one source left %d audit events (the API's refusals would leave at most %d)", total, got, bound)
	}
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// TestRedteamEgressForwardsAPathItDidNotDecide (red team, one reading
// decided, another forwarded).
//
// Attack: policy lets the session POST only under /inbox/ of a host. The
// agent sends "POST http://HOST/admin/../inbox/x" (and the same with the
// dots percent-encoded, "/admin/%2e%2e/inbox/x") through the egress proxy.
// ward decides on the cleaned path (internal/server/egress.go,
// decideEgress: policy.CleanHTTPPath removes dot segments and decodes
// %2e), so policy sees POST /inbox/x and allows it; but the proxy forwards
// the request target as the agent wrote it (internal/egress/forward.go,
// rewrite changes scheme and host only). The upstream receives
// "/admin/../inbox/x": a server or router that does not remove dot
// segments the same way (a prefix-routed /admin/ handler, a framework
// that matches before normalising, one that decodes %2e after routing)
// acts on /admin.
//
// What ward did: allowed and forwarded bytes other than those it decided
// on. What it should do: forward exactly the path it decided (the cleaned
// one), or refuse a path that is not already in normal form.
func TestRedteamEgressForwardsAPathItDidNotDecide(t *testing.T) {
	var mu sync.Mutex
	var got []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.RequestURI)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "egress.cedar"), []byte(`
@id("inbox-only") permit(principal, action == Action::"http_request", resource == Host::"127.0.0.1")
  when { context.method == "POST" && context.path like "/inbox/*" };
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly,
		Egress: &server.Egress{Addr: "127.0.0.1:0", AllowAddr: func(a netip.Addr) bool { return a.IsLoopback() }}})
	n.setupAgent("courier", nil, map[string][]string{"tools": {"demo.*"}, "hosts": {"127.0.0.1"}})
	creds, _ := n.startSession("courier", "file the mail", map[string][]string{"tools": {"demo.*"}, "hosts": {"127.0.0.1"}}, "")
	proxy := egressProxy(t, n, creds)
	web := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	post := func(path string) int {
		req, _ := http.NewRequest("POST", upstream.URL+path, strings.NewReader("x"))
		resp, err := web.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/admin/x"); code != http.StatusForbidden {
		t.Fatalf("control: POST /admin/x: %d", code)
	}
	// Encoded separators: a server that decodes them before it routes
	// would read /admin: refused, and nothing reaches the upstream.
	for _, p := range []string{"/inbox/..%2Fadmin", "/inbox/..%2fadmin/x", "/inbox/%5C..%5Cadmin"} {
		before := len(got)
		if code := post(p); code != http.StatusForbidden {
			t.Errorf("POST %s: %d, want 403", p, code)
		}
		mu.Lock()
		if len(got) != before {
			t.Errorf("POST %s reached the upstream as %q", p, got[before:])
		}
		mu.Unlock()
	}
	for _, p := range []string{"/admin/../inbox/x", "/admin/%2e%2e/inbox/x"} {
		before := len(got)
		code := post(p)
		mu.Lock()
		received := got[before:]
		mu.Unlock()
		if code == http.StatusOK && len(received) > 0 && received[0] != "POST /inbox/x" {
			t.Errorf("ward decided POST /inbox/x for %q but the upstream received %q", p, received[0])
		}
	}
}
