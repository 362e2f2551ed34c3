package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/mcpmsg"
	"github.com/ward-dev/ward/internal/streamable"
)

// serveStdio is `ward mcp serve --stdio`: the session's MCP endpoint for a
// client that starts its servers as programs and speaks to them on stdin
// and stdout (Claude Desktop, Codex, most clients' "command" form). It
// reads the client's messages strictly (mcpmsg, as `ward mcp wrap` does),
// forwards them to the node's gateway over Streamable HTTP as the session
// (mutual TLS with its X.509-SVID, or its grant and a fresh DPoP proof on
// every request when the node cannot see the certificate), and writes what
// the gateway sends back, in order, to stdout.
//
// Unlike the TCP sidecar it needs no token and no check of who connects:
// only the program that started it holds its stdin and stdout, and the
// session's key stays in its credentials directory (mode 0600). It ends
// when the client closes stdin (ending its MCP session on the node), on
// SIGINT or SIGTERM, and when the node no longer knows the MCP session (a
// node restart, the session ended): a stdio client then sees its server
// exit and may start it again. A request the node could not be reached
// for is answered with a JSON-RPC error naming why, so the client never
// waits for an answer that cannot come.
func serveStdio(session string, stdin io.Reader, stdout io.Writer, stderr io.Writer) error {
	c, creds, err := sessionClient(session)
	if err != nil {
		return err
	}
	if err := sessionActive(c, creds); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Mutual TLS with the session's certificate over kept-alive
	// connections, unless the node cannot see it: then DPoP proofs. (No
	// overall client timeout: streams must outlive any.)
	pctx, cancel := context.WithTimeout(ctx, callTimeout)
	node, how, err := creds.NodeTransport(pctx, c.base, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("session %s: %w", session, err)
	}
	if strings.HasPrefix(how, "DPoP") {
		fmt.Fprintf(stderr, "ward mcp serve: forwarding with %s\n", how)
	}
	hc := &http.Client{Transport: node, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	up, err := streamable.Dial(ctx, streamable.ClientConfig{URL: c.base + "/mcp", HTTPClient: hc})
	if err != nil {
		return err
	}
	defer up.Close()
	down := mcpmsg.NewStdio(stdin, stdout, nil, 0)
	// A line refused here never reaches the node, so it is recorded
	// there as a refusal of the session, like `ward mcp wrap` does.
	guard := remoteGuard{c}
	down.OnRefuse = func(reason string) {
		fmt.Fprintf(stderr, "ward mcp serve: refused a message from the client: %s\n", reason)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := guard.Check(rctx, nil, &gateway.Operation{Method: "(unreadable)", Refused: "the client sent a message ward cannot read in one way: " + reason}); err != nil {
			fmt.Fprintf(stderr, "ward mcp serve: recording the refusal failed: %v\n", err)
		}
	}

	// The client's calls not answered yet: when it closes stdin (a
	// script that writes its requests and closes), they are still
	// answered before the bridge ends.
	var pending sync.Map
	var npending atomic.Int64
	answered := make(chan struct{}, 1)
	// Node → client, in the order the node sent them.
	upDone := make(chan error, 1)
	go func() {
		for {
			msg, err := up.Read(ctx)
			if err != nil {
				upDone <- err
				return
			}
			if err := down.Write(ctx, msg); err != nil {
				upDone <- fmt.Errorf("write to the client: %w", err)
				return
			}
			if r, ok := msg.(*jsonrpc.Response); ok {
				if _, was := pending.LoadAndDelete(r.ID); was && npending.Add(-1) == 0 {
					select {
					case answered <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	// Client → node, one message at a time, in order.
	downDone := make(chan error, 1)
	go func() {
		for {
			msg, err := down.Read(ctx)
			if err != nil {
				downDone <- err
				return
			}
			req, isCall := msg.(*jsonrpc.Request)
			isCall = isCall && req.IsCall()
			if isCall {
				if _, dup := pending.LoadOrStore(req.ID, true); !dup {
					npending.Add(1)
				}
			}
			if err := up.Write(ctx, msg); err != nil {
				if isCall {
					if _, was := pending.LoadAndDelete(req.ID); was {
						npending.Add(-1)
					}
				}
				if isCall {
					// The client waits for this answer: give it one.
					resp := &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "ward: " + nodeError(err)}}
					if werr := down.Write(ctx, resp); werr != nil {
						downDone <- werr
						return
					}
				}
				if errors.Is(err, streamable.ErrSessionExpired) {
					downDone <- err
					return
				}
				fmt.Fprintf(stderr, "ward mcp serve: %s\n", nodeError(err))
			}
		}
	}()
	select {
	case err := <-downDone:
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("stdio: %s", nodeError(err))
		}
		// The client is done; answer what it still waits for.
		for npending.Load() > 0 {
			select {
			case <-answered:
			case err := <-upDone:
				return fmt.Errorf("stdio: %s", nodeError(err))
			case <-ctx.Done():
				return nil
			}
		}
		return nil
	case err := <-upDone:
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("stdio: %s", nodeError(err))
	case <-ctx.Done():
		return nil
	}
}

// nodeError says what an error of the connection to the node means for
// the user.
func nodeError(err error) string {
	var he *streamable.HTTPError
	switch {
	case errors.Is(err, streamable.ErrSessionExpired):
		return "the node no longer knows this MCP session (it restarted, or the ward session ended): start the server again"
	case errors.As(err, &he) && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden):
		return fmt.Sprintf("the node refused the session (%s): it may have ended or been revoked; see ward session show", he.Error())
	}
	return "the node: " + err.Error()
}

// mcpServeStdio checks that no flag of the listening sidecar was given
// with --stdio, then serves on stdin and stdout.
func mcpServeStdio(fs *flag.FlagSet, session string) error {
	var clash []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "listen" || f.Name == "token-file" || f.Name == "o" {
			clash = append(clash, "--"+f.Name)
		}
	})
	if len(clash) > 0 {
		return usagef("--stdio serves on stdin and stdout: %s do not apply", strings.Join(clash, ", "))
	}
	return serveStdio(session, os.Stdin, os.Stdout, os.Stderr)
}
