// Package gateway is ward's enforcement point for the Model Context Protocol:
// a proxy that presents one MCP server to an agent and forwards to the
// upstream MCP servers configured for the deployment, deciding every
// operation on the way.
//
// # One downstream session, one connection per upstream
//
// Each MCP session a client opens with the gateway ([Gateway.NewSession]) is
// bound to one authenticated ward session (a [Caller]) and gets its own
// connection to every upstream, so that state an upstream keeps per
// connection (subscriptions, logging level, sampling and elicitation requests
// it sends back) belongs to exactly one agent session. Messages travel as raw
// JSON-RPC: the gateway rewrites only what it must (request ids, the server
// prefix of tool and prompt names) and passes every other byte through, so
// content types, _meta, structured content and protocol extensions it does not
// know survive the trip.
//
// # Names
//
// Every tool and prompt has one stable identity, "SERVER.NAME", where SERVER
// is the upstream's configured name (which may not contain a dot) and NAME
// the upstream's own name: policies, grants, pins and the audit log use it,
// and a client may always call a tool by it. What a client is shown
// depends on the server's [NameMode]: by default the upstream's own name
// when no other upstream offers it, else "SERVER.NAME" (so a client sees
// "read_file" for the only upstream offering it, and "a.search" and
// "b.search" when two do; calling "search" then is refused, naming both).
// Exposed names depend only on what the upstreams list, not on who lists
// or in what order (exposeNames), never look like another server's
// "SERVER.NAME", and change only when a list is fetched again. [Gateway.Probe]
// reports clashes (and unreachable upstreams) at start. Resources keep
// their URIs; the gateway routes them to the upstream that listed them or
// whose URI template matches.
//
// # What is decided
//
// Every tools/call, resources/read, resources/subscribe, prompts/get and
// completion/complete goes through [Guard.Check] before it reaches an
// upstream; the guard's verdict is audited before anything is forwarded, and a
// denial is a JSON-RPC error with code [CodeDenied] whose message says why.
// Lists (tools, prompts, resources, resource templates) are filtered by
// [Guard.Filter], so an agent never learns the names of what it may not use.
// Methods the gateway does not know are refused: a proxy that forwarded them
// blindly would let an agent reach past the policy.
//
// Server-to-client traffic (progress, logging, list changes, resource
// updates, sampling, elicitation and roots requests) is forwarded to the
// client; a message that relates to a client request in flight is delivered
// on that request's stream. The client's answer to a server's request
// ([Guard.Answer]) and its refusal for having too many requests in flight
// are recorded like everything else; an answer that cannot be recorded
// does not reach the server.
package gateway
