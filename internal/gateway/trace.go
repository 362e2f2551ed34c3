package gateway

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/strictjson"
)

// tracerName names the instrumentation scope of the gateway's spans.
const tracerName = "github.com/ward-dev/ward/internal/gateway"

// The spans of a call follow OpenTelemetry's semantic conventions for MCP
// (mcp.*, jsonrpc.*, gen_ai.*) where they exist; ward's own attributes are
// ward.*. Spans are made with the tracer provider of the span the request
// arrived with (the transport's HTTP span): with tracing off that is the
// no-op provider, and nothing here records anything.

// spanParent is the context a call's spans start from: ctx (the call's
// deadline) with the span of the HTTP request that delivered the call
// (from rctx) or, if the client put a W3C trace context in params._meta
// (traceparent, tracestate) as the MCP conventions recommend, that one.
// When the request's span is not recording (tracing off), ctx is returned
// as it is and the call records nothing, at the cost of a type check.
func spanParent(ctx, rctx context.Context, p params) context.Context {
	span := trace.SpanFromContext(rctx)
	if !span.IsRecording() {
		return ctx
	}
	ctx = context.WithValue(trace.ContextWithSpan(ctx, span), tracerKey{}, span.TracerProvider().Tracer(tracerName))
	raw, ok := p["_meta"]
	if !ok {
		return ctx
	}
	var meta struct {
		Traceparent string `json:"traceparent"`
		Tracestate  string `json:"tracestate"`
	}
	if strictjson.UnmarshalOpen(raw, &meta) != nil || meta.Traceparent == "" {
		return ctx
	}
	carrier := propagation.MapCarrier{"traceparent": meta.Traceparent}
	if meta.Tracestate != "" {
		carrier["tracestate"] = meta.Tracestate
	}
	if remote := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier)); remote.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, remote)
	}
	return ctx
}

// tracerKey keys the tracer of a traced call in its context.
type tracerKey struct{}

// noSpan is what the steps of an untraced call get: the no-op span.
var noSpan = trace.SpanFromContext(context.Background())

// start starts a span if the call is traced.
func start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	t, ok := ctx.Value(tracerKey{}).(trace.Tracer)
	if !ok {
		return ctx, noSpan
	}
	return t.Start(ctx, name, opts...)
}

// startCall starts the server span of one call, named as the MCP
// conventions say: "{mcp.method.name} {target}", the target being the tool
// or prompt name (a resource URI is left out of the name: unbounded).
func (s *Session) startCall(ctx context.Context, req *jsonrpc.Request, op *Operation) (context.Context, trace.Span) {
	if ctx.Value(tracerKey{}) == nil {
		return ctx, noSpan
	}
	name, attrs := opSpan(req.Method, op.Action, op.Name, []attribute.KeyValue{
		attribute.String("mcp.method.name", req.Method),
		attribute.String("jsonrpc.request.id", idString(req.ID)),
		attribute.String("ward.session.id", s.who().Session),
		attribute.String("ward.agent", s.who().Agent),
		attribute.String("ward.server", op.Server),
	})
	return start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// opSpan names the span of method on the tool, prompt or resource called
// name (ward's name on the call's span, the upstream's on the upstream's)
// and adds the MCP and GenAI attributes that say which.
func opSpan(method string, action policy.Action, name string, attrs []attribute.KeyValue) (string, []attribute.KeyValue) {
	switch action {
	case policy.ActionCallTool:
		return method + " " + name, append(attrs, attribute.String("gen_ai.tool.name", name), attribute.String("gen_ai.operation.name", "execute_tool"))
	case policy.ActionGetPrompt:
		return method + " " + name, append(attrs, attribute.String("gen_ai.prompt.name", name))
	case policy.ActionReadResource:
		return method, append(attrs, attribute.String("mcp.resource.uri", name))
	}
	return method, attrs
}

// startUpstream starts the client span of the call forwarded upstream,
// named with the upstream's own name for the tool or prompt.
func startUpstream(ctx context.Context, method string, op *Operation) (context.Context, trace.Span) {
	if ctx.Value(tracerKey{}) == nil {
		return ctx, noSpan
	}
	name, attrs := opSpan(method, op.Action, op.Upstream, []attribute.KeyValue{attribute.String("mcp.method.name", method), attribute.String("ward.server", op.Server)})
	return start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// verdictAttrs describe a verdict on a span.
func verdictAttrs(span trace.Span, v Verdict) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("ward.decision", v.Outcome()), attribute.Int64("ward.audit.event", int64(v.Event)),
		attribute.StringSlice("ward.policies", v.Policies))
	if len(v.Approvals) > 0 {
		span.SetAttributes(attribute.StringSlice("ward.approvals", v.Approvals))
	}
}

// failSpan marks span as failed, with error.type and a message for people.
func failSpan(span trace.Span, errType, msg string) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("error.type", errType))
	span.SetStatus(codes.Error, msg)
}

func idString(id jsonrpc.ID) string {
	if !id.IsValid() {
		return ""
	}
	return fmt.Sprint(id.Raw())
}
