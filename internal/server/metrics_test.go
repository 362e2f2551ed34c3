package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/server"
)

// scrape reads /metrics as Prometheus does and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, n *testNode, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", n.url+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.tlsClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	if ct := expfmt.ResponseFormat(resp.Header); ct.FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// sample returns the metric of family name whose labels are exactly want,
// or nil.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// TestMetricsScrape: a call made through a live node shows up in /metrics,
// parsed by the Prometheus text parser, with the server, tool and decision
// as labels; a denied call is counted as denied; the audit log's appends,
// the decision and upstream latencies and the sessions are there too.
func TestMetricsScrape(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("reporter", "write the weekly report", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	ctx := ctxT(t)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hi"}}); err != nil {
		t.Fatalf("echo: %v", err)
	}
	// Not in the starter policy for agents outside "writers": denied.
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.write_note", Arguments: map[string]any{"name": "x", "text": "y"}}); err == nil && !res.IsError {
		t.Fatal("write_note was allowed")
	}

	fams := scrape(t, n, "")
	allow := sample(fams, "ward_calls_total", map[string]string{"server": "demo", "method": "tools/call", "tool": "demo.echo", "decision": "allow"})
	if allow == nil || allow.GetCounter().GetValue() != 1 {
		t.Fatalf("ward_calls_total for the allowed echo = %v, want 1", allow)
	}
	deny := sample(fams, "ward_calls_total", map[string]string{"server": "demo", "method": "tools/call", "tool": "demo.write_note", "decision": "deny"})
	if deny == nil || deny.GetCounter().GetValue() != 1 {
		t.Fatalf("ward_calls_total for the denied write_note = %v, want 1", deny)
	}
	if fams["ward_calls_total"].GetType() != dto.MetricType_COUNTER {
		t.Fatal("ward_calls_total is not a counter")
	}
	for name, labels := range map[string]map[string]string{
		"ward_decision_duration_seconds":     {"decision": "allow"},
		"ward_upstream_duration_seconds":     {"server": "demo", "outcome": "ok"},
		"ward_audit_append_duration_seconds": {},
		"ward_audit_batch_events":            {},
		"ward_audit_commit_duration_seconds": {},
	} {
		m := sample(fams, name, labels)
		if m == nil || m.GetHistogram().GetSampleCount() == 0 {
			t.Errorf("%s%v: no observations", name, labels)
		}
	}
	if m := sample(fams, "ward_sessions_active", map[string]string{}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("ward_sessions_active = %v, want 1", m)
	}
	if m := sample(fams, "ward_mcp_sessions", map[string]string{}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("ward_mcp_sessions = %v, want 1", m)
	}
	if m := sample(fams, "ward_approvals_waiting", map[string]string{}); m == nil || m.GetGauge().GetValue() != 0 {
		t.Errorf("ward_approvals_waiting = %v, want 0", m)
	}

	// An unauthenticated API request is a refusal, counted by kind.
	if status, _ := n.call("", "GET", "/v1/agents", nil); status != http.StatusUnauthorized {
		t.Fatalf("GET /v1/agents without a credential: %d", status)
	}
	fams = scrape(t, n, "")
	if m := sample(fams, "ward_refusals_total", map[string]string{"kind": "authentication"}); m == nil || m.GetCounter().GetValue() < 1 {
		t.Errorf("ward_refusals_total{kind=authentication} = %v, want >= 1", m)
	}
}

// TestMetricsQuota: a limit's usage shows in /metrics as the fullest key's
// fraction of its max, with the max beside it.
func TestMetricsQuota(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly, Limits: []quota.Limit{{ID: "echoes", Scope: quota.ScopeGroup, Window: time.Hour, Max: 4,
		Match: quota.Matcher{Tools: []string{"demo.echo"}}}}})
	n.setupAgent("worker", []string{"crew"}, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("worker", "echo a little", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)
	for range 3 {
		if _, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hi"}}); err != nil {
			t.Fatal(err)
		}
	}
	fams := scrape(t, n, "")
	if m := sample(fams, "ward_quota_usage_ratio", map[string]string{"limit": "echoes"}); m == nil || m.GetGauge().GetValue() != 0.75 {
		t.Fatalf("ward_quota_usage_ratio{limit=echoes} = %v, want 0.75", m)
	}
	if m := sample(fams, "ward_quota_max", map[string]string{"limit": "echoes"}); m == nil || m.GetGauge().GetValue() != 4 {
		t.Fatalf("ward_quota_max{limit=echoes} = %v, want 4", m)
	}
}

// TestMetricsWrappedCalls: a call decided over the guard API (ward mcp
// wrap) is counted, under server "wrapped" and no tool: the agent's side
// names its servers and tools, and labels must stay bounded by the
// configuration.
func TestMetricsWrappedCalls(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("wrapper", nil, map[string][]string{"tools": {"*"}})
	creds, _ := n.startSession("wrapper", "wrap a local server", nil, "")
	b, _ := json.Marshal(map[string]any{"operation": map[string]any{"method": "tools/call", "action": "call_tool", "server": "local-x1", "name": "local-x1.anything", "upstream": "anything"}})
	resp, err := creds.HTTPClient(false).Post(n.url+"/v1/guard/check", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("guard check: %d %s", resp.StatusCode, body)
	}
	fams := scrape(t, n, "")
	var total float64
	for _, m := range fams["ward_calls_total"].GetMetric() {
		for _, l := range m.Label {
			if l.GetValue() == "local-x1" || l.GetValue() == "local-x1.anything" {
				t.Fatalf("an agent-chosen name became a label: %v", m)
			}
		}
		if sample(fams, "ward_calls_total", map[string]string{"server": "wrapped", "method": "tools/call", "tool": "", "decision": labelOf(m, "decision")}) == m {
			total += m.GetCounter().GetValue()
		}
	}
	if total != 1 {
		t.Fatalf("wrapped calls counted %v times, want 1", total)
	}
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
