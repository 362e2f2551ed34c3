// Package demo is a small MCP server built into ward, so that `ward up` is
// useful on a machine without Node or any other MCP server: a notebook an
// agent can read and write, and a calculator. Each session gets its own
// server; the notebook is shared by all of them for the life of the process.
//
// Tools: echo, add, list_notes, read_note, write_note, delete_note.
// Resources: note://NAME for each note. Prompt: summarize_notes.
package demo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Notebook is the shared state of the demo server.
type Notebook struct {
	mu    sync.Mutex
	notes map[string]string
}

// NewNotebook returns a notebook with one welcome note.
func NewNotebook() *Notebook {
	return &Notebook{notes: map[string]string{"welcome": "This note was read through ward's gateway."}}
}

type echoIn struct {
	Text string `json:"text" jsonschema:"the text to echo back"`
}
type addIn struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}
type noteIn struct {
	Name string `json:"name" jsonschema:"the note's name"`
}
type writeIn struct {
	Name string `json:"name" jsonschema:"the note's name"`
	Text string `json:"text" jsonschema:"the note's new text"`
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// NewServer returns an MCP server over nb. version is reported in serverInfo.
func NewServer(nb *Notebook, version string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "ward-demo", Version: version}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text back."},
		func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return text(in.Text), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two numbers."},
		func(ctx context.Context, req *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, any, error) {
			return text(fmt.Sprint(in.A + in.B)), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "list_notes", Description: "List the names of all notes."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return text(strings.Join(nb.names(), "\n")), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "read_note", Description: "Read one note."},
		func(ctx context.Context, req *mcp.CallToolRequest, in noteIn) (*mcp.CallToolResult, any, error) {
			t, ok := nb.get(in.Name)
			if !ok {
				r := text("no note named " + in.Name)
				r.IsError = true
				return r, nil, nil
			}
			return text(t), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "write_note", Description: "Create or replace a note."},
		func(ctx context.Context, req *mcp.CallToolRequest, in writeIn) (*mcp.CallToolResult, any, error) {
			nb.put(in.Name, in.Text)
			return text("saved " + in.Name), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "delete_note", Description: "Delete a note."},
		func(ctx context.Context, req *mcp.CallToolRequest, in noteIn) (*mcp.CallToolResult, any, error) {
			nb.delete(in.Name)
			return text("deleted " + in.Name), nil, nil
		})
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "note://{name}", Name: "note", MIMEType: "text/plain", Description: "A note by name."},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			name := strings.TrimPrefix(req.Params.URI, "note://")
			t, ok := nb.get(name)
			if !ok {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: t}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "summarize_notes", Description: "Ask the model to summarize all notes."},
		func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			var sb strings.Builder
			for _, n := range nb.names() {
				t, _ := nb.get(n)
				fmt.Fprintf(&sb, "## %s\n%s\n\n", n, t)
			}
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "Summarize these notes:\n\n" + sb.String()}}}}, nil
		})
	return s
}

func (nb *Notebook) names() []string {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	out := make([]string, 0, len(nb.notes))
	for n := range nb.notes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (nb *Notebook) get(name string) (string, bool) {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	t, ok := nb.notes[name]
	return t, ok
}

func (nb *Notebook) put(name, t string) {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	nb.notes[name] = t
}

func (nb *Notebook) delete(name string) {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	delete(nb.notes, name)
}
