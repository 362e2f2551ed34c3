package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
)

// The tests of this package run a real node (server.Open: CA, SQLite,
// audit log, authority, gateway) and send requests to its API handler,
// n.API.Handler(), the handler the node serves over TLS, in process.
// httptest requests have Host example.com and no TLS, so DPoP proofs name
// http://example.com/PATH.

const host = "http://example.com"

// logBuffer keeps what the node logged, to check for panics and secrets.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type node struct {
	t     testing.TB
	n     *server.Node
	h     http.Handler
	admin string
	data  string
	log   *logBuffer
	src   atomic.Int64 // the next source address
}

func newNode(t testing.TB, upstreams ...server.Upstream) *node {
	t.Helper()
	return newNodeWith(t, func(c *server.Config) { c.Upstreams = upstreams })
}

// newNodeWith is newNode with the configuration changed by edit.
func newNodeWith(t testing.TB, edit func(*server.Config)) *node {
	t.Helper()
	data := t.TempDir()
	lb := &logBuffer{}
	cfg := server.Config{Data: data, TrustDomain: "test.ward", Addr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	edit(&cfg)
	n, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return &node{t: t, n: n, h: n.API.Handler(), admin: n.AdminCredential, data: data, log: lb}
}

// source returns a fresh remote address: each request from its own
// source is recorded one by one (the per-source budget of a window is
// never reached).
func (n *node) source() string {
	return fmt.Sprintf("198.51.%d.%d:40000", 100+n.src.Load()/250, 1+n.src.Add(1)%250)
}

// serve sends req from a fresh source and returns the answer.
func (n *node) serve(req *http.Request) *httptest.ResponseRecorder {
	n.t.Helper()
	if req.RemoteAddr == "192.0.2.1:1234" { // httptest's default
		req.RemoteAddr = n.source()
	}
	rec := httptest.NewRecorder()
	n.h.ServeHTTP(rec, req)
	return rec
}

// request builds a request with a JSON (or other) body.
func request(method, path, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// op sends an operator request with the admin credential.
func (n *node) op(method, path, body string) *httptest.ResponseRecorder {
	n.t.Helper()
	req := request(method, path, body)
	req.Header.Set("Authorization", "Bearer "+n.admin)
	return n.serve(req)
}

// must sends an admin request that must succeed.
func (n *node) must(method, path, body string, out any) {
	n.t.Helper()
	rec := n.op(method, path, body)
	if rec.Code >= 300 {
		n.t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			n.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// session is a started session and its key.
type session struct {
	key  *ecdsa.PrivateKey
	view api.IssuedView
}

// agent registers sponsor acme (once) and agent name with ceiling tools.
func (n *node) agent(name string, tools ...string) {
	n.t.Helper()
	if rec := n.op("GET", "/v1/sponsors", ""); !strings.Contains(rec.Body.String(), `"acme"`) {
		n.must("POST", "/v1/sponsors", `{"name":"acme","kind":"platform","ceiling":{"tools":["*"],"resources":["*"],"prompts":["*"]}}`, nil)
	}
	tl, _ := json.Marshal(tools)
	n.must("POST", "/v1/agents", fmt.Sprintf(`{"name":%q,"sponsor":"acme","ceiling":{"tools":%s}}`, name, tl), nil)
}

// start starts a session of agent.
func (n *node) start(agent string) *session {
	n.t.Helper()
	key, err := sessioncred.NewKey()
	if err != nil {
		n.t.Fatal(err)
	}
	csr, err := sessioncred.CSR(key)
	if err != nil {
		n.t.Fatal(err)
	}
	s := &session{key: key}
	n.must("POST", "/v1/sessions", fmt.Sprintf(`{"agent":%q,"objective":"test","csr":%q}`, agent, base64.RawURLEncoding.EncodeToString(csr)), &s.view)
	return s
}

// sign authenticates req as s: its grant and a fresh DPoP proof.
func (s *session) sign(t testing.TB, req *http.Request) *http.Request {
	t.Helper()
	proof, err := grant.NewProof(s.key, req.Method, host+req.URL.Path, s.view.Grant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+s.view.Grant)
	req.Header.Set("DPoP", proof)
	return req
}

// events returns the audit events appended since index from.
func (n *node) events(from uint64) []audit.Event {
	n.t.Helper()
	evs, err := n.n.Audit.Read(from, n.n.Audit.Size())
	if err != nil {
		n.t.Fatal(err)
	}
	return evs
}

// refusalData is the data of a "refusal" event.
type refusalData struct {
	Kind    string `json:"kind"`
	Status  int    `json:"status"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Reason  string `json:"reason"`
	Source  string `json:"source"`
	Claimed *struct {
		Principal string `json:"principal"`
		Basis     string `json:"basis"`
	} `json:"claimed"`
}

// refusals returns the refusal events appended since from, with their
// data.
func (n *node) refusals(from uint64) ([]audit.Event, []refusalData) {
	n.t.Helper()
	var evs []audit.Event
	var ds []refusalData
	for _, e := range n.events(from) {
		if e.Type != "refusal" {
			continue
		}
		var d refusalData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			n.t.Fatalf("refusal data %s: %v", e.Data, err)
		}
		evs = append(evs, e)
		ds = append(ds, d)
	}
	return evs, ds
}
