package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/console"
)

func TestConsoleOIDCConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("WARD_OIDC_SECRET", "s3cret")
	load := func(body string) (*console.OIDCConfig, error) {
		p := filepath.Join(dir, "ward.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		cfg, err := loadConfig(p)
		return cfg.ConsoleOIDC, err
	}
	o, err := load(`
console:
  oidc:
    issuer: https://id.example.org
    client_id: ward-console
    client_secret: ${WARD_OIDC_SECRET}
    roles: {"olga@example.org": admin, "vic@example.org": viewer}
`)
	if err != nil {
		t.Fatal(err)
	}
	if o == nil || o.Issuer != "https://id.example.org" || o.ClientSecret != "s3cret" || o.Roles["olga@example.org"] != console.RoleAdmin || o.Roles["vic@example.org"] != console.RoleViewer {
		t.Fatalf("console.oidc: %+v", o)
	}
	if o, err := load("trust_domain: example.org\n"); err != nil || o != nil {
		t.Fatalf("no console section: %+v, %v", o, err)
	}
	for body, want := range map[string]string{
		"console:\n  oidc:\n    client_id: x\n    roles: {a@b.c: admin}\n":                                  "issuer and client_id",
		"console:\n  oidc:\n    issuer: https://i\n    client_id: x\n":                                      "at least one",
		"console:\n  oidc:\n    issuer: https://i\n    client_id: x\n    roles: {a@b.c: root}\n":            "want viewer, approver or admin",
		"console:\n  oidc:\n    issuer: https://i\n    client_id: x\n    roles: {a@b.c: admin}\n    x: 1\n": "x",
	} {
		if _, err := load(body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %q", body, err, want)
		}
	}
}
