package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestLogger: --log-format json writes one JSON object a line with the
// level and attributes as keys; --log-level filters; bad values are
// refused; secrets are scrubbed by name and by shape, in both formats.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("not shown")
	l.Warn("upstream down", "server", "fs", "authorization", "Bearer abcdefghijkl",
		"err", errors.New("dial https://bob:hunter22@example.org/mcp with ward_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line (info filtered), got %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if rec["level"] != "WARN" || rec["msg"] != "upstream down" || rec["server"] != "fs" || rec["authorization"] != "[redacted]" {
		t.Fatalf("record %v", rec)
	}
	if e, _ := rec["err"].(string); strings.Contains(e, "hunter22") || strings.Contains(e, "ward_AAAA") || !strings.Contains(e, "dial https://[redacted]@example.org/mcp") {
		t.Fatalf("err not scrubbed: %q", e)
	}

	buf.Reset()
	l, err = newLogger(&buf, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("grant eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmUifQ.c2lnbmF0dXJl seen", "password", "x")
	if out := buf.String(); !strings.Contains(out, "level=DEBUG") || strings.Contains(out, "eyJhbGci") || !strings.Contains(out, "password=[redacted]") {
		t.Fatalf("text record %q", out)
	}

	for _, bad := range [][2]string{{"xml", "info"}, {"json", "loud"}, {"text", "info+2"}, {"", "info"}} {
		if _, err := newLogger(&buf, bad[0], bad[1]); err == nil {
			t.Errorf("format %q level %q accepted", bad[0], bad[1])
		}
	}
}

// TestLogFlagsRefused: a bad --log-format or --log-level is a usage error
// (exit 2) of the commands that take them, before anything starts.
func TestLogFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"up", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--log-format", "xml"},
		{"up", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--log-level", "chatty"},
		{"mcp", "serve", "--session", "s1", "--log-format", "yaml"},
	} {
		code, _, errOut := wardCLI(args...)
		if code != 2 || !strings.Contains(errOut, "--log-") {
			t.Errorf("ward %v: exit %d, %s", args, code, errOut)
		}
	}
}
