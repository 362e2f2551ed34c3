package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
)

// goroutinesCreated is the number of goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// budgetOwnCPU is DESIGN.md's budget for ward's own CPU per decided call.
const budgetOwnCPU = 150 * time.Microsecond

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOwnCPUPerCall checks DESIGN.md's per-call budget: ward's own
// CPU per decided tools/call, p50 ≤ 150 µs. The same go-sdk client calls
// the same echo tool of the same upstream directly (plain HTTP) and
// through a ward node (TLS, a DPoP proof signed by the client and verified
// by the node, grant scope, tool pin, Cedar decision, the decision and the
// result each appended to the durable audit log, HTTP to the upstream),
// one call after the other, interleaved. For each call it takes the CPU
// time the whole process (client, node and upstream alike) used during
// it; ward's own CPU per call is the difference of the two paths' medians,
// so the client's and the upstream's shares cancel, while ward's side of
// the client (DPoP signing, TLS) counts. It reports the medians and the
// difference (own-cpu-µs), and how far over the budget that is
// (over-budget-µs, negative when within), saying so in the log, and the
// goroutines a call through ward starts beyond a direct one
// (own-goroutines/call).
// The node's data directory is on tmpfs (/dev/shm) where there is one.
// Measured as CPU time, not wall time: a loaded machine stretches calls,
// not (much) the CPU they take.
//
// Sub-benchmarks by the way the client reaches the node: dpop (the client
// signs a proof per request, the node verifies it), mtls (the client
// presents the session's X.509-SVID on a connection kept open: the
// one-hop path), and the same two through a session sidecar (`ward mcp
// serve`'s code, in the same process, so its CPU counts as ward's).
func BenchmarkOwnCPUPerCall(b *testing.B) {
	b.Run("dpop", func(b *testing.B) { ownCPUPerCall(b, false, false, false) })
	b.Run("mtls", func(b *testing.B) { ownCPUPerCall(b, true, false, false) })
	b.Run("sidecar-dpop", func(b *testing.B) { ownCPUPerCall(b, false, true, false) })
	b.Run("sidecar-mtls", func(b *testing.B) { ownCPUPerCall(b, true, true, false) })
	// The one-hop path with mcp_json_answers: a request with one answer
	// is answered with one JSON body, not an SSE stream.
	b.Run("mtls-json-answers", func(b *testing.B) { ownCPUPerCall(b, true, false, true) })
}

// benchPaths starts an upstream and a node in front of it and returns a
// client session straight to the upstream and one through the node (by
// mutual TLS or DPoP, straight or through a sidecar).
func benchPaths(b *testing.B, mtls, sidecar, jsonAnswers bool) (direct, ward *mcp.ClientSession) {
	url := benchUpstream(b)
	var err error
	direct, err = mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close() })
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`permit (principal, action == Action::"call_tool", resource in Server::"up");`), 0o600)
	// The data directory on tmpfs where there is one: the budget is CPU,
	// not the disk's sync.
	data := b.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "ward-bench-"); err == nil {
		data = shm
		b.Cleanup(func() { os.RemoveAll(shm) })
	}
	n := startNode(b, server.Config{Data: data, Policies: []string{dir}, Upstreams: []server.Upstream{{Name: "up", URL: url}}, MCPJSONAnswers: jsonAnswers})
	n.setupAgent("bench", nil, map[string][]string{"tools": {"up.*"}})
	creds, _ := n.startSession("bench", "benchmark", nil, "1h")
	if sidecar {
		ward = connectURL(b, sidecarURL(b, n, creds.HTTPClient(mtls).Transport), &http.Client{Transport: &http.Transport{}})
	} else {
		ward = n.connect(b, creds.HTTPClient(mtls), nil)
	}
	return direct, ward
}

func ownCPUPerCall(b *testing.B, mtls, sidecar, jsonAnswers bool) {
	direct, ward := benchPaths(b, mtls, sidecar, jsonAnswers)
	ctx := context.Background()
	var dGo, wGo uint64 // goroutines started during the direct and the ward calls
	call := func(cs *mcp.ClientSession, name string, started *uint64) time.Duration {
		params := &mcp.CallToolParams{Name: name, Arguments: map[string]any{"text": "hello"}}
		g0 := goroutinesCreated()
		t0 := processCPU()
		if _, err := cs.CallTool(ctx, params); err != nil {
			b.Fatal(err)
		}
		cpu := processCPU() - t0
		*started += goroutinesCreated() - g0
		return cpu
	}
	for range 50 { // warm both paths: connections, caches
		call(direct, "echo", new(uint64))
		call(ward, "up.echo", new(uint64))
	}
	var d, w []time.Duration
	b.ReportAllocs() // both paths: compare runs, not with direct
	for b.Loop() {
		d = append(d, call(direct, "echo", &dGo))
		w = append(w, call(ward, "up.echo", &wGo))
	}
	slices.Sort(d)
	slices.Sort(w)
	pd, pw := d[len(d)/2], w[len(w)/2]
	own := pw - pd
	b.ReportMetric(float64(pd.Microseconds()), "direct-cpu-µs")
	b.ReportMetric(float64(pw.Microseconds()), "ward-cpu-µs")
	b.ReportMetric(float64(own.Microseconds()), "own-cpu-µs")
	b.ReportMetric(float64((own - budgetOwnCPU).Microseconds()), "over-budget-µs")
	// Goroutines started per call through ward beyond the direct call's
	// (the process's background work counts where it happens to fall).
	b.ReportMetric((float64(wGo)-float64(dGo))/float64(len(w)), "own-goroutines/call")
	if own > budgetOwnCPU {
		// Logged, not failed: a failed benchmark prints no numbers, and
		// the numbers are what says how far off the budget is.
		b.Logf("OVER BUDGET: ward's own CPU per call, p50 %v, budget %v (direct %v, through ward %v, %d calls each)", own, budgetOwnCPU, pd, pw, len(d))
	}
}

// BenchmarkCallPath times one path alone (no interleaving), for
// instruction counts: run it under callgrind at two -benchtime counts and
// subtract, for the cost of one call without the process's start (see
// BENCHMARKS.md, "ward's own CPU per call"). direct is the same call
// straight to the upstream.
func BenchmarkCallPath(b *testing.B) {
	for _, p := range []struct {
		name          string
		mtls, sidecar bool
		direct        bool
	}{{"direct", true, false, true}, {"mtls", true, false, false}, {"dpop", false, false, false}, {"sidecar-mtls", true, true, false}} {
		b.Run(p.name, func(b *testing.B) {
			direct, ward := benchPaths(b, p.mtls, p.sidecar, false)
			cs, name := ward, "up.echo"
			if p.direct {
				cs, name = direct, "echo"
			}
			ctx := context.Background()
			params := &mcp.CallToolParams{Name: name, Arguments: map[string]any{"text": "hello"}}
			for range 50 {
				if _, err := cs.CallTool(ctx, params); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cs.CallTool(ctx, params); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
