package monitor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"
)

// FuzzParseConfig checks that ParseConfig accepts only configurations New
// accepts, that an accepted configuration survives a YAML round trip, and
// that its compiled categories agree with Categories.
func FuzzParseConfig(f *testing.F) {
	f.Add(docExample(f))
	f.Add([]byte(""))
	f.Add([]byte("mode: observe\nlearn: 0\nlearn_for: 1h\n"))
	f.Add([]byte("categories: {\"*\": [x], \"db.*\": [database], \"db.q\": [q]}\n"))
	f.Add([]byte("playbooks: [{signals: [\"*\"], min_severity: high, actions: [block]}]\n"))
	f.Add([]byte("rate: {factor: .nan}\n"))
	f.Add([]byte("trust: {initial: 101}\n"))
	f.Add([]byte("a: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatalf("ParseConfig accepted what New rejects: %v", err)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
		if diff := cmp.Diff(cfg, back, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(Config{}, "Now")); diff != "" {
			t.Fatalf("round trip (-parsed +reparsed):\n%s", diff)
		}
		for _, n := range []string{"", "db.query", "mail.send", "x", "api.github.com"} {
			if !cmp.Equal(names(m.cats.lookup(n)), Categories(n, cfg.Categories), cmpopts.EquateEmpty()) {
				t.Fatalf("compiled categories of %q differ: %v, %v", n, names(m.cats.lookup(n)), Categories(n, cfg.Categories))
			}
		}
		// The monitor works under the configuration.
		for i := range 3 {
			m.Observe(Event{Time: t0.Add(time.Duration(i)), Agent: "a", Session: "s", Groups: []string{"g"}, Name: "db.query", Verb: "write", Risk: 100, Drift: true})
		}
		if tr := m.Trust("a"); tr < 0 || tr > 100 {
			t.Fatalf("trust %d", tr)
		}
	})
}

// FuzzRestore checks that Restore of any JSON state either fails and
// changes nothing, or yields a monitor whose snapshot restores to itself
// and which keeps working.
func FuzzRestore(f *testing.F) {
	c := &clock{now: t0}
	cfg := streamConfig(c)
	src, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	run(src, stream(4, t0, 300))
	seed, err := json.Marshal(src.Snapshot())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"agents":[{"name":"a","trust":{"score":50,"at":-9223372036854775808},"window":[{"epoch":-1,"calls":3}],"denials":[1,2,3,4,5,6,7,8,9]}]}`))
	f.Add([]byte(`{"version":1,"swarms":[{"group":"g","tool":"t","hits":[{"id":"a","time":1},{"id":"a","time":2}],"fired":0,"last":5}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st State
		if json.Unmarshal(data, &st) != nil {
			return
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		empty := m.Snapshot()
		if err := m.Restore(st); err != nil {
			if diff := cmp.Diff(empty, m.Snapshot()); diff != "" {
				t.Fatalf("failed Restore changed the monitor:\n%s", diff)
			}
			return
		}
		snap := m.Snapshot()
		again, _ := New(cfg)
		if err := again.Restore(snap); err != nil {
			t.Fatalf("Restore of a snapshot: %v", err)
		}
		if diff := cmp.Diff(snap, again.Snapshot()); diff != "" {
			t.Fatalf("snapshot does not restore to itself:\n%s", diff)
		}
		for _, a := range snap.Agents {
			m.Observe(Event{Time: t0, Agent: a.Name, Session: "s", Groups: []string{"g0"}, Name: "db.query", Verb: "write", Decision: DecisionDeny})
			if tr := m.Trust(a.Name); tr < 0 || tr > 100 {
				t.Fatalf("trust of %q: %d", a.Name, tr)
			}
		}
	})
}
