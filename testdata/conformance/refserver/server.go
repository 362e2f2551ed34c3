package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The resources the server has.
const (
	staticTextURI   = "test://static-text"
	staticBinaryURI = "test://static-binary"
	watchedURI      = "test://watched-resource"
	templateURI     = "test://template/{id}/data"

	staticText = "This is the content of the static text resource."
)

// Stream and session settings.
const (
	// sessionIdle is how long a session that sends nothing lives: the suite's
	// clients never end theirs.
	sessionIdle = 10 * time.Minute
	// notifyTimeout bounds the sending of one resource update.
	notifyTimeout = 5 * time.Second
	// versionMetaKey is the _meta key of notifications/resources/updated
	// that carries the resource's new version.
	versionMetaKey = "refserver/version"
)

// fixture is one reference server: the MCP server and the state its
// resources change.
type fixture struct {
	server *mcp.Server
	// watched is the version of test://watched-resource, bumped by
	// update_watched_resource.
	watched atomic.Int64
}

func newFixture() *fixture {
	f := &fixture{}
	f.watched.Store(1)
	f.server = mcp.NewServer(&mcp.Implementation{
		Name:    "ward-conformance-refserver",
		Title:   "ward's MCP conformance reference server",
		Version: "1.0.0",
	}, &mcp.ServerOptions{
		Instructions:       "A test fixture: the tools, resources and prompts the MCP conformance suite's server scenarios call for.",
		CompletionHandler:  f.complete,
		SubscribeHandler:   f.subscribe,
		UnsubscribeHandler: f.unsubscribe,
		Capabilities: &mcp.ServerCapabilities{
			Logging: &mcp.LoggingCapabilities{},
		},
	})
	f.addTools()
	f.addResources()
	f.addPrompts()
	return f
}

// handler is the HTTP face of the server: /mcp, behind the DNS-rebinding
// guard. The guard is the one rule on Host and Origin: the SDK's own
// localhost protection, which reads Host alone and case-sensitively, is
// off, so that the two cannot disagree.
func (f *fixture) handler() http.Handler {
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return f.server }, &mcp.StreamableHTTPOptions{
		EventStore:                 mcp.NewMemoryEventStore(nil),
		SessionTimeout:             sessionIdle,
		DisableLocalhostProtection: true,
	})
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcpHandler)
	return loopbackOnly(mux)
}

func (f *fixture) addResources() {
	s := f.server
	s.AddResource(&mcp.Resource{
		URI: staticTextURI, Name: "static-text", Title: "Static text",
		Description: "A text resource whose content never changes.", MIMEType: "text/plain",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
			{URI: staticTextURI, MIMEType: "text/plain", Text: staticText},
		}}, nil
	})
	s.AddResource(&mcp.Resource{
		URI: staticBinaryURI, Name: "static-binary", Title: "Static binary",
		Description: "A binary resource: a 1x1 red PNG.", MIMEType: "image/png",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
			{URI: staticBinaryURI, MIMEType: "image/png", Blob: redPixelPNG},
		}}, nil
	})
	s.AddResource(&mcp.Resource{
		URI: watchedURI, Name: "watched-resource", Title: "Watched resource",
		Description: "A text resource clients can subscribe to; the update_watched_resource tool changes it.", MIMEType: "text/plain",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
			{URI: watchedURI, MIMEType: "text/plain", Text: watchedText(f.watched.Load())},
		}}, nil
	})
	s.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: templateURI, Name: "template-data", Title: "Data by id",
		Description: "JSON data for the id in the URI.", MIMEType: "application/json",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		id, ok := templateID(req.Params.URI)
		if !ok {
			return nil, mcp.ResourceNotFoundError(req.Params.URI)
		}
		data, err := json.Marshal(map[string]any{"id": id, "templateTest": true, "data": "Data for ID: " + id})
		if err != nil {
			return nil, err
		}
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
			{URI: req.Params.URI, MIMEType: "application/json", Text: string(data)},
		}}, nil
	})
}

func watchedText(version int64) string {
	return fmt.Sprintf("Watched resource content, version %d.", version)
}

// templateIDRE matches what the template's {id} expands to: one path
// segment of unreserved characters.
var templateIDRE = regexp.MustCompile(`^test://template/([A-Za-z0-9._~-]+)/data$`)

func templateID(uri string) (string, bool) {
	m := templateIDRE.FindStringSubmatch(uri)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// known reports whether uri is a resource the server has.
func known(uri string) bool {
	switch uri {
	case staticTextURI, staticBinaryURI, watchedURI:
		return true
	}
	_, ok := templateID(uri)
	return ok
}

// subscribe accepts a subscription to any resource the server has; the SDK
// records it, and Server.ResourceUpdated notifies it.
func (f *fixture) subscribe(_ context.Context, req *mcp.SubscribeRequest) error {
	if !known(req.Params.URI) {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	return nil
}

func (f *fixture) unsubscribe(_ context.Context, req *mcp.UnsubscribeRequest) error {
	if !known(req.Params.URI) {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	return nil
}

// changeWatched makes a new version of test://watched-resource and tells
// its subscribers. The notification concerns no request of the sessions it
// goes to, so it is sent outside any request's context and lands on each
// session's standalone stream.
func (f *fixture) changeWatched() (int64, error) {
	v := f.watched.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	err := f.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{
		URI:  watchedURI,
		Meta: mcp.Meta{versionMetaKey: v},
	})
	return v, err
}

func (f *fixture) addPrompts() {
	s := f.server
	s.AddPrompt(&mcp.Prompt{
		Name: "test_simple_prompt", Title: "Simple prompt",
		Description: "A prompt without arguments.",
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		if err := promptArgs(req, nil); err != nil {
			return nil, err
		}
		return &mcp.GetPromptResult{
			Description: "A simple prompt",
			Messages: []*mcp.PromptMessage{
				{Role: "user", Content: &mcp.TextContent{Text: "This is a simple prompt for testing."}},
			},
		}, nil
	})
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_arguments", Title: "Prompt with arguments",
		Description: "A prompt that puts its two arguments in its text.",
		Arguments: []*mcp.PromptArgument{
			{Name: "arg1", Description: "First test argument", Required: true},
			{Name: "arg2", Description: "Second test argument", Required: true},
		},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		if err := promptArgs(req, []string{"arg1", "arg2"}); err != nil {
			return nil, err
		}
		a := req.Params.Arguments
		return &mcp.GetPromptResult{
			Description: "A prompt with arguments",
			Messages: []*mcp.PromptMessage{
				{Role: "user", Content: &mcp.TextContent{Text: fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", a["arg1"], a["arg2"])}},
			},
		}, nil
	})
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_embedded_resource", Title: "Prompt with an embedded resource",
		Description: "A prompt that embeds the resource its argument names.",
		Arguments: []*mcp.PromptArgument{
			{Name: "resourceUri", Description: "URI of the resource to embed", Required: true},
		},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		if err := promptArgs(req, []string{"resourceUri"}); err != nil {
			return nil, err
		}
		return &mcp.GetPromptResult{
			Description: "A prompt with an embedded resource",
			Messages: []*mcp.PromptMessage{
				{Role: "user", Content: &mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
					URI: req.Params.Arguments["resourceUri"], MIMEType: "text/plain", Text: "Embedded resource content for testing.",
				}}},
				{Role: "user", Content: &mcp.TextContent{Text: "Please process the embedded resource above."}},
			},
		}, nil
	})
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_image", Title: "Prompt with an image",
		Description: "A prompt that carries an image.",
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		if err := promptArgs(req, nil); err != nil {
			return nil, err
		}
		return &mcp.GetPromptResult{
			Description: "A prompt with an image",
			Messages: []*mcp.PromptMessage{
				{Role: "user", Content: &mcp.ImageContent{Data: redPixelPNG, MIMEType: "image/png"}},
				{Role: "user", Content: &mcp.TextContent{Text: "Please analyze the image above."}},
			},
		}, nil
	})
}

// promptArgs checks that a prompt request has exactly the arguments the
// prompt takes, all of them required: anything else is invalid params.
func promptArgs(req *mcp.GetPromptRequest, want []string) error {
	got := req.Params.Arguments
	for _, name := range want {
		if _, ok := got[name]; !ok {
			return invalidParams("prompt %q needs argument %q", req.Params.Name, name)
		}
	}
	for name := range got {
		if !slices.Contains(want, name) {
			return invalidParams("prompt %q has no argument %q (it takes %s)", req.Params.Name, name, list(want))
		}
	}
	return nil
}

// completions are the values completion/complete offers, by reference and
// argument.
var completions = map[string]map[string][]string{
	"ref/prompt test_prompt_with_arguments": {
		"arg1": {"paris", "park", "party", "test", "testValue1"},
		"arg2": {"world", "wonder", "testValue2"},
	},
	"ref/prompt test_prompt_with_embedded_resource": {
		"resourceUri": {staticTextURI, staticBinaryURI, watchedURI, "test://template/123/data"},
	},
	"ref/resource " + templateURI: {
		"id": {"1", "2", "3", "123"},
	},
}

// complete offers the known values of an argument that start with what the
// client has typed, in order. An unknown reference or argument is invalid
// params.
func (f *fixture) complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	p := req.Params
	if p == nil || p.Ref == nil {
		return nil, invalidParams("completion/complete needs a ref")
	}
	key := p.Ref.Type + " " + p.Ref.Name
	if p.Ref.Type == "ref/resource" {
		key = p.Ref.Type + " " + p.Ref.URI
	}
	args, ok := completions[key]
	if !ok {
		return nil, invalidParams("nothing to complete for %s %q", p.Ref.Type, p.Ref.Name+p.Ref.URI)
	}
	candidates, ok := args[p.Argument.Name]
	if !ok {
		names := make([]string, 0, len(args))
		for n := range args {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, invalidParams("no argument %q to complete (there is %s)", p.Argument.Name, list(names))
	}
	values := []string{}
	for _, c := range candidates {
		if strings.HasPrefix(c, p.Argument.Value) {
			values = append(values, c)
		}
	}
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: values, Total: len(values)}}, nil
}

func invalidParams(format string, args ...any) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf(format, args...)}
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
