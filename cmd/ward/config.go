package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
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
	// Monitor configures baselines, signals, trust and playbooks (see
	// internal/monitor for every key; what is not set keeps its default):
	//
	//	monitor:
	//	  categories: {"db.*": [database], "mail.send": [email, external]}
	//	  playbooks:
	//	    - {name: contain, signals: ["*"], min_severity: critical, actions: [quarantine, preserve]}
	Monitor      yaml.Node `yaml:"monitor"`
	AlertWebhook string    `yaml:"alert_webhook"`
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
}

// defaultServers are the upstreams of `ward up` without a config file.
var defaultServers = []serverConfig{{Name: "demo", Builtin: "demo"}}

// maxConfigSize bounds the configuration file.
const maxConfigSize = 1 << 20

// loadConfig reads path ("" for the embedded defaults) into a server config.
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
			return server.Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		base = filepath.Dir(path)
	}
	return fc.toServer(base)
}

// parseConfig reads the configuration file strictly. yaml.v3 alone refuses
// unknown and case-variant keys (KnownFields) and most duplicate keys, but
// reads only the first of several documents, lets a merge key (<<) and a
// key written after it both define one key, drops null keys of a map, and
// does not look inside the monitor section (a yaml.Node) for duplicates:
// checkYAML refuses all of those first, naming the line.
func parseConfig(b []byte, fc *fileConfig) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document (---): put the whole configuration in one")
	}
	if err := checkYAML(&doc, ""); err != nil {
		return err
	}
	dec = yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil && !errors.Is(err, io.EOF) {
		return friendlyYAML(err)
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
			where := path
			if where == "" {
				where = "the top level"
			}
			switch {
			case k.Kind != yaml.ScalarNode:
				return fmt.Errorf("line %d: a key in %s is not a plain string: write keys as strings", k.Line, where)
			case k.Tag == "!!merge":
				return fmt.Errorf("line %d: merge keys (<<) are not accepted in %s: write the keys out", k.Line, where)
			case k.Tag == "!!null":
				return fmt.Errorf("line %d: a null key in %s: quote it if it is a name", k.Line, where)
			}
			if first, dup := seen[k.Value]; dup {
				return fmt.Errorf("line %d: key %q is given twice in %s (first on line %d): give it once", k.Line, k.Value, where, first)
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

// unknownField is how yaml.v3 reports a key no field is declared for.
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// friendlyYAML rewrites yaml.v3's errors about unknown keys into what a
// user can act on.
func friendlyYAML(err error) error {
	msg := unknownField.ReplaceAllString(err.Error(), `unknown key "$1" (keys are case-sensitive; see the documented keys)`)
	return errors.New(msg)
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
	cfg.AlertWebhook = fc.AlertWebhook
	if !fc.Monitor.IsZero() {
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
		u := server.Upstream{Name: s.Name, Command: s.Command, Dir: s.Dir, URL: s.URL, Builtin: s.Builtin, Roots: s.Roots, Names: s.Names}
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
