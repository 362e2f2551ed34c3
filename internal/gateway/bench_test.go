package gateway_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/redact"
	"github.com/ward-dev/ward/internal/store"
)

// nopRecorder accepts events without writing them: it isolates the
// gateway's own cost from the audit log's durability cost.
type nopRecorder struct{ n uint64 }

func (r *nopRecorder) Append(ctx context.Context, e audit.Event) (uint64, error) {
	r.n++
	return r.n, nil
}

func echoServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo."}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	return s
}

// benchText is the argument of the benchmarked calls, echoed back as the
// result: about 250 bytes with one secret in it.
const benchText = "Hi Bob, the quarterly report is attached; the numbers are in the second sheet. " +
	"Use key AKIAABCDEFGHIJKLMNOP for the bucket and ask Carol if anything is missing. " +
	"The meeting moved to Thursday at ten, same room as last time. Thanks, Alice."

func benchCalls(b *testing.B, cs *mcp.ClientSession, name string) {
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: name, Arguments: map[string]any{"text": benchText}}
	lat := make([]time.Duration, 0, 1024)
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

// BenchmarkGatewayInMemory measures the gateway's own cost per tools/call,
// with every transport in memory: directly to the upstream, through the
// gateway with the audit log replaced by a no-op (proxying, scope, pin
// lookup in SQLite, Cedar decision), the same recording arguments and
// results redacted with the default rules (the cost of redaction), and
// through the gateway with the real, durable audit log (two fsync'd appends
// per call).
func BenchmarkGatewayInMemory(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		clientT, serverT := mcp.NewInMemoryTransports()
		if _, err := echoServer().Connect(context.Background(), serverT, nil); err != nil {
			b.Fatal(err)
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "b", Version: "1"}, nil).Connect(context.Background(), clientT, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		benchCalls(b, cs, "echo")
	})
	for _, bc := range []struct {
		name             string
		durable, records bool
	}{
		{"gateway-no-audit", false, false},
		{"gateway-no-audit-redacted-record", false, true},
		{"gateway-durable-audit", true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			st, err := store.OpenSQLite(context.Background(), store.Config{Path: filepath.Join(dir, "w.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var rec enforce.Recorder = &nopRecorder{}
			if bc.durable {
				skey, vkey, _ := audit.NewNoteKey("bench/audit")
				signer, _ := note.NewSigner(skey)
				verifier, _ := note.NewVerifier(vkey)
				log, err := audit.Open(audit.Config{Dir: filepath.Join(dir, "audit"), Origin: "bench/audit", Signer: signer, Verifier: verifier})
				if err != nil {
					b.Fatal(err)
				}
				defer log.Close()
				rec = log
			}
			set, _ := policy.Parse(map[string][]byte{"p.cedar": []byte(`permit (principal, action == Action::"call_tool", resource in Server::"up");`)})
			var record enforce.Record
			if bc.records {
				r, err := redact.New(redact.Config{Salt: []byte("bench salt of sixteen bytes")})
				if err != nil {
					b.Fatal(err)
				}
				record = enforce.Record{Arguments: true, Results: []string{"up.*"}, Redactor: r}
			}
			guard, err := enforce.New(enforce.Config{Policies: func() *policy.Set { return set }, Pins: st, Audit: rec, Record: record})
			if err != nil {
				b.Fatal(err)
			}
			g, err := gateway.New(gateway.Config{Guard: guard, Upstreams: []gateway.Upstream{gateway.InProcess("up", echoServer)}})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clientT, gwT := mcp.NewInMemoryTransports()
			gwConn, _ := gwT.Connect(ctx)
			go g.ServeConn(ctx, gwConn, caller)
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "b", Version: "1"}, nil).Connect(ctx, clientT, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			benchCalls(b, cs, "up.echo")
		})
	}
}

// BenchmarkGuardRecord measures what recording redacted arguments and
// results adds to one call's Check and Observe, against the same guard
// recording digests only, with the audit log replaced by a no-op.
func BenchmarkGuardRecord(b *testing.B) {
	ctx := context.Background()
	args, _ := json.Marshal(map[string]any{"text": benchText})
	result, _ := json.Marshal(&mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: benchText}}})
	st, err := store.OpenSQLite(ctx, store.Config{Path: filepath.Join(b.TempDir(), "w.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	set, _ := policy.Parse(map[string][]byte{"p.cedar": []byte(`permit (principal, action == Action::"call_tool", resource in Server::"up");`)})
	r, err := redact.New(redact.Config{Salt: []byte("bench salt of sixteen bytes")})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		record enforce.Record
	}{
		{"digests-only", enforce.Record{}},
		{"redacted-arguments-and-result", enforce.Record{Arguments: true, Results: []string{"up.*"}, Redactor: r}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			guard, err := enforce.New(enforce.Config{Policies: func() *policy.Set { return set }, Pins: st, Audit: &nopRecorder{}, Record: bc.record})
			if err != nil {
				b.Fatal(err)
			}
			op := &gateway.Operation{Action: policy.ActionCallTool, Method: "tools/call", Server: "up", Name: "up.echo", Upstream: "echo",
				Arguments: args, Definition: json.RawMessage(`{"name":"echo","inputSchema":{"type":"object"}}`)}
			for b.Loop() {
				v, err := guard.Check(ctx, caller, op)
				if err != nil || !v.Allow {
					b.Fatal(v.Reason, err)
				}
				if err := guard.Observe(ctx, caller, op, gateway.Outcome{Decision: v.Event, ResultDigest: "x", ResultBytes: len(result), Result: result}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
