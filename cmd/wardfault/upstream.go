package main

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Tools of the upstream, as agents call them through ward: work is
// unlimited, spend is under the group budget.
const (
	toolWork  = "up.work"
	toolSpend = "up.spend"
)

// upstream is the MCP server behind the node, in this process so that it
// outlives every kill of the node: it answers each call with the call's id
// and remembers every id it was asked to run, the ground truth of what
// ward forwarded.
type upstream struct {
	srv *httptest.Server

	mu   sync.Mutex
	runs map[string]string // call id -> tool (as ward shows it)
}

type callArgs struct {
	ID string `json:"id"`
}

func startUpstream() *upstream {
	u := &upstream{runs: map[string]string{}}
	s := mcp.NewServer(&mcp.Implementation{Name: "wardfault-upstream", Version: "1"}, nil)
	// Read-only and closed-world: not sinks, so the calls run at once
	// under a permit-all policy.
	ann := &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(bool)}
	for _, tool := range []string{toolWork, toolSpend} {
		name := tool[len("up."):]
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: "Answer with the call's id.", Annotations: ann},
			func(ctx context.Context, req *mcp.CallToolRequest, a callArgs) (*mcp.CallToolResult, any, error) {
				u.mu.Lock()
				u.runs[a.ID] = tool
				u.mu.Unlock()
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.ID}}}, nil, nil
			})
	}
	u.srv = httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	return u
}

// ran returns a copy of the ids run so far.
func (u *upstream) ran() map[string]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.runs)
}

func (u *upstream) close() { u.srv.Close() }
