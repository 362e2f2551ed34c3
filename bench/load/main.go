// Command load measures what ward adds to a tool call, as a user deploys it:
// the same MCP client (the official Go SDK) calls the same echo tool of the
// same upstream (a Go SDK server over Streamable HTTP) directly, and
// through a ward node four ways: through a session sidecar (`ward mcp
// serve`'s code, on loopback TCP) that authenticates to the node with the
// session's grant and a DPoP proof per request, or with the session's
// X.509-SVID (mutual TLS); and one hop, the client holding the session's
// credentials itself and speaking to the node's /mcp with DPoP, or with
// mutual TLS (a standard MCP client given the session's svid.pem and
// key.pem). The paths are interleaved, in one run, with the node's data
// directory on disk and on tmpfs.
//
//	go run ./bench/load [-c 1,8] [-d 5s] [-rounds 3] [-sessions 1000]
//
// It prints, per path and concurrency, p50/p99/p999 latency, calls/s and
// both as ratios to the direct path measured in the same round; then what
// one durable write (a 256-byte write and fdatasync) costs on the disk,
// measured between the rounds, and the p50 ward adds to a call over
// direct, less that one write for the rows on disk (the goal:
// added p50 ≤ one fsync + 150 µs). Each
// concurrent client is its own MCP session of its own ward session. It
// sends traffic to loopback only.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

func main() {
	if subcommand(os.Args[1:]) { // load scale (scale.go)
		return
	}
	conc := flag.String("c", "1,8", "concurrent sessions, comma-separated")
	dur := flag.Duration("d", 5*time.Second, "measuring time per path, concurrency and round")
	rounds := flag.Int("rounds", 3, "rounds (paths interleaved within each)")
	many := flag.Int("sessions", 0, "also measure this many concurrent sessions (node path only; e.g. 1000)")
	disk := flag.String("disk", os.TempDir(), "directory on disk for the node's data")
	tmpfs := flag.String("tmpfs", "/dev/shm", "directory on tmpfs for the node's data (\"\" skips)")
	only := flag.String("only", "", "measure only the paths whose name contains this (direct is always measured)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (node, sidecars and clients: one process) to this `file`")
	flag.Parse()
	onlyPaths = *only
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal("%v", err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var cs []int
	for _, f := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal("bad -c %q", *conc)
		}
		cs = append(cs, n)
	}
	if err := run(cs, *dur, *rounds, *many, *disk, *tmpfs); err != nil {
		pprof.StopCPUProfile()
		fatal("%v", err)
	}
}

var onlyPaths string

func fatal(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "load: "+f+"\n", a...)
	os.Exit(1)
}

// caller makes one tool call.
type caller func(ctx context.Context) error

type result struct {
	path  string
	conc  int
	lat   []time.Duration
	calls int
	errs  int
	wall  time.Duration
}

func run(concs []int, dur time.Duration, rounds, many int, disk, tmpfs string) error {
	up := startUpstream()
	defer func() { up.CloseClientConnections(); up.Close() }()
	fmt.Printf("ward load: Go %s, %d CPUs, %s per measurement, %d rounds\n", runtime.Version(), runtime.NumCPU(), dur, rounds)

	type place struct{ name, dir string }
	places := []place{{"disk", disk}}
	if tmpfs != "" {
		if _, err := os.Stat(tmpfs); err == nil {
			places = append(places, place{"tmpfs", tmpfs})
		}
	}
	var nodes []*benchNode
	for _, p := range places {
		dir, err := os.MkdirTemp(p.dir, "ward-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		n, err := startNode(dir, up.URL)
		if err != nil {
			return fmt.Errorf("node on %s: %w", p.name, err)
		}
		defer n.close()
		n.place, n.dir = p.name, dir
		nodes = append(nodes, n)
	}

	maxC := slices.Max(concs)
	// Clients are made once and reused across rounds.
	direct := make([]caller, maxC)
	for i := range direct {
		c, err := mcpCaller(up.URL, http.DefaultClient)
		if err != nil {
			return fmt.Errorf("direct client: %w", err)
		}
		direct[i] = c
	}
	type path struct {
		name    string
		callers []caller
	}
	paths := []path{{"direct", direct}}
	for _, n := range nodes {
		// Four ways through the node, each a path of its own: a sidecar
		// (`ward mcp serve`) authenticating to the node with DPoP or with
		// the session's X.509-SVID (mutual TLS), and a client holding the
		// session's credentials itself, speaking to the node's /mcp with
		// DPoP or with mutual TLS (one hop, no sidecar).
		ways := []struct {
			name    string
			sidecar bool
			mtls    bool
		}{
			{"ward+sidecar, DPoP", true, false},
			{"ward+sidecar, mTLS", true, true},
			{"ward node, DPoP", false, false},
			{"ward node, mTLS one hop", false, true},
		}
		for _, w := range ways {
			name := w.name + " (" + n.place + ")"
			if !strings.Contains(name, onlyPaths) {
				continue
			}
			callers := make([]caller, maxC)
			for i := range maxC {
				creds, err := n.session(fmt.Sprintf("load-%d", i))
				if err != nil {
					return err
				}
				hc := creds.HTTPClient(w.mtls)
				if w.sidecar {
					sideURL, err := n.sidecar(hc.Transport)
					if err != nil {
						return err
					}
					hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
					if callers[i], err = mcpCaller(sideURL, hc); err != nil {
						return fmt.Errorf("%s client: %w", name, err)
					}
					continue
				}
				if callers[i], err = mcpCaller(n.url+"/mcp", hc); err != nil {
					return fmt.Errorf("%s client: %w", name, err)
				}
			}
			paths = append(paths, path{name, callers})
		}
	}

	results := map[string][]result{}
	var syncs []time.Duration // one append and fdatasync on the disk, interleaved with the rounds
	for r := 0; r < rounds; r++ {
		s, err := rawSyncs(nodes[0].dir, 100) // nodes[0] is the one on disk
		if err != nil {
			return fmt.Errorf("raw fsync on disk: %w", err)
		}
		syncs = append(syncs, s...)
		for _, c := range concs {
			for _, p := range paths {
				res := measure(p.name, p.callers[:c], dur)
				results[key(p.name, c)] = append(results[key(p.name, c)], res)
			}
		}
	}
	fmt.Println()
	fmt.Println("| path | c | p50 | p99 | p999 | calls/s | p50 vs direct | calls/s vs direct | errors |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range concs {
		base := merge(results[key("direct", c)])
		for _, p := range paths {
			m := merge(results[key(p.name, c)])
			fmt.Printf("| %s | %d | %s | %s | %s | %.0f | %.2f× | %.2f× | %d |\n", p.name, c,
				ms(m.pct(0.50)), ms(m.pct(0.99)), ms(m.pct(0.999)), m.rate(),
				float64(m.pct(0.50))/float64(base.pct(0.50)), m.rate()/base.rate(), m.errs)
		}
	}
	slices.Sort(syncs)
	oneSync := syncs[len(syncs)/2]
	fmt.Printf("\none 256-byte write and fdatasync on the disk (the baseline of the disk rows; %d, interleaved with the rounds): p50 %s, p99 %s\n\n",
		len(syncs), ms(oneSync), ms(syncs[len(syncs)*99/100]))
	fmt.Println("| path | c | added p50 (ward − direct) | added p50 − one fsync (disk rows) |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	for _, c := range concs {
		base := merge(results[key("direct", c)]).pct(0.50)
		for _, p := range paths {
			if p.name == "direct" {
				continue
			}
			added := merge(results[key(p.name, c)]).pct(0.50) - base
			over := "—"
			if strings.Contains(p.name, "(disk)") {
				over = ms(added - oneSync)
			}
			fmt.Printf("| %s | %d | %s | %s |\n", p.name, c, ms(added), over)
		}
	}
	if many > 0 {
		for _, n := range nodes {
			if err := measureMany(n, many, dur); err != nil {
				return err
			}
		}
	}
	return nil
}

func key(p string, c int) string { return fmt.Sprintf("%s/%d", p, c) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// measure runs callers concurrently for dur.
func measure(name string, callers []caller, dur time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var mu sync.Mutex
	res := result{path: name, conc: len(callers)}
	var wg sync.WaitGroup
	start := time.Now()
	for _, call := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := call(cctx)
				ccancel()
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.wall = time.Since(start)
	res.calls = len(res.lat)
	return res
}

func merge(rs []result) result {
	var m result
	for _, r := range rs {
		m.lat = append(m.lat, r.lat...)
		m.calls += r.calls
		m.errs += r.errs
		m.wall += r.wall
	}
	slices.Sort(m.lat)
	return m
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r result) rate() float64 {
	if r.wall == 0 {
		return 0
	}
	return float64(r.calls) / r.wall.Seconds()
}

// mcpCaller connects an MCP client to endpoint and returns a caller of the
// echo tool (by the name ward shows it; the upstream's own name).
func mcpCaller(endpoint string, hc *http.Client) (caller, error) {
	c, _, err := mcpSession(endpoint, hc)
	return c, err
}

// rawSyncs times n writes of 256 bytes into a file in dir written with
// zeros beforehand, each followed by an fdatasync: what one durable write
// costs on that disk, written as the audit log's journal is.
func rawSyncs(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	b := make([]byte, 256)
	if _, err := f.Write(make([]byte, n*len(b))); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if _, err := f.WriteAt(b, int64(i*len(b))); err != nil {
			return nil, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// startUpstream serves an echo tool over Streamable HTTP on loopback.
func startUpstream() *httptest.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echo the text.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(bool)}},
		func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	return httptest.NewServer(h)
}

type benchNode struct {
	*server.Node
	nodeAPI
	place string
	dir   string // its data directory
	stop  []func()
}

// nodeAPI is what the tool needs of a node's API as its admin: to post,
// and to start sessions whose keys it makes.
type nodeAPI struct {
	url    string
	admin  string
	pool   *x509.CertPool
	client *http.Client
}

func startNode(dir, upstream string) (*benchNode, error) {
	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o700)
	os.WriteFile(filepath.Join(pol, "all.cedar"), []byte(`@id("load") permit (principal, action == Action::"call_tool", resource);`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	n, err := server.Open(ctx, server.Config{Data: filepath.Join(dir, "data"), Addr: "127.0.0.1:0", TrustDomain: "load.test",
		Policies: []string{pol}, Upstreams: []server.Upstream{{Name: "up", URL: upstream + "/"}},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		return nil, err
	}
	if err := n.Listen(); err != nil {
		cancel()
		n.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { defer close(done); n.Serve(ctx) }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.CA.BundlePEM())
	b := &benchNode{Node: n, nodeAPI: nodeAPI{url: n.URL(), admin: n.AdminCredential, pool: pool,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}}
	b.stop = append(b.stop, func() { cancel(); n.Close(); <-done })
	for _, req := range []struct {
		path string
		body any
	}{
		{"/v1/sponsors", map[string]any{"name": "load", "kind": "platform", "ceiling": map[string][]string{"tools": {"*"}}}},
		{"/v1/agents", map[string]any{"name": "loader", "sponsor": "load", "ceiling": map[string][]string{"tools": {"*"}}}},
	} {
		if _, err := b.post(req.path, req.body); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *benchNode) close() {
	for i := len(b.stop) - 1; i >= 0; i-- {
		b.stop[i]()
	}
}

func (b *nodeAPI) post(path string, body any) ([]byte, error) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", b.url+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+b.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, out)
	}
	return out, nil
}

// session starts a ward session of an hour whose key is made here.
func (b *nodeAPI) session(objective string) (*sessioncred.Credentials, error) {
	return b.startSession(objective, "1h")
}

// startSession starts a ward session of ttl whose key is made here.
func (b *nodeAPI) startSession(objective, ttl string) (*sessioncred.Credentials, error) {
	key, err := sessioncred.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := sessioncred.CSR(key)
	if err != nil {
		return nil, err
	}
	out, err := b.post("/v1/sessions", map[string]any{"agent": "loader", "objective": objective, "ttl": ttl,
		"csr": base64.RawURLEncoding.EncodeToString(csr)})
	if err != nil {
		return nil, err
	}
	var v api.IssuedView
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, err
	}
	chain, err := sessioncred.ParseCertificates([]byte(v.X509SVID))
	if err != nil {
		return nil, err
	}
	return &sessioncred.Credentials{
		Info: sessioncred.Info{Session: v.Session, SPIFFEID: v.SPIFFEID, Agent: v.Agent, Server: b.url, Expires: v.Expires},
		Key:  key, SVID: chain, Bundle: b.pool, Grant: v.Grant, JWTSVID: v.JWTSVID,
	}, nil
}

// sidecar serves a session's sidecar on loopback TCP, forwarding to the
// node through rt (which authenticates as the session), and returns its
// MCP URL (with the token in its path).
func (b *benchNode) sidecar(rt http.RoundTripper) (string, error) {
	target, _ := url.Parse(b.url + "/mcp")
	token := sessioncred.NewToken()
	sc, err := sessioncred.NewSidecar(sessioncred.SidecarConfig{Target: target, Transport: rt, Token: token})
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sc.Serve(ctx, ln) }()
	b.stop = append(b.stop, func() { cancel(); <-done })
	return "http://" + ln.Addr().String() + "/mcp/" + token, nil
}

// measureMany runs many sessions against the node directly, each calling
// once per second, and reports latency, throughput and the node's memory
// per session.
func measureMany(b *benchNode, many int, dur time.Duration) error {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	callers := make([]caller, 0, many)
	var setupErrs atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; i < many; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			creds, err := b.session(fmt.Sprintf("many-%d", i))
			if err != nil {
				setupErrs.Add(1)
				return
			}
			c, err := mcpCaller(b.url+"/mcp", creds.HTTPClient(false))
			if err != nil {
				setupErrs.Add(1)
				return
			}
			mu.Lock()
			callers = append(callers, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	res := measure("many", callers, dur)
	m := merge([]result{res})
	perSession := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(max(1, len(callers)))
	fmt.Printf("\n%d concurrent sessions on the node (%s), clients in the same process: %d connected (%d failed), p50 %s, p99 %s, %.0f calls/s, %d errors; heap per session (clients included) %.1f KiB\n",
		many, b.place, len(callers), setupErrs.Load(), ms(m.pct(0.5)), ms(m.pct(0.99)), m.rate(), m.errs, perSession/1024)
	return nil
}
