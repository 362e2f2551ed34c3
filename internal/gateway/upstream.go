package gateway

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/streamable"
)

// Stdio returns an upstream that runs command (argv form) for each session
// and speaks newline-delimited JSON-RPC over its stdin and stdout. env is
// added to ward's own environment; the process's stderr goes to ward's.
func Stdio(name string, command []string, env []string, dir string) Upstream {
	return Upstream{Name: name, Dial: func(ctx context.Context) (mcp.Connection, error) {
		if len(command) == 0 {
			return nil, fmt.Errorf("server %s: empty command", name)
		}
		// Not CommandContext: the process lives as long as the session, not
		// as long as the dial.
		cmd := exec.Command(command[0], command[1:]...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Dir = dir
		cmd.Stderr = os.Stderr
		return (&mcp.CommandTransport{Command: cmd}).Connect(ctx)
	}}
}

// HTTP returns an upstream reached over MCP Streamable HTTP. header is added
// to every request (upstream credentials are injected here, never given to
// the agent). Every session's connection to it sends through client (nil:
// one made here with streamable.NewHTTPClient), so they share its pool.
func HTTP(name, url string, header http.Header, client *http.Client) Upstream {
	if client == nil {
		// One client, so one pool of connections, for every session's
		// connection to this server: a client per session kept each
		// session's own idle connection and transport (about 20 KiB a
		// session with a thousand of them).
		client = streamable.NewHTTPClient()
	}
	return Upstream{Name: name, Dial: func(ctx context.Context) (mcp.Connection, error) {
		return streamable.Dial(ctx, streamable.ClientConfig{URL: url, Header: header, HTTPClient: client})
	}}
}

// InProcess returns an upstream served by an MCP server in ward's own process
// (the built-in demo tools). newServer is called once per session.
func InProcess(name string, newServer func() *mcp.Server) Upstream {
	return Upstream{Name: name, Dial: func(ctx context.Context) (mcp.Connection, error) {
		serverSide, clientSide := mcp.NewInMemoryTransports()
		if _, err := newServer().Connect(context.WithoutCancel(ctx), serverSide, nil); err != nil {
			return nil, fmt.Errorf("server %s: %w", name, err)
		}
		return clientSide.Connect(ctx)
	}}
}

// connDownstream adapts a single-stream connection (stdio) as a Downstream.
type connDownstream struct{ conn mcp.Connection }

func (d connDownstream) Send(msg jsonrpc.Message, _ jsonrpc.ID) error {
	return d.conn.Write(context.Background(), msg)
}

// ServeConn runs one proxy session for caller over a single-stream client
// connection (ward mcp wrap's stdio) until the client disconnects or ctx ends.
func (g *Gateway) ServeConn(ctx context.Context, conn mcp.Connection, c *Caller) error {
	s := g.NewSession(c, connDownstream{conn})
	defer s.Close()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		msg, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.Receive(ctx, msg)
	}
}
