package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingConfig configures [NewTracing].
type TracingConfig struct {
	// OTLPEndpoint is where spans are exported by OTLP over HTTP
	// (protobuf): a collector's base URL, e.g. http://127.0.0.1:4318, to
	// which /v1/traces is added when it has no path, or the full traces
	// URL. http:// sends in clear (a collector on the same host); https://
	// verifies the collector's certificate against the system roots.
	// Empty: tracing is off.
	OTLPEndpoint string
	// Headers are sent with every export (a collector's credential; never
	// logged).
	Headers map[string]string
	// ServiceName (default "ward") and Version describe this process.
	ServiceName, Version string
	// SampleRatio is the fraction of traces started here that are
	// recorded, in (0, 1]; 0 means 1. A call that continues a client's
	// trace follows the client's sampling decision.
	SampleRatio float64
}

// ExportTimeout bounds one export to the collector.
const ExportTimeout = 10 * time.Second

// Tracing is the process's tracer provider.
type Tracing struct {
	tp  trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when off
}

// NewTracing returns the tracer provider cfg asks for: one exporting by
// OTLP, or, when no endpoint is configured, the no-op provider. It sends
// nothing until a span ends; a collector that cannot be reached costs
// dropped spans, never a refused call.
func NewTracing(cfg TracingConfig) (*Tracing, error) {
	if cfg.OTLPEndpoint == "" {
		return &Tracing{tp: noop.NewTracerProvider()}, nil
	}
	u, err := url.Parse(cfg.OTLPEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		// The value is not shown: it may hold a credential.
		return nil, errors.New("telemetry: otlp_endpoint must be an http:// or https:// URL with a host and no credentials, query or fragment (credentials go in headers)")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("telemetry: sample ratio %v is not in (0, 1]", cfg.SampleRatio)
	}
	if cfg.SampleRatio == 0 {
		cfg.SampleRatio = 1
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "ward"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String()), otlptracehttp.WithTimeout(ExportTimeout)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName), attribute.String("service.version", cfg.Version))
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))))
	return &Tracing{tp: sdk, sdk: sdk}, nil
}

// On reports whether spans are recorded and exported.
func (t *Tracing) On() bool { return t != nil && t.sdk != nil }

// Provider is the tracer provider (the no-op one when off).
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return noop.NewTracerProvider()
	}
	return t.tp
}

// Shutdown exports the spans still buffered and stops exporting.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.On() {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// tracerName names the instrumentation scope of the HTTP spans.
const tracerName = "github.com/ward-dev/ward/internal/telemetry"

// Handler wraps h with a server span per request, continuing the W3C
// trace context of the request's traceparent header. The span is named by
// the method alone: paths carry ids. When tracing is off, h is returned
// as it is.
func (t *Tracing) Handler(h http.Handler) http.Handler {
	if !t.On() {
		return h
	}
	tr := t.tp.Tracer(tracerName)
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
			attribute.String("network.protocol.version", fmt.Sprintf("%d.%d", r.ProtoMajor, r.ProtoMinor)),
		))
		defer span.End()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
