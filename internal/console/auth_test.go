package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/console"
	"github.com/ward-dev/ward/internal/server"
)

func TestPasswordHash(t *testing.T) {
	h, err := console.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Fatalf("hash format: %s", h)
	}
	if !console.CheckPassword(h, "correct horse") {
		t.Fatal("the right password does not match")
	}
	parts := strings.Split(h, "$")
	for name, c := range map[string]struct {
		hash, pw string
	}{
		"wrong password":     {h, "correct horsf"},
		"empty password":     {h, ""},
		"argon2i":            {strings.Replace(h, "argon2id", "argon2i", 1), "correct horse"},
		"other version":      {strings.Replace(h, "v=19", "v=16", 1), "correct horse"},
		"huge memory":        {strings.Join([]string{"", parts[1], parts[2], "m=4194304,t=1,p=2", parts[4], parts[5]}, "$"), "correct horse"},
		"zero passes":        {strings.Join([]string{"", parts[1], parts[2], "m=65536,t=0,p=2", parts[4], parts[5]}, "$"), "correct horse"},
		"truncated":          {h[:len(h)-10], "correct horse"},
		"plain text":         {"correct horse", "correct horse"},
		"empty":              {"", ""},
		"no salt":            {strings.Join([]string{"", parts[1], parts[2], parts[3], "", parts[5]}, "$"), "correct horse"},
		"extra field":        {h + "$x", "correct horse"},
		"bad base64 in hash": {strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "!!!!"}, "$"), "correct horse"},
	} {
		if console.CheckPassword(c.hash, c.pw) {
			t.Errorf("%s: matched", name)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, ok := range []string{"viewer", "approver", "admin"} {
		if _, err := console.ParseRole(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Admin", "root", "viewer "} {
		if _, err := console.ParseRole(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if console.RoleViewer.Allows(console.RoleApprover) || !console.RoleAdmin.Allows(console.RoleApprover) || console.Role("x").Allows(console.RoleViewer) {
		t.Fatal("role order")
	}
}

// login logs c in and returns the CSRF token.
func login(t *testing.T, n *node, c *http.Client, user, pw string) string {
	t.Helper()
	status, b := n.do(c, "POST", "/console/api/login", map[string]string{"user": user, "password": pw}, nil)
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %s", user, status, b)
	}
	var me struct{ CSRF string }
	json.Unmarshal(b, &me)
	if me.CSRF == "" {
		t.Fatalf("login answer without a CSRF token: %s", b)
	}
	return me.CSRF
}

// TestConsoleAuth: the console's API needs a login; the session cookie is
// HttpOnly, Secure and SameSite=Strict; every state change needs the CSRF
// token; each role reaches only what it may; API routes outside the
// console's allowlist are not reachable; failed logins are rate limited.
func TestConsoleAuth(t *testing.T) {
	n := startNode(t, server.Config{})
	n.setupAgent("clerk")
	adminPW := n.addUser("olga", console.RoleAdmin)
	viewerPW := n.addUser("vic", console.RoleViewer)
	n.addUser("apu", console.RoleApprover)

	anon := n.client()
	if status, _ := n.do(anon, "GET", "/console/api/v1/agents", nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("anonymous read: %d", status)
	}
	if status, _ := n.do(anon, "POST", "/console/api/login", map[string]string{"user": "olga", "password": viewerPW}, nil); status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", status)
	}
	if status, _ := n.do(anon, "POST", "/console/api/login", map[string]string{"user": "nobody", "password": "x"}, nil); status != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", status)
	}
	if status, _ := n.do(anon, "POST", "/console/api/login", map[string]string{"user": "olga", "password": adminPW, "extra": "x"}, nil); status != http.StatusBadRequest {
		t.Fatalf("login body with an unknown member: %d", status)
	}
	if status, _ := n.do(anon, "POST", "/console/api/login", map[string]string{"user": "olga", "password": adminPW},
		map[string]string{"Origin": "https://evil.example"}); status != http.StatusForbidden {
		t.Fatalf("cross-origin login: %d", status)
	}

	admin := n.client()
	csrf := login(t, n, admin, "olga", adminPW)
	u, _ := url.Parse(n.url)
	cookies := admin.Jar.Cookies(u)
	if len(cookies) != 1 {
		t.Fatalf("cookies after login: %v", cookies)
	}
	// The jar does not keep the attributes: read them from a fresh login.
	req, _ := http.NewRequest("POST", n.url+"/console/api/login", strings.NewReader(`{"user":"olga","password":"`+adminPW+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-ward_console=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(set, want) {
			t.Errorf("session cookie %q lacks %s", set, want)
		}
	}

	if status, b := n.do(admin, "GET", "/console/api/v1/agents", nil, nil); status != http.StatusOK || !strings.Contains(string(b), `"clerk"`) {
		t.Fatalf("admin lists agents: %d %s", status, b)
	}
	if status, _ := n.do(admin, "POST", "/console/api/v1/agents/clerk/quarantine", nil, nil); status != http.StatusForbidden {
		t.Fatalf("state change without the CSRF token: %d", status)
	}
	if status, _ := n.do(admin, "POST", "/console/api/v1/agents/clerk/quarantine", nil, map[string]string{"X-CSRF-Token": csrf + "x"}); status != http.StatusForbidden {
		t.Fatalf("state change with a wrong CSRF token: %d", status)
	}
	if status, _ := n.do(admin, "POST", "/console/api/v1/agents/clerk/quarantine", nil,
		map[string]string{"X-CSRF-Token": csrf, "Origin": "https://evil.example"}); status != http.StatusForbidden {
		t.Fatalf("cross-origin state change: %d", status)
	}
	// Not in the allowlist: creating sponsors, minting credentials, the
	// agent endpoints.
	for _, p := range []string{"/console/api/v1/sponsors", "/console/api/v1/sponsors/acme/credentials", "/console/api/v1/token", "/console/api/v1/agents"} {
		if status, _ := n.do(admin, "POST", p, map[string]string{}, map[string]string{"X-CSRF-Token": csrf}); status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("POST %s through the console: %d", p, status)
		}
	}

	viewer := n.client()
	vcsrf := login(t, n, viewer, "vic", viewerPW)
	if status, _ := n.do(viewer, "GET", "/console/api/v1/sessions", nil, nil); status != http.StatusOK {
		t.Fatalf("viewer reads sessions: %d", status)
	}
	for _, p := range []string{"/console/api/v1/agents/clerk/quarantine", "/console/api/v1/approvals/x/approve", "/console/api/v1/sessions/x/end"} {
		if status, _ := n.do(viewer, "POST", p, nil, map[string]string{"X-CSRF-Token": vcsrf}); status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d", p, status)
		}
	}
	var agent struct{ Status string }
	n.admin("GET", "/v1/agents/clerk", nil, &agent)
	if agent.Status != "active" {
		t.Fatalf("agent changed by refused requests: %s", agent.Status)
	}
	if status, b := n.do(admin, "POST", "/console/api/v1/agents/clerk/quarantine", nil, map[string]string{"X-CSRF-Token": csrf}); status != http.StatusOK {
		t.Fatalf("admin quarantines: %d %s", status, b)
	}
	n.admin("GET", "/v1/agents/clerk", nil, &agent)
	if agent.Status != "quarantined" {
		t.Fatalf("agent after quarantine: %s", agent.Status)
	}
	// The API recorded it as done by the console's user.
	var evs []struct{ Type, Actor, Agent string }
	n.admin("GET", "/v1/audit/events?type=agent.quarantine", nil, &evs)
	if len(evs) != 1 || evs[0].Actor != "olga" || evs[0].Agent != "clerk" {
		t.Fatalf("audit of the console's quarantine: %+v", evs)
	}

	// Every forwarded route is one the API serves: none answers the
	// API's "no such endpoint" or "method not allowed".
	for pattern := range console.ForwardedRoutes() {
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{name}", "nosuch", "{id}", "nosuch").Replace(path)
		var body any
		if method == "POST" {
			body = map[string]string{}
		}
		status, b := n.do(admin, method, "/console/api"+path, body, map[string]string{"X-CSRF-Token": csrf})
		if status == http.StatusMethodNotAllowed || strings.Contains(string(b), "no such endpoint") {
			t.Errorf("%s through the console: %d %s", pattern, status, b)
		}
	}

	// Logging out ends the session.
	if status, _ := n.do(viewer, "POST", "/console/api/logout", nil, map[string]string{"X-CSRF-Token": vcsrf}); status != http.StatusOK {
		t.Fatalf("logout: %d", status)
	}
	if status, _ := n.do(viewer, "GET", "/console/api/v1/sessions", nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("read after logout: %d", status)
	}

	// Five failures lock the name out, even for the right password.
	for i := 0; i < console.DefaultLoginFailures; i++ {
		n.do(n.client(), "POST", "/console/api/login", map[string]string{"user": "apu", "password": "guess"}, nil)
	}
	if status, _ := n.do(n.client(), "POST", "/console/api/login", map[string]string{"user": "apu", "password": "guess"}, nil); status != http.StatusTooManyRequests {
		t.Fatalf("login after %d failures: %d", console.DefaultLoginFailures, status)
	}

	// The pages carry a strict CSP.
	req, _ = http.NewRequest("GET", n.url+"/console/", nil)
	resp, err = n.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("console page: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}
