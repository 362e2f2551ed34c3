// Package egress is ward's HTTP(S) egress proxy: the only way out of a
// `ward run` sandbox to the network. The runtime points the agent's
// HTTP_PROXY and HTTPS_PROXY at it with the session's proxy credentials
// (http://SESSION:TOKEN@HOST:PORT), and every request the agent makes is
// authenticated, decided, recorded and then forwarded or refused.
//
// # What the proxy accepts
//
//   - CONNECT host:port opens a tunnel: the proxy decides a [Request] with
//     Tunnel set, dials the destination and splices bytes both ways.
//   - An absolute-form request (GET http://host/path) is decided with its
//     real method and path and forwarded by the proxy's own HTTP client,
//     which never consults proxy environment variables and drops hop-by-hop
//     and Proxy-* headers. Bodies stream in both directions. Upgrade headers
//     are dropped too: an upgraded connection (WebSocket, h2c) would escape
//     per-request decisions, so such clients should tunnel with CONNECT.
//   - An origin-form request (GET /path) is not a proxy request: 400.
//
// Every request carries Proxy-Authorization: Basic with the session ID as
// user and the proxy token as password; without valid credentials the answer
// is 407 with a Proxy-Authenticate challenge.
//
// # Destinations
//
// The agent never chooses an IP address for a name: the proxy resolves the
// host itself, only after the [Decider] allowed it, keeps the addresses
// [Config.AllowAddr] accepts (by default [PublicAddr]: no loopback, private,
// link-local, multicast or otherwise special ranges, so an allowlisted name
// cannot be pointed at internal services) and dials them in order. A name
// whose addresses are all refused gets 403.
//
// # Credential brokering
//
// For a host with a [Credential], secrets stay in ward. A CONNECT to it is
// decided like any tunnel, answered, and then the proxy terminates TLS itself with a leaf certificate for
// that host minted from [Config.CA] (the sandbox trusts that CA). Each inner
// request is then decided on its own (Scheme "https", real method and path),
// its Authorization header and any header named like the credential are
// dropped, the credential header is set, and the request is forwarded over
// TLS verified against [Config.UpstreamRoots]. Plain-HTTP requests to such
// a host get the header too. The secret never appears in records, errors or
// responses: every occurrence of it (and of its token part, see
// [Credential]) in a response's headers, body and trailers, as sent or in
// the forms a server commonly gives a secret back in (any letter case,
// hex, base64 of either alphabet at any alignment, JSON, JavaScript, URL
// and HTML escapes of any of its characters), is masked with bytes of the
// same length, and responses whose encoding the proxy cannot read are
// refused. Secrets echoed under two layers of encoding (a URL-escaped
// JSON escape) are not recognised.
//
// # Records
//
// The [Recorder] sees every request the proxy handles, including refused
// ones, and both records of one request carry the same *[Request]:
//
//   - a [PhaseForward] record after the request was allowed and its
//     destination checked, before the proxy dials, tunnels, terminates TLS
//     or sends any byte upstream. If it cannot be written, nothing is sent
//     and the agent gets 502.
//   - exactly one [PhaseDone] record when the request has finished, with
//     status, byte counts, duration and error. Its Decision is
//     [DecisionAllow] if and only if a PhaseForward record was written.
//     If the done record of a forwarded HTTP request cannot be written the
//     client connection is aborted (the response may already be delivered,
//     which is why the forward record is written first); a tunnel's done
//     record is written after it closed.
//
// For example, an agent that runs
//
//	curl -x http://s1:TOKEN@ward:3128 http://api.example.com/v1/items
//
// makes the proxy call AuthenticateProxy(ctx, "s1", "TOKEN"), then
// DecideEgress with Request{Method: "GET", Scheme: "http", Host:
// "api.example.com", Port: 80, Path: "/v1/items"}, resolve api.example.com,
// record {Phase: "forward", Decision: "allow"}, forward the request, and
// record {Phase: "done", Decision: "allow", Status: 200, BytesDown: ...}.
//
// # Limits
//
// Headers are limited to [Config.MaxHeaderBytes] (431), tunnels to
// [Config.MaxTunnels] in all and [Config.MaxTunnelsPerSession] per session
// (429), and a tunnel or keep-alive connection idle for
// [Config.IdleTimeout] is closed. [Proxy.CloseSession] ends everything a
// session has in flight.
package egress
