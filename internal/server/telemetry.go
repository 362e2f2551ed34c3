package server

import (
	"context"
	"time"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/telemetry"
)

// newMetrics builds the node's metrics. The sources read the node's state
// at scrape time, so they see whatever Open has set up by then.
func (n *Node) newMetrics() *telemetry.Metrics {
	return telemetry.NewMetrics(telemetry.Sources{
		Sessions: func(ctx context.Context) (int, error) {
			if n.Store == nil {
				return 0, nil
			}
			ss, err := n.Store.ListSessions(ctx, store.SessionFilter{Status: "active"})
			return len(ss), err
		},
		MCPSessions: func() int {
			if n.Gateway == nil {
				return 0
			}
			return n.Gateway.Open()
		},
		ApprovalsWaiting: func(ctx context.Context) (int, error) {
			if n.Approvals == nil {
				return 0, nil
			}
			rs, err := n.Approvals.List(ctx, approval.Filter{State: approval.StatePending})
			return len(rs), err
		},
		Quotas: n.quotaUsage,
	})
}

// quotaUsage reports, per limit, the usage of its fullest key.
func (n *Node) quotaUsage() []telemetry.QuotaUsage {
	if n.limiter == nil {
		return nil
	}
	used := map[string]float64{}
	for _, k := range n.limiter.Snapshot().Keys {
		sum := 0.0
		for _, e := range k.Events {
			sum += e.Amount
		}
		used[k.Limit] = max(used[k.Limit], sum)
	}
	var out []telemetry.QuotaUsage
	for _, l := range n.limiter.Limits() {
		out = append(out, telemetry.QuotaUsage{Limit: l.ID, Used: used[l.ID], Max: l.Max})
	}
	return out
}

// Metrics returns the node's metrics.
func (n *Node) Metrics() *telemetry.Metrics { return n.metrics }

// meteredGuard counts what the pipeline decides and how long deciding,
// waiting for approval and the upstream took. It embeds the pipeline
// itself, not an interface, so that every other method (ForgetPin,
// FilterReported, which the API looks for) is still there.
type meteredGuard struct {
	*enforce.Pipeline
	m *telemetry.Metrics
}

var (
	_ gateway.Guard = meteredGuard{}
	// What the API looks for on its guard, kept by the embedding.
	_ interface{ ForgetPin(server, tool string) } = meteredGuard{}
	_ interface {
		FilterReported(ctx context.Context, c *gateway.Caller, kind gateway.Kind, server string, items []gateway.Item) ([]bool, error)
	} = meteredGuard{}
)

func (g meteredGuard) Check(ctx context.Context, c *gateway.Caller, op *gateway.Operation) (gateway.Verdict, error) {
	start := time.Now()
	v, err := g.Pipeline.Check(ctx, c, op)
	if op.Refused != "" {
		return v, err // counted as a refusal
	}
	outcome := v.Outcome()
	if err != nil {
		outcome = "deny"
	}
	g.m.Decided(metricServer(op), op.Method, metricTool(op), outcome, time.Since(start))
	return v, err
}

func (g meteredGuard) Await(ctx context.Context, c *gateway.Caller, ids []string) (string, error) {
	start := time.Now()
	state, err := g.Pipeline.Await(ctx, c, ids)
	outcome := state
	if err != nil {
		outcome = "error"
	}
	g.m.ApprovalWait(outcome, time.Since(start))
	return state, err
}

func (g meteredGuard) Observe(ctx context.Context, c *gateway.Caller, op *gateway.Operation, out gateway.Outcome) error {
	if out.Forwarded && !out.Reported {
		outcome := "ok"
		switch {
		case !out.Answered:
			outcome = "failed"
		case out.Error != "" || out.IsError:
			outcome = "error"
		}
		g.m.Upstream(op.Server, outcome, out.Duration)
	}
	return g.Pipeline.Observe(ctx, c, op, out)
}

// metricServer is the server label of op: a configured server's name, or
// "wrapped" for one an agent's side reports (ward mcp wrap), whose names
// the agent chooses: labels must stay bounded by the configuration.
func metricServer(op *gateway.Operation) string {
	if op.Reported {
		return "wrapped"
	}
	return op.Server
}

// metricTool is the tool label of op: its name for tools and prompts of
// configured servers, empty for resources (their URIs are not bounded)
// and for what an agent's side reports.
func metricTool(op *gateway.Operation) string {
	if op.Reported {
		return ""
	}
	switch op.Action {
	case policy.ActionCallTool, policy.ActionGetPrompt:
		return op.Name
	}
	return ""
}
