package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamEgressPathsServersReadOtherwise (red team, decide on exactly what is
// forwarded: `..` after normalisation).
//
// Attack: the egress proxy decided on the RFC 3986 normal form of a path,
// in which empty segments are significant: "//admin/x" is not under
// "/admin/", and "/x//../admin/y" is "/x/admin/y". Servers that merge
// slashes before they route (nginx by default, and every router that
// cleans paths) read "/admin/x" and "/admin/y": a forbid on
// context.path like "/admin/*" was passed. A path with an empty segment
// is refused, as one with an encoded separator is. So is a path with a
// ';': servers that take it for path parameters (Tomcat, Spring) read
// "/admin;x/y" as "/admin/y" and "/x/..;/admin/y" as "/admin/y".
func TestRedteamEgressPathsServersReadOtherwise(t *testing.T) {
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
	must(t, os.WriteFile(filepath.Join(dir, "egress.cedar"), []byte(`
@id("web") permit(principal, action == Action::"http_request", resource == Host::"127.0.0.1");
@id("no-admin") forbid(principal, action == Action::"http_request", resource)
  when { context has path && context.path like "/admin/*" };
`), 0o600))
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly,
		Egress: &server.Egress{Addr: "127.0.0.1:0", AllowAddr: func(a netip.Addr) bool { return a.IsLoopback() }}})
	n.setupAgent("courier", nil, map[string][]string{"tools": {"demo.*"}, "hosts": {"127.0.0.1"}})
	creds, _ := n.startSession("courier", "file the mail", map[string][]string{"tools": {"demo.*"}, "hosts": {"127.0.0.1"}}, "")
	web := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(egressProxy(t, n, creds))}}
	get := func(path string) int {
		req, _ := http.NewRequest("GET", upstream.URL+path, nil)
		resp, err := web.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/inbox/x"); code != http.StatusOK {
		t.Fatalf("control: GET /inbox/x: %d", code)
	}
	if code := get("/admin/x"); code != http.StatusForbidden {
		t.Fatalf("control: GET /admin/x: %d", code)
	}
	for _, p := range []string{"//admin/x", "/x//../admin/y", "/admin//x/../../admin/z", "/inbox///",
		"/admin;x/y", "/x/..;/admin/y", "/inbox/..;/admin/y"} {
		mu.Lock()
		before := len(got)
		mu.Unlock()
		if code := get(p); code != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 403", p, code)
		}
		mu.Lock()
		if len(got) != before {
			t.Errorf("GET %s reached the upstream as %q", p, strings.Join(got[before:], ", "))
		}
		mu.Unlock()
	}
}
