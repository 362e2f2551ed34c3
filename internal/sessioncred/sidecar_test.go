package sessioncred

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/strictjson"
)

// nobody is the second local user the tests connect as.
const nobody = 65534

// clientRequest is a request made by TestHelperAsNobody.
type clientRequest struct {
	Method  string            `json:"method"`  // default POST
	Network string            `json:"network"` // tcp or unix
	Addr    string            `json:"addr"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
}

type clientResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Err    string `json:"err"`
	UID    int    `json:"uid"`
}

// TestHelperAsNobody is no test of its own: asNobody runs the test binary
// again with this one selected; it drops to uid and gid 65534 before it
// opens any socket, makes one request and prints the result.
func TestHelperAsNobody(t *testing.T) {
	spec := os.Getenv("WARD_TEST_AS_NOBODY")
	if spec == "" {
		t.Skip("run by asNobody only")
	}
	var req clientRequest
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) { out.Encode(clientResult{Err: err.Error(), UID: os.Getuid()}); os.Exit(0) }
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fail(err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		fail(err)
	}
	if err := syscall.Setgid(nobody); err != nil {
		fail(err)
	}
	if err := syscall.Setuid(nobody); err != nil {
		fail(err)
	}
	if os.Getuid() != nobody || os.Geteuid() != nobody {
		fail(fmt.Errorf("still uid %d", os.Geteuid()))
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, req.Network, req.Addr)
		}}}
	if req.Method == "" {
		req.Method = "POST"
	}
	r, _ := http.NewRequest(req.Method, req.URL, strings.NewReader(initBody))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range req.Headers {
		r.Header.Set(k, v)
	}
	resp, err := hc.Do(r)
	if err != nil {
		fail(err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	out.Encode(clientResult{Status: resp.StatusCode, Body: string(b), UID: os.Getuid()})
	os.Exit(0)
}

// asNobody makes req from a separate process running as uid 65534.
func asNobody(t *testing.T, req clientRequest) clientResult {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	spec, _ := json.Marshal(req)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAsNobody$")
	cmd.Env = append(os.Environ(), "WARD_TEST_AS_NOBODY="+string(spec))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	var res clientResult
	line, _, _ := bytes.Cut(out, []byte("\n"))
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("client as nobody printed %q", out)
	}
	if res.UID != nobody {
		t.Fatalf("the client ran as uid %d, not %d", res.UID, nobody)
	}
	return res
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// upstream stands in for the node: it records what reached it and answers
// 200. The node itself is exercised through the sidecar in cmd/ward.
type upstream struct {
	mu       sync.Mutex
	requests []*http.Request
	records  []map[string]any
	srv      *httptest.Server
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/records" {
			// The contract of POST /v1/records: {"kind": "note", "content": …}.
			var rec struct {
				Kind    string          `json:"kind"`
				Content json.RawMessage `json:"content"`
			}
			if err := strictjson.Decode(r.Body, 256<<10, &rec); err != nil || rec.Kind != "note" {
				http.Error(w, fmt.Sprintf("bad record: %v %q", err, rec.Kind), http.StatusBadRequest)
				return
			}
			var content map[string]any
			if err := strictjson.Unmarshal(rec.Content, &content); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			u.mu.Lock()
			u.records = append(u.records, content)
			u.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			return
		}
		u.mu.Lock()
		u.requests = append(u.requests, r.Clone(context.Background()))
		u.mu.Unlock()
		io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.requests...)
}

// serve runs a sidecar on ln until the test ends; stop stops it and waits.
func serve(t *testing.T, cfg SidecarConfig, ln net.Listener) (stop func()) {
	t.Helper()
	sc, err := NewSidecar(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// syncBuffer is a log destination safe for the sidecar's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func post(t *testing.T, hc *http.Client, u string, hdr map[string][]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(initBody))
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range hdr {
		if k == "Host" {
			req.Host = vs[0]
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestSidecarServesOnlyItsOwnerTCP: on TCP loopback, a process of another
// user is refused — without the token, and with it (the socket's owner is
// checked) — while the owner with the token is served; every refusal is
// reported, aggregated, and the token appears in no log, record or
// forwarded request.
func TestSidecarServesOnlyItsOwnerTCP(t *testing.T) {
	up := newUpstream(t)
	target, _ := url.Parse(up.srv.URL + "/mcp")
	records, _ := url.Parse(up.srv.URL + "/v1/records")
	token := NewToken()
	var logs syncBuffer
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stop := serve(t, SidecarConfig{Target: target, Transport: http.DefaultTransport, Token: token, Records: records,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), RefusalInterval: time.Hour}, ln)
	endpoint := "http://" + addr + "/mcp"
	refusals := 0

	// Another user: refused whatever it presents, with what to do.
	for _, tc := range []struct {
		name, method string
		url          string
		hdr          map[string]string
	}{
		{"no token", "POST", endpoint, nil},
		{"the token in the header", "POST", endpoint, map[string]string{"Authorization": "Bearer " + token}},
		{"the token in the path", "POST", endpoint + "/" + token, nil},
		{"GET with the token", "GET", endpoint, map[string]string{"Authorization": "Bearer " + token}},
		{"DELETE with the token", "DELETE", endpoint + "/" + token, nil},
	} {
		res := asNobody(t, clientRequest{Method: tc.method, Network: "tcp", Addr: addr, URL: tc.url, Headers: tc.hdr})
		if res.Err != "" || res.Status != http.StatusForbidden || !strings.Contains(res.Body, "comes from uid 65534") || !strings.Contains(res.Body, "ward mcp serve --session") {
			t.Errorf("another user, %s: %+v", tc.name, res)
		}
		refusals++
	}
	if n := len(up.seen()); n != 0 {
		t.Fatalf("another user's requests reached the node: %d", n)
	}

	// The owner: the token is required, once and right, in the header or
	// the path.
	hc := &http.Client{}
	bearer := func(v ...string) map[string][]string {
		h := map[string][]string{}
		for _, x := range v {
			h["Authorization"] = append(h["Authorization"], x)
		}
		return h
	}
	for _, tc := range []struct {
		name string
		url  string
		hdr  map[string][]string
		want int
	}{
		{"no token", endpoint, nil, 401},
		{"wrong token", endpoint, bearer("Bearer " + NewToken()), 401},
		{"token with a character more", endpoint, bearer("Bearer " + token + "x"), 401},
		{"token cut short", endpoint, bearer("Bearer " + token[:len(token)-1]), 401},
		{"basic scheme", endpoint, bearer("Basic " + token), 401},
		{"no scheme", endpoint, bearer(token), 401},
		{"two Authorization headers", endpoint, bearer("Bearer "+token, "Bearer "+token), 401},
		{"token in the query", endpoint + "?token=" + token, nil, 401},
		{"token in a longer path", endpoint + "/" + token + "/x", nil, 401},
		{"right header, wrong path token", endpoint + "/" + NewToken(), bearer("Bearer " + token), 401},
		{"right path token, wrong header", endpoint + "/" + token, bearer("Bearer " + NewToken()), 401},
		{"foreign Host", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Host": {"evil.example:80"}}, 403},
		{"foreign Origin", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://evil.example"}}, 403},
		{"header", endpoint, bearer("Bearer " + token), 200},
		{"header, scheme in lower case", endpoint, bearer("bearer " + token), 200},
		{"path", endpoint + "/" + token, nil, 200},
		{"header and path", endpoint + "/" + token, bearer("Bearer " + token), 200},
		{"own Origin", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://" + addr}, "Referer": {endpoint + "/" + token}}, 200},
		// A browser-based client (the MCP Inspector) is served on its own
		// loopback port; the token decides.
		{"loopback Origin, another port", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://localhost:6274"}}, 200},
		{"IPv6 loopback Origin, another port", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://[::1]:6274"}}, 200},
		{"loopback Origin without a port", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://127.0.0.1"}}, 200},
		{"loopback Origin, another port, no token", endpoint, map[string][]string{"Origin": {"http://localhost:6274"}}, 401},
		{"loopback-looking foreign Origin", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://127.0.0.1.evil.example:6274"}}, 403},
		{"loopback Origin, port 0", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://127.0.0.1:0"}}, 403},
		{"loopback Origin, port out of range", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://127.0.0.1:65536"}}, 403},
		{"loopback Origin, https", endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"https://localhost:6274"}}, 403},
	} {
		status, body, h := post(t, hc, tc.url, tc.hdr)
		if status != tc.want {
			t.Errorf("owner, %s: %d %s, want %d", tc.name, status, body, tc.want)
		}
		if status == 401 && (h.Get("WWW-Authenticate") == "" || !strings.Contains(body, "Authorization: Bearer TOKEN")) {
			t.Errorf("owner, %s: 401 without what to do: %q %q", tc.name, h.Get("WWW-Authenticate"), body)
		}
		if strings.Contains(body, token) {
			t.Errorf("owner, %s: the answer shows the token", tc.name)
		}
		if status != 200 {
			refusals++
		}
	}
	for _, method := range []string{"GET", "DELETE", "OPTIONS", "PUT"} {
		req, _ := http.NewRequest(method, endpoint, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("owner, %s without the token: %d", method, resp.StatusCode)
		}
		refusals++
	}
	// A browser's CORS preflight from a loopback page carries no token and
	// is answered by the sidecar; the page may then read the answer and its
	// session id. A preflight from any other page is refused like any
	// request without the token.
	for _, tc := range []struct {
		origin string
		want   int
	}{{"http://localhost:6274", 204}, {"http://evil.example", 401}, {"http://127.0.0.1:0", 401}} {
		req, _ := http.NewRequest("OPTIONS", endpoint, nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-session-id")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("preflight from %s: %d, want %d", tc.origin, resp.StatusCode, tc.want)
		}
		if tc.want != 204 {
			refusals++
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("preflight from %s allowed", tc.origin)
			}
			continue
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != tc.origin || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Mcp-Session-Id") ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight from %s: %v", tc.origin, resp.Header)
		}
	}
	if status, _, h := post(t, hc, endpoint, map[string][]string{"Authorization": {"Bearer " + token}, "Origin": {"http://localhost:6274"}}); status != 200 ||
		h.Get("Access-Control-Allow-Origin") != "http://localhost:6274" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Errorf("a call from a loopback page: %d %v", status, h)
	}
	seen := up.seen()
	if len(seen) != 9 {
		t.Fatalf("%d requests reached the node, want the owner's 9", len(seen))
	}
	for _, r := range seen {
		if r.URL.Path != "/mcp" || r.URL.RawQuery != "" {
			t.Errorf("forwarded to %s", r.URL)
		}
		for _, h := range []string{"Authorization", "Origin", "Referer", "Cookie"} {
			if v := r.Header.Values(h); len(v) != 0 {
				t.Errorf("forwarded the client's %s: %q", h, v)
			}
		}
	}

	// Reported: the first refusal at once, the rest counted until the
	// sidecar stops.
	stop()
	up.mu.Lock()
	recs := up.records
	up.mu.Unlock()
	if len(recs) < 1 || len(recs) > 2 {
		t.Fatalf("%d reports of refusals, want the first at once and one for the rest", len(recs))
	}
	total, byNobody := 0, 0
	for _, rec := range recs {
		total += int(rec["count"].(float64))
		for _, k := range rec["refused"].([]any) {
			k := k.(map[string]any)
			if k["reason"] == "not the owner" && k["uid"].(float64) == nobody {
				byNobody += int(k["count"].(float64))
			}
		}
	}
	if total != refusals || byNobody != 5 {
		t.Fatalf("reported %d refusals (%d of uid 65534), want %d (5)", total, byNobody, refusals)
	}
	all, _ := json.Marshal(recs)
	if strings.Contains(logs.String(), token) || bytes.Contains(all, []byte(token)) {
		t.Fatal("the token was logged or recorded")
	}
	if !strings.Contains(logs.String(), "not the owner (uid 65534)") {
		t.Fatalf("no log line names the refused user:\n%s", logs.String())
	}
}

// TestSidecarServesOnlyItsOwnerIPv6: the same on [::1], where the client's
// socket is in /proc/net/tcp6.
func TestSidecarServesOnlyItsOwnerIPv6(t *testing.T) {
	ln, err := Listen("[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	up := newUpstream(t)
	target, _ := url.Parse(up.srv.URL + "/mcp")
	token := NewToken()
	serve(t, SidecarConfig{Target: target, Transport: http.DefaultTransport, Token: token}, ln)
	addr := ln.Addr().String()
	endpoint := "http://" + addr + "/mcp"
	hdr := map[string]string{"Authorization": "Bearer " + token}
	if res := asNobody(t, clientRequest{Network: "tcp", Addr: addr, URL: endpoint, Headers: hdr}); res.Status != http.StatusForbidden || !strings.Contains(res.Body, "comes from uid 65534") {
		t.Fatalf("another user with the token: %+v", res)
	}
	if status, body, _ := post(t, http.DefaultClient, endpoint, map[string][]string{"Authorization": {"Bearer " + token}}); status != 200 {
		t.Fatalf("owner: %d %s", status, body)
	}
	if n := len(up.seen()); n != 1 {
		t.Fatalf("%d requests reached the node, want the owner's 1", n)
	}
}

// TestSidecarServesOnlyItsOwnerUnix: another user cannot connect to the
// socket and, should its directory be opened up by mistake, connects and
// is refused by the peer credentials; the owner is served without a token.
func TestSidecarServesOnlyItsOwnerUnix(t *testing.T) {
	up := newUpstream(t)
	target, _ := url.Parse(up.srv.URL + "/mcp")
	// Let other users traverse to the socket's directory, so that only the
	// sidecar's own protections stand in their way.
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(base, "run")
	sock := filepath.Join(dir, "mcp.sock")
	ln, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, sock: 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: %v, want mode %04o", path, st.Mode(), want)
		}
	}
	var logs syncBuffer
	stop := serve(t, SidecarConfig{Target: target, Transport: http.DefaultTransport, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, ln)

	req := clientRequest{Network: "unix", Addr: sock, URL: "http://localhost/mcp"}
	if res := asNobody(t, req); res.Status != 0 || !strings.Contains(res.Err, "permission denied") {
		t.Fatalf("another user reached the socket: %+v", res)
	}

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	if status, body, _ := post(t, hc, "http://localhost/mcp", nil); status != 200 || body != "upstream ok" {
		t.Fatalf("owner over the socket: %d %s", status, body)
	}
	if status, _, _ := post(t, hc, "http://localhost/mcp", map[string][]string{"Origin": {"http://evil.example"}}); status != 403 {
		t.Fatalf("foreign Origin over the socket: %d", status)
	}

	// The directory and socket opened up by mistake: the kernel lets the
	// other user connect, the peer credentials refuse it.
	os.Chmod(dir, 0o755)
	os.Chmod(sock, 0o666)
	res := asNobody(t, req)
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "comes from uid 65534") {
		t.Fatalf("another user on an open socket: %+v", res)
	}
	if n := len(up.seen()); n != 1 {
		t.Fatalf("%d requests reached the node, want the owner's 1", n)
	}
	stop()
	if !strings.Contains(logs.String(), "not the owner (uid 65534)") {
		t.Fatalf("the refusal was not logged:\n%s", logs.String())
	}
}

// TestSidecarNeedsATokenOnTCP: a TCP sidecar without a token does not
// start; a malformed token is refused.
func TestSidecarNeedsATokenOnTCP(t *testing.T) {
	target, _ := url.Parse("https://127.0.0.1:1/mcp")
	sc, err := NewSidecar(SidecarConfig{Target: target, Transport: http.DefaultTransport})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := sc.Serve(context.Background(), ln); err == nil || !strings.Contains(err.Error(), "needs a token") {
		t.Fatalf("TCP without a token: %v", err)
	}
	for _, tok := range []string{"short", strings.Repeat("a", 31), strings.Repeat("a", 257), strings.Repeat("a", 40) + "/", strings.Repeat("a", 40) + " ", strings.Repeat("é", 20)} {
		if _, err := NewSidecar(SidecarConfig{Target: target, Transport: http.DefaultTransport, Token: tok}); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
}

// TestListenRefuses: only loopback or a Unix socket in a private directory
// of the user's own; leftovers are replaced only when they are dead
// sockets.
func TestListenRefuses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:80", "example.com:80", ":0", "unix:", "127.0.0.1"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, mode)
		return d
	}
	open := mk("open", 0o755)
	if _, err := Listen("unix:" + filepath.Join(open, "s")); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("directory 0755: %v", err)
	}
	grp := mk("group", 0o710)
	if _, err := Listen("unix:" + filepath.Join(grp, "s")); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("directory 0710: %v", err)
	}
	priv := mk("private", 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(priv, link)
	if _, err := Listen("unix:" + filepath.Join(link, "s")); err == nil || !strings.Contains(err.Error(), "link") {
		t.Errorf("directory through a link: %v", err)
	}
	if os.Geteuid() == 0 {
		theirs := mk("theirs", 0o700)
		os.Chown(theirs, nobody, nobody)
		if _, err := Listen("unix:" + filepath.Join(theirs, "s")); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("another user's directory: %v", err)
		}
	}
	file := filepath.Join(priv, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := Listen("unix:" + file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Error("the file was touched")
	}
	live := filepath.Join(priv, "live")
	ln, err := Listen("unix:" + live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen("unix:" + live); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Errorf("over a live socket: %v", err)
	}
	stale := filepath.Join(priv, "stale")
	old, err := Listen("unix:" + stale)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	ln2, err := Listen("unix:" + stale)
	if err != nil {
		t.Fatalf("over a dead socket: %v", err)
	}
	ln2.Close()
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	tok, created, err := TokenFile(path)
	if err != nil || !created || !strings.HasPrefix(tok, TokenPrefix) || checkToken(tok) != nil {
		t.Fatalf("first use: %q %v %v", tok, created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", st.Mode())
	}
	again, created, err := TokenFile(path)
	if err != nil || created || again != tok {
		t.Fatalf("second use: %v %v (same token: %v)", created, err, again == tok)
	}
	if NewToken() == tok {
		t.Fatal("tokens repeat")
	}
	os.Chmod(path, 0o640)
	if _, _, err := TokenFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), tok) {
		t.Errorf("readable by the group: %v", err)
	}
	os.Chmod(path, 0o600)
	if os.Geteuid() == 0 {
		os.Chown(path, nobody, nobody)
		if _, _, err := TokenFile(path); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("another user's file: %v", err)
		}
		os.Chown(path, 0, 0)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(path, link)
	if _, _, err := TokenFile(link); err == nil {
		t.Error("a link was followed")
	}
	for _, content := range []string{"", "short\n", "has space" + strings.Repeat("x", 40), strings.Repeat("x", 300)} {
		bad := filepath.Join(dir, "bad")
		os.Remove(bad)
		os.WriteFile(bad, []byte(content), 0o600)
		if _, _, err := TokenFile(bad); err == nil {
			t.Errorf("content %q accepted", content)
		}
	}
	if _, _, err := TokenFile(dir); err == nil {
		t.Error("a directory accepted")
	}
}

// TestSidecarChecks: the bare handler (ward run's) checks Host and Origin
// and passes neither the client's credentials nor its Origin on.
func TestSidecarChecks(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization")+"|"+r.Header.Get("Cookie")+"|"+r.Header.Get("Origin")+"|"+r.Header.Get("Referer"))
		mu.Unlock()
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL + "/mcp")
	h := Sidecar(target, http.DefaultTransport, 7777)
	for _, tc := range []struct {
		host, origin, path string
		want               int
	}{
		{"127.0.0.1:7777", "", "/mcp", 200},
		{"localhost:7777", "http://localhost:7777", "/mcp", 200},
		{"127.0.0.1:7777", "http://127.0.0.1:7777", "/mcp", 200},
		{"127.0.0.1:7777", "HTTP://LOCALHOST:7777", "/mcp", 200},
		{"[::1]:7777", "", "/mcp", 200},
		{"attacker.example:7777", "", "/mcp", 403},
		{"127.0.0.1:7777", "http://attacker.example", "/mcp", 403},
		{"127.0.0.1:7777", "null", "/mcp", 403},
		{"127.0.0.1:7777", "http://127.0.0.1:8888", "/mcp", 403},
		{"127.0.0.1:7777", "https://127.0.0.1:7777", "/mcp", 403},
		{"127.0.0.1:7777", "http://127.0.0.1:7777/", "/mcp", 403},
		{"127.0.0.1:7777", "http://x@127.0.0.1:7777", "/mcp", 403},
		{"127.0.0.1:7777", "http://127.0.0.1:7777?", "/mcp", 403},
		{"127.0.0.1:8888", "", "/mcp", 403},
		{"127.0.0.1:7777.", "", "/mcp", 403},
		{"127.0.0.1:7777", "", "/other", 404},
		{"127.0.0.1:7777", "", "/mcp/x", 404},
	} {
		r := httptest.NewRequest("POST", "http://127.0.0.1:7777"+tc.path, strings.NewReader("{}"))
		r.Host = tc.host
		r.Header.Set("Authorization", "Bearer client-supplied")
		r.Header.Set("Cookie", "c=1")
		r.Header.Set("Referer", "http://127.0.0.1:7777/page")
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("host %s origin %q path %s: %d, want %d", tc.host, tc.origin, tc.path, w.Code, tc.want)
		}
	}
	// Two Origins: the one checked might not be the one a reader uses.
	r := httptest.NewRequest("POST", "http://127.0.0.1:7777/mcp", strings.NewReader("{}"))
	r.Header.Add("Origin", "http://127.0.0.1:7777")
	r.Header.Add("Origin", "http://attacker.example")
	w := httptest.NewRecorder()
	if h.ServeHTTP(w, r); w.Code != 403 {
		t.Errorf("two Origins: %d", w.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 {
		t.Fatalf("%d requests forwarded, want 5", len(got))
	}
	for _, g := range got {
		if g != "|||" {
			t.Fatalf("client headers forwarded upstream: %q", g)
		}
	}
}
