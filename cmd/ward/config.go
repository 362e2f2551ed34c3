package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ward-dev/ward/internal/egress"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/monitor"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/taint"
	"github.com/ward-dev/ward/internal/telemetry"
	"github.com/ward-dev/ward/internal/webhook"
	"github.com/ward-dev/ward/internal/witness"
)

// fileConfig is the YAML configuration file, read strictly (parseConfig):
// one document; keys are case-sensitive and unknown keys are errors; a key
// twice in one mapping at any depth, a merge key (<<) and a key that is
// not a plain string (null, a sequence, an alias) are errors.
//
//	trust_domain: example.org
//	listen: 127.0.0.1:8443
//	public_url: https://ward.example.org   # when TLS is terminated in front of ward
//	data: /var/lib/ward
//	session_ttl: 10m
//	max_session_ttl: 24h
//	max_delegation_depth: 3
//	tool_pinning: tofu                      # or manual
//	policies: [policies/]                   # files or directories of *.cedar, relative to this file
//	servers:
//	  - name: fs
//	    command: [npx, -y, "@modelcontextprotocol/server-filesystem", /srv/share]
//	  - name: search
//	    url: https://search.internal/mcp
//	    headers: {Authorization: "Bearer ${SEARCH_TOKEN}"}   # ${VAR} expands from ward's environment
//	  - name: demo
//	    builtin: demo
type fileConfig struct {
	TrustDomain        string         `yaml:"trust_domain"`
	Listen             string         `yaml:"listen"`
	PublicURL          string         `yaml:"public_url"`
	Data               string         `yaml:"data"`
	SessionTTL         string         `yaml:"session_ttl"`
	MaxSessionTTL      string         `yaml:"max_session_ttl"`
	MaxDelegationDepth int            `yaml:"max_delegation_depth"`
	ToolPinning        string         `yaml:"tool_pinning"`
	Policies           []string       `yaml:"policies"`
	Servers            []serverConfig `yaml:"servers"`
	Approvals          approvalConfig `yaml:"approvals"`
	Limits             []limitConfig  `yaml:"limits"`
	// Tools declares what tools do, for policies and rules:
	//
	//	tools:
	//	  db.delete_rows: {verb: delete, impact: {rows: count}}
	Tools map[string]enforce.ToolDeclaration `yaml:"tools"`
	Audit auditConfig                        `yaml:"audit"`
	// Witness makes this node a C2SP tlog-witness for other ward nodes'
	// audit logs, at POST /witness/add-checkpoint:
	//
	//	witness:
	//	  - {origin: b.example/audit, key: "b.example/audit+1a2b3c4d+AbC…"}   # B's DATA/keys/audit.pub
	Witness []witness.Log `yaml:"witness"`
	// Egress runs the HTTP(S) egress proxy:
	//
	//	egress:
	//	  listen: 127.0.0.1:3128
	//	  credentials:                       # injected by ward, never seen by agents
	//	    - {host: api.github.com, header: Authorization, value: "Bearer ${GITHUB_TOKEN}"}
	Egress *struct {
		Listen      string `yaml:"listen"`
		Credentials []struct {
			Host   string `yaml:"host"`
			Header string `yaml:"header"`
			Value  string `yaml:"value"`
		} `yaml:"credentials"`
	} `yaml:"egress"`
	// Taint labels what results carry (private, untrusted, trusted); what
	// is not listed is untrusted:
	//
	//	taint:
	//	  tools: {"mail.read_*": [private, untrusted], "crm.*": [private], "calc.*": [trusted]}
	//	  hosts: {"*.corp.example": [private]}
	//	  fields: {"bank.list_transactions": {"*.subject": [private, untrusted]}}
	Taint struct {
		Tools  map[string][]string            `yaml:"tools"`
		Hosts  map[string][]string            `yaml:"hosts"`
		Fields map[string]map[string][]string `yaml:"fields"`
	} `yaml:"taint"`
	// ScanResults scans what sessions receive for instructions aimed at
	// the model, for the monitor's signals (off: see BENCHMARKS.md).
	ScanResults bool `yaml:"scan_results"`
	// MCPJSONAnswers answers a single MCP request with one JSON body
	// instead of an SSE stream when the client accepts either (cheaper;
	// off by default, see README).
	MCPJSONAnswers bool `yaml:"mcp_json_answers"`
	// DPoP tunes DPoP proofs. nonce asks every proof to carry a nonce the
	// node issued (RFC 9449 §8), so that a proof is good on one node only;
	// default: on with a PostgreSQL store (several nodes behind one URL),
	// off on SQLite (one node, whose replay cache already refuses every
	// replay, and no extra round trip for the client):
	//
	//	dpop: {nonce: true}
	DPoP struct {
		Nonce *bool `yaml:"nonce"`
	} `yaml:"dpop"`
	// Retention prunes from the store, every 10 minutes, approvals
	// finished this long ago and delegation trees whose sessions all ended
	// this long ago; unset keeps them. The audit log keeps everything.
	//
	//	retention: {approvals: 720h, sessions: 720h}
	Retention struct {
		Approvals string `yaml:"approvals"`
		Sessions  string `yaml:"sessions"`
	} `yaml:"retention"`
	// Monitor configures baselines, signals, trust and playbooks (see
	// internal/monitor for every key; what is not set keeps its default):
	//
	//	monitor:
	//	  categories: {"db.*": [database], "mail.send": [email, external]}
	//	  playbooks:
	//	    - {name: contain, signals: ["*"], min_severity: critical, actions: [quarantine, preserve]}
	Monitor      yaml.Node `yaml:"monitor"`
	AlertWebhook string    `yaml:"alert_webhook"`
	// Store keeps the control-plane state in PostgreSQL instead of SQLite
	// in DATA/ward.db (${VAR} expands from ward's environment):
	//
	//	store:
	//	  postgres: "postgres://ward:${WARD_DB_PASSWORD}@db.internal:5432/ward?sslmode=verify-full"
	//	  schema: ward                       # created if absent; default: the DSN's search_path
	Store *struct {
		Postgres string `yaml:"postgres"`
		Schema   string `yaml:"schema"`
	} `yaml:"store"`
	// Telemetry exports OpenTelemetry traces of every call by OTLP over
	// HTTP (metrics are always served at GET /metrics; see README); ${VAR}
	// expands from ward's environment:
	//
	//	telemetry:
	//	  otlp_endpoint: http://127.0.0.1:4318     # a collector; /v1/traces is added when there is no path
	//	  headers: {Authorization: "Bearer ${OTLP_TOKEN}"}
	//	  sample_ratio: 0.25                       # of the traces started here; default 1
	Telemetry *telemetryConfig `yaml:"telemetry"`
	// Webhooks receive alerts, playbook actions and approval changes as
	// signed JSON (see internal/webhook for the signature and retries):
	//
	//	webhooks:
	//	  - name: soc
	//	    url: https://hooks.example.org/ward
	//	    secret: ${WARD_WEBHOOK_SECRET}       # 16+ bytes; keys the HMAC-SHA256 in Ward-Signature
	//	    events: [alert, "playbook.*", "approval.*"]   # default: all
	Webhooks []struct {
		Name   string   `yaml:"name"`
		URL    string   `yaml:"url"`
		Secret string   `yaml:"secret"`
		Events []string `yaml:"events"`
	} `yaml:"webhooks"`
	// Console configures the operator console's single sign-on (see
	// consoleConfig).
	Console *consoleConfig `yaml:"console"`
}

// telemetryConfig is the telemetry: section.
type telemetryConfig struct {
	OTLPEndpoint string            `yaml:"otlp_endpoint"`
	Headers      map[string]string `yaml:"headers"`
	SampleRatio  float64           `yaml:"sample_ratio"`
	ServiceName  string            `yaml:"service_name"`
}

// apply sets the node's tracing from the section.
func (tc *telemetryConfig) apply(cfg *server.Config) error {
	if tc == nil {
		return nil
	}
	cfg.Tracing = telemetry.TracingConfig{OTLPEndpoint: os.ExpandEnv(tc.OTLPEndpoint), SampleRatio: tc.SampleRatio, ServiceName: tc.ServiceName}
	if cfg.Tracing.OTLPEndpoint == "" {
		return errors.New("telemetry.otlp_endpoint: name the OTLP/HTTP collector (http://127.0.0.1:4318), or remove telemetry:; if it names a ${VAR}, that variable is unset")
	}
	for k, v := range tc.Headers {
		if cfg.Tracing.Headers == nil {
			cfg.Tracing.Headers = map[string]string{}
		}
		cfg.Tracing.Headers[k] = os.ExpandEnv(v)
	}
	t, err := telemetry.NewTracing(cfg.Tracing)
	if err != nil {
		return err
	}
	return t.Shutdown(context.Background())
}

// auditConfig configures what the audit log records and how its
// checkpoints are published.
//
//	audit:
//	  record:
//	    arguments: true                    # default true: call arguments, redacted
//	    results: ["mail.lookup"]           # tools whose results are recorded, redacted
//	    max_bytes: 65536
//	    redact:
//	      no_defaults: false               # the built-in secret rules (see internal/redact)
//	      rules:
//	        - {tool: "mail.*", path: "headers.*"}
//	        - {pattern: '\b\d{3}-\d{2}-\d{4}\b'}
//	  witness_policy: witness-policy.txt   # publish checkpoints only once cosigned as this requires
//	  witness_roots: witness-ca.pem        # CA certificates of the witnesses' TLS (default: system roots)
//	  witness_interval: 1s
//	  log_key_overlap: 1h                  # a log key rotation waits at most this long for every other node to cosign (default 1h)
type auditConfig struct {
	Record struct {
		Arguments *bool         `yaml:"arguments"`
		Results   []string      `yaml:"results"`
		MaxBytes  int           `yaml:"max_bytes"`
		Redact    redact.Config `yaml:"redact"`
	} `yaml:"record"`
	WitnessPolicy   string `yaml:"witness_policy"`
	WitnessRoots    string `yaml:"witness_roots"`
	WitnessInterval string `yaml:"witness_interval"`
	LogKeyOverlap   string `yaml:"log_key_overlap"`
}

// limitConfig is one rate limit or budget.
//
//	limits:
//	  - id: schema-changes
//	    scope: group            # session, agent, group or sponsor
//	    key: db-optimizers      # optional: only this group (else each group separately)
//	    tools: ["db.create_index", "db.alter_*"]
//	    actions: [call_tool]    # optional
//	    window: 1h
//	    max: 20
//	    cost: rows              # optional: sum this numeric argument instead of counting calls
//	    on_exceed: escalate     # deny (default) or escalate
//	    approvers: "1 of group:dba"
type limitConfig struct {
	ID        string   `yaml:"id"`
	Scope     string   `yaml:"scope"`
	Key       string   `yaml:"key"`
	Tools     []string `yaml:"tools"`
	Actions   []string `yaml:"actions"`
	Window    string   `yaml:"window"`
	Max       float64  `yaml:"max"`
	Cost      string   `yaml:"cost"`
	OnExceed  string   `yaml:"on_exceed"`
	Approvers string   `yaml:"approvers"`
}

// approvalConfig configures escalation.
//
//	approvals:
//	  hold: 15s          # how long an escalated call waits before "approval pending"
//	  timeout: 15m       # how long a request stays open and an approval redeemable
//	  groups:            # approver groups named by @escalate("N of group:G")
//	    dba: [alice, bob]
type approvalConfig struct {
	Hold    string              `yaml:"hold"`
	Timeout string              `yaml:"timeout"`
	Groups  map[string][]string `yaml:"groups"`
	// Reviewers are reviewer agents asked by webhook:
	//	reviewers: [{name: risk-bot, url: "https://review.internal/ward", groups: [dba]}]
	Reviewers []struct {
		Name   string   `yaml:"name"`
		URL    string   `yaml:"url"`
		Groups []string `yaml:"groups"`
	} `yaml:"reviewers"`
}

type serverConfig struct {
	Name    string            `yaml:"name"`
	Command []string          `yaml:"command"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Builtin string            `yaml:"builtin"`
	// Roots are the directories a server serves files from (see
	// server.Upstream.Roots).
	Roots []string `yaml:"roots"`
	// Names: how its tools and prompts are shown to clients, auto
	// (default), keep or prefix (see gateway.NameMode).
	Names string `yaml:"names"`
	// Share: the MCP sessions of one ward session share one connection
	// to the server (see gateway.Share).
	Share bool `yaml:"share"`
}

// defaultServers are the upstreams of `ward up` without a config file.
var defaultServers = []serverConfig{{Name: "demo", Builtin: "demo"}}

// maxConfigSize bounds the configuration file.
const maxConfigSize = 1 << 20

// lineError is an error at a line of the configuration file.
type lineError struct {
	line int
	msg  string
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// loadConfig reads path ("" for the embedded defaults) into a server config.
// Errors name the file, and the line where the file says where: "config
// ward.yaml:3: unknown key "session_tll" at the top level (did you mean
// session_ttl?)".
func loadConfig(path string) (server.Config, error) {
	fc := fileConfig{Servers: defaultServers}
	base := "."
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return server.Config{}, fmt.Errorf("config: %w", err)
		}
		if len(b) > maxConfigSize {
			return server.Config{}, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigSize)
		}
		fc = fileConfig{}
		if err := parseConfig(b, &fc); err != nil {
			var le lineError
			if errors.As(err, &le) {
				return server.Config{}, fmt.Errorf("config %s:%d: %s", path, le.line, le.msg)
			}
			return server.Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		base = filepath.Dir(path)
		cfg, err := fc.toServer(base)
		if err != nil {
			var le lineError
			if errors.As(err, &le) {
				return cfg, fmt.Errorf("config %s:%d: %s", path, le.line, le.msg)
			}
			if line := configLine(b, err.Error()); line > 0 {
				return cfg, fmt.Errorf("config %s:%d: %w", path, line, err)
			}
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		return cfg, nil
	}
	return fc.toServer(base)
}

// parseConfig reads the configuration file strictly. yaml.v3 alone refuses
// unknown and case-variant keys (KnownFields) and most duplicate keys, but
// reads only the first of several documents, lets a merge key (<<) and a
// key written after it both define one key, drops null keys of a map, and
// does not look inside the monitor section (a yaml.Node) for duplicates:
// checkYAML refuses all of those first, and checkKeys every key no field
// is declared for (the monitor section's included), naming the line and
// the closest valid key.
func parseConfig(b []byte, fc *fileConfig) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return yamlError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document (---): put the whole configuration in one")
	}
	if err := checkYAML(&doc, ""); err != nil {
		return err
	}
	if err := checkKeys(&doc, reflect.TypeOf(fileConfig{}), ""); err != nil {
		return err
	}
	dec = yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil && !errors.Is(err, io.EOF) {
		return yamlError(err)
	}
	return nil
}

// checkYAML refuses, anywhere under n (path names where), a key twice in
// one mapping, a merge key, and a key that is not a string scalar.
func checkYAML(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			if err := checkYAML(c, p); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			where := where(path)
			switch {
			case k.Kind != yaml.ScalarNode:
				return lineError{k.Line, fmt.Sprintf("a key %s is not a plain string: write keys as strings", where)}
			case k.Tag == "!!merge":
				return lineError{k.Line, fmt.Sprintf("merge keys (<<) are not accepted %s: write the keys out", where)}
			case k.Tag == "!!null":
				return lineError{k.Line, fmt.Sprintf("a null key %s: quote it if it is a name", where)}
			}
			if first, dup := seen[k.Value]; dup {
				return lineError{k.Line, fmt.Sprintf("key %q is given twice %s (first on line %d): give it once", k.Value, where, first)}
			}
			seen[k.Value] = k.Line
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if err := checkYAML(v, p); err != nil {
				return err
			}
		}
	}
	// Scalars are leaves; an alias repeats a node already checked where
	// its anchor is.
	return nil
}

// where names a place in the file for an error: "at the top level", "in
// servers[0]".
func where(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "in " + path
}

// sectionTypes are the types of sections fileConfig keeps as yaml.Node,
// for checkKeys.
var sectionTypes = map[string]reflect.Type{"monitor": reflect.TypeOf(monitor.Config{})}

var yamlNodeType = reflect.TypeOf(yaml.Node{})

// checkKeys refuses the first key under n that type t declares no field
// for, naming its line, where it is and the valid key closest to it.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	if t == yamlNodeType {
		if t = sectionTypes[path]; t == nil {
			return nil
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a type error: yaml.v3 reports it
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				return lineError{k.Line, unknownKey(k.Value, path, fields)}
			}
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if err := checkKeys(v, ft, p); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlFields maps the keys yaml.v3 reads into struct type t to the types
// they are read as.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				maps.Copy(out, yamlFields(ft))
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// unknownKey says that key is not one of fields, and which is closest.
func unknownKey(key, path string, fields map[string]reflect.Type) string {
	valid := slices.Sorted(maps.Keys(fields))
	msg := fmt.Sprintf("unknown key %q %s", key, where(path))
	if c := closest(key, valid); c != "" {
		msg += fmt.Sprintf(" (did you mean %s?", c)
		if strings.EqualFold(c, key) {
			msg += " keys are case-sensitive"
		}
		return msg + ")"
	}
	if len(valid) <= 16 {
		return msg + " (valid keys: " + strings.Join(valid, ", ") + ")"
	}
	return msg + " (see the documented keys)"
}

// configLine finds the line of the file b that an error message is about,
// from the key path it starts with ("servers[0]: …", "approvals.hold …",
// "monitor: trust.denial: …"): the line of the deepest key of that path
// the file has, or 0.
func configLine(b []byte, msg string) int {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	path, rest, _ := strings.Cut(msg, " ")
	if path == "monitor:" {
		sub, _, _ := strings.Cut(rest, " ")
		path = "monitor." + sub
	}
	path = strings.TrimSuffix(path, ":")
	return pathLine(doc.Content[0], path, 0)
}

// pathLine resolves a key path ("a.b[2].c"; a key may itself hold dots,
// as tool names do) under n and returns the line of the deepest key found,
// or line if none is.
func pathLine(n *yaml.Node, path string, line int) int {
	if path == "" {
		return line
	}
	if strings.HasPrefix(path, "[") && n.Kind == yaml.SequenceNode {
		end := strings.IndexByte(path, ']')
		i, err := strconv.Atoi(path[1:max(end, 1)])
		if end < 0 || err != nil || i < 0 || i >= len(n.Content) {
			return line
		}
		return pathLine(n.Content[i], strings.TrimPrefix(path[end+1:], "."), n.Content[i].Line)
	}
	if n.Kind != yaml.MappingNode {
		return line
	}
	// The longest key that the path starts with, up to a "." or "[".
	best := -1
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if strings.HasPrefix(path, k) && (len(path) == len(k) || path[len(k)] == '.' || path[len(k)] == '[') &&
			(best < 0 || len(k) > len(n.Content[best].Value)) {
			best = i
		}
	}
	if best < 0 {
		return line
	}
	k, v := n.Content[best], n.Content[best+1]
	return pathLine(v, strings.TrimPrefix(path[len(k.Value):], "."), k.Line)
}

// yamlTypeError is how yaml.v3 says a value has the wrong type: "cannot
// unmarshal !!str `abc` into int" (the value is cut at 7 bytes).
var yamlTypeError = regexp.MustCompile("(?s)^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")

// plainTypes says a yaml.v3 type error in the configuration's terms, not
// Go's: `want a whole number here, not the string "abc"`.
func plainTypes(msg string) string {
	m := yamlTypeError.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	got := map[string]string{"str": "the string", "int": "the number", "float": "the number", "bool": "the value",
		"seq": "a list", "map": "a mapping", "null": "null", "timestamp": "the time"}[strings.TrimPrefix(m[1], "!!")]
	if got == "" {
		got = "the value"
	}
	if m[2] != "" {
		got += " " + strconv.Quote(m[2])
	}
	if !strings.HasPrefix(m[1], "!!") {
		got += " tagged " + m[1]
	}
	typ := strings.TrimLeft(m[3], "*")
	want := "a mapping of keys"
	switch {
	case typ == "time.Duration":
		want = "a duration such as 10m"
	case strings.HasPrefix(typ, "[]"):
		want = "a list"
	case strings.HasPrefix(typ, "map["):
		want = "a mapping"
	case strings.HasPrefix(typ, "int") || strings.HasPrefix(typ, "uint"):
		want = "a whole number"
	case strings.HasPrefix(typ, "float"):
		want = "a number"
	case typ == "bool":
		want = "true or false"
	case typ == "string":
		want = "a string"
	}
	return "want " + want + " here, not " + got
}

// yamlLine matches the line yaml.v3 names in its messages.
var yamlLine = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns yaml.v3's errors into lineErrors where they name a line,
// dropping its "yaml: unmarshal errors:" preamble.
func yamlError(err error) error {
	var te *yaml.TypeError
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs = te.Errors
	}
	if m := yamlLine.FindStringSubmatch(strings.TrimSpace(msgs[0])); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := plainTypes(m[2])
		if len(msgs) > 1 {
			msg += fmt.Sprintf(" (and %d more errors)", len(msgs)-1)
		}
		return lineError{line, msg}
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (fc fileConfig) toServer(base string) (server.Config, error) {
	cfg := server.Config{
		TrustDomain: fc.TrustDomain,
		Addr:        fc.Listen,
		PublicURL:   fc.PublicURL,
		Data:        fc.Data,
		MaxDepth:    fc.MaxDelegationDepth,
		PinMode:     enforce.PinMode(fc.ToolPinning),
	}
	if cfg.Data != "" && !filepath.IsAbs(cfg.Data) {
		cfg.Data = filepath.Join(base, cfg.Data)
	}
	if st := fc.Store; st != nil {
		if cfg.StoreDSN = os.ExpandEnv(st.Postgres); cfg.StoreDSN == "" {
			return cfg, errors.New("store.postgres: name the PostgreSQL database (postgres://USER:PASSWORD@HOST:5432/DB), or remove store: to keep SQLite in DATA; if it names a ${VAR}, that variable is unset")
		}
		cfg.StoreSchema = st.Schema
	}
	var err error
	if cfg.SessionTTL, err = duration("session_ttl", fc.SessionTTL); err != nil {
		return cfg, err
	}
	if cfg.MaxTTL, err = duration("max_session_ttl", fc.MaxSessionTTL); err != nil {
		return cfg, err
	}
	if cfg.HoldTimeout, err = duration("approvals.hold", fc.Approvals.Hold); err != nil {
		return cfg, err
	}
	if cfg.ApprovalTimeout, err = duration("approvals.timeout", fc.Approvals.Timeout); err != nil {
		return cfg, err
	}
	for g, members := range fc.Approvals.Groups {
		if g == "" || len(members) == 0 {
			return cfg, fmt.Errorf("approvals.groups.%s: an approver group needs a name and at least one member", g)
		}
	}
	cfg.ApproverGroups = fc.Approvals.Groups
	if err := fc.Audit.apply(&cfg, base); err != nil {
		return cfg, err
	}
	cfg.WitnessFor = fc.Witness
	cfg.TaintTools, cfg.TaintHosts, cfg.TaintFields = fc.Taint.Tools, fc.Taint.Hosts, fc.Taint.Fields
	cfg.ScanResults = fc.ScanResults
	cfg.MCPJSONAnswers = fc.MCPJSONAnswers
	if cfg.Retention.Approvals, err = duration("retention.approvals", fc.Retention.Approvals); err != nil {
		return cfg, err
	}
	if cfg.Retention.Sessions, err = duration("retention.sessions", fc.Retention.Sessions); err != nil {
		return cfg, err
	}
	cfg.DPoPNonce = cfg.StoreDSN != ""
	if fc.DPoP.Nonce != nil {
		cfg.DPoPNonce = *fc.DPoP.Nonce
	}
	cfg.AlertWebhook = fc.AlertWebhook
	if err := fc.Telemetry.apply(&cfg); err != nil {
		return cfg, err
	}
	for _, w := range fc.Webhooks {
		cfg.Webhooks = append(cfg.Webhooks, webhook.Endpoint{Name: w.Name, URL: os.ExpandEnv(w.URL), Secret: []byte(os.ExpandEnv(w.Secret)), Events: w.Events})
	}
	if _, err := webhook.New(webhook.Config{Endpoints: cfg.Webhooks}); err != nil {
		return cfg, fmt.Errorf("webhooks: %w", err)
	}
	if cfg.ConsoleOIDC, err = fc.Console.oidc(); err != nil {
		return cfg, err
	}
	if !fc.Monitor.IsZero() {
		// Values of the wrong type are reported at their line in the
		// file, before the section is read as its own document.
		var probe monitor.Config
		if err := fc.Monitor.Decode(&probe); err != nil {
			return cfg, yamlError(err)
		}
		b, err := yaml.Marshal(&fc.Monitor)
		if err != nil {
			return cfg, fmt.Errorf("monitor: %w", err)
		}
		mc, err := monitor.ParseConfig(b)
		if err != nil {
			return cfg, err
		}
		if _, err := monitor.New(mc); err != nil {
			return cfg, err
		}
		cfg.Monitor = &mc
	}
	if l, err := taint.NewLabeler(cfg.TaintTools, cfg.TaintHosts); err != nil {
		return cfg, err
	} else if _, err := l.WithFields(cfg.TaintFields); err != nil {
		return cfg, err
	}
	if e := fc.Egress; e != nil {
		if e.Listen == "" {
			return cfg, errors.New("egress.listen: the proxy needs an address (127.0.0.1:3128)")
		}
		cfg.Egress = &server.Egress{Addr: e.Listen}
		for _, c := range e.Credentials {
			cfg.Egress.Credentials = append(cfg.Egress.Credentials, egress.Credential{Host: c.Host, Header: c.Header, Value: os.ExpandEnv(c.Value)})
		}
	}
	for _, r := range fc.Approvals.Reviewers {
		cfg.Reviewers = append(cfg.Reviewers, server.Reviewer{Name: r.Name, URL: r.URL, Groups: r.Groups})
	}
	for name, d := range fc.Tools {
		if _, _, ok := strings.Cut(name, "."); !ok {
			return cfg, fmt.Errorf("tools.%s: tool names are SERVER.TOOL", name)
		}
		if !validVerb(d.Verb) {
			return cfg, fmt.Errorf("tools.%s.verb %q: want one of %s", name, d.Verb, strings.Join(verbs, ", "))
		}
		if err := d.Check(); err != nil {
			return cfg, fmt.Errorf("tools.%s: %w", name, err)
		}
	}
	cfg.Tools = fc.Tools
	for i, lc := range fc.Limits {
		w, err := duration(fmt.Sprintf("limits[%d].window", i), lc.Window)
		if err != nil {
			return cfg, err
		}
		cfg.Limits = append(cfg.Limits, quota.Limit{ID: lc.ID, Scope: quota.Scope(lc.Scope), Key: lc.Key,
			Match: quota.Matcher{Tools: lc.Tools, Actions: lc.Actions}, Window: w, Max: lc.Max, Cost: lc.Cost, OnExceed: lc.OnExceed})
		if lc.Approvers != "" {
			a, err := policy.ParseApproval(lc.Approvers)
			if err != nil {
				return cfg, fmt.Errorf("limits[%d].approvers: %w", i, err)
			}
			if cfg.LimitApprovers == nil {
				cfg.LimitApprovers = map[string]policy.Approval{}
			}
			cfg.LimitApprovers[lc.ID] = a
		}
	}
	if fc.MaxDelegationDepth < 0 || fc.MaxDelegationDepth > 16 {
		return cfg, fmt.Errorf("max_delegation_depth %d: must be 1-16", fc.MaxDelegationDepth)
	}
	switch cfg.PinMode {
	case "", enforce.PinTrustOnFirstUse, enforce.PinTrustEachOnFirstUse, enforce.PinManual:
	default:
		return cfg, fmt.Errorf("tool_pinning %q: want tofu, tofu-each or manual", fc.ToolPinning)
	}
	for _, p := range fc.Policies {
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		cfg.Policies = append(cfg.Policies, p)
	}
	for i, s := range fc.Servers {
		if err := gateway.ValidServerName(s.Name); err != nil {
			return cfg, fmt.Errorf("servers[%d]: %w", i, err)
		}
		if _, err := gateway.ParseNameMode(s.Names); err != nil {
			return cfg, fmt.Errorf("servers[%d] (%s): %w", i, s.Name, err)
		}
		u := server.Upstream{Name: s.Name, Command: s.Command, Dir: s.Dir, URL: s.URL, Builtin: s.Builtin, Roots: s.Roots, Names: s.Names, Share: s.Share}
		if len(s.Env) > 0 {
			u.Env = map[string]string{}
			for k, v := range s.Env {
				u.Env[k] = os.ExpandEnv(v)
			}
		}
		if len(s.Headers) > 0 {
			u.Headers = map[string]string{}
			for k, v := range s.Headers {
				u.Headers[k] = os.ExpandEnv(v)
			}
		}
		if u.Dir != "" && !filepath.IsAbs(u.Dir) {
			u.Dir = filepath.Join(base, u.Dir)
		}
		cfg.Upstreams = append(cfg.Upstreams, u)
	}
	return cfg, nil
}

// apply sets what is recorded and reads the witness policy and roots files
// named relative to base.
func (ac auditConfig) apply(cfg *server.Config, base string) error {
	rec := ac.Record
	cfg.Record = server.Record{Arguments: rec.Arguments == nil || *rec.Arguments, Results: rec.Results, MaxBytes: rec.MaxBytes,
		Rules: rec.Redact.Rules, NoDefaults: rec.Redact.NoDefaults}
	if _, err := redact.New(redact.Config{Rules: rec.Redact.Rules, NoDefaults: rec.Redact.NoDefaults, Salt: make([]byte, redact.MinSaltSize)}); err != nil {
		return fmt.Errorf("audit.record.redact: %w", err)
	}
	var err error
	if cfg.WitnessInterval, err = duration("audit.witness_interval", ac.WitnessInterval); err != nil {
		return err
	}
	if cfg.LogKeyOverlap, err = duration("audit.log_key_overlap", ac.LogKeyOverlap); err != nil {
		return err
	}
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if ac.WitnessPolicy != "" {
		if cfg.WitnessPolicy, err = os.ReadFile(rel(ac.WitnessPolicy)); err != nil {
			return fmt.Errorf("audit.witness_policy: %w", err)
		}
		if _, err := witness.ParsePolicy(cfg.WitnessPolicy); err != nil {
			return fmt.Errorf("audit.witness_policy %s: %w", ac.WitnessPolicy, err)
		}
	}
	if ac.WitnessRoots != "" {
		pem, err := os.ReadFile(rel(ac.WitnessRoots))
		if err != nil {
			return fmt.Errorf("audit.witness_roots: %w", err)
		}
		cfg.WitnessRoots = x509.NewCertPool()
		if !cfg.WitnessRoots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("audit.witness_roots %s: no PEM certificates", ac.WitnessRoots)
		}
	}
	return nil
}

func duration(key, s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q: want a positive duration such as 10m", key, s)
	}
	return d, nil
}

// verbs are the tool verbs the rule language knows.
var verbs = []string{"read", "list", "create", "update", "write", "delete", "send", "execute"}

func validVerb(v string) bool {
	if v == "" {
		return true
	}
	for _, x := range verbs {
		if v == x {
			return true
		}
	}
	return false
}
