package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/sessioncred"
)

func cmdMCP(args []string, stdout io.Writer) error {
	sub, args, err := subcommand(args, "mcp", "wrap", "serve")
	if err != nil {
		return err
	}
	if sub == "wrap" {
		return cmdMCPWrap(args)
	}
	return cmdMCPServe(args, stdout)
}

// remoteGuard asks the ward node to decide and record, authenticated as the
// session (grant + DPoP on every call). Any failure to reach it denies.
type remoteGuard struct{ c *client }

var _ gateway.Guard = remoteGuard{}

func (g remoteGuard) Filter(ctx context.Context, _ *gateway.Caller, kind gateway.Kind, server string, items []gateway.Item) ([]bool, error) {
	var out struct {
		Keep []bool `json:"keep"`
	}
	err := g.c.doCtx(ctx, "POST", "/v1/guard/filter", map[string]any{"kind": kind, "server": server, "items": items}, &out)
	if err != nil {
		return nil, err
	}
	if len(out.Keep) != len(items) {
		return nil, errors.New("ward answered a filter of the wrong length")
	}
	return out.Keep, nil
}

func (g remoteGuard) Check(ctx context.Context, _ *gateway.Caller, op *gateway.Operation) (gateway.Verdict, error) {
	var v gateway.Verdict
	err := g.c.doCtx(ctx, "POST", "/v1/guard/check", map[string]any{"operation": op}, &v)
	return v, err
}

func (g remoteGuard) Observe(ctx context.Context, _ *gateway.Caller, op *gateway.Operation, out gateway.Outcome) error {
	return g.c.doCtx(ctx, "POST", "/v1/guard/observe", map[string]any{"operation": op, "outcome": out}, nil)
}

func (g remoteGuard) Await(ctx context.Context, _ *gateway.Caller, ids []string) (string, error) {
	wait := time.Duration(0)
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	var out struct {
		State string `json:"state"`
	}
	err := g.c.doCtx(ctx, "POST", "/v1/guard/await", map[string]any{"approvals": ids, "wait": wait.String()}, &out)
	if err != nil && ctx.Err() != nil {
		return "pending", nil
	}
	return out.State, err
}

func (g remoteGuard) Notice(ctx context.Context, _ *gateway.Caller, server, method string) error {
	return g.c.doCtx(ctx, "POST", "/v1/guard/notice", map[string]any{"server": server, "method": method}, nil)
}

// cmdMCPWrap runs an MCP server command behind ward for a client that only
// speaks stdio: the client starts `ward mcp wrap …` instead of the server.
// Every operation is decided and recorded by the ward node as the session.
func cmdMCPWrap(args []string) error {
	fs := flags("mcp wrap")
	server := fs.String("server", "", "name of the server (its tools appear as NAME.TOOL)")
	session := fs.String("session", os.Getenv("WARD_SESSION"), "session whose credentials to use (default $WARD_SESSION)")
	if err := parse(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if *server == "" || *session == "" || len(argv) == 0 {
		return usagef("usage: ward mcp wrap --server NAME --session ID -- CMD [ARGS...]")
	}
	if err := gateway.ValidServerName(*server); err != nil {
		return usagef("--server: %v", err)
	}
	if _, err := execLookPath(argv[0]); err != nil {
		return fmt.Errorf("server command %q: %w", argv[0], err)
	}
	c, creds, err := sessionClient(*session)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gateway.New(gateway.Config{
		Upstreams: []gateway.Upstream{gateway.Stdio(*server, argv, nil, "")},
		Guard:     remoteGuard{c},
		Logger:    logger,
		Version:   version,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := (&mcp.StdioTransport{}).Connect(ctx)
	if err != nil {
		return err
	}
	caller := &gateway.Caller{Session: creds.Session, SPIFFEID: creds.SPIFFEID, Agent: creds.Agent}
	return g.ServeConn(ctx, conn, caller)
}

// cmdMCPServe runs a session-bound local MCP endpoint (a sidecar) for MCP
// clients that cannot present credentials: it listens on loopback only,
// checks Host and Origin against DNS rebinding, and forwards every request to
// the node's gateway with the session's grant and a fresh DPoP proof.
func cmdMCPServe(args []string, stdout io.Writer) error {
	fs := flags("mcp serve")
	session := fs.String("session", os.Getenv("WARD_SESSION"), "session whose credentials to use")
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *session == "" {
		return usagef("usage: ward mcp serve --session ID --listen 127.0.0.1:PORT")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("--listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usagef("--listen %q: the sidecar holds the session key and listens on loopback only", *listen)
	}
	c, _, err := sessionClient(*session)
	if err != nil {
		return err
	}
	target, err := url.Parse(c.base + "/mcp")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	h := sessioncred.Sidecar(target, c.http.Transport, ln.Addr().(*net.TCPAddr).Port)
	fmt.Fprintf(stdout, "ward mcp serve: session %s\n  MCP endpoint http://%s/mcp (loopback only; Host and Origin checked)\n", *session, ln.Addr())
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var execLookPath = exec.LookPath
