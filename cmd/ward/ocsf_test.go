package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIAuditExportOCSF: `ward audit export --format ocsf` writes every
// verified event as one OCSF JSON object a line, to standard output or a
// file, each with its class, type_uid and the metadata a SIEM requires;
// an unknown format is a usage error.
func TestCLIAuditExportOCSF(t *testing.T) {
	data, key := auditNode(t)
	out := mustCLI(t, "audit", "export", "--format", "ocsf", "--data", data, "--key", key)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 {
		t.Fatalf("want an OCSF event per audit event, got %d lines:\n%s", len(lines), out)
	}
	types := map[string]bool{}
	for i, l := range lines {
		var o struct {
			ClassUID    int `json:"class_uid"`
			CategoryUID int `json:"category_uid"`
			ActivityID  int `json:"activity_id"`
			TypeUID     int `json:"type_uid"`
			Time        int64
			SeverityID  *int `json:"severity_id"`
			Metadata    struct {
				Version string
				UID     string
				Product struct{ Name string }
			}
			Unmapped struct{ Type string }
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if o.TypeUID != o.ClassUID*100+o.ActivityID || o.Time == 0 || o.SeverityID == nil || o.Metadata.Version == "" || o.Metadata.Product.Name != "ward" || o.Metadata.UID == "" {
			t.Fatalf("line %d lacks OCSF base attributes: %s", i, l)
		}
		types[o.Unmapped.Type] = true
		if o.Unmapped.Type == "server.start" && o.ClassUID != 0 {
			t.Fatalf("server.start mapped to class %d", o.ClassUID)
		}
	}
	if !types["server.start"] || !types["sponsor.create"] {
		t.Fatalf("event types exported: %v", types)
	}
	file := filepath.Join(t.TempDir(), "events.ocsf.jsonl")
	mustCLI(t, "audit", "export", "--format", "ocsf", "--data", data, "--key", key, "--out", file)
	b, err := os.ReadFile(file)
	if err != nil || string(b) != out {
		t.Fatalf("--out file differs from standard output (%v)", err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("export mode %v", st.Mode())
	}
	if code, _, errOut := wardCLI("audit", "export", "--format", "xml", "--data", data); code != 2 || !strings.Contains(errOut, "want bundle or ocsf") {
		t.Fatalf("bad format: %d %s", code, errOut)
	}
}
