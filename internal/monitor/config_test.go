package monitor

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// docExample returns the worked YAML example of the package documentation.
func docExample(t testing.TB) []byte {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "// A worked example")
	if !ok {
		t.Fatal("doc.go has no worked example")
	}
	var b strings.Builder
	for _, line := range strings.Split(rest, "\n")[1:] {
		if y, ok := strings.CutPrefix(line, "//\t"); ok {
			b.WriteString(y + "\n")
		} else if b.Len() > 0 && line != "//" {
			break
		}
	}
	return []byte(b.String())
}

func TestDocExample(t *testing.T) {
	cfg, err := ParseConfig(docExample(t))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Learn, want.LearnFor = 500, 72*time.Hour
	want.Rate.Cap, want.Outbound.Cap = 600, 100<<20
	want.Severities = map[string]string{SignalNewTool: "medium"}
	want.Categories = map[string][]string{"db.*": {"database"}, "mail.send": {"email", "external"}, "api.github.com": {"external"}}
	want.Playbooks = []Playbook{
		{Name: "notify", Signals: []string{"*"}, MinSeverity: "low", Actions: []string{ActionAlert}},
		{Name: "swarm", Signals: []string{SignalSwarm}, Actions: []string{ActionBlock, ActionRequireApproval}},
		{Name: "exfiltration", Signals: []string{SignalLargeOutbound, SignalContentRisk}, MinSeverity: "high", Actions: []string{ActionBlock, ActionPreserve}},
		{Name: "contain", Signals: []string{"*"}, MinSeverity: "critical", Actions: []string{ActionQuarantine, ActionPreserve}},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Fatalf("parsed example (-want +got):\n%s", diff)
	}

	// The example's closing claims.
	m := mustNew(t, cfg)
	var acts []Action
	for i := range 5 {
		_, a := m.Observe(Event{Time: t0.Add(time.Duration(i) * time.Second), Agent: "indexer", Session: string(rune('a' + i)),
			Groups: []string{"db-optimizers"}, Name: "db.create_index", Verb: "write", Decision: DecisionAllow})
		acts = append(acts, a...)
	}
	if got := actionKindsOf(acts); !cmp.Equal(got, []string{ActionAlert, ActionBlock, ActionRequireApproval}) {
		t.Errorf("swarm actions %v", got)
	}
	_, acts = m.Observe(Event{Time: t0.Add(time.Minute), Agent: "reader", Name: "web.fetch", Decision: DecisionAllow, Risk: 95})
	if got := actionKindsOf(acts); !cmp.Equal(got, []string{ActionAlert, ActionBlock, ActionPreserve, ActionQuarantine}) {
		t.Errorf("risk 95 actions %v", got)
	}
}

func actionKindsOf(acts []Action) []string {
	var ks []string
	for _, a := range acts {
		ks = append(ks, a.Kind)
	}
	return ks
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"mode", func(c *Config) { c.Mode = "audit" }, `mode: "audit"`},
		{"no learning period", func(c *Config) { c.Learn, c.LearnFor = 0, 0 }, "learn:"},
		{"negative learn_for", func(c *Config) { c.LearnFor = -time.Second }, "learn_for:"},
		{"rate factor below 1", func(c *Config) { c.Rate.Factor = 0.5 }, "rate.factor: 0.5"},
		{"outbound factor NaN", func(c *Config) { c.Outbound.Factor = nan() }, "outbound.factor: NaN"},
		{"negative cap", func(c *Config) { c.Rate.Cap = -1 }, "rate.cap:"},
		{"denials count", func(c *Config) { c.Denials.Count = 0 }, "denials.count: 0"},
		{"denials window", func(c *Config) { c.Denials.Window = 0 }, "denials.window:"},
		{"risk critical below threshold", func(c *Config) { c.Risk.Critical = 10 }, "risk.critical: 10"},
		{"swarm of one", func(c *Config) { c.Swarm.Sessions = 1 }, "swarm.sessions: 1"},
		{"swarm without verbs", func(c *Config) { c.Swarm.Verbs = nil }, "swarm.verbs:"},
		{"trust floor", func(c *Config) { c.Trust.Floor = 101 }, "trust.floor: 101"},
		{"trust penalty", func(c *Config) { c.Trust.Penalty.High = -1 }, "trust.penalty.high: -1"},
		{"unknown severity kind", func(c *Config) { c.Severities = map[string]string{"boredom": "low"} }, `severities: unknown signal kind "boredom"`},
		{"unknown severity", func(c *Config) { c.Severities = map[string]string{SignalDrift: "urgent"} }, `severities.drift: unknown severity "urgent"`},
		{"playbook signal", func(c *Config) {
			c.Playbooks = []Playbook{{Signals: []string{"*"}, Actions: []string{"alert"}}, {Signals: []string{"rate"}, Actions: []string{"block"}}}
		}, `playbooks[1].signals[0]: unknown signal kind "rate"`},
		{"playbook action", func(c *Config) {
			c.Playbooks = []Playbook{{Signals: []string{"drift"}, Actions: []string{"alert", "nuke"}}}
		}, `playbooks[0].actions[1]: unknown action "nuke"`},
		{"playbook severity", func(c *Config) {
			c.Playbooks = []Playbook{{Signals: []string{"drift"}, MinSeverity: "severe", Actions: []string{"alert"}}}
		}, `playbooks[0].min_severity: unknown severity "severe"`},
		{"playbook without actions", func(c *Config) { c.Playbooks = []Playbook{{Signals: []string{"drift"}}} }, "playbooks[0].actions: empty"},
		{"playbook without signals", func(c *Config) { c.Playbooks = []Playbook{{Actions: []string{"alert"}}} }, "playbooks[0].signals: empty"},
		{"category pattern", func(c *Config) { c.Categories = map[string][]string{"db*x": {"database"}} }, `categories: pattern "db*x"`},
		{"empty category", func(c *Config) { c.Categories = map[string][]string{"db.*": {""}} }, `categories["db.*"]: empty category`},
		{"limits", func(c *Config) { c.Limits.Agents = 0 }, "limits.agents: 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "monitor: ") {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New(Config{}) succeeded: zero thresholds must be rejected")
	}
	if _, err := New(DefaultConfig()); err != nil {
		t.Errorf("New(DefaultConfig()): %v", err)
	}
}

func nan() float64 {
	var zero float64
	return zero / zero
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "mode: enforce\nlearning: 5\n", "field learning not found"},
		{"nested unknown key", "rate: {factr: 3}\n", "field factr not found"},
		{"wrong type", "learn: many\n", "cannot unmarshal"},
		{"bad duration", "learn_for: a week\n", "line 1: cannot unmarshal !!str `a week` into time.Duration"},
		{"two documents", "mode: enforce\n---\nmode: observe\n", "more than one YAML document"},
		{"invalid value", "swarm: {sessions: 1}\n", "swarm.sessions: 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseConfig([]byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseConfig: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	cfg, err := ParseConfig(nil)
	if err != nil {
		t.Fatalf("ParseConfig(empty): %v", err)
	}
	if diff := cmp.Diff(DefaultConfig(), cfg); diff != "" {
		t.Fatalf("empty document is not the defaults:\n%s", diff)
	}
}

func TestCategories(t *testing.T) {
	patterns := map[string][]string{
		"db.*":           {"database"},
		"db.admin.*":     {"database", "admin"},
		"mail.send":      {"email", "external"},
		"mail.*":         {"email"},
		"*":              {"other"},
		"api.github.com": {"external"},
	}
	idx := compileCategories(patterns)
	tests := []struct {
		name string
		want []string
	}{
		{"db.query", []string{"database"}},
		{"db.admin.drop", []string{"database", "admin"}},
		{"mail.send", []string{"email", "external"}},
		{"mail.read", []string{"email"}},
		{"api.github.com", []string{"external"}},
		{"shell.exec", []string{"other"}},
		{"", []string{"other"}},
	}
	for _, tt := range tests {
		got := Categories(tt.name, patterns)
		if !cmp.Equal(got, tt.want) {
			t.Errorf("Categories(%q) = %v, want %v", tt.name, got, tt.want)
		}
		if c := idx.lookup(tt.name); !cmp.Equal(names(c), tt.want) {
			t.Errorf("compiled lookup(%q) = %v, want %v", tt.name, names(c), tt.want)
		}
	}
	if got := Categories("x", map[string][]string{"db.*": {"database"}}); got != nil {
		t.Errorf("Categories with no match = %v, want nil", got)
	}
}

func names(ns []name) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Value())
	}
	return out
}

func TestOutsideObjective(t *testing.T) {
	tests := []struct {
		declared, cats []string
		want           bool
	}{
		{nil, []string{"database"}, false}, // nothing declared: no restriction
		{nil, nil, false},                  //
		{[]string{"database"}, []string{"database"}, false},
		{[]string{"database", "email"}, []string{"email"}, false},
		{[]string{"email"}, []string{"email", "external"}, true}, // sending outside was not declared
		{[]string{"database"}, nil, true},                        // unclassified tools are outside
		{[]string{"database"}, []string{"payments"}, true},
	}
	for _, tt := range tests {
		if got := OutsideObjective(tt.declared, tt.cats); got != tt.want {
			t.Errorf("OutsideObjective(%v, %v) = %v, want %v", tt.declared, tt.cats, got, tt.want)
		}
	}
}
