// Package telemetry is what ward tells the tools operators already run:
// Prometheus metrics and OpenTelemetry traces.
//
// # Metrics
//
// [Metrics] holds ward's collectors in a registry of its own (never the
// process-global default one) and serves them in the Prometheus text
// format. Names follow the Prometheus conventions: the ward_ prefix,
// _total for counters, _seconds for durations, base units throughout:
//
//	ward_calls_total{server,method,tool,decision}       calls decided (allow, deny, escalate)
//	ward_decision_duration_seconds{decision}            gather, decide and record one call
//	ward_upstream_duration_seconds{server,outcome}      one forwarded call, until its answer
//	ward_approval_wait_seconds{outcome}                 how long a held call waited
//	ward_audit_append_duration_seconds                  Append until durable
//	ward_audit_commit_duration_seconds                  one group commit (write and fsync)
//	ward_audit_batch_events                             events made durable by one commit
//	ward_refusals_total{kind}                           refusals before any decision
//	ward_sessions_active, ward_mcp_sessions             sessions (read at scrape)
//	ward_approvals_waiting                              approval requests pending (read at scrape)
//	ward_quota_usage_ratio{limit}, ward_quota_max{limit} the fullest key of each limit
//
// A node of several adds, through [Metrics.Registry] (internal/server,
// cosign.go), ward_cosignatures_total{node} and
// ward_cosign_refusals_total{node}: the other nodes' audit heads it
// cosigned, and those it refused (a rollback, a fork, a wrong key).
//
// The tool label is the name a client sees ("fs.read_file") for tools and
// prompts, and empty for resources (their URIs would make a label without
// bound); the server label is a configured server's name. Calls decided
// over the guard API (`ward mcp wrap`) are counted under server "wrapped"
// with no tool: there the agent's side names both. Every label is thus
// bounded by the configuration, so no agent can grow the series.
//
// Who may read /metrics is decided by the API (see internal/api): callers
// on a loopback address, or an operator credential; everyone else is
// refused and the refusal recorded.
//
// # Traces
//
// [NewTracing] returns a tracer provider exporting by OTLP over HTTP when
// an endpoint is configured, and the no-op provider when none is: then no
// span is ever recorded and the instrumented paths pay for an interface
// call. The spans of one tool call follow OpenTelemetry's semantic
// conventions for MCP where they exist:
//
//	POST                                  the HTTP request (server span; W3C traceparent honoured)
//	├─ ward.authenticate                  grant and proof, or client certificate
//	└─ tools/call fs.read_file            the call as ward received it (server span: mcp.method.name,
//	   │                                  gen_ai.tool.name, gen_ai.operation.name=execute_tool,
//	   │                                  jsonrpc.request.id, mcp.session.id, ward.decision)
//	   ├─ ward.decide                     policy, quota, approvals redeemed, decision recorded
//	   ├─ ward.approval.wait              a held call waiting for its approvals
//	   ├─ tools/call read_file            the upstream call (client span, the upstream's own name)
//	   └─ ward.audit.record               the outcome recorded
//
// A call whose params carry a W3C trace context in _meta (traceparent,
// tracestate), as the MCP conventions recommend, continues that trace;
// otherwise it is a child of the HTTP request's span. Spans carry who and
// what (session, agent, server, tool, decision, policies, audit event
// index), never arguments, results or credentials.
package telemetry
