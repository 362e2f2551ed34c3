package server_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/server"
)

// decidable fails the test for every escalation in set that the approver
// groups cannot decide: a group nobody is in, or a quorum larger than the
// distinct voters of its groups. It returns how many escalations it
// checked.
func decidable(t *testing.T, set *policy.Set, groups map[string][]string) int {
	t.Helper()
	n := 0
	for _, p := range set.Policies() {
		spec, ok := p.Annotations["escalate"]
		if !ok {
			continue
		}
		n++
		a, err := policy.ParseApproval(spec)
		if err != nil {
			t.Fatalf("policy %s: %v", p.ID, err)
		}
		voters := map[string]bool{}
		for _, g := range a.Groups {
			if len(groups[g]) == 0 {
				t.Errorf("policy %s (%s) escalates to group:%s, which nobody in the default configuration is in", p.ID, p.Position, g)
			}
			for _, m := range groups[g] {
				voters[m] = true
			}
		}
		if len(voters) < a.Quorum {
			t.Errorf("policy %s (%s) needs %d approvers; the default configuration has %d", p.ID, p.Position, a.Quorum, len(voters))
		}
	}
	return n
}

// TestDefaultEscalationsAreDecidable: a node with the embedded defaults
// (what `ward up` runs without a configuration file) can decide every
// escalation its starter policy can produce: each group it names has a
// member, the admin created at first start, and that admin can approve.
func TestDefaultEscalationsAreDecidable(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	groups := n.ApproverGroups()
	if got := decidable(t, n.Policies(), groups); got < 2 {
		t.Fatalf("the starter policy has %d escalating policies; the test would check nothing", got)
	}
	if !slices.Equal(groups[server.DefaultApproverGroup], []string{"admin"}) {
		t.Fatalf("default approvers %v: want the first-start admin in group %s", groups, server.DefaultApproverGroup)
	}
}

// TestConfiguredApproversKept: a configuration that names the default
// group's members replaces the default; one that names other groups keeps
// them and still gets the default group.
func TestConfiguredApproversKept(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly, ApproverGroups: map[string][]string{"security": {"sam"}}})
	if g := n.ApproverGroups(); !slices.Equal(g["security"], []string{"sam"}) || len(g) != 1 {
		t.Fatalf("configured security group: %v", g)
	}
	cfg := map[string][]string{"dba": {"dana"}}
	n = startNode(t, server.Config{Upstreams: demoOnly, ApproverGroups: cfg})
	if g := n.ApproverGroups(); !slices.Equal(g["dba"], []string{"dana"}) || !slices.Equal(g["security"], []string{"admin"}) {
		t.Fatalf("configured dba group: %v", g)
	}
	if len(cfg) != 1 {
		t.Fatalf("the caller's map was changed: %v", cfg)
	}
}

// TestUnanswerableEscalationsWarned: a node says at start, and at every
// reload, which escalations no one could decide (a group nobody is in, a
// quorum above its voters, a limit's approvers), naming the policy and
// the configuration key to set; answerable ones are not mentioned.
func TestUnanswerableEscalationsWarned(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) {
		if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`
@id("ok") @escalate("1 of group:security")
permit (principal, action == Action::"call_tool", resource == Tool::"demo.echo");
@id("nobody") @escalate("1 of group:dba")
permit (principal, action == Action::"call_tool", resource == Tool::"demo.add");
@id("too-few") @escalate("3 of group:security")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
@id("reviewed") @escalate("2 of group:ops")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.write_note");
`)
	var logs syncBuffer // the node logs from its own goroutines too
	lim, _ := policy.ParseApproval("1 of group:finance")
	n := startNode(t, server.Config{Upstreams: demoOnly, Policies: []string{dir}, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		ApproverGroups: map[string][]string{"ops": {"olga"}},
		Reviewers:      []server.Reviewer{{Name: "bot", URL: "http://127.0.0.1:1/", Groups: []string{"ops"}}},
		LimitApprovers: map[string]policy.Approval{"spend": lim}})
	out := logs.String()
	for _, want := range []string{
		`policy \"nobody\" (` + filepath.Join(dir, "p.cedar") + `:4:1) escalates to 1 of group:dba, but only 0 approver(s) can vote`,
		`add members under approvals.groups.dba`,
		`policy \"too-few\"`,
		`escalates to 3 of group:security, but only 1 approver(s) can vote`,
		`limit \"spend\" escalates to 1 of group:finance`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("start log lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{`policy \"ok\"`, `policy \"reviewed\"`} {
		if strings.Contains(out, not) {
			t.Errorf("start log warns about an answerable escalation %s:\n%s", not, out)
		}
	}
	logs.Reset()
	write(`@id("later") @escalate("1 of group:nobody-here") permit (principal, action, resource);`)
	if _, err := n.ReloadPolicies(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `policy \"later\"`) {
		t.Fatalf("reload did not warn: %s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer a node's background goroutines may log to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
