package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/sessioncred"
)

// callTimeout bounds one tool call of an agent.
const callTimeout = 20 * time.Second

// load is agents calling tools through a node, each its own ward session
// and MCP session, as fast as answers come, reconnecting whenever the node
// is gone. It remembers every call acknowledged to it (a result, not an
// error), by the call's id.
type load struct {
	// endpoints: agent i calls through endpoints[i % len(endpoints)].
	endpoints []string
	// prefix starts the id of every call ("a" unless set).
	prefix   string
	creds    []*sessioncred.Credentials
	spendOne int // every spendOne-th call of an agent is of toolSpend, while spendLeft allows

	mu    sync.Mutex
	acked map[string]string // call id -> tool; guarded by mu
	// through counts acknowledged calls by endpoint; guarded by mu
	through map[string]int
	errs    map[string]int // errors, by their first words; guarded by mu

	sent          atomic.Int64 // calls made
	inflight      atomic.Int64 // calls made and not yet answered
	refused       atomic.Int64 // calls refused by the budget
	failed        atomic.Int64 // calls that got any other error
	connects      atomic.Int64 // MCP sessions opened
	connectFailed atomic.Int64 // MCP sessions that could not be opened

	// spendLeft is how many more calls of toolSpend agents may start (a
	// burst), all agents together.
	spendLeft atomic.Int64
}

func newLoad(endpoint string, creds []*sessioncred.Credentials, spendOne int) *load {
	return &load{endpoints: []string{endpoint}, prefix: "a", creds: creds, spendOne: spendOne,
		acked: map[string]string{}, through: map[string]int{}, errs: map[string]int{}}
}

// run makes calls until ctx is done.
func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, c := range l.creds {
		wg.Go(func() { l.agent(ctx, i, c) })
	}
	wg.Wait()
}

// agent is one agent's loop: connect, call until an error that is not a
// refusal, close, connect again.
func (l *load) agent(ctx context.Context, i int, c *sessioncred.Credentials) {
	hc := c.HTTPClient(false)
	endpoint := l.endpoints[i%len(l.endpoints)]
	seq := 0
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "wardfault-agent", Version: "1"}, nil).
			Connect(cctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
		cancel()
		if err != nil {
			l.connectFailed.Add(1)
			l.note(err)
			sleep(ctx, 20*time.Millisecond)
			continue
		}
		l.connects.Add(1)
		for ctx.Err() == nil {
			seq++
			tool := toolWork
			if l.spendOne > 0 && seq%l.spendOne == 0 && l.spendLeft.Add(-1) >= 0 {
				tool = toolSpend
			}
			id := fmt.Sprintf("%s%d-%d", l.prefix, i, seq)
			l.sent.Add(1)
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			l.inflight.Add(1)
			res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: callArgs{ID: id}})
			l.inflight.Add(-1)
			cancel()
			if err == nil && !res.IsError && textOf(res) == id {
				l.mu.Lock()
				l.acked[id] = tool
				l.through[endpoint]++
				l.mu.Unlock()
				continue
			}
			if err == nil {
				err = fmt.Errorf("unexpected answer %+v", res.Content)
			}
			if strings.Contains(err.Error(), "is used up") {
				l.refused.Add(1)
				continue
			}
			l.failed.Add(1)
			l.note(err)
			break
		}
		cs.Close()
	}
}

// refusals is how many calls failed, and MCP sessions could not be
// opened, so far.
func (l *load) refusals() int64 { return l.failed.Load() + l.connectFailed.Load() }

// note counts an error by its first words (it names the fault).
func (l *load) note(err error) {
	msg := err.Error()
	if len(msg) > 90 {
		msg = msg[:90]
	}
	l.mu.Lock()
	l.errs[msg]++
	l.mu.Unlock()
}

// topErrors returns the k most frequent errors, with their counts.
func (l *load) topErrors(k int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	msgs := slices.Collect(maps.Keys(l.errs))
	slices.SortFunc(msgs, func(a, b string) int { return cmp.Or(l.errs[b]-l.errs[a], strings.Compare(a, b)) })
	var out []string
	for _, m := range msgs[:min(k, len(msgs))] {
		out = append(out, fmt.Sprintf("%d× %s", l.errs[m], m))
	}
	return out
}

// acknowledged returns a copy of the calls acknowledged so far.
func (l *load) acknowledged() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.acked)
}

// ackedThrough is how many calls were acknowledged through endpoint so
// far.
func (l *load) ackedThrough(endpoint string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.through[endpoint]
}

// ackCount is how many calls were acknowledged so far.
func (l *load) ackCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func textOf(r *mcp.CallToolResult) string {
	var s string
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			s += t.Text
		}
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
