package server_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// pgProxy forwards TCP connections to PostgreSQL until cut: then it
// closes every connection and refuses new ones, as a network partition
// between a node and its database does, until restored. Hung instead,
// it moves no byte and closes nothing (a partition where packets are
// dropped: queries hang rather than fail), until restored.
type pgProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	hung   chan struct{} // closed when a hang ends; nil while not hung
	conns  map[net.Conn]bool
}

// setHung hangs the proxy, or lets what it held move on.
func (p *pgProxy) setHung(hung bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case hung && p.hung == nil:
		p.hung = make(chan struct{})
	case !hung && p.hung != nil:
		close(p.hung)
		p.hung = nil
	}
}

// gate waits while the proxy is hung.
func (p *pgProxy) gate() {
	p.mu.Lock()
	h := p.hung
	p.mu.Unlock()
	if h != nil {
		<-h
	}
}

// pipe copies src to dst, holding each chunk while the proxy is hung.
func (p *pgProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func newPGProxy(t *testing.T, target string) *pgProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setHung(false); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.gate()
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}()
	return p
}

func (p *pgProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// via returns dsn with its host and port replaced by the proxy's.
func (p *pgProxy) via(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// waitApplied waits until n has applied the store's change feed up to
// the version at the time of the call (read through st).
func waitApplied(t *testing.T, st *store.Store, n *testNode) {
	t.Helper()
	v, err := st.ChangeVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.FeedApplied() < v {
		if time.Now().After(deadline) {
			t.Fatalf("node %s applied the change feed up to %d of %d", n.NodeID(), n.FeedApplied(), v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// whoami asks node n who the session of hc is: the status and body.
func whoami(t *testing.T, n *testNode, hc *http.Client) (int, string) {
	t.Helper()
	resp, err := hc.Get(n.url + "/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClusterRevocation: a session ended on node A, and the sessions of
// an agent quarantined on A, are refused on node B once B has applied
// the change feed — though B served them a moment before and has them
// cached.
func TestClusterRevocation(t *testing.T) {
	a, b := twoNodes(t, server.Config{})
	st := a.Store
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	ended, endedView := a.startSession("scribe", "one", nil, "")
	quarantined, _ := a.startSession("scribe", "two", nil, "")
	for _, c := range []*http.Client{ended.HTTPClient(false), quarantined.HTTPClient(false)} {
		if status, body := whoami(t, b, c); status != http.StatusOK {
			t.Fatalf("B before: %d %s", status, body)
		}
	}
	a.must("POST", "/v1/sessions/"+endedView.Session+"/end", map[string]string{"reason": "done"}, nil)
	waitApplied(t, st, b)
	if status, body := whoami(t, b, ended.HTTPClient(false)); status != http.StatusUnauthorized || !strings.Contains(body, "ended") {
		t.Fatalf("B after the end on A: %d %s", status, body)
	}
	// What a call that looked the session up before the end asks again
	// before it is allowed (enforce.Config.Current): ended, itself or as
	// the session it was delegated from.
	if err := b.Auth.Current(endedView.Session, nil); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Fatalf("B's Current of the ended session: %v", err)
	}
	if err := b.Auth.Current("child-of-ended", []string{endedView.Session}); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Fatalf("B's Current of a session delegated from the ended one: %v", err)
	}
	if status, _ := whoami(t, b, quarantined.HTTPClient(false)); status != http.StatusOK {
		t.Fatal("ending one session refused another")
	}
	a.must("POST", "/v1/agents/scribe/quarantine", map[string]string{}, nil)
	waitApplied(t, st, b)
	if status, body := whoami(t, b, quarantined.HTTPClient(false)); status != http.StatusUnauthorized {
		t.Fatalf("B after the quarantine on A: %d %s", status, body)
	}
}

// TestClusterFailsClosed: a node cut off from the database refuses
// calls that depend on revocation state with 503 and says why, and
// serves again once it reaches the database.
func TestClusterFailsClosed(t *testing.T) {
	dsn, schema := testPostgres(t)
	u, _ := url.Parse(dsn)
	proxy := newPGProxy(t, u.Host)
	cfg := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Data: t.TempDir()}
	a := startNode(t, cfg)
	tok, _ := os.ReadFile(filepath.Join(cfg.Data, "keys", "join.token"))
	cb := server.Config{Upstreams: demoOnly, StoreDSN: proxy.via(t, dsn), StoreSchema: schema, Data: t.TempDir(), JoinToken: string(tok)}
	b := startNode(t, cb)
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := a.startSession("scribe", "one", nil, "")
	hc := creds.HTTPClient(false)
	if status, body := whoami(t, b, hc); status != http.StatusOK {
		t.Fatalf("B before the cut: %d %s", status, body)
	}
	proxy.setCut(true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := whoami(t, b, hc)
		if status == http.StatusServiceUnavailable {
			if !strings.Contains(body, "cannot confirm that it knows the revocations") {
				t.Fatalf("503 without the reason: %s", body)
			}
			if err := b.Auth.Current(creds.Info.Session, nil); !errors.Is(err, authority.ErrUnavailable) {
				t.Fatalf("B's Current while cut off: %v", err)
			}
			resp, err := b.tlsClient().Get(b.url + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("B's readiness while cut off: %s", resp.Status)
			}
			// An MCP session is refused the same way: 503, a reason,
			// Retry-After (not 403, which tells a client it may not).
			init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
			req, _ := http.NewRequest("POST", b.url+"/mcp", strings.NewReader(init))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err = hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			mb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(mb), "cannot confirm that it knows the revocations") {
				t.Fatalf("an MCP session opened on B while cut off: %s %v %s", resp.Status, resp.Header, mb)
			}
			break
		}
		if status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("B cut off from the database answers %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	proxy.setCut(false)
	deadline = time.Now().Add(30 * time.Second)
	for {
		status, body := whoami(t, b, hc)
		current := b.Auth.Current(creds.Info.Session, nil)
		if status == http.StatusOK && current == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B did not recover: %d %s; Current: %v", status, body, current)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readyz asks n's /readyz: the status and the body.
func readyz(t *testing.T, n *testNode) (int, string) {
	t.Helper()
	resp, err := n.tlsClient().Get(n.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClusterReadyAgreesWithRefusals: a node whose database connection
// hangs (a partition that drops packets: nothing fails, queries wait) is
// unready as soon as it refuses calls, for that reason alone: readiness
// is the check the calls are refused by, and does no read of its own that
// would hang until the readiness deadline (and then report a second,
// late reason). Once the partition heals, it is ready again.
func TestClusterReadyAgreesWithRefusals(t *testing.T) {
	dsn, schema := testPostgres(t)
	u, _ := url.Parse(dsn)
	proxy := newPGProxy(t, u.Host)
	cfg := server.Config{Upstreams: demoOnly, StoreDSN: dsn, StoreSchema: schema, Data: t.TempDir()}
	a := startNode(t, cfg)
	tok, _ := os.ReadFile(filepath.Join(cfg.Data, "keys", "join.token"))
	b := startNode(t, server.Config{Upstreams: demoOnly, StoreDSN: proxy.via(t, dsn), StoreSchema: schema, Data: t.TempDir(), JoinToken: string(tok)})
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := a.startSession("scribe", "one", nil, "")
	if status, body := whoami(t, b, creds.HTTPClient(false)); status != http.StatusOK {
		t.Fatalf("B before the partition: %d %s", status, body)
	}
	if status, body := readyz(t, b); status != http.StatusOK {
		t.Fatalf("B's readiness before the partition: %d %s", status, body)
	}
	proxy.setHung(true)
	deadline := time.Now().Add(30 * time.Second)
	for !errors.Is(b.Auth.Current(creds.Info.Session, nil), authority.ErrUnavailable) {
		if time.Now().After(deadline) {
			t.Fatal("B with its database partitioned away still serves after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	status, body := readyz(t, b)
	var got struct {
		Status, Error string
		Checks        []struct {
			Name string
			OK   bool
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%d %s: %v", status, body, err)
	}
	if status != http.StatusServiceUnavailable || got.Error != "not ready: the node cannot confirm it knows the other nodes' revocations" {
		t.Fatalf("B's readiness while it refuses calls: %d %s", status, body)
	}
	for _, c := range got.Checks {
		if c.OK != (c.Name != "store") {
			t.Fatalf("B's readiness checks while it refuses calls: %s", body)
		}
	}
	proxy.setHung(false)
	deadline = time.Now().Add(30 * time.Second)
	for {
		status, body := readyz(t, b)
		if status == http.StatusOK && b.Auth.Current(creds.Info.Session, nil) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B did not recover: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
