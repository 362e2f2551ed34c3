package egress

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestForward: an allowed absolute-form request reaches the upstream without
// proxy or hop-by-hop headers, the answer streams back, and the request is
// recorded with its byte counts.
func TestForward(t *testing.T) {
	type seen struct {
		method, uri, body string
		header            http.Header
	}
	got := make(chan seen, 1)
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, string(b), r.Header.Clone()}
		io.WriteString(w, "hello from upstream")
	})
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"get", http.MethodGet, "/v1/items?q=1", ""},
		{"post", http.MethodPost, "/v1/items", `{"name":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Config{})
			client, _ := h.client(t, nil)
			req, _ := http.NewRequest(tc.method, up.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "must not pass")
			req.Header.Set("Proxy-Extra", "must not pass")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "hello from upstream" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			s := <-got
			if s.method != tc.method || s.uri != tc.path || s.body != tc.body {
				t.Errorf("upstream saw %s %s %q, want %s %s %q", s.method, s.uri, s.body, tc.method, tc.path, tc.body)
			}
			for _, k := range []string{"Proxy-Authorization", "Proxy-Extra", "X-Hop", "Proxy-Connection"} {
				if v := s.header.Get(k); v != "" {
					t.Errorf("upstream saw %s: %q", k, v)
				}
			}
			es := h.recorder.waitDone(1)
			if len(es) != 2 {
				t.Fatalf("records: %v", es)
			}
			port, _ := strconv.Atoi(up.port())
			wantPath, _, _ := strings.Cut(tc.path, "?")
			want := Request{Method: tc.method, Scheme: "http", Host: "127.0.0.1", Port: port, Path: wantPath, Source: "127.0.0.1"}
			d := es[1]
			if *d.req != want || d.id.Session != testSession {
				t.Errorf("recorded %+v by %+v, want %+v", *d.req, d.id, want)
			}
			if d.rec.Status != 200 || d.rec.BytesDown != int64(len(body)) || d.rec.BytesUp != int64(len(tc.body)) || d.rec.Error != "" {
				t.Errorf("done record %+v, want status 200, %d bytes down, %d up", d.rec, len(body), len(tc.body))
			}
			assertNoSecret(t, es, testToken)
		})
	}
}

// TestDenied: a denied request gets 403 with the Decider's reason, and the
// upstream never sees a connection.
func TestDenied(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			up := newUpstream(t, useTLS, func(w http.ResponseWriter, r *http.Request) {})
			h := start(t, Config{Decider: &fakeDecider{t: t, allow: func(r *Request) (bool, string) {
				return false, "host not in the session allowlist"
			}}})
			client, _ := h.client(t, up.roots())
			resp, err := client.Get(up.URL + "/")
			if useTLS {
				// The Go client reports a refused CONNECT as an error with
				// the status text; check the body with a raw CONNECT too.
				if err == nil {
					t.Fatalf("CONNECT refused, want error, got %d", resp.StatusCode)
				}
				_, _, resp = h.raw(t, "CONNECT", "CONNECT "+up.Listener.Addr().String()+" HTTP/1.1\r\n"+authHeader+"\r\n")
			} else if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "host not in the session allowlist") {
				t.Errorf("got %d %q", resp.StatusCode, body)
			}
			if n := up.conns.Load(); n != 0 {
				t.Errorf("upstream saw %d connections", n)
			}
			for _, e := range h.recorder.waitDone(1) {
				if e.rec.Decision != DecisionDeny || !strings.Contains(e.rec.Reason, "allowlist") || e.rec.Status != 403 {
					t.Errorf("record %v", e)
				}
			}
		})
	}
}

// TestConnect: a CONNECT to an allowed TLS server carries the client's own
// end-to-end TLS, and the tunnel is recorded with its bytes.
func TestConnect(t *testing.T) {
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over tls "+r.URL.Path)
	})
	h := start(t, Config{})
	client, tr := h.client(t, up.roots())
	resp, err := client.Get(up.URL + "/secure")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "over tls /secure" || resp.TLS == nil || resp.TLS.PeerCertificates[0].Equal(up.Certificate()) == false {
		t.Fatalf("got %q, TLS %v", body, resp.TLS != nil)
	}
	tr.CloseIdleConnections()
	es := h.recorder.waitDone(1)
	d := done(es)[0]
	if !d.req.Tunnel || d.req.Method != http.MethodConnect || d.rec.Status != 200 || d.rec.BytesUp == 0 || d.rec.BytesDown == 0 {
		t.Errorf("tunnel record %v", d)
	}
	if got := h.decider.requests(); len(got) != 1 || !got[0].Tunnel {
		t.Errorf("decided %+v, want one tunnel", got)
	}
}

// TestBrokering: for a host with a credential the proxy terminates TLS with
// a certificate from its CA, decides each inner request, injects the secret
// in place of the agent's Authorization, and the secret reaches neither the
// agent nor any record.
func TestBrokering(t *testing.T) {
	const secret = "Bearer sk-live-SECRET-0123456789abcdef"
	const token = "sk-live-SECRET-0123456789abcdef"
	gotAuth := make(chan string, 10)
	up := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		gotAuth <- auth + "|" + r.Header.Get("Proxy-Authorization")
		switch r.URL.Path {
		case "/echo": // an upstream that reflects the credential everywhere
			w.Header().Set("Trailer", "X-Trail")
			w.Header().Set("X-Echo", auth)
			io.WriteString(w, "you sent "+auth+"; token "+token)
			w.Header().Set("X-Trail", token)
		case "/gzip":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				t.Errorf("upstream asked with Accept-Encoding %q", r.Header.Get("Accept-Encoding"))
			}
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, "compressed "+auth)
			zw.Close()
		case "/br":
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, "opaque")
		}
	})
	ca, caKey := newCA(t)
	h := start(t, Config{
		Credentials:   []Credential{{Host: "127.0.0.1", Header: "Authorization", Value: secret}},
		CA:            ca,
		CAKey:         caKey,
		UpstreamRoots: up.roots(),
		Decider: &fakeDecider{t: t, allow: func(r *Request) (bool, string) {
			return r.Path != "/forbidden", "path rule"
		}},
	})
	agentRoots := x509.NewCertPool()
	agentRoots.AddCert(ca)
	client, tr := h.client(t, agentRoots)

	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", up.URL+path, nil)
		req.Header.Set("Authorization", "Bearer agent-made-this-up")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	noSecret := func(what, s string) {
		t.Helper()
		if strings.Contains(s, token) {
			t.Errorf("%s leaks the secret: %q", what, s)
		}
	}

	resp, body := get("/echo")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "you sent ") || len(body) != len("you sent "+secret+"; token "+token) {
		t.Fatalf("echo: %d %q", resp.StatusCode, body)
	}
	if err := resp.TLS.PeerCertificates[0].CheckSignatureFrom(ca); err != nil {
		t.Errorf("agent did not see a certificate from the proxy's CA")
	}
	noSecret("body", body)
	noSecret("header", resp.Header.Get("X-Echo"))
	noSecret("trailer", resp.Trailer.Get("X-Trail"))
	if resp.Trailer.Get("X-Trail") == "" {
		t.Errorf("trailer lost: header %v trailer %v cl %d te %v", resp.Header, resp.Trailer, resp.ContentLength, resp.TransferEncoding)
	}
	if got := <-gotAuth; got != secret+"|" {
		t.Errorf("upstream got Authorization|Proxy-Authorization %q, want the injected secret only", got)
	}

	resp, body = get("/gzip", "Accept-Encoding", "gzip")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "compressed ") {
		t.Errorf("gzip: %d %q", resp.StatusCode, body)
	}
	noSecret("decoded body", body)
	<-gotAuth

	resp, body = get("/br")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "content encoding") {
		t.Errorf("br: %d %q, want 502", resp.StatusCode, body)
	}
	<-gotAuth

	resp, body = get("/forbidden")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "path rule") {
		t.Errorf("forbidden: %d %q", resp.StatusCode, body)
	}

	req, _ := http.NewRequest("GET", up.URL+"/echo", nil)
	req.Host = "elsewhere.example"
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host mismatch inside the tunnel: %v %v, want 421", resp, err)
	} else {
		resp.Body.Close()
	}

	tr.CloseIdleConnections()
	es := h.recorder.waitDone(6) // 5 inner requests and the tunnel
	assertNoSecret(t, es, token, testToken)
	var inner []string
	for _, e := range done(es) {
		if !e.req.Tunnel {
			inner = append(inner, fmt.Sprintf("%s %s %s %d", e.req.Scheme, e.req.Method, e.req.Path, e.rec.Status))
		}
	}
	want := []string{"https GET /echo 200", "https GET /gzip 200", "https GET /br 502", "https GET /forbidden 403", "https GET /echo 421"}
	if strings.Join(inner, ",") != strings.Join(want, ",") {
		t.Errorf("inner records %q, want %q", inner, want)
	}
	if len(gotAuth) != 0 {
		t.Errorf("upstream saw a denied or misdirected request")
	}
}

// TestBrokeringPlainHTTP: a plain-HTTP request to a host with a credential
// gets the header, in place of the agent's header of that name and its
// Authorization.
func TestBrokeringPlainHTTP(t *testing.T) {
	const secret = "key-PLAIN-secret-42"
	got := make(chan http.Header, 1)
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("X-Seen", r.Header.Get("X-Api-Key"))
		io.WriteString(w, "ok")
	})
	ca, caKey := newCA(t)
	h := start(t, Config{
		Credentials: []Credential{{Host: "127.0.0.1:" + up.port(), Header: "x-api-key", Value: secret}},
		CA:          ca, CAKey: caKey,
	})
	client, _ := h.client(t, nil)
	req, _ := http.NewRequest("GET", up.URL+"/", nil)
	req.Header.Set("X-Api-Key", "agent-key")
	req.Header.Set("Authorization", "Basic YWdlbnQ6cHc=")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hdr := <-got
	if hdr.Get("X-Api-Key") != secret || len(hdr.Values("X-Api-Key")) != 1 || hdr.Get("Authorization") != "" {
		t.Errorf("upstream saw X-Api-Key %q Authorization %q", hdr.Values("X-Api-Key"), hdr.Get("Authorization"))
	}
	if v := resp.Header.Get("X-Seen"); v != strings.Repeat("*", len(secret)) {
		t.Errorf("reflected header %q, want it masked", v)
	}
	assertNoSecret(t, h.recorder.waitDone(1), secret)
}

// TestAllowAddr: with the default AllowAddr, names and literals that
// resolve to loopback are refused before any connection, with a clear
// message.
func TestAllowAddr(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {})
	h := start(t, Config{AllowAddr: PublicAddr})
	for _, tc := range []struct{ name, method, head string }{
		{"name", "GET", "GET http://localhost:" + up.port() + "/ HTTP/1.1\r\nHost: localhost\r\n"},
		{"literal", "GET", "GET http://127.0.0.1:" + up.port() + "/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"},
		{"mapped", "GET", "GET http://[::ffff:127.0.0.1]:" + up.port() + "/ HTTP/1.1\r\nHost: x\r\n"},
		{"connect", "CONNECT", "CONNECT localhost:" + up.port() + " HTTP/1.1\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, resp := h.raw(t, tc.method, tc.head+authHeader+"\r\n")
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "resolves to no address ward may connect to") {
				t.Errorf("got %d %q", resp.StatusCode, body)
			}
		})
	}
	if n := up.conns.Load(); n != 0 {
		t.Errorf("upstream saw %d connections", n)
	}
	for _, e := range h.recorder.waitDone(4) {
		if e.rec.Decision != DecisionDeny || e.rec.Status != 403 {
			t.Errorf("record %v", e)
		}
	}
}

// TestProxyAuth: without valid credentials the answer is 407 with a
// challenge; the attempt is recorded without the password.
func TestProxyAuth(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {})
	h := start(t, Config{})
	target := "GET " + up.URL + "/ HTTP/1.1\r\nHost: x\r\n"
	basic := func(s string) string {
		return "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(s)) + "\r\n"
	}
	cases := []struct{ name, header string }{
		{"none", ""},
		{"wrong token", basic(testSession + ":wrong-password-777")},
		{"unknown session", basic("s2:" + testToken)},
		{"empty password", basic(testSession + ":")},
		{"bearer", "Proxy-Authorization: Bearer " + testToken + "\r\n"},
		{"bad base64", "Proxy-Authorization: Basic !!!\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, resp := h.raw(t, "GET", target+tc.header+"\r\n")
			if resp.StatusCode != http.StatusProxyAuthRequired || !strings.HasPrefix(resp.Header.Get("Proxy-Authenticate"), "Basic ") {
				t.Errorf("got %d, Proxy-Authenticate %q", resp.StatusCode, resp.Header.Get("Proxy-Authenticate"))
			}
		})
	}
	es := h.recorder.waitDone(len(cases))
	for _, e := range es {
		if e.id != nil || e.rec.Decision != DecisionDeny || e.rec.Status != 407 {
			t.Errorf("record %v", e)
		}
	}
	assertNoSecret(t, es, "wrong-password-777", testToken)
	if n := up.conns.Load(); n != 0 || len(h.decider.requests()) != 0 {
		t.Errorf("unauthenticated requests reached the upstream (%d) or the Decider (%d)", n, len(h.decider.requests()))
	}
}

// TestBadInput: malformed targets, oversized headers and requests that are
// not proxy requests get a clear 4xx, and the proxy keeps serving.
func TestBadInput(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fine") })
	h := start(t, Config{MaxHeaderBytes: 1 << 10})
	port := up.port()
	for _, tc := range []struct {
		name, method, head string
		status             int
		msg                string
	}{
		{"connect without port", "CONNECT", "CONNECT example.com HTTP/1.1\r\n" + authHeader, 400, "missing port"},
		{"connect open bracket", "CONNECT", "CONNECT [::1 HTTP/1.1\r\n" + authHeader, 400, ""},
		{"connect port zero", "CONNECT", "CONNECT example.com:0 HTTP/1.1\r\n" + authHeader, 400, "out of range"},
		{"connect absurd port", "CONNECT", "CONNECT example.com:99999 HTTP/1.1\r\n" + authHeader, 400, "out of range"},
		{"connect signed port", "CONNECT", "CONNECT example.com:+443 HTTP/1.1\r\n" + authHeader, 400, ""},
		{"connect zone", "CONNECT", "CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n" + authHeader, 400, ""},
		{"connect numeric name", "CONNECT", "CONNECT 2130706433:443 HTTP/1.1\r\n" + authHeader, 400, "numeric"},
		{"userinfo", "GET", "GET http://user:pw@127.0.0.1:" + port + "/ HTTP/1.1\r\nHost: x\r\n" + authHeader, 400, "userinfo"},
		{"origin form", "GET", "GET / HTTP/1.1\r\nHost: x\r\n" + authHeader, 400, "not a proxy request"},
		{"ftp", "GET", "GET ftp://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n" + authHeader, 400, "not http or https"},
		{"url port", "GET", "GET http://127.0.0.1:70000/ HTTP/1.1\r\nHost: x\r\n" + authHeader, 400, "out of range"},
		{"huge header", "GET", "GET " + up.URL + "/ HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n" + authHeader, 431, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, resp := h.raw(t, tc.method, tc.head+"\r\n")
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.msg) {
				t.Errorf("got %d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.msg)
			}
		})
	}
	if n := up.conns.Load(); n != 0 {
		t.Errorf("upstream saw %d connections", n)
	}
	client, _ := h.client(t, nil)
	resp, err := client.Get(up.URL + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("proxy stopped serving: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestTunnelLimit: a session's tunnels beyond MaxTunnelsPerSession get 429
// until one closes.
func TestTunnelLimit(t *testing.T) {
	echo := echoListener(t)
	h := start(t, Config{MaxTunnelsPerSession: 1})
	connect := "CONNECT " + echo + " HTTP/1.1\r\n" + authHeader + "\r\n"
	first, br, resp := h.raw(t, "CONNECT", connect)
	if resp.StatusCode != 200 {
		t.Fatalf("first tunnel: %d", resp.StatusCode)
	}
	ping(t, first, br)
	_, _, resp = h.raw(t, "CONNECT", connect)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "too many open tunnels") {
		t.Errorf("second tunnel: %d %q, want 429", resp.StatusCode, body)
	}
	first.Close()
	h.recorder.waitDone(2) // the refusal and the first tunnel
	third, br, resp := h.raw(t, "CONNECT", connect)
	if resp.StatusCode != 200 {
		t.Fatalf("tunnel after the first closed: %d", resp.StatusCode)
	}
	ping(t, third, br)
}

// ping checks that a tunnel to an echo server carries bytes both ways.
func ping(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
}

// TestCloseSession: ending a session ends its tunnels at once.
func TestCloseSession(t *testing.T) {
	echo := echoListener(t)
	h := start(t, Config{})
	c, br, resp := h.raw(t, "CONNECT", "CONNECT "+echo+" HTTP/1.1\r\n"+authHeader+"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("tunnel: %d", resp.StatusCode)
	}
	ping(t, c, br)
	if n := h.p.CloseSession("other"); n != 0 {
		t.Errorf("CloseSession(other) ended %d", n)
	}
	if n := h.p.CloseSession(testSession); n != 1 {
		t.Errorf("CloseSession ended %d, want 1", n)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("tunnel still open")
	}
	d := done(h.recorder.waitDone(1))[0]
	if d.rec.Error != "tunnel ended by ward" || d.rec.BytesUp != 5 || d.rec.BytesDown != 5 {
		t.Errorf("record %v", d)
	}
}

// TestTunnelIdle: a tunnel with no traffic either way is closed.
func TestTunnelIdle(t *testing.T) {
	echo := echoListener(t)
	h := start(t, Config{IdleTimeout: 20 * time.Millisecond})
	c, br, resp := h.raw(t, "CONNECT", "CONNECT "+echo+" HTTP/1.1\r\n"+authHeader+"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("tunnel: %d", resp.StatusCode)
	}
	ping(t, c, br)
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("read from an idle tunnel succeeded")
	}
	if d := done(h.recorder.waitDone(1))[0]; !strings.Contains(d.rec.Error, "idle") {
		t.Errorf("record %v", d)
	}
}

// TestFailClosed: when the Decider or the Recorder fails, nothing reaches
// the upstream; when the final record fails, the response is cut off.
func TestFailClosed(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part one ")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "part two")
	})
	errStore := errors.New("store unavailable")
	for _, tc := range []struct {
		name    string
		decider error
		fail    string // phase whose record fails
		status  int
		msg     string
	}{
		{"decider", errStore, "", 502, "policy decision failed"},
		{"forward record", nil, PhaseForward, 502, "cannot record the request"},
		{"done record", nil, PhaseDone, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			rec.fail = func(r Record) error {
				if r.Phase == tc.fail {
					return errStore
				}
				return nil
			}
			h := start(t, Config{Decider: &fakeDecider{t: t, err: tc.decider}, Recorder: rec})
			before := up.conns.Load()
			client, _ := h.client(t, nil)
			resp, err := client.Get(up.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.msg) {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.msg)
			}
			if tc.fail == PhaseDone {
				if err == nil {
					t.Errorf("response completed although its record failed")
				}
			} else if n := up.conns.Load() - before; n != 0 {
				t.Errorf("upstream saw %d connections", n)
			}
		})
	}
}

// TestCurl drives the proxy with real curl: plain HTTP, a CONNECT tunnel
// and a brokered HTTPS request.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	plain := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain "+r.URL.Path) })
	secure := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure "+r.URL.Path+" "+strconv.Itoa(len(r.Header.Get("X-Api-Key"))))
	})
	brokered := newUpstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "brokered "+r.Header.Get("X-Api-Key"))
	})
	ca, caKey := newCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(brokered.Certificate())
	h := start(t, Config{
		Credentials:   []Credential{{Host: "127.0.0.1:" + brokered.port(), Header: "X-Api-Key", Value: "curl-secret-value"}},
		CA:            ca,
		CAKey:         caKey,
		UpstreamRoots: roots,
	})
	dir := t.TempDir()
	writePEM := func(name string, c *x509.Certificate) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, url, cacert, want string
	}{
		{"http", plain.URL + "/a", "", "plain /a"},
		{"connect", secure.URL + "/b", writePEM("secure.pem", secure.Certificate()), "secure /b 0"},
		{"brokered", brokered.URL + "/c", writePEM("ca.pem", ca), "brokered " + strings.Repeat("*", len("curl-secret-value"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-q", "-sS", "--fail", "-x", h.url.String(), tc.url}
			if tc.cacert != "" {
				args = append(args, "--cacert", tc.cacert)
			}
			cmd := exec.CommandContext(context.Background(), curl, args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			out, err := cmd.CombinedOutput()
			if err != nil || string(out) != tc.want {
				t.Errorf("curl: %q %v, want %q", out, err, tc.want)
			}
		})
	}
	assertNoSecret(t, h.recorder.waitDone(4), "curl-secret-value", testToken)
}

// TestTunnelHalfIdle: a tunnel busy in one direction stays open however
// long the other direction is silent.
func TestTunnelHalfIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const ticks = 8
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for range ticks { // 8 × 60ms: well past the idle timeout in all
			time.Sleep(60 * time.Millisecond)
			io.WriteString(c, "tick\n")
		}
	}()
	h := start(t, Config{IdleTimeout: 300 * time.Millisecond})
	c, br, resp := h.raw(t, "CONNECT", "CONNECT "+ln.Addr().String()+" HTTP/1.1\r\n"+authHeader+"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("tunnel: %d", resp.StatusCode)
	}
	got, _ := io.ReadAll(br) // until the upstream's close reaches us
	c.Close()
	if string(got) != strings.Repeat("tick\n", ticks) {
		t.Errorf("got %q before the tunnel closed", got)
	}
	if d := done(h.recorder.waitDone(1))[0]; d.rec.Error != "" || d.rec.BytesDown != 5*ticks {
		t.Errorf("record %v", d)
	}
}

// TestResolveName: the proxy resolves an allowed name itself and dials the
// checked addresses in turn ("localhost" may list ::1, where nothing
// listens, before 127.0.0.1).
func TestResolveName(t *testing.T) {
	up := newUpstream(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "by name") })
	h := start(t, Config{})
	client, _ := h.client(t, nil)
	resp, err := client.Get("http://LocalHost.:" + up.port() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "by name" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := h.decider.requests(); len(got) != 1 || got[0].Host != "localhost" {
		t.Errorf("decided %+v, want host localhost", got)
	}
}
