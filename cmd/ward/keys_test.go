package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysRotateCLI: ward keys rotate --kind receipt on a running node;
// ward claim verify still accepts the receipts fetched before, and the
// new ones; ward keys list shows the old key retiring with its not-after;
// a bad kind is a usage error.
func TestKeysRotateCLI(t *testing.T) {
	_, session, data := habitsNode(t)
	before := mustCLI(t, "receipts", "--session", session)
	file := filepath.Join(t.TempDir(), "before.json")
	os.WriteFile(file, []byte(before), 0o600)

	var list []struct {
		Kind, KID, State string
		NotAfter         *string `json:"not_after"`
	}
	json.Unmarshal([]byte(mustCLI(t, "keys", "list", "-o", "json")), &list)
	if len(list) != 4 {
		t.Fatalf("keys list: %+v", list)
	}
	out := mustCLI(t, "keys", "rotate", "--kind", "receipt")
	if !strings.Contains(out, "receipt key rotated") {
		t.Fatalf("keys rotate: %s", out)
	}
	json.Unmarshal([]byte(mustCLI(t, "keys", "list", "-o", "json")), &list)
	retiring := 0
	for _, k := range list {
		if k.Kind == "receipt" && k.State == "retiring" && k.NotAfter != nil {
			retiring++
		}
	}
	if len(list) != 5 || retiring != 1 {
		t.Fatalf("keys list after the rotation: %+v", list)
	}
	if table := mustCLI(t, "keys", "list"); !strings.Contains(table, "NOT AFTER") || !strings.Contains(table, "retiring") {
		t.Fatalf("keys list table: %s", table)
	}
	after := mustCLI(t, "receipts", "--session", session)
	if after == before {
		t.Fatal("receipts after the rotation are signed as before")
	}
	fileAfter := filepath.Join(t.TempDir(), "after.json")
	os.WriteFile(fileAfter, []byte(after), 0o600)
	for _, f := range []string{file, fileAfter} {
		if out := mustCLI(t, "claim", "verify", "--data", data, "--session", session, "--tool", "demo.echo", "--receipt", f); !strings.Contains(out, "claim holds") {
			t.Fatalf("claim verify with %s: %s", f, out)
		}
	}
	for _, bad := range [][]string{{}, {"--kind", "RECEIPT"}, {"--kind", "all"}} {
		if code, _, errOut := wardCLI(append([]string{"keys", "rotate"}, bad...)...); code != 2 || !strings.Contains(errOut, "--kind") {
			t.Errorf("keys rotate %v: exit %d %q", bad, code, errOut)
		}
	}
	// The log's key: an overlap starts (both keys sign), and the old key
	// retires by itself; the log verifies with both (auditsystem_test.go).
	if out := mustCLI(t, "keys", "rotate", "--kind", "log"); !strings.Contains(out, "log key") || !strings.Contains(out, "both") {
		t.Errorf("keys rotate --kind log: %s", out)
	}
}
