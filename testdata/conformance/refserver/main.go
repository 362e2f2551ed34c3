// Command refserver is ward's conformance reference server: an MCP server,
// served over Streamable HTTP on a loopback address, that implements what the
// server scenarios of the official MCP conformance suite
// (@modelcontextprotocol/conformance 0.1.13, pinned in ../package.json)
// require of the server they test. cmd/ward's conformance tests run the suite
// against it twice: directly, which must pass every check and so proves the
// fixture, then through a ward node and `ward mcp serve`, which must pass the
// same checks and so proves ward.
//
// It is ward's own implementation, in Go on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk), written from the requirements
// each scenario states (`npx conformance list`, and the scenario
// descriptions in the installed package). The suite's TypeScript example
// server is published in no npm package and is not used or copied here.
//
// # Running it
//
//	go run ./testdata/conformance/refserver -addr 127.0.0.1:0
//
// prints one line once it listens,
//
//	refserver: MCP endpoint http://127.0.0.1:41234/mcp
//
// and serves until interrupted. The address must be a loopback one.
//
// # What it serves
//
// Tools (each with a description and an input schema; arguments are parsed
// strictly, and a bad one is a tool error, isError true):
//
//	test_simple_text                   one text block
//	test_image_content                 a 1x1 red PNG
//	test_audio_content                 a short silent WAV (audio/wav)
//	test_embedded_resource             a text resource, test://embedded-resource
//	test_multiple_content_types        text, image and a JSON resource
//	test_tool_with_logging             three info log messages, 50 ms apart, on the call's stream
//	test_error_handling                always a tool error (isError true)
//	test_tool_with_progress            progress 0, 50, 100 of 100, 50 ms apart, when the call has a progress token
//	test_sampling {prompt}             asks the client for sampling/createMessage
//	test_elicitation {message}         asks the client for elicitation/create (username, email)
//	test_elicitation_sep1034_defaults  elicitation whose fields carry defaults (SEP-1034)
//	test_elicitation_sep1330_enums     elicitation with the five enum forms (SEP-1330)
//	json_schema_2020_12_tool           an input schema with $schema, $defs and additionalProperties (SEP-1613)
//	test_reconnection                  closes its SSE stream mid-call; the result waits for the client to resume (SEP-1699)
//	update_watched_resource            changes test://watched-resource and notifies its subscribers
//
// The last is ward's addition: the suite subscribes and unsubscribes but has no
// way to make the watched resource change, and a server that takes
// subscriptions must send notifications/resources/updated when it does.
// Each notification carries the resource's new version in _meta
// ("refserver/version"), so a client can tell which change it announces.
//
// Resources: test://static-text (text/plain), test://static-binary (a PNG),
// test://watched-resource (text/plain, subscribable, changed by
// update_watched_resource), and the template test://template/{id}/data
// (application/json naming the id). Subscriptions are taken for any resource
// the server has; an unknown URI is refused as not found.
//
// Prompts: test_simple_prompt, test_prompt_with_arguments {arg1, arg2},
// test_prompt_with_embedded_resource {resourceUri}, test_prompt_with_image.
// completion/complete offers values for the arguments of
// test_prompt_with_arguments and test_prompt_with_embedded_resource and for
// the id of the template, filtered by the prefix typed so far.
//
// Logging: logging/setLevel sets the session's level; messages below it are
// not sent, and none are sent before the client sets one (the Go SDK's
// reading of the spec).
//
// # Which stream a message goes on
//
// Everything a tool sends while its call is in flight (log messages, progress,
// and the sampling and elicitation requests) is sent in the context of that
// call, so it goes on the call's own POST stream, as the Streamable HTTP
// transport asks for messages related to a request. A client therefore
// receives a tool's sampling request whether or not it has opened its
// standalone GET stream yet. A resource update concerns no request of the
// session it goes to, so it goes on that session's standalone stream.
//
// Streams are resumable: events are kept in memory per session, so a client
// that reconnects with Last-Event-ID receives what it missed. Sessions idle
// for ten minutes are closed.
//
// # DNS rebinding
//
// The server answers only requests whose Host names a loopback host
// (localhost, 127.0.0.1 or any 127/8 address, ::1, with any port) and whose
// Origin, when present, does too; anything else is refused with 403 and a
// JSON-RPC error before the MCP layer sees it. A browser page on another
// site that rebinds its name to 127.0.0.1 sends its own name in both.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "refserver:", err)
		os.Exit(1)
	}
}

// run parses args, listens and serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `HOST:PORT` to listen on (port 0 picks a free one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; the only flag is -addr HOST:PORT", fs.Arg(0))
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v; give a loopback HOST:PORT such as 127.0.0.1:0", *addr, err)
	}
	if !loopbackName(host) {
		return fmt.Errorf("-addr %q is not a loopback address; the reference server listens on 127.0.0.1, ::1 or localhost only", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{
		Handler:           newFixture().handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintf(stdout, "refserver: MCP endpoint http://%s/mcp\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
