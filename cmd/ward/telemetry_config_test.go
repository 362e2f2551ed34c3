package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTelemetryConfig: telemetry: sets the node's OTLP export, with
// ${VAR}s expanded in the endpoint and headers; a bad endpoint or ratio is
// refused without showing the value, and no section leaves tracing off.
func TestTelemetryConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OTLP_TOKEN", "s3cret-otlp")
	load := func(body string) (string, error) {
		p := filepath.Join(dir, "ward.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		cfg, err := loadConfig(p)
		return cfg.Tracing.OTLPEndpoint + " " + cfg.Tracing.Headers["Authorization"], err
	}
	got, err := load("telemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n  headers: {Authorization: \"Bearer ${OTLP_TOKEN}\"}\n  sample_ratio: 0.5\n")
	if err != nil || got != "http://127.0.0.1:4318 Bearer s3cret-otlp" {
		t.Fatalf("telemetry: %q, %v", got, err)
	}
	if got, err := load("trust_domain: x.org\n"); err != nil || got != " " {
		t.Fatalf("no telemetry section: %q, %v", got, err)
	}
	for _, bad := range []string{
		"telemetry:\n  otlp_endpoint: \"http://u:s3cret-otlp@127.0.0.1:4318\"\n",
		"telemetry:\n  otlp_endpoint: 127.0.0.1:4318\n",
		"telemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n  sample_ratio: 3\n",
		"telemetry:\n  otlp_endpoint: ${UNSET_ENDPOINT_VAR}\n",
		"telemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n  bogus: 1\n",
	} {
		if _, err := load(bad); err == nil {
			t.Errorf("accepted:\n%s", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

// TestWebhookConfig: webhooks: with the secret from the environment; a
// short secret or a bad URL is refused without showing either.
func TestWebhookConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ward.yaml")
	t.Setenv("HOOK_SECRET", "0123456789abcdef0123")
	os.WriteFile(p, []byte("webhooks:\n  - {name: soc, url: https://hooks.example.org/ward, secret: \"${HOOK_SECRET}\", events: [alert, \"approval.*\"]}\n"), 0o600)
	cfg, err := loadConfig(p)
	if err != nil || len(cfg.Webhooks) != 1 || string(cfg.Webhooks[0].Secret) != "0123456789abcdef0123" || cfg.Webhooks[0].Events[1] != "approval.*" {
		t.Fatalf("webhooks: %+v %v", cfg.Webhooks, err)
	}
	t.Setenv("HOOK_SECRET", "short-s3cret")
	if _, err := loadConfig(p); err == nil || strings.Contains(err.Error(), "short-s3cret") {
		t.Fatalf("short secret: %v", err)
	}
	os.WriteFile(p, []byte("webhooks:\n  - {name: soc, url: \"ftp://tok3n@x/\", secret: 0123456789abcdef0123}\n"), 0o600)
	if _, err := loadConfig(p); err == nil || strings.Contains(err.Error(), "tok3n") {
		t.Fatalf("bad url: %v", err)
	}
}

// TestReadmeIntegrationConfig: the README's telemetry: and webhooks:
// examples load as written.
func TestReadmeIntegrationConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTLP_TOKEN", "t")
	t.Setenv("WARD_WEBHOOK_SECRET", "0123456789abcdef-webhook")
	found := 0
	for _, block := range strings.Split(string(b), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.HasPrefix(block, "telemetry:") && !strings.HasPrefix(block, "webhooks:") {
			continue
		}
		found++
		p := filepath.Join(t.TempDir(), "ward.yaml")
		os.WriteFile(p, []byte(block), 0o600)
		if _, err := loadConfig(p); err != nil {
			t.Errorf("README block does not load: %v\n%s", err, block)
		}
	}
	if found != 2 {
		t.Fatalf("found %d telemetry/webhooks blocks in the README, want 2", found)
	}
}
