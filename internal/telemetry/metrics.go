package telemetry

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are read when /metrics is scraped, for the gauges whose truth
// lives elsewhere. Any of them may be nil (the gauge is then not exported).
// Each is called with a context bounded by [ScrapeTimeout]; a source that
// fails leaves its gauge out of that scrape rather than reporting zero.
type Sources struct {
	// Sessions counts the active ward sessions.
	Sessions func(ctx context.Context) (int, error)
	// MCPSessions counts the MCP sessions open at the gateway.
	MCPSessions func() int
	// ApprovalsWaiting counts the approval requests still pending.
	ApprovalsWaiting func(ctx context.Context) (int, error)
	// Quotas reports, per limit, the usage of its fullest key and its max.
	Quotas func() []QuotaUsage
}

// QuotaUsage is the state of one limit: the usage of its fullest key in
// the current window, and the most the window may hold.
type QuotaUsage struct {
	Limit string
	Used  float64
	Max   float64
}

// ScrapeTimeout bounds each source read at scrape time.
const ScrapeTimeout = 2 * time.Second

// Metrics holds ward's collectors. Its methods are safe for concurrent use
// and do nothing on a nil *Metrics, so callers need not check whether
// metrics are on.
type Metrics struct {
	reg          *prometheus.Registry
	calls        *prometheus.CounterVec
	decision     *prometheus.HistogramVec
	upstream     *prometheus.HistogramVec
	approvalWait *prometheus.HistogramVec
	auditAppend  prometheus.Histogram
	auditCommit  prometheus.Histogram
	auditBatch   prometheus.Histogram
	refusals     *prometheus.CounterVec
}

// latencyBuckets cover ward's own work, from a cached decision (tens of
// microseconds) to a slow fsync or upstream (seconds).
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics returns ward's collectors, with the Go runtime's and the
// process's, registered in a registry of their own.
func NewMetrics(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_calls_total", Help: "Calls decided by ward, by server, MCP method, tool (empty for resources) and decision (allow, deny, escalate).",
		}, []string{"server", "method", "tool", "decision"}),
		decision: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ward_decision_duration_seconds", Help: "Time to gather, decide and durably record one call's decision.", Buckets: latencyBuckets,
		}, []string{"decision"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ward_upstream_duration_seconds", Help: "Time from forwarding a call upstream to its answer, by server and outcome (ok, error, failed).", Buckets: latencyBuckets,
		}, []string{"server", "outcome"}),
		approvalWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ward_approval_wait_seconds", Help: "Time an escalated call was held waiting for approval, by what it came to (approved, pending, denied, expired, error).",
			Buckets: []float64{.1, .5, 1, 2.5, 5, 10, 15, 30, 60, 300, 900},
		}, []string{"outcome"}),
		auditAppend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_audit_append_duration_seconds", Help: "Time from appending an audit event to its being durable.", Buckets: latencyBuckets,
		}),
		auditCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_audit_commit_duration_seconds", Help: "Time one group commit of the audit log took to write and sync.", Buckets: latencyBuckets,
		}),
		auditBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ward_audit_batch_events", Help: "Events made durable by one group commit of the audit log.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_refusals_total", Help: "Requests refused before anything could be decided, by kind (authentication, request, mcp, egress, ...).",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.calls, m.decision, m.upstream, m.approvalWait, m.auditAppend, m.auditCommit, m.auditBatch, m.refusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &sourceCollector{src: src})
	return m
}

// Handler serves the metrics in the Prometheus exposition formats. It does
// no access control: the caller decides who reaches it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 2 * ScrapeTimeout, ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the registry the metrics are in, for tests and for adding
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Decided counts one decided call and how long deciding took.
func (m *Metrics) Decided(server, method, tool, decision string, took time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(server, method, tool, decision).Inc()
	m.decision.WithLabelValues(decision).Observe(took.Seconds())
}

// Upstream records one forwarded call: outcome is "ok", "error" (the
// upstream answered with an error) or "failed" (no answer).
func (m *Metrics) Upstream(server, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.upstream.WithLabelValues(server, outcome).Observe(took.Seconds())
}

// ApprovalWait records how long a held call waited and what came of it.
func (m *Metrics) ApprovalWait(outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.approvalWait.WithLabelValues(outcome).Observe(took.Seconds())
}

// AuditAppended records the latency of one durable audit append.
func (m *Metrics) AuditAppended(took time.Duration) {
	if m == nil {
		return
	}
	m.auditAppend.Observe(took.Seconds())
}

// AuditCommitted records one group commit of the audit log.
func (m *Metrics) AuditCommitted(events int, took time.Duration) {
	if m == nil {
		return
	}
	m.auditBatch.Observe(float64(events))
	m.auditCommit.Observe(took.Seconds())
}

// Refused counts one refusal of the given kind.
func (m *Metrics) Refused(kind string) {
	if m == nil {
		return
	}
	if kind == "" {
		kind = "other"
	}
	m.refusals.WithLabelValues(kind).Inc()
}

// sourceCollector reads the gauges whose truth lives elsewhere at scrape
// time.
type sourceCollector struct{ src Sources }

var (
	descSessions    = prometheus.NewDesc("ward_sessions_active", "Active ward sessions.", nil, nil)
	descMCPSessions = prometheus.NewDesc("ward_mcp_sessions", "MCP sessions open at the gateway.", nil, nil)
	descApprovals   = prometheus.NewDesc("ward_approvals_waiting", "Approval requests still pending.", nil, nil)
	descQuotaUsage  = prometheus.NewDesc("ward_quota_usage_ratio", "Usage of a limit's fullest key in its current window, as a fraction of its max.", []string{"limit"}, nil)
	descQuotaMax    = prometheus.NewDesc("ward_quota_max", "The most a limit's window may hold (count or cost).", []string{"limit"}, nil)
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descMCPSessions, descApprovals, descQuotaUsage, descQuotaMax} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	count := func(d *prometheus.Desc, f func(context.Context) (int, error)) {
		if f == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
		defer cancel()
		n, err := f(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(d, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n))
	}
	count(descSessions, c.src.Sessions)
	count(descApprovals, c.src.ApprovalsWaiting)
	if c.src.MCPSessions != nil {
		ch <- prometheus.MustNewConstMetric(descMCPSessions, prometheus.GaugeValue, float64(c.src.MCPSessions()))
	}
	if c.src.Quotas != nil {
		for _, q := range c.src.Quotas() {
			ratio := 0.0
			if q.Max > 0 {
				ratio = q.Used / q.Max
			}
			ch <- prometheus.MustNewConstMetric(descQuotaUsage, prometheus.GaugeValue, ratio, q.Limit)
			ch <- prometheus.MustNewConstMetric(descQuotaMax, prometheus.GaugeValue, q.Max, q.Limit)
		}
	}
}
