// Package streamable implements the MCP Streamable HTTP transport
// (specification 2025-11-25, basic/transports) at the level of raw JSON-RPC
// messages, for a gateway that forwards messages without reinterpreting
// them. Messages are the go-sdk's [jsonrpc.Message] values: params and
// results stay json.RawMessage end to end.
//
// # Server
//
// A [Handler] serves one MCP endpoint. A POST without Mcp-Session-Id whose
// body is a single initialize request creates a [Session] and asks
// [HandlerConfig.Open] for its [SessionHandler]; the response carries the
// new Mcp-Session-Id. Every later request names the session and is first
// passed to [SessionHandler.Authorize]. Client→server messages go to
// [SessionHandler.Receive] in arrival order; the gateway answers with
// [Session.Send], which routes:
//
//   - a response to the stream of the POST that carried its request (an SSE
//     event, or the JSON body when that POST did not accept
//     text/event-stream, or when it carried one request, accepted
//     application/json too, and the response came before any other
//     message related to it and before KeepAlive passed); the POST
//     completes when all its requests are answered;
//   - a request or notification related to an unanswered client request to
//     that request's stream, anything else to the standalone GET stream,
//     queued (bounded) while none is open.
//
// Every SSE event has the id "<stream>_<n>" (stream 0 is the standalone
// stream) and is retained, up to [HandlerConfig.MaxRetainedEvents] per
// session, so a client can resume a dropped stream: GET with Last-Event-ID
// replays the retained events after n and then continues live if the
// stream is still open. For protocol 2025-11-25 and later each new stream
// starts with a priming event (an id and empty data).
//
// A client that reads a stream too slowly (more than 1,024 events pending,
// not counting the answers to its POST's own requests, or 8 MiB) gets what
// is pending written, then its connection is dropped, and it resumes from
// the last event it got; when the session no longer retains the events it
// missed, the resumption is answered 400. So a client gets every message
// of a stream, in order, or an explicit error: never a silent gap, and
// never a 200 with an empty body (the first event always fits, so a
// dropped stream always has an event id to resume from).
//
// HTTP answers, each error with a JSON-RPC error body (id null):
//
//	POST  Content-Type not application/json            415
//	      body over MaxBodyBytes                       413
//	      body not read by the server's read deadline  408
//	      malformed JSON, duplicate member names        400, code -32700
//	      not a JSON-RPC message, batch outside
//	      2025-03-26, reused request id                 400, code -32600
//	      no session id and not initialize             400
//	      unknown or closed session                    404
//	      Open / Authorize error                       401 (ErrUnauthorized) or 403
//	      initialize beyond MaxSessions                503
//	      only notifications and responses             202, empty body
//	      requests                                     200, text/event-stream if
//	                                                   Accept allows it, else
//	                                                   application/json; one
//	                                                   request, Accept allowing
//	                                                   both: application/json
//	                                                   unless a message related
//	                                                   to it or KeepAlive comes
//	                                                   before its answer
//	GET   Accept without text/event-stream             406
//	      no Last-Event-ID: standalone stream          200 (409 if already open)
//	      Last-Event-ID malformed, unknown or evicted  400 (not 404, which a
//	                                                   client reads as "session gone")
//	      Last-Event-ID of a stream open elsewhere     409
//	DELETE                                             204, session closed
//	other methods                                      405
//
// Streams live as long as their session: open streams get a comment ping
// every [HandlerConfig.KeepAlive], and [HandlerConfig.WriteTimeout] bounds
// each write (set before it, lifted after it), never the time between two
// writes, so neither a tool call of minutes nor an idle standalone stream
// is cut, while a client that stops reading is disconnected and may resume.
// The http.Server in front must have no WriteTimeout of its own.
//
// At most [HandlerConfig.MaxSessions] sessions exist at once, exactly: an
// initialize takes a slot before Open is called, in the same critical
// section as the check, and gives it back if opening fails; beyond the
// limit it is answered 503.
//
// Mcp-Session-Id, Last-Event-ID and MCP-Protocol-Version longer than 128,
// 64 and 32 bytes are refused with 400; the overall header size is bounded
// by the http.Server's MaxHeaderBytes. Session ids are 256-bit random and
// looked up by their SHA-256, so lookups do not leak timing about stored
// ids. Sessions close on DELETE, [Session.Close], [Handler.Close] or after
// [HandlerConfig.IdleTimeout] with no request in flight and no stream open.
//
// # Client
//
// [Dial] returns a [ClientConn], an mcp.Connection that POSTs each written
// message and delivers what the server sends through Read: JSON bodies and
// SSE streams alike. It records the session id and the negotiated protocol
// version from the initialize exchange and sends them on every later
// request, opens the standalone GET stream after notifications/initialized
// (a 404 or 405 means the server has none), and resumes any dropped stream
// with Last-Event-ID, up to [ClientConfig.MaxResume] attempts without
// progress. A request whose stream cannot be completed is answered locally
// with a JSON-RPC error response, so no caller waits forever. A 404 on a
// request carrying the session id makes Read and Write fail with
// [ErrSessionExpired]. A Write that fails once its POST may have reached
// the server (it had a connection) wraps [ErrUnanswered]: the server may
// have acted on the message. [ClientConn.Push] has the connection hand
// each message to a function, on the goroutine reading its stream,
// instead of queueing it for Read: a caller holding many connections
// needs no reader goroutine for each.
package streamable
