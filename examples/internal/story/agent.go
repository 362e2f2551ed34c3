package story

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/sessioncred"
)

// Agent is the agent's side of one session: its credentials (the key never
// leaves this process's machine) and its MCP connection through the
// node's gateway.
type Agent struct {
	Name    string // the agent
	Session string // the session's id
	Label   string // how the story's output names it ("agent", "shard-07")

	s     *Story
	creds *sessioncred.Credentials
	http  *http.Client
	mcp   *mcp.ClientSession
}

// Start starts a session with `ward session start ARGS... -o json` and
// returns the agent, connected. The command is printed unless quiet; its
// output is summarised (the JSON form holds the grant, which a story does
// not print).
func (s *Story) Start(ctx context.Context, quiet bool, args ...string) (*Agent, error) {
	full := append([]string{"session", "start"}, args...)
	if !quiet {
		fmt.Fprintf(s.Out, "$ ward %s\n", shellQuote(full))
	}
	out, err := s.Quiet(append(full, "-o", "json")...)
	if err != nil {
		return nil, err
	}
	var v struct {
		Session     string `json:"session"`
		SPIFFEID    string `json:"spiffe_id"`
		Agent       string `json:"agent"`
		Credentials string `json:"credentials"`
		Expires     string `json:"expires"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("ward session start -o json: %w", err)
	}
	if !quiet {
		indent(s.Out, fmt.Sprintf("session    %s\nspiffe id  %s\nexpires    %s", v.Session, v.SPIFFEID, v.Expires))
	}
	creds, err := sessioncred.Load(v.Credentials)
	if err != nil {
		return nil, err
	}
	a := &Agent{Name: v.Agent, Session: v.Session, Label: "agent", s: s, creds: creds, http: creds.HTTPClient(false)}
	a.http.Timeout = callTimeout
	s.mu.Lock()
	s.agents = append(s.agents, a)
	s.mu.Unlock()
	if err := a.Connect(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// ProtocolVersion is the MCP version the story's agents ask for. The Go
// SDK's newest version first probes with server/discover (SEP-2575), which
// ward's gateway does not serve: it answers 400 and records a refusal for
// every connection before the SDK falls back to initialize. Asking for
// 2025-11-25 starts with initialize, so the audit log holds only what the
// story did.
const ProtocolVersion = "2025-11-25"

// Connect opens the agent's MCP session with the node's gateway.
func (a *Agent) Connect(ctx context.Context) error {
	client := mcp.NewClient(&mcp.Implementation{Name: "ward-story-agent", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: a.s.Server + "/mcp", HTTPClient: a.http},
		&mcp.ClientSessionOptions{ProtocolVersion: ProtocolVersion})
	if err != nil {
		return err
	}
	a.Close()
	a.mcp = cs
	return nil
}

// Close closes the agent's MCP session (again: a no-op).
func (a *Agent) Close() {
	if a.mcp != nil {
		a.mcp.Close()
		a.mcp = nil
	}
}

// Call makes an MCP tool call through the gateway, printing what the agent
// tried and what came back. It returns the result's text, or the error
// ward (or the server) answered with.
func (a *Agent) Call(ctx context.Context, tool string, args map[string]any) (string, error) {
	b, _ := json.Marshal(args)
	a.s.Tried(a.Label, tool+" "+clip(string(b), 100))
	text, err := a.CallQuiet(ctx, tool, args)
	var rpc *RPCError
	switch {
	case errors.As(err, &rpc) && rpc.Code == CodePending:
		a.s.Reply(Held, err.Error())
	case err != nil:
		a.s.Answer(false, err.Error())
	default:
		a.s.Answer(true, text)
	}
	return text, err
}

// CallQuiet is Call without printing.
func (a *Agent) CallQuiet(ctx context.Context, tool string, args map[string]any) (string, error) {
	if a.mcp == nil {
		return "", errors.New("not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := a.mcp.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", wardError(err)
	}
	var texts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, t.Text)
		}
	}
	text := strings.Join(texts, "\n")
	if res.IsError {
		return "", fmt.Errorf("the server answered with an error: %s", text)
	}
	return text, nil
}

// JSON-RPC error codes of ward's gateway (internal/gateway).
const (
	CodeDenied   = -31403 // the call was denied
	CodeUpstream = -31502 // the upstream server failed
	CodePending  = -31202 // the call waits for approval
)

// RPCError is a JSON-RPC error ward answered a call with.
type RPCError struct {
	Code    int64
	Message string
}

func (e *RPCError) Error() string { return e.Message }

// wardError returns what ward answered a call with, without the SDK's
// wrapping.
func wardError(err error) error {
	var rpc *jsonrpc.Error
	if errors.As(err, &rpc) {
		return &RPCError{Code: rpc.Code, Message: rpc.Message}
	}
	return err
}

// Tried prints what an agent tried.
func (s *Story) Tried(who, what string) {
	fmt.Fprintf(s.Out, "%-8s → %s\n", who, what)
}

// Verdicts, as a story prints them.
const (
	Allowed = "✓ allowed"
	Refused = "✗ refused"
	Held    = "⧗ held for approval"
)

// Answer prints what ward (or the server, through ward) answered: allowed
// (ok) or refused, and the text that came back.
func (s *Story) Answer(ok bool, text string) {
	verdict := Allowed
	if !ok {
		verdict = Refused
	}
	s.Reply(verdict, text)
}

// Reply prints a verdict of ward's and the text that came with it.
func (s *Story) Reply(verdict, text string) {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		lines = append(lines, wrap(l, 88)...)
	}
	maxLines := s.MaxLines
	if maxLines <= 0 {
		maxLines = DefaultMaxLines
	}
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("… (%d more lines)", len(lines)-maxLines))
	}
	fmt.Fprintf(s.Out, "%-8s %s\n", "ward", verdict)
	for _, l := range lines {
		fmt.Fprintln(s.Out, strings.TrimRight(fmt.Sprintf("%-8s │ %s", "", l), " "))
	}
}

// wrap breaks a line of text at spaces into lines of at most n runes
// (longer words stay whole).
func wrap(line string, n int) []string {
	var out []string
	for len([]rune(line)) > n {
		r := []rune(line)
		cut := strings.LastIndex(string(r[:n]), " ")
		if cut <= 0 {
			break
		}
		out = append(out, line[:cut])
		line = "  " + strings.TrimLeft(line[cut:], " ")
	}
	return append(out, line)
}

// clip shortens s to at most n runes.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// Record posts what the agent said (kind "response", "note", …) to the
// session's audit trail, as an agent framework does (POST /v1/records).
func (a *Agent) Record(kind, content string) error {
	return doJSON(a.http, "", "POST", a.s.Server+"/v1/records", map[string]string{"kind": kind, "content": content}, nil)
}

// ProxyURL asks the node for the session's egress proxy credentials
// (POST /v1/egress/token) and returns the proxy URL.
func (a *Agent) ProxyURL() (*url.URL, error) {
	var v struct {
		ProxyURL string `json:"proxy_url"`
	}
	if err := doJSON(a.http, "", "POST", a.s.Server+"/v1/egress/token", map[string]any{}, &v); err != nil {
		return nil, err
	}
	return url.Parse(v.ProxyURL)
}

// Post sends body to target through the egress proxy at proxy, printing
// what the agent tried and what came back. It returns the answer's status.
func (a *Agent) Post(proxy *url.URL, target, body string) (int, string, error) {
	a.s.Tried(a.Label, fmt.Sprintf("POST %s (%d bytes) through ward's egress proxy", target, len(body)))
	c := &http.Client{Timeout: callTimeout, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	resp, err := c.Post(target, "text/csv", strings.NewReader(body))
	if err != nil {
		a.s.Answer(false, err.Error())
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	text := fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	a.s.Answer(resp.StatusCode < 400, text)
	return resp.StatusCode, string(b), nil
}
