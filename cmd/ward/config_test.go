package main

import (
	"bytes"
	"errors"
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

// TestConfigStrict: one reading of the configuration. A key twice at any
// depth (in a struct, a map, a list item, the monitor section), a case
// variant of a key, a merge key, a null key and a second document are
// errors that name the line or the key.
func TestConfigStrict(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"duplicate top":          {"tool_pinning: manual\ntool_pinning: tofu\n", `line 2: key "tool_pinning" is given twice at the top level (first on line 1)`},
		"duplicate quoted":       {"tool_pinning: manual\n\"tool_pinning\": tofu\n", `key "tool_pinning" is given twice`},
		"duplicate nested":       {"approvals: {hold: 1s, hold: 1h}\n", `key "hold" is given twice in approvals`},
		"duplicate map":          {"taint: {tools: {\"mail.*\": [private], \"mail.*\": [trusted]}}\n", `key "mail.*" is given twice in taint.tools`},
		"duplicate in list item": {"servers: [{name: a, builtin: demo, name: b}]\n", `key "name" is given twice in servers[0]`},
		"duplicate header":       {"servers: [{name: a, url: 'https://x', headers: {A: x, A: y}}]\n", `servers[0].headers`},
		"duplicate in monitor":   {"monitor: {learn: 5, learn: 50}\n", `key "learn" is given twice in monitor`},
		"duplicate deep monitor": {"monitor: {playbooks: [{name: x, signals: [drift], actions: [alert], name: y}]}\n", `monitor.playbooks[0]`},
		"case top":               {"Trust_Domain: example.org\n", `unknown key "Trust_Domain"`},
		"case nested":            {"servers: [{Name: a, builtin: demo}]\n", `unknown key "Name"`},
		"case beside":            {"tool_pinning: manual\nTool_Pinning: tofu\n", `unknown key "Tool_Pinning"`},
		"case monitor":           {"monitor: {Learn: 5}\n", "Learn"},
		"merge key":              {"taint: {tools: {<<: {\"a.*\": [private]}, \"a.*\": [trusted]}}\n", "merge keys (<<) are not accepted in taint.tools"},
		"null key":               {"taint: {tools: {~: [private]}}\n", "null key in taint.tools"},
		"empty key":              {"taint: {tools: {? : [private]}}\n", "null key"},
		"complex key":            {"taint: {tools: {[a]: [private]}}\n", "not a plain string"},
		"second document":        {"tool_pinning: manual\n---\ntool_pinning: tofu\n", "more than one YAML document"},
		"second empty document":  {"tool_pinning: manual\n---\n", "more than one YAML document"},
		"invalid utf-8":          {"trust_domain: \"\xff\"\n", "UTF-8"},
	} {
		var fc fileConfig
		err := parseConfig([]byte(tc.body), &fc)
		if err == nil {
			_, err = fc.toServer(t.TempDir()) // the monitor section is read here
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
	// Anchors and aliases repeat values; they are not duplicates.
	var fc fileConfig
	ok := "approvals: {groups: {dba: &people [alice, bob], ops: *people}}\n# comment\n"
	if err := parseConfig([]byte(ok), &fc); err != nil || len(fc.Approvals.Groups["ops"]) != 2 {
		t.Fatalf("aliases: %v %+v", err, fc.Approvals)
	}
	if err := parseConfig([]byte("# only a comment\n"), &fc); err != nil {
		t.Fatalf("empty configuration: %v", err)
	}
}

// FuzzConfig: arbitrary configuration text never panics, and whatever is
// accepted has valid server names.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("trust_domain: a.b\nservers: [{name: demo, builtin: demo}]\n"))
	f.Add([]byte("servers:\n  - name: fs\n    command: [a, b]\n    env: {A: '${HOME}'}\n"))
	f.Add([]byte("session_ttl: 1h\nmax_session_ttl: 2h\n"))
	f.Add([]byte("monitor:\n  trust:\n    half_life: -1s\n"))
	f.Add([]byte("servers:\n  - name: a\n    comand: [x]\n"))
	f.Add([]byte("tools:\n  db.drop: {verb: smash}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// YAML breaks lines at \n, \r\n and \r.
		lines := bytes.Count(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n")) + bytes.Count(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\r")) + 1
		var fc fileConfig
		if err := parseConfig(b, &fc); err != nil {
			if strings.Contains(err.Error(), "main.") {
				t.Fatalf("error names Go types: %v", err)
			}
			// An error that names a line names one of the file's.
			var le lineError
			if errors.As(err, &le) && (le.line < 1 || le.line > lines) {
				t.Fatalf("error at line %d of a %d-line file: %v", le.line, lines, err)
			}
			return
		}
		cfg, err := fc.toServer("/base")
		if err != nil {
			if l := configLine(b, err.Error()); l < 0 || l > lines {
				t.Fatalf("error placed at line %d of a %d-line file: %v", l, lines, err)
			}
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

// TestMCPJSONAnswersConfig: mcp_json_answers reaches the node; without it
// answers stay SSE streams.
func TestMCPJSONAnswersConfig(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{{"mcp_json_answers: true\n", true}, {"scan_results: false\n", false}} {
		var fc fileConfig
		if err := parseConfig([]byte(tc.yaml), &fc); err != nil {
			t.Fatal(err)
		}
		cfg, err := fc.toServer(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MCPJSONAnswers != tc.want {
			t.Errorf("%q: MCPJSONAnswers %v, want %v", tc.yaml, cfg.MCPJSONAnswers, tc.want)
		}
	}
}
