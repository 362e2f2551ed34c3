package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/server"
)

// endRecord is the data of a session's runtime "end" record, as the audit
// log holds it.
func endRecord(t *testing.T, session string) map[string]any {
	t.Helper()
	for _, e := range auditEvents(t, session, "runtime") {
		data, _ := e["data"].(map[string]any)
		if data["kind"] == "end" {
			inner, _ := data["data"].(map[string]any)
			return inner
		}
	}
	t.Fatalf("session %s has no runtime end record", session)
	return nil
}

// TestRunRecordsDiff: by default ward run sends the diff of the text files
// it changed with its end record, and the node records it redacted: a
// token in a changed line is replaced, a file named like a secret is
// listed without its content, a binary one by its sizes, and the
// operator's redaction rules for runtime records apply to it. With
// --record-diff=false only the changed paths are recorded.
func TestRunRecordsDiff(t *testing.T) {
	// The operator's rule for runtime records catches what the
	// defaults, which go by the form of a secret, do not.
	startNode(t, server.Config{Egress: &server.Egress{Addr: "127.0.0.1:0", AllowAddr: func(a netip.Addr) bool { return a.IsLoopback() }},
		Record: server.Record{Rules: []redact.Rule{{Tool: "runtime:*", Pattern: `(?i)password\s*=\s*(?P<secret>\S+)`}}}})
	mustCLI(t, "agent", "register", "coder", "--sponsor", "admin", "--allow", "tool:demo.*")
	bin := buildWard(t)
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "notes.txt"), []byte("alpha\nbeta\n"), 0o644)
	const token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "edit notes", "--workspace", ws, "--",
		"/bin/sh", "-c", `printf 'alpha\nBETA <script>alert(1)</script>\n' > notes.txt && printf 'GITHUB=`+token+`\ndb_password = swordfish\n' > token.txt && echo X=hunter2 > .env && printf '\000\001' > blob.bin`)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "the diff of 4 changed files goes to the session's audit trail") {
		t.Errorf("ward run did not say the diff leaves the host:\n%s", stderr)
	}
	session := sessionRE.FindStringSubmatch(stderr)[1]
	rec := endRecord(t, session)
	doc, _ := json.Marshal(rec["diff"])
	var diff struct {
		Files []struct{ Path, Diff, Omitted string }
	}
	if err := json.Unmarshal(doc, &diff); err != nil || len(diff.Files) == 0 {
		t.Fatalf("the end record has no diff: %v %s", err, doc)
	}
	byPath := map[string]string{}
	for _, f := range diff.Files {
		byPath[f.Path] = f.Diff + f.Omitted
	}
	if d := byPath["notes.txt"]; !strings.Contains(d, "-beta\n+BETA <script>alert(1)</script>\n") {
		t.Errorf("notes.txt: %q", d)
	}
	if d := byPath["token.txt"]; !strings.Contains(d, "+GITHUB=") || !strings.Contains(d, "+db_password = redacted:") || strings.Contains(d, token) || strings.Contains(d, "swordfish") {
		t.Errorf("token.txt, not redacted: %q", d)
	}
	if d := byPath[".env"]; d != "withheld: its name suggests a secret" {
		t.Errorf(".env: %q", d)
	}
	if d := byPath["blob.bin"]; d != "binary" {
		t.Errorf("blob.bin: %q", d)
	}
	if all, _ := json.Marshal(auditEvents(t, session, "runtime")); strings.Contains(string(all), token) || strings.Contains(string(all), "hunter2") || strings.Contains(string(all), "swordfish") {
		t.Errorf("a secret reached the audit log: %s", all)
	}

	code, _, stderr = runWard(t, bin, "--agent", "coder", "--objective", "edit notes", "--workspace", ws, "--record-diff=false", "--",
		"/bin/sh", "-c", "echo more >> notes.txt")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "the diff of") {
		t.Errorf("with --record-diff=false, ward run says it sends a diff:\n%s", stderr)
	}
	rec = endRecord(t, sessionRE.FindStringSubmatch(stderr)[1])
	if _, ok := rec["diff"]; ok || len(rec["changes"].([]any)) != 1 {
		t.Errorf("with --record-diff=false: %v", rec)
	}
}

// TestRunDiffRedactedPastBound: redaction can make a diff larger (a short
// token becomes a long marker), and an agent that writes many of them must
// not make the node drop the whole end record, changed paths and all: the
// node records it without the diff and says why.
func TestRunDiffRedactedPastBound(t *testing.T) {
	_, bin := runtimeNode(t)
	ws := t.TempDir()
	code, _, stderr := runWard(t, bin, "--agent", "coder", "--objective", "bloat the record", "--workspace", ws, "--",
		"/bin/sh", "-c", `for f in a b c d e f g h i j k l; do yes 'bearer x' | head -n 1900 > $f.txt; done`)
	if code != 0 || strings.Contains(stderr, "failed") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	rec := endRecord(t, sessionRE.FindStringSubmatch(stderr)[1])
	if paths, _ := rec["changes"].([]any); len(paths) != 12 {
		t.Errorf("changed paths: %v", rec["changes"])
	}
	if d, _ := rec["diff"].(string); !strings.Contains(d, "not recorded") {
		t.Errorf("diff: %.300v", rec["diff"])
	}
}
