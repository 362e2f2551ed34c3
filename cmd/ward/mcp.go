package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/mcpmsg"
	"github.com/ward-dev/ward/internal/sessioncred"
)

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

func (g remoteGuard) Notice(ctx context.Context, _ *gateway.Caller, server, method string, params json.RawMessage) error {
	req := map[string]any{"server": server, "method": method}
	if len(params) > 0 {
		req["params"] = params
	}
	return g.c.doCtx(ctx, "POST", "/v1/guard/notice", req, nil)
}

func (g remoteGuard) Answer(ctx context.Context, _ *gateway.Caller, server, method string, a gateway.ClientAnswer) error {
	return g.c.doCtx(ctx, "POST", "/v1/guard/answer", map[string]any{"server": server, "method": method, "answer": a}, nil)
}

// cmdMCPWrap runs an MCP server command behind ward for a client that only
// speaks stdio: the client starts `ward mcp wrap …` instead of the server.
// Every operation is decided and recorded by the ward node as the session.
func cmdMCPWrap(args []string, _ io.Writer) error {
	fs := flags("mcp wrap")
	server := fs.String("server", "", "`name` of the server (its tools appear as NAME.TOOL)")
	session := fs.String("session", os.Getenv("WARD_SESSION"), "`session` whose credentials to use (default $WARD_SESSION)")
	if err := parse(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if *server == "" || *session == "" || len(argv) == 0 {
		return usagef("needs --server NAME, --session ID and the server's command after --")
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
	if err := sessionActive(c, creds); err != nil {
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
	// The client's messages are read strictly (mcpmsg); a line that
	// cannot be read one way is answered with an error and recorded with
	// the node as a refusal.
	conn := mcpmsg.NewStdio(os.Stdin, os.Stdout, nil, 0)
	guard := remoteGuard{c}
	conn.OnRefuse = func(reason string) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := guard.Check(rctx, nil, &gateway.Operation{Method: "(unreadable)", Refused: "the client sent a message ward cannot read in one way: " + reason}); err != nil {
			logger.Warn("recording a refused message failed", "err", err)
		}
	}
	caller := &gateway.Caller{Session: creds.Session, SPIFFEID: creds.SPIFFEID, Agent: creds.Agent}
	return g.ServeConn(ctx, conn, caller)
}

// cmdMCPServe runs a session-bound local MCP endpoint (a sidecar) for MCP
// clients that cannot present credentials: it serves only the user who
// runs it (a Unix socket checked with peer credentials, or TCP loopback
// with a token and, on Linux, the client socket's owner), checks Host and
// Origin against DNS rebinding, and forwards every request to the node's
// gateway authenticated as the session by mutual TLS with its X.509-SVID,
// over a connection it keeps open (or, when the node does not see the
// certificate, with the grant and a DPoP proof per request).
func cmdMCPServe(args []string, stdout io.Writer) error {
	fs := flags("mcp serve")
	session := fs.String("session", os.Getenv("WARD_SESSION"), "`session` whose credentials to use (default $WARD_SESSION)")
	listen := fs.String("listen", "127.0.0.1:0", "loopback HOST:PORT (clients need the token), or unix:PATH (a socket in a directory only you can enter)")
	tokenFile := fs.String("token-file", "", "keep the token in `FILE` (created 0600 if missing) so that client configurations survive restarts; default: a new token at every start")
	stdio := fs.Bool("stdio", false, "serve one MCP client on stdin and stdout (for a client that starts its servers as programs) instead of listening")
	logf := addLogFormat(fs, "info")
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *session == "" {
		return usagef("needs --session ID")
	}
	logger, err := logf.logger(os.Stderr)
	if err != nil {
		return usagef("%v", err)
	}
	if *stdio {
		return mcpServeStdio(fs, *session)
	}
	if err := sessioncred.CheckListen(*listen); err != nil {
		return usagef("--listen %q: %v", *listen, err)
	}
	unixPath, onUnix := strings.CutPrefix(*listen, "unix:")
	c, creds, err := sessionClient(*session)
	if err != nil {
		return err
	}
	// A sidecar for a session the node no longer honours would serve
	// nothing but refusals: say why instead of starting.
	if err := sessionActive(c, creds); err != nil {
		return err
	}
	target, err := url.Parse(c.base + "/mcp")
	if err != nil {
		return err
	}
	records, err := url.Parse(c.base + "/v1/records")
	if err != nil {
		return err
	}
	// The token is printed only when it was made now; a kept one stays in
	// its file.
	token, showToken := "", false
	switch {
	case *tokenFile != "":
		if token, showToken, err = sessioncred.TokenFile(*tokenFile); err != nil {
			return err
		}
	case !onUnix:
		token, showToken = sessioncred.NewToken(), true
	}
	// Mutual TLS with the session's certificate over kept-open
	// connections, unless the node cannot see it (TLS terminated in
	// front of it): then a DPoP proof per request.
	pctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	node, how, err := creds.NodeTransport(pctx, c.base, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("session %s: %w", *session, err)
	}
	if strings.HasPrefix(how, "DPoP") {
		logger.Warn("ward mcp serve: forwarding with " + how)
	} else {
		logger.Info("ward mcp serve: forwarding with " + how)
	}
	sc, err := sessioncred.NewSidecar(sessioncred.SidecarConfig{
		Target: target, Transport: node, Token: token, Records: records, Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := sessioncred.Listen(*listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", *listen, err)
	}
	info := mcpServeInfo{Session: *session, UID: os.Geteuid(), TokenFile: *tokenFile}
	if onUnix {
		info.Socket, info.Endpoint = ln.Addr().String(), "http://localhost/mcp"
		info.Check = "peer credentials (SO_PEERCRED)"
	} else {
		info.Endpoint = "http://" + ln.Addr().String() + "/mcp"
		info.Check = "the token, and the owner of the client's socket"
		if runtime.GOOS != "linux" {
			info.Check = "the token"
		}
	}
	if token != "" && showToken {
		info.Token, info.TokenURL = token, info.Endpoint+"/"+token
	}
	if *out == "json" {
		printJSON(stdout, info)
	} else {
		info.print(stdout, unixPath)
	}
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return sc.Serve(ctx, ln)
}

// mcpServeInfo is what `ward mcp serve` prints when it is ready.
type mcpServeInfo struct {
	Session   string `json:"session"`
	Endpoint  string `json:"endpoint"`
	Socket    string `json:"socket,omitempty"`
	Token     string `json:"token,omitempty"`
	TokenURL  string `json:"token_url,omitempty"`
	TokenFile string `json:"token_file,omitempty"`
	UID       int    `json:"uid"`
	Check     string `json:"check"`
}

func (i mcpServeInfo) print(w io.Writer, unixPath string) {
	fmt.Fprintf(w, "ward mcp serve: session %s\n", i.Session)
	if i.Socket != "" {
		fmt.Fprintf(w, "  MCP endpoint %s on the Unix socket %s\n", i.Endpoint, i.Socket)
		fmt.Fprintf(w, "  (e.g. curl --unix-socket %s %s)\n", unixPath, i.Endpoint)
	} else {
		fmt.Fprintf(w, "  MCP endpoint %s\n", i.Endpoint)
	}
	switch {
	case i.Token != "":
		fmt.Fprintf(w, "  token: put the header   Authorization: Bearer %s\n", i.Token)
		fmt.Fprintf(w, "         in the MCP client's configuration, or use the URL %s\n", i.TokenURL)
	case i.TokenFile != "":
		fmt.Fprintf(w, "  token: the content of %s, as the header \"Authorization: Bearer TOKEN\" or the URL %s/TOKEN\n", i.TokenFile, i.Endpoint)
	}
	fmt.Fprintf(w, "  serves uid %d only (checked: %s); Host and Origin checked\n", i.UID, i.Check)
}

var execLookPath = exec.LookPath

// sessionActive refuses a session whose credentials expired (saying when)
// or that the node no longer honours (saying why: ended, expired,
// quarantined), asking the node as the session itself.
func sessionActive(c *client, creds *sessioncred.Credentials) error {
	if err := sessionUsable(creds, time.Now()); err != nil {
		return err
	}
	var who struct {
		Session string `json:"session"`
	}
	err := c.do("GET", "/v1/session", nil, &who)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
		return fmt.Errorf("session %s cannot be used: %s: start a new session", creds.Session, strings.TrimPrefix(ae.msg, "not authenticated: "))
	}
	if err != nil {
		return fmt.Errorf("session %s: %w", creds.Session, err)
	}
	if who.Session != creds.Session {
		return fmt.Errorf("session %s: the node answered for session %q", creds.Session, who.Session)
	}
	return nil
}
