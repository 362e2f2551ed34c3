package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/sessioncred"
)

// The scenarios of several nodes: cfg.Nodes `ward up` processes on one
// PostgreSQL schema of a server of wardfault's own (pgserver.go), agents
// calling through every node, a group budget the nodes share by leases,
// and one fault in the middle:
//
//   - node-kill: the last node is killed with SIGKILL; while it is down,
//     sessions are revoked on the first; it is started again.
//   - db-restart: the PostgreSQL server crashes (stop -m immediate) and
//     starts again; sessions are revoked as soon as it answers (the
//     revocation is sent, again and again, from the moment it went down).
//   - db-cut: the last node reaches the database through a proxy that
//     stops moving bytes (a partition: nothing is refused or closed,
//     queries hang); sessions are revoked on the first node while the
//     last is cut off; then the cut heals.
//
// What must hold afterwards, without restarting any node the fault did
// not kill:
//
//   - every call acknowledged to an agent is allowed and answered in the
//     verified log of one of the nodes, and every call the upstream ran
//     was recorded;
//   - the group budget is not exceeded: the calls the logs allow
//     together (not refunded), and those the upstream ran, are at most
//     the budget, which is spent until it refuses;
//   - no node allowed a call of a revoked session more than
//     FreshnessBound (1 s) after the revocation's request returned;
//   - every node converges by itself: /readyz answers 200 again, each
//     node serves the live sessions and refuses every revoked one.
//     While the database is out of a node's reach, /readyz must say
//     so (503).

// freshnessBound is the node's FreshnessBound (internal/server): how
// long after a revocation a node of several may still allow a call of
// the revoked session.
const freshnessBound = time.Second

// clusterScenarioNames are the scenarios of several nodes.
var clusterScenarioNames = []string{"node-kill", "db-restart", "db-cut"}

// convergeLimit bounds how long nodes may take to converge after a fault.
const convergeLimit = time.Minute

// cluster is nodes on one PostgreSQL store, an upstream, and agents'
// sessions started through the first node's CLI.
type cluster struct {
	pg    *pgServer
	proxy *dbProxy // in front of the database for the last node, if asked
	up    *upstream
	nodes []*node
	keys  []string // each node's DATA/keys/audit.pub, copied at its first start

	workers, victims []*sessioncred.Credentials
	work, doomed     *load // the workers' load and the victims'
	stopWork         func()
	stopDoomed       func()
	// revoked: victim session -> when the request that ended it returned.
	revoked map[string]time.Time
}

// setupCluster starts a PostgreSQL server of its own and cfg.Nodes nodes
// on it (the last one behind a dbProxy if proxied), with a group budget
// of cfg.Budget calls of toolSpend, and starts cfg.Sessions workers'
// sessions and one victim session per node. An error wrapping
// errNoPostgres means the machine cannot run the scenario.
func setupCluster(ctx context.Context, cfg Config, dir string, proxied bool) (*cluster, error) {
	pg, err := startPostgres(ctx)
	if err != nil {
		return nil, err
	}
	c := &cluster{pg: pg, up: startUpstream(), revoked: map[string]time.Time{}}
	if err := c.init(ctx, cfg, dir, proxied); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *cluster) init(ctx context.Context, cfg Config, dir string, proxied bool) error {
	pol := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pol, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pol, "all.cedar"),
		[]byte(`@id("wardfault") permit (principal, action == Action::"call_tool", resource);`+"\n"), 0o600); err != nil {
		return err
	}
	conf := fmt.Sprintf("policies: [%q]\nservers:\n  - name: up\n    url: %q\n", pol, c.up.srv.URL+"/")
	conf += fmt.Sprintf("limits:\n  - id: spend\n    scope: group\n    key: crew\n    tools: [%q]\n    window: 1h\n    max: %d\n", toolSpend, cfg.Budget)
	if proxied {
		p, err := startProxy(fmt.Sprintf("127.0.0.1:%d", c.pg.port))
		if err != nil {
			return err
		}
		c.proxy = p
	}
	for i := range cfg.Nodes {
		ndir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return err
		}
		dsn := c.pg.dsn()
		if c.proxy != nil && i == cfg.Nodes-1 {
			dsn = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", c.proxy.addr())
		}
		config := filepath.Join(ndir, "ward.yaml")
		if err := os.WriteFile(config, []byte(conf+fmt.Sprintf("store: {postgres: %q, schema: ward}\n", dsn)), 0o600); err != nil {
			return err
		}
		n, err := newNode(cfg.Ward, ndir, filepath.Join(ndir, "data"), config)
		if err != nil {
			return err
		}
		var extra []string
		if i > 0 {
			extra = []string{"--join", filepath.Join(c.nodes[0].data, "keys", "join.token")}
		}
		if err := n.start(ctx, extra...); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, n)
		pub, err := os.ReadFile(filepath.Join(n.data, "keys", "audit.pub"))
		if err != nil {
			return err
		}
		key := filepath.Join(ndir, "audit.pub")
		if err := os.WriteFile(key, pub, 0o600); err != nil {
			return err
		}
		c.keys = append(c.keys, key)
	}
	for _, args := range [][]string{
		{"sponsor", "create", "ops", "--kind", "platform", "--allow", "tool:up.*"},
		{"agent", "register", "worker", "--sponsor", "ops", "--group", "crew", "--allow", "tool:up.*"},
	} {
		if _, err := c.ward(ctx, 0, args...); err != nil {
			return err
		}
	}
	for i := range cfg.Sessions + cfg.Nodes {
		out, err := c.ward(ctx, 0, "session", "start", "--agent", "worker", "--objective", fmt.Sprintf("fault test agent %d", i), "--ttl", "1h", "-o", "json")
		if err != nil {
			return err
		}
		var s struct{ Credentials string }
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			return fmt.Errorf("ward session start: %w", err)
		}
		cr, err := sessioncred.Load(s.Credentials)
		if err != nil {
			return err
		}
		if i < cfg.Sessions {
			c.workers = append(c.workers, cr)
		} else {
			c.victims = append(c.victims, cr)
		}
	}
	return nil
}

// ward runs the ward CLI as the operator (the first node's admin
// credential) against node i.
func (c *cluster) ward(ctx context.Context, i int, args ...string) (string, error) {
	n := *c.nodes[0]
	n.env = append(slices.Clone(n.env), "WARD_SERVER="+c.nodes[i].url())
	return n.ward(ctx, args...)
}

func (c *cluster) endpoints() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.url()+"/mcp")
	}
	return out
}

// underLoad starts the workers (spread over the nodes, spending the
// budget at every spendEvery-th call while a burst allows) and the
// victims (victim i calling through node i), waits for a call
// acknowledged through every node, and starts a burst of half the budget,
// so that the nodes hold leases of it when the fault comes. It reports
// false (with a problem noted) if the nodes never served.
func (c *cluster) underLoad(ctx context.Context, cfg Config, r *result) bool {
	c.work = newLoad("", c.workers, spendEvery)
	c.work.endpoints = c.endpoints()
	c.doomed = newLoad("", c.victims, 0)
	c.doomed.endpoints, c.doomed.prefix = c.endpoints(), "v"
	c.stopWork, c.stopDoomed = runLoad(ctx, c.work), runLoad(ctx, c.doomed)
	sleep(ctx, cfg.Interval)
	for _, e := range c.endpoints() {
		if !waitFor(ctx, func() bool { return c.work.ackedThrough(e) > 0 && c.doomed.ackedThrough(e) > 0 }, time.Minute) {
			r.problem("no call was acknowledged through %s before the fault", e)
			return false
		}
	}
	burst := int64(max(1, cfg.Budget/2))
	c.work.spendLeft.Store(burst)
	if !waitFor(ctx, func() bool { return c.work.spendLeft.Load() <= burst/2 }, time.Minute) {
		r.problem("the agents did not spend the budget for a minute before the fault")
		return false
	}
	return true
}

// revoke ends every victim's session through node i, each request sent
// again (every 100 ms, for up to convergeLimit) until it succeeds, and
// remembers when each succeeded.
func (c *cluster) revoke(ctx context.Context, r *result, i int) {
	for _, v := range c.victims {
		deadline := time.Now().Add(convergeLimit)
		tries := 0
		for {
			tries++
			_, err := c.ward(ctx, i, "session", "end", v.Info.Session, "--reason", "wardfault: revoked during the fault")
			if err == nil {
				c.revoked[v.Info.Session] = time.Now()
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				r.problem("could not end session %s through node %d: %v", v.Info.Session, i, err)
				break
			}
			sleep(ctx, 100*time.Millisecond)
		}
		if tries > 1 {
			r.note("ending session %s took %d requests", v.Info.Session, tries)
		}
	}
}

// readyz asks node i's /readyz and returns its status code (0 when it
// does not answer).
func (c *cluster) readyz(i int) int {
	n := c.nodes[i]
	resp, err := n.hc.Get(n.url() + "/readyz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode
}

// unready checks that each of nodes (indices) says it is unready while
// the database is out of its reach.
func (c *cluster) unready(ctx context.Context, r *result, why string, nodes ...int) {
	for _, i := range nodes {
		t := time.Now()
		if !waitFor(ctx, func() bool { return c.readyz(i) == http.StatusServiceUnavailable }, 10*time.Second) {
			r.problem("node %d did not answer /readyz 503 within 10 s of %s (it answers %d)", i, why, c.readyz(i))
			continue
		}
		r.note("node %d unready %v after %s", i, time.Since(t).Round(10*time.Millisecond), why)
	}
}

// converge checks that every node recovers by itself after the fault:
// /readyz answers 200, workers' calls are acknowledged through it again,
// and it refuses every revoked session; then it spends the rest of the
// budget until the budget refuses.
func (c *cluster) converge(ctx context.Context, r *result, budget int) {
	t := time.Now()
	for i := range c.nodes {
		if !waitFor(ctx, func() bool { return c.readyz(i) == http.StatusOK }, convergeLimit) {
			r.problem("node %d did not answer /readyz 200 within %v of the fault's end (it answers %d)", i, convergeLimit, c.readyz(i))
		}
	}
	r.note("every node ready again %v after the fault ended", time.Since(t).Round(10*time.Millisecond))
	for i, e := range c.endpoints() {
		before := c.work.ackedThrough(e)
		if !waitFor(ctx, func() bool { return c.work.ackedThrough(e) > before }, convergeLimit) {
			r.problem("node %d acknowledged no call of a live session within %v of the fault's end", i, convergeLimit)
		}
	}
	for i := range c.nodes {
		for j, v := range c.victims {
			if err := c.probe(ctx, i, v, fmt.Sprintf("p%d-%d", i, j)); err == nil {
				r.problem("node %d served a call of session %s, revoked %v earlier", i, v.Info.Session, time.Since(c.revoked[v.Info.Session]).Round(time.Millisecond))
			}
		}
	}
	c.work.spendLeft.Store(math.MaxInt64 / 2)
	if !waitFor(ctx, func() bool { return c.work.refused.Load() > 0 }, convergeLimit) {
		r.problem("the budget of %d refused no call within %v of the fault's end: the budget check proves nothing", budget, convergeLimit)
	}
}

// probe makes one call with v's session through node i; nil if it was
// acknowledged.
func (c *cluster) probe(ctx context.Context, i int, v *sessioncred.Credentials, id string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "wardfault-probe", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: c.nodes[i].url() + "/mcp", HTTPClient: v.HTTPClient(false), MaxRetries: -1}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: toolWork, Arguments: callArgs{ID: id}})
	if err != nil {
		return err
	}
	if res.IsError || textOf(res) != id {
		return errors.New("refused")
	}
	return nil
}

// finish stops the agents and the nodes, reads every node's verified
// log, and compares them, together, with what agents were told, what the
// upstream ran, the budget and the revocations.
func (c *cluster) finish(ctx context.Context, r *result, budget int) error {
	c.stopWork()
	c.stopDoomed()
	for _, n := range c.nodes {
		n.stop()
	}
	all := &logCalls{allowed: map[string]string{}, answered: map[string]bool{}, refunded: map[string]bool{},
		session: map[string]string{}, at: map[string]time.Time{}}
	node := map[string]int{} // call id -> the node whose log allows it
	for i, n := range c.nodes {
		lc, err := readLog(ctx, n, c.keys[i])
		if errors.Is(err, errUnverified) {
			r.problem("node %d: %v", i, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		all.events += lc.events
		for id, tool := range lc.allowed {
			if j, dup := node[id]; dup {
				r.problem("call %s allowed by node %d and by node %d", id, j, i)
			}
			node[id] = i
			all.allowed[id], all.session[id], all.at[id] = tool, lc.session[id], lc.at[id]
			all.answered[id], all.refunded[id] = lc.answered[id], lc.refunded[id]
		}
	}
	acked := c.work.acknowledged()
	for id, tool := range c.doomed.acknowledged() {
		acked[id] = tool
	}
	ran := c.up.ran()
	loss, use := compare(acked, ran, all, budget)
	r.Acked, r.Ran, r.Logged, r.Loss, r.Budget = len(acked), len(ran), len(all.allowed), loss, &use
	// Revocations: no call of a revoked session allowed more than the
	// bound after the revocation returned.
	late, within := 0, 0
	for id, s := range all.session {
		at, ok := c.revoked[s]
		if !ok || !all.at[id].After(at) {
			continue
		}
		if d := all.at[id].Sub(at); d > freshnessBound {
			late++
			if late <= 5 {
				r.problem("node %d allowed call %s of session %s %v after the session was revoked (bound %v)", node[id], id, s, d.Round(time.Millisecond), freshnessBound)
			}
		} else {
			within++
		}
	}
	if late > 5 {
		r.problem("… %d calls allowed in all after their session's revocation, beyond the bound", late)
	}
	r.note("revoked %d sessions; %d of their calls allowed after the revocation returned, within the %v bound, %d beyond it", len(c.revoked), within, freshnessBound, late)
	r.note("budget %d: %d allowed in the logs together, %d run by the upstream, %d acknowledged, %d refused", budget, use.Allowed, use.Ran, use.Acked, c.work.refused.Load())
	if top := c.work.topErrors(3); len(top) > 0 {
		r.note("workers' errors, most frequent: %s", strings.Join(top, "; "))
	}
	return nil
}

func (c *cluster) close() {
	if c.stopWork != nil {
		c.stopWork()
		c.stopDoomed()
	}
	for _, n := range c.nodes {
		n.kill()
	}
	if c.proxy != nil {
		c.proxy.close()
	}
	c.up.close()
	c.pg.remove()
}

// faultFor is how long a fault lasts: cfg.Interval, and at least long
// enough for the nodes' knowledge of revocations to go stale.
func faultFor(cfg Config) time.Duration { return max(cfg.Interval, 2*freshnessBound) }

// clusterScenario runs one scenario of several nodes: setup, load, the
// fault (which returns once it ended), convergence, the checks.
func clusterScenario(ctx context.Context, cfg Config, dir, name string, proxied bool, fault func(*cluster, *result) error) (*result, error) {
	r := &result{Scenario: name}
	c, err := setupCluster(ctx, cfg, dir, proxied)
	if errors.Is(err, errNoPostgres) {
		r.Skipped = err.Error()
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	defer c.close()
	if !c.underLoad(ctx, cfg, r) {
		return r, nil
	}
	if err := fault(c, r); err != nil {
		return nil, err
	}
	c.converge(ctx, r, cfg.Budget)
	return r, c.finish(ctx, r, cfg.Budget)
}

// nodeKill: the last node is killed with SIGKILL under load, sessions are
// revoked on the first while it is down, and it is started again.
func nodeKill(ctx context.Context, cfg Config, dir string) (*result, error) {
	return clusterScenario(ctx, cfg, dir, "node-kill", false, func(c *cluster, r *result) error {
		last := c.nodes[len(c.nodes)-1]
		inflight := c.work.inflight.Load()
		last.kill()
		c.revoke(ctx, r, 0)
		sleep(ctx, faultFor(cfg))
		if err := last.start(ctx); err != nil {
			r.problem("node %d did not start again after kill -9: %v", len(c.nodes)-1, err)
		}
		r.note("%d nodes, %d workers, %d victims; node %d killed with about %d calls in flight, down %v", len(c.nodes), len(c.workers), len(c.victims), len(c.nodes)-1, inflight, faultFor(cfg))
		return nil
	})
}

// dbRestart: the database crashes under load and starts again; the
// revocations are sent from the moment it went down until they succeed.
func dbRestart(ctx context.Context, cfg Config, dir string) (*result, error) {
	return clusterScenario(ctx, cfg, dir, "db-restart", false, func(c *cluster, r *result) error {
		if err := c.pg.crash(ctx); err != nil {
			return err
		}
		down := time.Now()
		revoked := make(chan struct{})
		rr := &result{} // the revocations' notes, taken into r once they are done
		go func() { defer close(revoked); c.revoke(ctx, rr, 0) }()
		all := make([]int, len(c.nodes))
		for i := range all {
			all[i] = i
		}
		c.unready(ctx, r, "the database crashed", all...)
		sleep(ctx, time.Until(down.Add(faultFor(cfg))))
		if err := c.pg.start(ctx); err != nil {
			return err
		}
		r.note("%d nodes, %d workers, %d victims; the database down %v (crashed: pg_ctl stop -m immediate)", len(c.nodes), len(c.workers), len(c.victims), time.Since(down).Round(10*time.Millisecond))
		<-revoked
		r.Notes, r.Problems = append(r.Notes, rr.Notes...), append(r.Problems, rr.Problems...)
		return nil
	})
}

// dbCut: the last node is cut off from the database (a partition) under
// load, sessions are revoked on the first meanwhile, and the cut heals.
func dbCut(ctx context.Context, cfg Config, dir string) (*result, error) {
	return clusterScenario(ctx, cfg, dir, "db-cut", true, func(c *cluster, r *result) error {
		last := len(c.nodes) - 1
		c.proxy.setCut(true)
		cut := time.Now()
		c.revoke(ctx, r, 0)
		c.unready(ctx, r, "its database connection was cut", last)
		sleep(ctx, time.Until(cut.Add(faultFor(cfg))))
		c.proxy.setCut(false)
		r.note("%d nodes, %d workers, %d victims; node %d cut off from the database for %v", len(c.nodes), len(c.workers), len(c.victims), last, time.Since(cut).Round(10*time.Millisecond))
		return nil
	})
}
