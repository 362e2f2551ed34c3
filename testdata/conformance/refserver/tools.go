package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/strictjson"
)

// step is the pause between the messages of the logging and progress tools,
// and the work the reconnection tool does after closing its stream.
const step = 50 * time.Millisecond

// reconnectRetry is the reconnection delay the reconnection tool asks for.
const reconnectRetry = 500 * time.Millisecond

// Input schemas.
const (
	noArgs        = `{"type":"object","properties":{},"additionalProperties":false}`
	samplingArgs  = `{"type":"object","properties":{"prompt":{"type":"string","description":"The prompt to send to the LLM"}},"required":["prompt"],"additionalProperties":false}`
	elicitingArgs = `{"type":"object","properties":{"message":{"type":"string","description":"The message to show the user"}},"required":["message"],"additionalProperties":false}`

	// jsonSchema2020Args uses the 2020-12 keywords SEP-1613 asks servers to
	// keep as written.
	jsonSchema2020Args = `{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"type": "object",
		"$defs": {
			"address": {
				"type": "object",
				"properties": {"street": {"type": "string"}, "city": {"type": "string"}}
			}
		},
		"properties": {
			"name": {"type": "string"},
			"address": {"$ref": "#/$defs/address"}
		},
		"additionalProperties": false
	}`
)

// Requested schemas of the elicitation tools.
const (
	userSchema = `{
		"type": "object",
		"properties": {
			"username": {"type": "string", "description": "User's response"},
			"email": {"type": "string", "description": "User's email address"}
		},
		"required": ["username", "email"]
	}`

	// defaultsSchema gives every primitive type a default (SEP-1034).
	defaultsSchema = `{
		"type": "object",
		"properties": {
			"name": {"type": "string", "description": "User name", "default": "John Doe"},
			"age": {"type": "integer", "description": "User age", "default": 30},
			"score": {"type": "number", "description": "User score", "default": 95.5},
			"status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
			"verified": {"type": "boolean", "description": "Verification status", "default": true}
		}
	}`

	// enumsSchema has the five forms of enum SEP-1330 defines.
	enumsSchema = `{
		"type": "object",
		"properties": {
			"untitledSingle": {"type": "string", "description": "Untitled single-select", "enum": ["option1", "option2", "option3"]},
			"titledSingle": {"type": "string", "description": "Titled single-select", "oneOf": [
				{"const": "value1", "title": "First Option"},
				{"const": "value2", "title": "Second Option"},
				{"const": "value3", "title": "Third Option"}
			]},
			"legacyEnum": {"type": "string", "description": "Legacy titled enum", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
			"untitledMulti": {"type": "array", "description": "Untitled multi-select", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
			"titledMulti": {"type": "array", "description": "Titled multi-select", "items": {"anyOf": [
				{"const": "value1", "title": "First Choice"},
				{"const": "value2", "title": "Second Choice"},
				{"const": "value3", "title": "Third Choice"}
			]}}
		}
	}`
)

type toolHandler = func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error)

func (f *fixture) addTools() {
	add := func(name, description, schema string, h toolHandler) {
		f.server.AddTool(&mcp.Tool{Name: name, Description: description, InputSchema: json.RawMessage(schema)}, h)
	}
	add("test_simple_text", "Returns one text block.", noArgs, noInput(func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return textResult("This is a simple text response for testing."), nil
	}))
	add("test_image_content", "Returns an image: a 1x1 red PNG.", noArgs, noInput(func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: redPixelPNG, MIMEType: "image/png"}}}, nil
	}))
	add("test_audio_content", "Returns audio: a tenth of a second of silence as WAV.", noArgs, noInput(func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: silentWAV, MIMEType: "audio/wav"}}}, nil
	}))
	add("test_embedded_resource", "Returns an embedded text resource.", noArgs, noInput(func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
			URI: "test://embedded-resource", MIMEType: "text/plain", Text: "This is an embedded resource content.",
		}}}}, nil
	}))
	add("test_multiple_content_types", "Returns text, an image and an embedded JSON resource.", noArgs, noInput(func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{
			&mcp.TextContent{Text: "Multiple content types test:"},
			&mcp.ImageContent{Data: redPixelPNG, MIMEType: "image/png"},
			&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
				URI: "test://mixed-content-resource", MIMEType: "application/json", Text: `{"test":"data","value":123}`,
			}},
		}}, nil
	}))
	add("test_tool_with_logging", "Sends three info log messages while it runs, 50 ms apart.", noArgs, noInput(toolWithLogging))
	add("test_error_handling", "Always fails: a tool error, isError true.", noArgs, noInput(func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return toolError("This tool intentionally returns an error for testing"), nil
	}))
	add("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100, 50 ms apart, when the call has a progress token.", noArgs, noInput(toolWithProgress))
	add("test_sampling", "Asks the client to sample an LLM with the prompt (sampling/createMessage) and returns its answer.", samplingArgs, sampling)
	add("test_elicitation", "Asks the user, through the client, for a username and an email (elicitation/create).", elicitingArgs, elicitation)
	add("test_elicitation_sep1034_defaults", "Asks the user for fields of every primitive type, each with a default (SEP-1034).", noArgs,
		noInput(elicitWith("Please review and update the form fields with defaults", defaultsSchema)))
	add("test_elicitation_sep1330_enums", "Asks the user to choose in the five forms of enum (SEP-1330).", noArgs,
		noInput(elicitWith("Please select options from the enum fields", enumsSchema)))
	add("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", jsonSchema2020Args, jsonSchema2020)
	add("test_reconnection", "Closes its SSE stream mid-call and asks the client to reconnect; the result comes on the resumed stream (SEP-1699).", noArgs, noInput(reconnection))
	add("update_watched_resource", "Changes test://watched-resource and notifies its subscribers (notifications/resources/updated). ward's addition to the suite's tools.", noArgs,
		noInput(func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			v, err := f.changeWatched()
			if err != nil {
				return nil, fmt.Errorf("notify subscribers of %s: %w", watchedURI, err)
			}
			return textResult(fmt.Sprintf("%s is now at version %d.", watchedURI, v)), nil
		}))
}

// noInput wraps the handler of a tool that takes no arguments: a call with
// any is a tool error.
func noInput(h toolHandler) toolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var none struct{}
		if err := decodeArgs(req, &none); err != nil {
			return toolError("%s takes no arguments: %v", req.Params.Name, err), nil
		}
		return h(ctx, req)
	}
}

// decodeArgs reads a call's arguments strictly into v: one JSON object,
// valid UTF-8, no duplicate or undeclared members. Absent arguments are an
// empty object.
func decodeArgs(req *mcp.CallToolRequest, v any) error {
	raw := bytes.TrimSpace(req.Params.Arguments)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	return strictjson.Unmarshal(raw, v)
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func toolError(format string, args ...any) *mcp.CallToolResult {
	r := textResult(fmt.Sprintf(format, args...))
	r.IsError = true
	return r
}

// pause waits d, or less if the call is cancelled.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// toolWithLogging sends its log messages in the call's context, so they go
// on the call's stream, before its result.
func toolWithLogging(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	for i, msg := range []string{"Tool execution started", "Tool processing data", "Tool execution completed"} {
		if i > 0 {
			if err := pause(ctx, step); err != nil {
				return nil, err
			}
		}
		if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "refserver", Data: msg}); err != nil {
			return nil, fmt.Errorf("send log message %q: %w", msg, err)
		}
	}
	return textResult("Tool with logging executed successfully"), nil
}

// toolWithProgress reports progress against the call's token, when it has
// one, in the call's context.
func toolWithProgress(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	token := req.Params.GetProgressToken()
	for i, p := range []float64{0, 50, 100} {
		if i > 0 {
			if err := pause(ctx, step); err != nil {
				return nil, err
			}
		}
		if token == nil {
			continue
		}
		if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token, Progress: p, Total: 100, Message: fmt.Sprintf("step %d of 3", i+1),
		}); err != nil {
			return nil, fmt.Errorf("send progress %v/100: %w", p, err)
		}
	}
	return textResult("Tool with progress executed successfully"), nil
}

// sampling asks the client for an LLM completion of the prompt. The request
// is sent in the call's context, so it goes on the call's stream.
func sampling(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Prompt *string `json:"prompt"`
	}
	if err := decodeArgs(req, &in); err != nil {
		return toolError("test_sampling arguments: %v", err), nil
	}
	if in.Prompt == nil {
		return toolError("test_sampling needs the argument prompt (a string)"), nil
	}
	if caps := req.Session.InitializeParams().Capabilities; caps == nil || caps.Sampling == nil {
		return toolError("the client does not support sampling: it declared no sampling capability"), nil
	}
	res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: *in.Prompt}}},
		MaxTokens: 100,
	})
	if err != nil {
		return toolError("sampling/createMessage failed: %v", err), nil
	}
	answer, ok := res.Content.(*mcp.TextContent)
	if !ok {
		return toolError("sampling/createMessage answered %T content; want text", res.Content), nil
	}
	return textResult("LLM response: " + answer.Text), nil
}

// elicitation asks the user, through the client, for a username and an
// email, with the message given.
func elicitation(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Message *string `json:"message"`
	}
	if err := decodeArgs(req, &in); err != nil {
		return toolError("test_elicitation arguments: %v", err), nil
	}
	if in.Message == nil {
		return toolError("test_elicitation needs the argument message (a string)"), nil
	}
	res, errResult := elicit(ctx, req, *in.Message, userSchema)
	if errResult != nil {
		return errResult, nil
	}
	return textResult("User response: " + describe(res)), nil
}

// elicitWith makes a tool that asks the user for the fields of schema.
func elicitWith(message, schema string) toolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		res, errResult := elicit(ctx, req, message, schema)
		if errResult != nil {
			return errResult, nil
		}
		return textResult("Elicitation completed: " + describe(res)), nil
	}
}

// elicit sends elicitation/create in the call's context, so it goes on the
// call's stream. A client without the capability, or a failed request, is
// a tool error.
func elicit(ctx context.Context, req *mcp.CallToolRequest, message, schema string) (*mcp.ElicitResult, *mcp.CallToolResult) {
	if caps := req.Session.InitializeParams().Capabilities; caps == nil || caps.Elicitation == nil {
		return nil, toolError("the client does not support elicitation: it declared no elicitation capability")
	}
	res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
		Mode:            "form",
		Message:         message,
		RequestedSchema: json.RawMessage(schema),
	})
	if err != nil {
		return nil, toolError("elicitation/create failed: %v", err)
	}
	return res, nil
}

func describe(res *mcp.ElicitResult) string {
	content, err := json.Marshal(res.Content)
	if err != nil {
		content = []byte(fmt.Sprintf("%q", fmt.Sprint(res.Content)))
	}
	return fmt.Sprintf("action=%s, content=%s", res.Action, content)
}

// jsonSchema2020 echoes what it was given, checked against its schema.
func jsonSchema2020(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in struct {
		Name    *string `json:"name,omitempty"`
		Address *struct {
			Street *string `json:"street,omitempty"`
			City   *string `json:"city,omitempty"`
		} `json:"address,omitempty"`
	}
	if err := decodeArgs(req, &in); err != nil {
		return toolError("json_schema_2020_12_tool arguments: %v", err), nil
	}
	out, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return textResult("JSON Schema 2020-12 tool called with " + string(out)), nil
}

// reconnection closes the call's SSE stream, asking the client to come back
// after reconnectRetry, then finishes: the result is kept in the event store
// and sent when the client resumes the stream with Last-Event-ID.
//
// Only a client speaking 2025-11-25 or later gets an SSE stream whose
// events carry ids (the priming event of SEP-1699); an older one could not
// resume, so closing its stream would lose the result. Its call, like one
// answered with application/json, just finishes on the stream it came on.
func reconnection(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if req.Extra != nil && req.Extra.CloseSSEStream != nil && resumable(req.Extra.Header.Get("Mcp-Protocol-Version")) {
		req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: reconnectRetry})
	}
	if err := pause(ctx, step); err != nil {
		return nil, err
	}
	return textResult("Reconnection test completed successfully"), nil
}

// resumable reports whether a request of this protocol version gets SSE
// events with ids, which a client can resume after (2025-11-25 on; the
// mechanism is gone from 2026-07-28). Versions are dates, so they order as
// strings.
func resumable(version string) bool {
	return version >= "2025-11-25" && version < "2026-07-28"
}
