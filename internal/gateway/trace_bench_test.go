package gateway

import (
	"context"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ward-dev/ward/internal/policy"
)

// BenchmarkUntracedCall is what tracing costs a call when it is off: the
// parent lookup and the five span starts, each a context lookup returning
// the no-op span.
func BenchmarkUntracedCall(b *testing.B) {
	s := &Session{}
	s.caller.Store(&Caller{Session: "s1", Agent: "a"})
	req := &jsonrpc.Request{Method: "tools/call"}
	op := &Operation{Action: policy.ActionCallTool, Server: "demo", Name: "demo.echo", Upstream: "echo"}
	p := params{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c := spanParent(ctx, ctx, p)
		c, span := s.startCall(c, req, op)
		_, d := start(c, "ward.decide")
		d.End()
		_, u := startUpstream(c, req.Method, op)
		u.End()
		_, o := start(c, "ward.audit.record")
		o.End()
		span.End()
	}
}

// BenchmarkTracedCall is the same call's spans when tracing is on: made,
// attributed and ended by the OpenTelemetry SDK (exporting excluded).
func BenchmarkTracedCall(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	s := &Session{}
	s.caller.Store(&Caller{Session: "s1", Agent: "a"})
	req := &jsonrpc.Request{Method: "tools/call"}
	op := &Operation{Action: policy.ActionCallTool, Server: "demo", Name: "demo.echo", Upstream: "echo"}
	p := params{}
	rctx, http := tp.Tracer("bench").Start(context.Background(), "POST")
	defer http.End()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c := spanParent(ctx, rctx, p)
		c, span := s.startCall(c, req, op)
		dctx, d := start(c, "ward.decide")
		_ = dctx
		verdictAttrs(d, Verdict{Allow: true, Event: 7})
		d.End()
		_, u := startUpstream(c, req.Method, op)
		u.End()
		_, o := start(c, "ward.audit.record")
		o.End()
		verdictAttrs(span, Verdict{Allow: true, Event: 7})
		span.End()
	}
}
