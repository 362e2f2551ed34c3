package api

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
)

// tracerName names the instrumentation scope of the API's spans.
const tracerName = "github.com/ward-dev/ward/internal/api"

// agent authenticates an agent session (authenticateAgent) inside a
// "ward.authenticate" span when the request is traced. The span says how
// (mtls or dpop) and who, never the credential; a failure carries the
// message the caller is told.
func (s *Server) agent(r *http.Request) (*gateway.Caller, *grant.Claims, error) {
	parent := trace.SpanFromContext(r.Context())
	if !parent.IsRecording() {
		return s.authenticateAgent(r)
	}
	method := "dpop"
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		method = "mtls"
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(r.Context(), "ward.authenticate",
		trace.WithAttributes(attribute.String("ward.auth.method", method)))
	defer span.End()
	c, claims, err := s.authenticateAgent(r.WithContext(ctx))
	if err != nil {
		span.SetAttributes(attribute.String("error.type", "ward.unauthenticated"))
		span.SetStatus(codes.Error, err.Error())
		return c, claims, err
	}
	span.SetAttributes(attribute.String("ward.session.id", c.Session), attribute.String("ward.agent", c.Agent),
		attribute.String("ward.spiffe_id", c.SPIFFEID))
	return c, claims, nil
}
