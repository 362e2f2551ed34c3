package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/telemetry"
)

type echoIn struct {
	Text string `json:"text"`
}

// benchUpstream is a go-sdk MCP server with one echo tool, served over
// Streamable HTTP on loopback.
func benchUpstream(b *testing.B) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo."}, func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	b.Cleanup(srv.Close)
	return srv.URL
}

// loopCalls runs tools/call in b.Loop and reports p50/p99 latency.
func loopCalls(b *testing.B, cs *mcp.ClientSession, name string) {
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: name, Arguments: map[string]any{"text": "hello"}}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := cs.CallTool(ctx, params); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if n := len(lat); n > 0 {
		b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkToolCall compares one tools/call made directly to an upstream
// over loopback HTTP with the same call through ward's gateway (TLS, DPoP
// proof verified per request, grant scope + tool pin + Cedar decision, and
// two durable audit appends: the decision before forwarding, the result
// after).
func BenchmarkToolCall(b *testing.B) {
	url := benchUpstream(b)
	b.Run("direct", func(b *testing.B) {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		loopCalls(b, cs, "echo")
	})
	b.Run("ward", func(b *testing.B) {
		dir := b.TempDir()
		os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`permit (principal, action == Action::"call_tool", resource in Server::"up");`), 0o600)
		n := startNode(b, server.Config{Policies: []string{dir}, Upstreams: []server.Upstream{{Name: "up", URL: url}}})
		n.setupAgent("bench", nil, map[string][]string{"tools": {"up.*"}})
		creds, _ := n.startSession("bench", "benchmark", nil, "1h")
		cs := n.connect(b, creds.HTTPClient(false), nil)
		loopCalls(b, cs, "up.echo")
	})
	// The same with every call traced and exported by OTLP to a collector
	// on loopback that takes and drops what it is sent.
	b.Run("ward-traced", func(b *testing.B) {
		col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-protobuf")
		}))
		b.Cleanup(col.Close)
		dir := b.TempDir()
		os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`permit (principal, action == Action::"call_tool", resource in Server::"up");`), 0o600)
		n := startNode(b, server.Config{Policies: []string{dir}, Upstreams: []server.Upstream{{Name: "up", URL: url}},
			Tracing: telemetry.TracingConfig{OTLPEndpoint: col.URL}})
		n.setupAgent("bench", nil, map[string][]string{"tools": {"up.*"}})
		creds, _ := n.startSession("bench", "benchmark", nil, "1h")
		cs := n.connect(b, creds.HTTPClient(false), nil)
		loopCalls(b, cs, "up.echo")
	})
}
