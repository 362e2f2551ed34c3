package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	t.Setenv("SEARCH_TOKEN", "t0ken")
	good := write("good.yaml", `
trust_domain: example.org
listen: 127.0.0.1:9443
data: data
session_ttl: 5m
tool_pinning: manual
policies: [pol]
servers:
  - name: fs
    command: [node, fs.js, /srv]
  - name: search
    url: https://search.internal/mcp
    headers: {Authorization: "Bearer ${SEARCH_TOKEN}"}
audit:
  record:
    arguments: false
    results: ["fs.read_*"]
    redact:
      rules: [{tool: "search.*", path: "query"}]
witness:
  - {origin: b.example/audit, key: "b.example/audit+abcd1234+AAAA"}
monitor:
  learn: 50
  playbooks:
    - {name: contain, signals: [drift], actions: [quarantine]}
`)
	cfg, err := loadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrustDomain != "example.org" || cfg.Data != filepath.Join(dir, "data") || cfg.Policies[0] != filepath.Join(dir, "pol") ||
		cfg.SessionTTL.Minutes() != 5 || len(cfg.Upstreams) != 2 || cfg.Upstreams[1].Headers["Authorization"] != "Bearer t0ken" {
		t.Fatalf("config = %+v", cfg)
	}
	if cfg.Record.Arguments || cfg.Record.Results[0] != "fs.read_*" || cfg.Record.Rules[0].Path != "query" || cfg.WitnessFor[0].Origin != "b.example/audit" {
		t.Fatalf("audit and witness config = %+v %+v", cfg.Record, cfg.WitnessFor)
	}
	if cfg.Monitor == nil || cfg.Monitor.Learn != 50 || cfg.Monitor.Playbooks[0].Name != "contain" || cfg.Monitor.Denials.Count == 0 {
		t.Fatalf("monitor config = %+v", cfg.Monitor)
	}
	def, err := loadConfig("")
	if err != nil || len(def.Upstreams) != 1 || def.Upstreams[0].Builtin != "demo" || !def.Record.Arguments {
		t.Fatalf("embedded defaults = %+v, %v", def, err)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"unknown key":    {"trust_domian: x\n", "trust_domian"},
		"bad ttl":        {"session_ttl: soon\n", "session_ttl"},
		"bad pinning":    {"tool_pinning: sometimes\n", "tool_pinning"},
		"bad name":       {"servers: [{name: Fs.Server, builtin: demo}]\n", "servers[0]"},
		"not yaml":       {"servers: [\n", "yaml"},
		"negative depth": {"max_delegation_depth: -1\n", "max_delegation_depth"},
		"bad redaction":  {"audit: {record: {redact: {rules: [{pattern: '('}]}}}\n", "rule 0: pattern"},
		"no policy file": {"audit: {witness_policy: nowhere.txt}\n", "audit.witness_policy"},
		"bad policy":     {"audit: {witness_policy: good.yaml}\n", "audit.witness_policy good.yaml"},
		"bad playbook":   {"monitor: {playbooks: [{name: x, signals: [drift], actions: [nuke]}]}\n", "nuke"},
		"bad taint":      {"taint: {tools: {\"mail.*\": [secret]}}\n", "secret"},
	} {
		if _, err := loadConfig(write(name+".yaml", tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, tc.want)
		}
	}
	if _, err := loadConfig(filepath.Join(dir, "absent.yaml")); err == nil {
		t.Error("missing config file accepted")
	}
}

// FuzzConfig: arbitrary configuration text never panics, and whatever is
// accepted has valid server names.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("trust_domain: a.b\nservers: [{name: demo, builtin: demo}]\n"))
	f.Add([]byte("servers:\n  - name: fs\n    command: [a, b]\n    env: {A: '${HOME}'}\n"))
	f.Add([]byte("session_ttl: 1h\nmax_session_ttl: 2h\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fc fileConfig
		if err := parseConfig(b, &fc); err != nil {
			return
		}
		cfg, err := fc.toServer("/base")
		if err != nil {
			return
		}
		for _, u := range cfg.Upstreams {
			if u.Name == "" || strings.ContainsAny(u.Name, ". /") {
				t.Fatalf("accepted server name %q", u.Name)
			}
		}
		if cfg.SessionTTL < 0 || cfg.MaxTTL < 0 {
			t.Fatal("accepted a negative TTL")
		}
	})
}
