package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestCLIDoctor: on a healthy node's data directory `ward doctor` exits 0
// with every check ok or warn; a key left readable by others, and a
// configured upstream nobody serves, fail it with the exact fix.
func TestCLIDoctor(t *testing.T) {
	n := startNode(t, server.Config{})
	data := filepath.Dir(os.Getenv("WARD_CA"))
	key := filepath.Join(t.TempDir(), "audit.pub")
	os.WriteFile(key, must(os.ReadFile(filepath.Join(data, "keys", "audit.pub"))), 0o600)
	n.Close()

	var rep struct {
		Status string
		Checks []struct{ Check, Status, Detail, Fix string }
	}
	out := mustCLI(t, "doctor", "--data", data, "--key", key, "--no-runtime", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Status == "fail" {
		t.Fatalf("healthy node: %v %s", err, out)
	}
	checks := map[string]string{}
	for _, c := range rep.Checks {
		checks[c.Check] = c.Status
	}
	if checks["keys"] != "ok" || checks["store"] != "ok" || checks["audit log"] != "ok" || checks["policies"] != "ok" {
		t.Fatalf("checks %v", checks)
	}

	os.WriteFile(filepath.Join(data, "policies", "broken.cedar"), []byte("permit (principal, action, resource) when {"), 0o600)
	grant := filepath.Join(data, "keys", "grant.key")
	os.Chmod(grant, 0o640)
	cfg := filepath.Join(t.TempDir(), "ward.yaml")
	os.WriteFile(cfg, []byte("servers:\n  - {name: crm, url: \"http://127.0.0.1:1/mcp\"}\n"), 0o600)
	code, text, errOut := wardCLI("doctor", "--config", cfg, "--data", data, "--key", key, "--no-runtime")
	if code != 1 || !strings.Contains(text, "fix: chmod 600 "+grant) || !strings.Contains(text, "upstream crm") || !strings.Contains(text, "broken.cedar") || !strings.Contains(errOut, "some checks failed") {
		t.Fatalf("doctor with problems: exit %d\n%s\n%s", code, text, errOut)
	}
}
