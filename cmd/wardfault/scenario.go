package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/sessioncred"
)

// result is what one scenario found.
type result struct {
	Scenario string `json:"scenario"`
	// Skipped says why the scenario did not run (it needs root, say).
	Skipped string `json:"skipped,omitempty"`
	// What happened, in a few lines.
	Notes []string `json:"notes"`
	// Acked calls were acknowledged to agents, Ran were run by the
	// upstream, Logged allowed in the audit log.
	Acked  int        `json:"acked"`
	Ran    int        `json:"ran"`
	Logged int        `json:"logged"`
	Loss   loss       `json:"loss"`
	Budget *budgetUse `json:"budget,omitempty"`
	// Problems are promises broken other than a loss: a node that did not
	// refuse, a health check that lied, a node that did not recover.
	Problems []string `json:"problems"`
}

func (r *result) note(f string, a ...any)    { r.Notes = append(r.Notes, fmt.Sprintf(f, a...)) }
func (r *result) problem(f string, a ...any) { r.Problems = append(r.Problems, fmt.Sprintf(f, a...)) }

// failed reports whether the scenario lost or broke anything.
func (r *result) failed() bool { return !r.Loss.none() || len(r.Problems) > 0 }

// fixture is a node with an upstream, an agent in group crew and its
// sessions, set up through the ward CLI as an operator would.
type fixture struct {
	node  *node
	up    *upstream
	key   string // the audit log's key, copied at first start (pinned by verify)
	creds []*sessioncred.Credentials
}

// setup starts a node on data (a directory that need not exist) with an
// upstream, a permit-all policy and, if budget > 0, a group budget of
// budget calls of toolSpend per hour; registers a sponsor and an agent;
// and starts sessions sessions.
func setup(ctx context.Context, cfg Config, dir, data string, budget, sessions int) (*fixture, error) {
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "all.cedar"),
		[]byte(`@id("wardfault") permit (principal, action == Action::"call_tool", resource);`+"\n"), 0o600); err != nil {
		return nil, err
	}
	up := startUpstream()
	conf := fmt.Sprintf("policies: [%q]\nservers:\n  - name: up\n    url: %q\n", filepath.Join(dir, "policies"), up.srv.URL+"/")
	if budget > 0 {
		conf += fmt.Sprintf("limits:\n  - id: spend\n    scope: group\n    key: crew\n    tools: [%q]\n    window: 1h\n    max: %d\n", toolSpend, budget)
	}
	config := filepath.Join(dir, "ward.yaml")
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		up.close()
		return nil, err
	}
	n, err := newNode(cfg.Ward, dir, data, config)
	if err != nil {
		up.close()
		return nil, err
	}
	f := &fixture{node: n, up: up, key: filepath.Join(dir, "audit.pub")}
	if err := f.init(ctx, sessions); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *fixture) init(ctx context.Context, sessions int) error {
	if err := f.node.start(ctx); err != nil {
		return err
	}
	pub, err := os.ReadFile(filepath.Join(f.node.data, "keys", "audit.pub"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.key, pub, 0o600); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"sponsor", "create", "ops", "--kind", "platform", "--allow", "tool:up.*"},
		{"agent", "register", "worker", "--sponsor", "ops", "--group", "crew", "--allow", "tool:up.*"},
	} {
		if _, err := f.node.ward(ctx, args...); err != nil {
			return err
		}
	}
	for i := range sessions {
		out, err := f.node.ward(ctx, "session", "start", "--agent", "worker", "--objective", fmt.Sprintf("fault test agent %d", i), "--ttl", "1h", "-o", "json")
		if err != nil {
			return err
		}
		var s struct{ Credentials string }
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			return fmt.Errorf("ward session start: %w", err)
		}
		c, err := sessioncred.Load(s.Credentials)
		if err != nil {
			return err
		}
		f.creds = append(f.creds, c)
	}
	return nil
}

func (f *fixture) endpoint() string { return f.node.url() + "/mcp" }

func (f *fixture) close() {
	if f.node != nil {
		f.node.kill()
	}
	f.up.close()
}

// runLoad starts l in the background; the function returned stops it and
// waits until every agent is done.
func runLoad(ctx context.Context, l *load) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx) }()
	return func() { cancel(); <-done }
}

// underLoad starts a node on data with sessions agents (and spare sessions
// no agent uses, last in f.creds) calling through it, lets them run for
// cfg.Interval and waits for a first acknowledged call, noting a problem
// on r if none came before the fault (named by before). stop stops the
// agents; calling it twice is harmless. On an error nothing is left running.
func underLoad(ctx context.Context, cfg Config, r *result, dir, data string, sessions, spare int, before string) (f *fixture, l *load, stop func(), err error) {
	if f, err = setup(ctx, cfg, dir, data, 0, sessions+spare); err != nil {
		return nil, nil, nil, err
	}
	l = newLoad(f.endpoint(), f.creds[:sessions], 0)
	stop = runLoad(ctx, l)
	sleep(ctx, cfg.Interval)
	if !waitAcks(ctx, l, 1, time.Minute) {
		r.problem("no call was acknowledged before %s", before)
	}
	return f, l, stop, nil
}

// waitAcks waits until at least want calls were acknowledged, for up to
// limit; it reports whether they were.
func waitAcks(ctx context.Context, l *load, want int, limit time.Duration) bool {
	return waitFor(ctx, func() bool { return l.ackCount() >= want }, limit)
}

// finish stops the node, reads its log and compares it with what agents
// were told and what the upstream ran.
func finish(ctx context.Context, r *result, f *fixture, l *load, budget int) error {
	f.node.stop()
	lc, err := readLog(ctx, f.node, f.key)
	if errors.Is(err, errUnverified) {
		// Broken, not unrunnable: nothing it holds can be trusted.
		r.problem("%v", err)
		return nil
	}
	if err != nil {
		return err
	}
	acked, ran := l.acknowledged(), f.up.ran()
	loss, use := compare(acked, ran, lc, budget)
	r.Acked, r.Ran, r.Logged, r.Loss = len(acked), len(ran), len(lc.allowed), loss
	if budget > 0 {
		r.Budget = &use
		if refused := l.refused.Load(); refused > 0 && use.Allowed < budget {
			// Refused while the log holds less than the budget: usage was
			// counted that the log does not justify.
			r.problem("the budget refused %d calls with only %d of %d used in the log", refused, use.Allowed, budget)
		}
	}
	if top := l.topErrors(3); len(top) > 0 {
		r.note("agents' errors, most frequent: %s", strings.Join(top, "; "))
	}
	return nil
}
