package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
)

type readiness struct {
	Status string
	Error  string
	Checks []struct {
		Name     string
		OK       bool
		Degrades bool
		Reason   string
		Detail   string
		Parts    []struct{ Name, State, Error string }
	}
}

func (n *node) ready(t *testing.T, path string, admin bool) (int, readiness, string) {
	t.Helper()
	req := request("GET", path, "")
	if admin {
		req.Header.Set("Authorization", "Bearer "+n.admin)
	}
	rec := n.serve(req)
	var r readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("%s: %v: %s", path, err, rec.Body)
	}
	return rec.Code, r, rec.Body.String()
}

func (r readiness) check(t *testing.T, name string) (ok bool, reason string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c.OK, c.Reason
		}
	}
	t.Fatalf("no check %q in %+v", name, r)
	return false, ""
}

func (n *node) refusalCount() int {
	c := 0
	for _, e := range n.events(0) {
		if e.Type == "refusal" || e.Type == "refusal.summary" {
			c++
		}
	}
	return c
}

// TestHealthChecks: /livez is liveness alone; /healthz says ready,
// degraded (an upstream that failed its latest connection) or unready
// (the store cannot be read), publicly without names or paths; /v1/health
// gives an admin the detail; a 503 of /healthz is not a refusal.
func TestHealthChecks(t *testing.T) {
	n := newNode(t, server.Upstream{Name: "demo", Builtin: "demo"}, server.Upstream{Name: "down", URL: "http://127.0.0.1:1/mcp"})
	rec := n.serve(request("GET", "/livez", ""))
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Fatalf("livez: %d %s", rec.Code, rec.Body)
	}
	code, r, _ := n.ready(t, "/healthz", false)
	if code != http.StatusOK || r.Status != "ready" || len(r.Checks) != 3 {
		t.Fatalf("healthz at start: %d %+v", code, r)
	}
	for _, c := range []string{"audit", "store", "upstreams"} {
		if ok, _ := r.check(t, c); !ok {
			t.Fatalf("check %s failing at start: %+v", c, r)
		}
	}

	// A session connects both upstreams: one answers, one does not.
	n.agent("base", "demo.*", "down.*")
	a := n.start("base")
	if rec := n.serve(a.sign(t, mcpRequest(initBody))); rec.Code != http.StatusOK {
		t.Fatalf("initialize: %d %s", rec.Code, rec.Body)
	}
	code, r, body := n.ready(t, "/healthz", false)
	if ok, reason := r.check(t, "upstreams"); code != http.StatusOK || r.Status != "degraded" || ok || reason != "1 of 2 upstreams failed their latest connection" {
		t.Fatalf("healthz with an upstream down: %d %s", code, body)
	}
	if strings.Contains(body, "down") || strings.Contains(body, "127.0.0.1") || strings.Contains(body, "detail") {
		t.Fatalf("public healthz names what it should not: %s", body)
	}
	code, r, body = n.ready(t, "/v1/health", true)
	var parts []string
	for _, c := range r.Checks {
		for _, p := range c.Parts {
			parts = append(parts, p.Name+"="+p.State)
		}
	}
	if code != http.StatusOK || strings.Join(parts, ",") != "demo=ok,down=failed" || !strings.Contains(body, "127.0.0.1:1") {
		t.Fatalf("admin health: %d %s", code, body)
	}
	var sponsor struct{ Credential string }
	n.must("POST", "/v1/sponsors/acme/credentials", "", &sponsor)
	req := request("GET", "/v1/health", "")
	req.Header.Set("Authorization", "Bearer "+sponsor.Credential)
	if rec := n.serve(req); rec.Code != http.StatusForbidden {
		t.Fatalf("sponsor health: %d %s", rec.Code, rec.Body)
	}

	// The store cannot be read: unready, and the 503 is not a refusal.
	before := n.refusalCount()
	n.n.Store.Close()
	code, r, body = n.ready(t, "/healthz", false)
	if ok, reason := r.check(t, "store"); code != http.StatusServiceUnavailable || r.Status != "unready" || ok || reason != "the store cannot be read" || r.Error != "not ready: the store cannot be read" {
		t.Fatalf("healthz without a store: %d %s", code, body)
	}
	if ok, _ := r.check(t, "audit"); !ok {
		t.Fatalf("audit failing: %s", body)
	}
	if got := n.refusalCount(); got != before {
		t.Fatalf("healthz's 503 was recorded as a refusal (%d refusals, had %d)", got, before)
	}
}

// TestHealthAuditClosed: a node whose audit log cannot append is unready.
func TestHealthAuditClosed(t *testing.T) {
	n := newNode(t)
	n.n.Audit.Close()
	code, r, body := n.ready(t, "/healthz", false)
	if ok, reason := r.check(t, "audit"); code != http.StatusServiceUnavailable || ok || reason != "the audit log is closed" {
		t.Fatalf("healthz with the audit log closed: %d %s", code, body)
	}
	if _, err := n.n.Audit.Append(context.Background(), audit.Event{Type: "x"}); err == nil || !errors.Is(n.n.Audit.Err(), audit.ErrClosed) {
		t.Fatalf("append to a closed log: %v, Err %v", err, n.n.Audit.Err())
	}
}

// TestHealthAuditDamaged: when the verification pass finds the audit log
// damaged, the node is unready and says so.
func TestHealthAuditDamaged(t *testing.T) {
	n := newNode(t)
	n.must("POST", "/v1/sponsors", `{"name":"acme","kind":"platform","ceiling":{"tools":["*"]}}`, nil)
	path := filepath.Join(n.data, "audit", "entries")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"acme"`))
	if i < 0 {
		t.Fatal("no event names acme")
	}
	b[i+1] = 'A'
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.n.Audit.Verify(context.Background()); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("verification pass: %v", err)
	}
	code, r, body := n.ready(t, "/healthz", false)
	if ok, reason := r.check(t, "audit"); code != http.StatusServiceUnavailable || ok || reason != "the audit log failed verification" {
		t.Fatalf("healthz with a damaged log: %d %s", code, body)
	}
}
