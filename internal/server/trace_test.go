package server_test

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/telemetry"
)

// collector is an in-process OTLP/HTTP trace receiver: it takes what the
// OTLP specification says an exporter sends (a protobuf
// ExportTraceServiceRequest POSTed to /v1/traces) and answers as a
// collector does.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []string // service.name of each resource
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces of application/x-protobuf", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				c.res = append(c.res, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestTraceOfACall: with an OTLP endpoint configured, one tool call gives
// an in-process OTLP collector its spans: the call as ward received it
// (named and attributed by the MCP semantic conventions, continuing the
// trace the client put in params._meta), its decision, the upstream call,
// the recording of the outcome, and the authentication of the HTTP request
// that carried it.
func TestTraceOfACall(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("notes") permit (principal, action == Action::"call_tool", resource in Server::"demo");
@id("deletes-need-a-dba") @escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"demo.delete_note");
`), 0o600)
	n := startNode(t, server.Config{Policies: []string{dir}, Upstreams: demoOnly, HoldTimeout: 50 * time.Millisecond,
		ApproverGroups: map[string][]string{"dba": {"dana"}}, Tracing: telemetry.TracingConfig{OTLPEndpoint: srv.URL}})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	creds, v := n.startSession("reporter", "write the weekly report", nil, "")
	cs := n.connect(t, creds.HTTPClient(false), nil)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	_, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hi"},
		Meta: mcp.Meta{"traceparent": "00-" + traceID + "-" + parentID + "-01"}})
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	// Held for approval, then answered pending when the hold ends.
	if _, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "demo.delete_note", Arguments: map[string]any{"name": "welcome"}}); err == nil {
		t.Fatal("escalated call went through")
	}
	cs.Close()
	n.Close() // exports what is buffered

	col.mu.Lock()
	defer col.mu.Unlock()
	byName := map[string]*tracepb.Span{}
	for _, s := range col.spans {
		byName[s.Name] = s
	}
	call := byName["tools/call demo.echo"]
	if call == nil {
		names := []string{}
		for n := range byName {
			names = append(names, n)
		}
		t.Fatalf("no span for the call; spans: %v", names)
	}
	if call.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("call span kind %v, want server", call.Kind)
	}
	if got := hex.EncodeToString(call.TraceId); got != traceID {
		t.Errorf("call span trace %s, want the client's %s", got, traceID)
	}
	if got := hex.EncodeToString(call.ParentSpanId); got != parentID {
		t.Errorf("call span parent %s, want the client's %s", got, parentID)
	}
	for k, want := range map[string]string{"mcp.method.name": "tools/call", "gen_ai.tool.name": "demo.echo", "gen_ai.operation.name": "execute_tool",
		"ward.session.id": v.Session, "ward.decision": "allow", "ward.server": "demo"} {
		if got := attr(call, k); got != want {
			t.Errorf("call span %s = %q, want %q", k, got, want)
		}
	}
	for name, kind := range map[string]tracepb.Span_SpanKind{"ward.decide": tracepb.Span_SPAN_KIND_INTERNAL,
		"tools/call echo": tracepb.Span_SPAN_KIND_CLIENT, "ward.audit.record": tracepb.Span_SPAN_KIND_INTERNAL} {
		var s *tracepb.Span
		for _, x := range col.spans {
			if x.Name == name && string(x.ParentSpanId) == string(call.SpanId) {
				s = x
			}
		}
		if s == nil {
			t.Errorf("no %s span under the call's", name)
			continue
		}
		if s.Kind != kind || string(s.ParentSpanId) != string(call.SpanId) || string(s.TraceId) != string(call.TraceId) {
			t.Errorf("%s: kind %v parent %x trace %x, want kind %v under the call span %x", name, s.Kind, s.ParentSpanId, s.TraceId, kind, call.SpanId)
		}
	}
	held, wait := byName["tools/call demo.delete_note"], byName["ward.approval.wait"]
	if held == nil || wait == nil || string(wait.ParentSpanId) != string(held.SpanId) || attr(held, "ward.decision") != "escalate" || attr(wait, "ward.approval.state") != "pending" {
		t.Errorf("held call %v, approval wait %v", held, wait)
	}
	auth := byName["ward.authenticate"]
	if auth == nil || attr(auth, "ward.session.id") != v.Session || attr(auth, "ward.auth.method") != "dpop" {
		t.Errorf("authentication span: %v", auth)
	}
	if len(col.res) == 0 || col.res[0] != "ward" {
		t.Errorf("resource service.name %v, want ward", col.res)
	}
	for _, s := range col.spans {
		for _, a := range s.Attributes {
			if v := a.GetValue().GetStringValue(); v != "" && (v == creds.Grant || len(creds.Grant) > 20 && strings.Contains(v, creds.Grant[:20])) {
				t.Errorf("span %s attribute %s carries the grant", s.Name, a.Key)
			}
		}
	}
}
