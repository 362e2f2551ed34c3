package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestHealth: ward health says a running node is ready and exits 0; a
// node that answers 503 is unready, with the failing check, and exit 1;
// so is a node that does not answer, or one whose certificate WARD_CA
// does not trust; bad flags exit 2.
func TestHealth(t *testing.T) {
	n := startNode(t, server.Config{})
	if code, out, errOut := wardCLI("health"); code != 0 || out != "ready\n" {
		t.Fatalf("a running node: exit %d %q %s", code, out, errOut)
	}
	if code, out, _ := wardCLI("health", "-o", "json"); code != 0 || !strings.Contains(out, `"status": "ready"`) || !strings.Contains(out, `"name": "audit"`) {
		t.Fatalf("-o json: exit %d %s", code, out)
	}
	if code, _, errOut := wardCLI("health", "--timeout", "0s"); code != 2 || !strings.Contains(errOut, "positive") {
		t.Fatalf("--timeout 0s: exit %d %s", code, errOut)
	}
	if code, _, _ := wardCLI("health", "extra"); code != 2 {
		t.Fatalf("an argument: exit %d", code)
	}

	// A node's CA other than the one trusted.
	ca := os.Getenv("WARD_CA")
	other := filepath.Join(t.TempDir(), "other.pem")
	unready := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		// The shape of api's readiness answer.
		w.Write([]byte(`{"status":"unready","error":"not ready: the audit log's disk is full","checks":[{"name":"audit","ok":false,"reason":"the audit log's disk is full"},{"name":"store","ok":true}]}`))
	}))
	defer unready.Close()
	os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: unready.Certificate().Raw}), 0o600)
	t.Setenv("WARD_CA", other)
	if code, _, errOut := wardCLI("health"); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("a node WARD_CA does not trust: exit %d %s", code, errOut)
	}
	t.Setenv("WARD_SERVER", unready.URL)
	if code, out, errOut := wardCLI("health"); code != 1 || out != "unready (audit: the audit log's disk is full)\n" || !strings.Contains(errOut, "not ready") {
		t.Fatalf("an unready node: exit %d %q %s", code, out, errOut)
	}
	t.Setenv("WARD_CA", ca)
	t.Setenv("WARD_SERVER", n.URL())
	n.Close()
	if code, _, errOut := wardCLI("health"); code != 1 || !strings.Contains(errOut, "/healthz") {
		t.Fatalf("a stopped node: exit %d %s", code, errOut)
	}
}
