package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamJoinTokenNotEchoed: ward up --join given the token itself
// instead of a file holding it (a slip that puts it in the shell history)
// must not print the token back in its error, where logs keep it.
func TestRedteamJoinTokenNotEchoed(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ward.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "store: {postgres: %q}\n", "postgres://postgres@127.0.0.1:1/none?sslmode=disable"), 0o600)
	tok := server.NewJoinToken()
	secret := strings.TrimPrefix(tok, "ward-join-v1:")
	code, out, errOut := wardCLI("up", "--config", cfg, "--data", filepath.Join(dir, "d"), "--join", tok)
	if code == 0 {
		t.Fatal("ward up --join TOKEN started")
	}
	if strings.Contains(out+errOut, secret) {
		t.Fatalf("the token is printed: %s%s", out, errOut)
	}
	if !strings.Contains(errOut, "FILE") {
		t.Errorf("the error does not say --join takes a file: %s", errOut)
	}
}
