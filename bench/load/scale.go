package main

// `load scale`: many agent sessions through one to three nodes.
//
//	go run ./bench/load scale [-sessions 1000,10000] [-nodes 1,2,3] [-stores sqlite,postgres]
//	    [-d 20s] [-rate 200] [-pg DSN] [-heapprofile DIR] [-stateless-upstream]
//
// Each node runs in a process of its own (this program, re-executed as
// `load scale-node`: server.Open, Listen and Serve, as `ward up` runs
// them), and so does the upstream (`load scale-upstream`, the echo tool
// over HTTPS with HTTP/2, trusted by the nodes through SSL_CERT_FILE),
// so that neither the clients' memory nor their file descriptors are
// counted as the node's. A node answers its parent on a loopback control
// port with its memory after a forced GC (Go heap in use, live bytes, and
// VmRSS from /proc/self/status) and, if asked, a heap profile.
//
// For each store (SQLite: one node; PostgreSQL: a fresh schema on -pg,
// dropped afterwards, 1..3 nodes joined to it), each node count and each
// number of sessions N it:
//
//  1. starts the nodes and N ward sessions (through the first node);
//  2. measures the nodes' memory with nothing connected, then with N
//     idle TLS connections (each has made one request, GET /livez, and
//     holds no session; HTTP/1.1, as the sessions' clients connect),
//     then with the N sessions connected instead (each an MCP session of
//     the official Go SDK client through sessioncred's DPoP transport,
//     spread over the nodes round-robin, that has made one call and
//     stays connected; over HTTP/1.1 its standing GET stream holds a
//     second connection): memory per session is (connected − idle
//     connections) / the sessions connected, the nodes summed;
//  3. makes tool calls for -d from all N sessions, each calling once
//     every N/rate seconds from a random phase (open loop: -rate calls/s
//     offered in all), then the same offered rate directly at the
//     upstream from min(N, 1000) direct sessions, and prints calls/s,
//     p50/p99/p999 and what ward adds to each over direct.
//
// The file-descriptor limit is raised to what the calls need (as root, the
// hard limit too). Only loopback is used.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// subcommand runs `load scale`, `load scale-node` and `load
// scale-upstream`; it reports false for anything else.
func subcommand(args []string) bool {
	if len(args) == 0 {
		return false
	}
	var err error
	switch args[0] {
	case "scale":
		err = scaleMain(args[1:])
	case "scale-node":
		err = nodeProcess(args[1:])
	case "scale-upstream":
		err = upstreamProcess(args[1:])
	default:
		return false
	}
	if err != nil {
		fatal("%s: %v", args[0], err)
	}
	return true
}

func scaleMain(args []string) error {
	fs := flag.NewFlagSet("load scale", flag.ExitOnError)
	sessions := fs.String("sessions", "1000,10000", "numbers of concurrent sessions, comma-separated")
	nodes := fs.String("nodes", "1,2,3", "numbers of nodes, comma-separated (more than one: PostgreSQL only)")
	stores := fs.String("stores", "sqlite,postgres", "stores, comma-separated: sqlite, postgres")
	dur := fs.Duration("d", 20*time.Second, "measuring time of the calls, per path")
	rate := fs.Float64("rate", 100, "calls per second offered, all sessions together")
	pg := fs.String("pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "the PostgreSQL `database` (a fresh schema is made in it and dropped afterwards)")
	heap := fs.String("heapprofile", "", "write the first node's heap profile and goroutine dump with the sessions connected into this `directory`")
	dir := fs.String("dir", os.TempDir(), "`directory` for the nodes' data")
	stateless := fs.Bool("stateless-upstream", false, "serve the echo tool without MCP sessions (the go-sdk's stateless mode: no Mcp-Session-Id, no standing GET stream)")
	fs.Parse(args)
	ns, err := ints(*sessions)
	if err != nil {
		return err
	}
	ks, err := ints(*nodes)
	if err != nil {
		return err
	}
	limit, err := raiseFiles(2*slices.Max(ns) + 10000)
	if err != nil {
		return err
	}
	fmt.Printf("ward load scale: Go %s, %d CPUs, file limit %d, %s of calls per row at %.0f calls/s offered\n\n", runtime.Version(), runtime.NumCPU(), limit, *dur, *rate)
	fmt.Println("| store | nodes | sessions | connected | calls/s | p50 | p99 | p999 | added p50 / p99 / p999 vs direct | errors | per session: heap / live / RSS KiB, goroutines | idle conn: heap / RSS KiB |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |")
	for _, st := range strings.Split(*stores, ",") {
		for _, k := range ks {
			if st == "sqlite" && k > 1 {
				continue
			}
			for _, n := range ns {
				row, err := scaleRow(scaleCase{store: st, nodes: k, sessions: n, dur: *dur, rate: *rate, pg: *pg, heap: *heap, dir: *dir, stateless: *stateless})
				if err != nil {
					return fmt.Errorf("%s, %d nodes, %d sessions: %w", st, k, n, err)
				}
				fmt.Println(row)
			}
		}
	}
	return nil
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// raiseFiles raises the soft limit of open files to at least want (and
// the hard limit too where allowed), and returns the new soft limit.
func raiseFiles(want int) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Max < uint64(want) {
		l.Max = uint64(want)
	}
	l.Cur = max(l.Cur, l.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		// Not root: the soft limit up to the hard one.
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}

type scaleCase struct {
	store           string
	nodes, sessions int
	dur             time.Duration
	rate            float64
	pg, heap, dir   string
	stateless       bool // the upstream keeps no MCP sessions
}

// mem is a node's memory as its control port reports it.
type mem struct {
	HeapInuse  int64 `json:"heap_inuse"`
	HeapAlloc  int64 `json:"heap_alloc"` // after a forced GC: live bytes
	RSS        int64 `json:"rss"`
	Goroutines int   `json:"goroutines"`
}

func (m mem) minus(o mem) mem {
	return mem{m.HeapInuse - o.HeapInuse, m.HeapAlloc - o.HeapAlloc, m.RSS - o.RSS, m.Goroutines - o.Goroutines}
}

func (m mem) plus(o mem) mem {
	return mem{m.HeapInuse + o.HeapInuse, m.HeapAlloc + o.HeapAlloc, m.RSS + o.RSS, m.Goroutines + o.Goroutines}
}

func kib(b int64, n int) string { return fmt.Sprintf("%.1f", float64(b)/1024/float64(max(1, n))) }

func scaleRow(sc scaleCase) (string, error) {
	var upArgs []string
	if sc.stateless {
		upArgs = append(upArgs, "-stateless")
	}
	up, err := startChild(nil, "scale-upstream", upArgs...)
	if err != nil {
		return "", err
	}
	defer up.stop()
	upURL := up.ready["url"]
	certDir, err := os.MkdirTemp("", "ward-scale-cert-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(certDir)
	certFile := filepath.Join(certDir, "upstream.pem")
	if err := os.WriteFile(certFile, []byte(up.ready["cert"]), 0o600); err != nil {
		return "", err
	}
	upPool := x509.NewCertPool()
	upPool.AppendCertsFromPEM([]byte(up.ready["cert"]))
	var schema string
	if sc.store == "postgres" {
		schema = "ward_bench_" + strconv.FormatInt(time.Now().Unix(), 10) + "_" + hex.EncodeToString(randBytes(4))
		defer dropSchema(sc.pg, schema)
	}
	var nodes []*childNode
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for i := range sc.nodes {
		data, err := os.MkdirTemp(sc.dir, "ward-scale-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(data)
		cfg := nodeConfig{Data: data, Upstream: upURL, Profile: sc.heap != "" && i == 0}
		if sc.store == "postgres" {
			cfg.DSN, cfg.Schema = sc.pg, schema
			if i > 0 {
				tok, err := os.ReadFile(filepath.Join(nodes[0].cfg.Data, "data", "keys", "join.token"))
				if err != nil {
					return "", err
				}
				cfg.JoinToken = string(tok)
			}
		}
		n, err := startNode2(cfg, "SSL_CERT_FILE="+certFile)
		if err != nil {
			return "", fmt.Errorf("node %d: %w", i, err)
		}
		nodes = append(nodes, n)
	}
	n0 := nodes[0]
	for _, req := range []struct {
		path string
		body any
	}{
		{"/v1/sponsors", map[string]any{"name": "load", "kind": "platform", "ceiling": map[string][]string{"tools": {"*"}}}},
		{"/v1/agents", map[string]any{"name": "loader", "sponsor": "load", "ceiling": map[string][]string{"tools": {"*"}}}},
	} {
		if _, err := n0.post(req.path, req.body); err != nil {
			return "", err
		}
	}
	// The sessions.
	t0 := time.Now()
	creds := make([]*sessioncred.Credentials, sc.sessions)
	if err := parallel(sc.sessions, 16, func(i int) error {
		c, err := n0.startSession(fmt.Sprintf("scale-%d", i), "2h")
		creds[i] = c
		return err
	}); err != nil {
		return "", fmt.Errorf("start sessions: %w", err)
	}
	fmt.Fprintf(os.Stderr, "load scale: %s, %d nodes: %d sessions started in %v\n", sc.store, sc.nodes, sc.sessions, time.Since(t0).Round(time.Millisecond))
	memOf := func() (mem, error) {
		var sum mem
		for _, n := range nodes {
			m, err := n.mem()
			if err != nil {
				return mem{}, err
			}
			sum = sum.plus(m)
		}
		return sum, nil
	}
	bare, err := memOf()
	if err != nil {
		return "", err
	}
	// N idle connections that carry no session.
	idle := make([]*http.Transport, sc.sessions)
	if err := parallel(sc.sessions, 64, func(i int) error {
		n := nodes[i%len(nodes)]
		// HTTP/1.1, as sessioncred's transports connect the sessions
		// (an idle connection over HTTP/2 costs the node about 2 KiB
		// less heap and 10 KiB more RSS).
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool}}
		idle[i] = tr
		resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get(n.url + "/livez")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}); err != nil {
		return "", fmt.Errorf("idle connections: %w", err)
	}
	withIdle, err := memOf()
	if err != nil {
		return "", err
	}
	for _, tr := range idle {
		tr.CloseIdleConnections()
	}
	idle = nil
	time.Sleep(2 * time.Second) // the nodes see the connections close
	// The direct sessions (the baseline) connect first and share one
	// HTTP/2 client: with N sessions connected through ward, each holding
	// two connections (its POSTs and its standing GET), 1,000 more would
	// pass the file limit a process gets here (20,000) at N = 10,000.
	// Sharing only flatters direct.
	directClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: upPool}, ForceAttemptHTTP2: true}}
	direct := make([]caller, min(sc.sessions, 1000))
	for i := range direct {
		c, closeFn, err := mcpSession(upURL, directClient)
		if err != nil {
			return "", fmt.Errorf("direct client: %w", err)
		}
		direct[i] = c
		defer closeFn()
	}
	// The sessions connected, one call each, then idle.
	callers := make([]caller, sc.sessions)
	closers := make([]func(), sc.sessions)
	defer func() {
		for _, c := range closers {
			if c != nil {
				c()
			}
		}
	}()
	var connectErrs atomic.Int64
	t0 = time.Now()
	parallel(sc.sessions, 64, func(i int) error {
		n := nodes[i%len(nodes)]
		c, closeFn, err := mcpSession(n.url+"/mcp", creds[i].HTTPClient(false))
		if err == nil {
			err = c(context.Background())
		}
		if err != nil {
			if connectErrs.Add(1) <= 3 {
				fmt.Fprintf(os.Stderr, "load scale: session %d: %v\n", i, err)
			}
			if closeFn != nil {
				closeFn()
			}
			return nil
		}
		callers[i], closers[i] = c, closeFn
		return nil
	})
	fmt.Fprintf(os.Stderr, "load scale: %d sessions connected in %v (%d failed)\n", sc.sessions-int(connectErrs.Load()), time.Since(t0).Round(time.Millisecond), connectErrs.Load())
	time.Sleep(2 * time.Second)
	withSessions, err := memOf()
	if err != nil {
		return "", err
	}
	if sc.heap != "" {
		file := filepath.Join(sc.heap, fmt.Sprintf("heap-%s-%dnodes-%d.pb.gz", sc.store, sc.nodes, sc.sessions))
		if err := n0.profile("/heap", file); err != nil {
			return "", err
		}
		// And what its goroutines wait in (pprof's debug=1 text: one
		// line per distinct stack, with its count).
		if err := n0.profile("/goroutine", strings.TrimSuffix(file, ".pb.gz")+".goroutines.txt"); err != nil {
			return "", err
		}
		fmt.Fprintf(os.Stderr, "load scale: heap profile and goroutines of node 0 with the sessions connected: %s\n", file)
	}
	live := slices.DeleteFunc(slices.Clone(callers), func(c caller) bool { return c == nil })
	// Direct first, then through ward, at the same offered rate.
	base := openLoop(direct, sc.rate, sc.dur)
	through := openLoop(live, sc.rate, sc.dur)
	// Per session: what a connected session costs less what an idle
	// connection does (each over its own count: sessions that failed to
	// connect hold nothing).
	conn, idleCost := withSessions.minus(bare), withIdle.minus(bare)
	perKiB := func(c, i int64) float64 {
		return (float64(c)/float64(max(1, len(live))) - float64(i)/float64(sc.sessions)) / 1024
	}
	add := func(p float64) string { return ms(through.pct(p) - base.pct(p)) }
	return fmt.Sprintf("| %s | %d | %d | %d | %.0f | %s | %s | %s | %s / %s / %s | %d | %.1f / %.1f / %.1f, %.1f | %s / %s |",
		sc.store, sc.nodes, sc.sessions, len(live), through.rate(), ms(through.pct(0.5)), ms(through.pct(0.99)), ms(through.pct(0.999)),
		add(0.5), add(0.99), add(0.999), through.errs,
		perKiB(conn.HeapInuse, idleCost.HeapInuse), perKiB(conn.HeapAlloc, idleCost.HeapAlloc), perKiB(conn.RSS, idleCost.RSS),
		float64(conn.Goroutines)/float64(max(1, len(live)))-float64(idleCost.Goroutines)/float64(sc.sessions),
		kib(idleCost.HeapInuse, sc.sessions), kib(idleCost.RSS, sc.sessions)), nil
}

// openLoop has each caller call once every len(callers)/rate seconds,
// from a random phase, for dur; a call still running when its next is
// due delays it (the session has one call at a time).
func openLoop(callers []caller, rate float64, dur time.Duration) result {
	every := time.Duration(float64(len(callers)) / rate * float64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	start := time.Now()
	for _, call := range callers {
		wg.Go(func() {
			next := start.Add(time.Duration(mrand.Int64N(int64(every))))
			var lat []time.Duration
			errs := 0
			for {
				t := time.NewTimer(time.Until(next))
				select {
				case <-ctx.Done():
					t.Stop()
					mu.Lock()
					res.lat = append(res.lat, lat...)
					res.errs += errs
					mu.Unlock()
					return
				case <-t.C:
				}
				t0 := time.Now()
				cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
				err := call(cctx)
				ccancel()
				if err != nil {
					errs++
				} else {
					lat = append(lat, time.Since(t0))
				}
				next = next.Add(every)
			}
		})
	}
	wg.Wait()
	res.wall = time.Since(start)
	res.calls = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// mcpSession connects an MCP client to endpoint and returns a caller of
// the echo tool and a function that closes the session.
func mcpSession(endpoint string, hc *http.Client) (caller, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "ward-load", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		return nil, nil, err
	}
	args := map[string]any{"text": "hello"}
	return func(ctx context.Context) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: args})
		if err != nil {
			return err
		}
		if res.IsError {
			return errors.New("tool error")
		}
		return nil
	}, func() { cs.Close() }, nil
}

// parallel runs f(0..n-1) on at most width goroutines and returns the
// first error.
func parallel(n, width int, f func(i int) error) error {
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	return first
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// dropSchema drops the bench's schema.
func dropSchema(dsn, schema string) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return
	}
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`); err != nil {
		fmt.Fprintf(os.Stderr, "load scale: drop schema %s: %v\n", schema, err)
	}
}

// child is a process of this program in one of its roles, which says
// "ready" with a JSON object on a line of its standard output, and ends
// when its standard input closes.
type child struct {
	cmd   *exec.Cmd
	stdin io.Closer
	ready map[string]string
}

func startChild(env []string, role string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{role}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: in}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		c.stop()
		return nil, fmt.Errorf("%s exited before it was ready", role)
	}
	if err := json.Unmarshal(sc.Bytes(), &c.ready); err != nil {
		c.stop()
		return nil, fmt.Errorf("%s said %q", role, sc.Text())
	}
	go io.Copy(io.Discard, out)
	return c, nil
}

func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// untilStdinCloses blocks until the parent closes this process's
// standard input (or dies).
func untilStdinCloses() { io.Copy(io.Discard, os.Stdin) }

// upstreamProcess serves the echo tool over HTTPS with HTTP/2 (the
// node's connections to it multiplex every session's streams, as they
// do to a real upstream behind TLS; over HTTP/1.1 each session's
// standing SSE stream would take a connection of its own, and 10,000 of
// them more file descriptors than a node may open here). It says its URL
// and its certificate, which the nodes trust through SSL_CERT_FILE.
//
// With -stateless it keeps no MCP sessions (the go-sdk's stateless mode):
// it assigns no Mcp-Session-Id and answers a standing GET with 405, so a
// node holds no stream to it per agent session.
func upstreamProcess(args []string) error {
	fs := flag.NewFlagSet("load scale-upstream", flag.ExitOnError)
	stateless := fs.Bool("stateless", false, "keep no MCP sessions")
	fs.Parse(args)
	raiseFiles(1 << 16)
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echo the text.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(bool)}},
		func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
		})
	up := httptest.NewUnstartedServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: *stateless}))
	up.EnableHTTP2 = true
	// Clients racing to dial a new HTTP/2 connection close the extra
	// ones mid-handshake: not worth a line each.
	up.Config.ErrorLog = log.New(io.Discard, "", 0)
	up.StartTLS()
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})
	json.NewEncoder(os.Stdout).Encode(map[string]string{"url": up.URL, "cert": string(cert)})
	untilStdinCloses()
	up.CloseClientConnections()
	up.Close()
	return nil
}

// nodeConfig is what a scale-node process runs.
type nodeConfig struct {
	Data, Upstream string
	DSN, Schema    string
	JoinToken      string
	// Profile samples every 4 KiB allocated for the heap profile (the
	// default, 512 KiB, is too coarse to see per-session state).
	Profile bool
}

// childNode is a node process and a client of its API.
type childNode struct {
	*child
	nodeAPI
	cfg     nodeConfig
	control string
}

func startNode2(cfg nodeConfig, env ...string) (*childNode, error) {
	raw, _ := json.Marshal(cfg)
	c, err := startChild(env, "scale-node", string(raw))
	if err != nil {
		return nil, err
	}
	n := &childNode{child: c, cfg: cfg, nodeAPI: nodeAPI{url: c.ready["url"], admin: c.ready["admin"], pool: x509.NewCertPool()}, control: c.ready["control"]}
	n.pool.AppendCertsFromPEM([]byte(c.ready["bundle"]))
	n.client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool}, MaxIdleConnsPerHost: 32}}
	return n, nil
}

func (n *childNode) mem() (mem, error) {
	resp, err := http.Get("http://" + n.control + "/mem")
	if err != nil {
		return mem{}, err
	}
	defer resp.Body.Close()
	var m mem
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// profile saves what the node's control port answers at path (a heap
// profile, a goroutine dump) into file.
func (n *childNode) profile(path, file string) error {
	resp, err := http.Get("http://" + n.control + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// nodeProcess is `load scale-node CONFIG`: a node as in startNode, in
// this process, with a control port on loopback.
func nodeProcess(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: load scale-node CONFIG-JSON")
	}
	var cfg nodeConfig
	if err := json.Unmarshal([]byte(args[0]), &cfg); err != nil {
		return err
	}
	if cfg.Profile {
		runtime.MemProfileRate = 4096
	}
	if _, err := raiseFiles(1 << 16); err != nil {
		return err
	}
	pol := filepath.Join(cfg.Data, "policies")
	os.MkdirAll(pol, 0o700)
	os.WriteFile(filepath.Join(pol, "all.cedar"), []byte(`@id("load") permit (principal, action == Action::"call_tool", resource);`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := server.Open(ctx, server.Config{Data: filepath.Join(cfg.Data, "data"), Addr: "127.0.0.1:0", TrustDomain: "load.test",
		Policies: []string{pol}, Upstreams: []server.Upstream{{Name: "up", URL: cfg.Upstream + "/"}},
		StoreDSN: cfg.DSN, StoreSchema: cfg.Schema, JoinToken: cfg.JoinToken, DPoPNonce: cfg.DSN != "",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := n.Listen(); err != nil {
		n.Close()
		return err
	}
	done := make(chan struct{})
	go func() { defer close(done); n.Serve(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mem", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		json.NewEncoder(w).Encode(mem{HeapInuse: int64(ms.HeapInuse), HeapAlloc: int64(ms.HeapAlloc), RSS: vmRSS(), Goroutines: runtime.NumGoroutine()})
	})
	mux.HandleFunc("/goroutine", func(w http.ResponseWriter, r *http.Request) {
		pprof.Lookup("goroutine").WriteTo(w, 1)
	})
	mux.HandleFunc("/heap", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		pprof.Lookup("heap").WriteTo(w, 0)
	})
	go http.Serve(ln, mux)
	json.NewEncoder(os.Stdout).Encode(map[string]string{"url": n.URL(), "admin": n.AdminCredential, "control": ln.Addr().String(), "bundle": string(n.CA.BundlePEM())})
	untilStdinCloses()
	cancel()
	n.Close()
	<-done
	return nil
}

// vmRSS is this process's resident set size from /proc/self/status.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(f)
			if len(fields) > 0 {
				kb, _ := strconv.ParseInt(fields[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
