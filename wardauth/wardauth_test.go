package wardauth_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
	"github.com/ward-dev/ward/wardauth"
)

// node is a live ward node on loopback.
type node struct {
	t     *testing.T
	n     *server.Node
	url   string
	admin string
	hc    *http.Client
}

func startNode(t *testing.T) *node {
	t.Helper()
	n, err := server.Open(context.Background(), server.Config{Data: t.TempDir(), Addr: "127.0.0.1:0", TrustDomain: "mw.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); n.Serve(context.Background()) }()
	t.Cleanup(func() { n.Close(); <-done })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.CA.BundlePEM())
	return &node{t: t, n: n, url: n.URL(), admin: n.AdminCredential,
		hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

func (n *node) must(method, path string, body, out any) {
	n.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, n.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.admin)
	resp, err := n.hc.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		n.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			n.t.Fatal(err)
		}
	}
}

// TestMiddlewareAgainstALiveNode: a service behind wardauth lets an agent
// in with its X.509-SVID (mutual TLS) or its JWT-SVID for the service's
// audience, and hands the handler who called; it refuses a request with no
// SVID, a JWT-SVID for another audience, an agent whose trust fell below
// the threshold, a quarantined agent and an ended session.
func TestMiddlewareAgainstALiveNode(t *testing.T) {
	n := startNode(t)
	n.must("POST", "/v1/sponsors", map[string]any{"name": "acme", "kind": "platform", "ceiling": map[string][]string{"tools": {"*"}}}, nil)
	n.must("POST", "/v1/agents", map[string]any{"name": "biller", "sponsor": "acme", "ceiling": map[string][]string{"tools": {"*"}}}, nil)
	key, err := sessioncred.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := sessioncred.CSR(key)
	var v api.IssuedView
	n.must("POST", "/v1/sessions", map[string]any{"agent": "biller", "objective": "send the invoices", "csr": base64.RawURLEncoding.EncodeToString(csr),
		"jwt_audience": []string{"billing"}}, &v)
	chain, err := sessioncred.ParseCertificates([]byte(v.X509SVID))
	if err != nil {
		t.Fatal(err)
	}

	mw := wardauth.Must(wardauth.Config{Node: n.url, BundlePEM: n.n.CA.BundlePEM(), Audience: "billing", MinTrust: 40, CacheTTL: -1})
	svc := httptest.NewUnstartedServer(mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := wardauth.CallerFrom(r.Context())
		fmt.Fprintf(w, "hello %s of %s (session %s, trust %d)", c.Agent, c.Sponsor, c.Session, c.Trust)
	})))
	svc.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	svc.StartTLS()
	defer svc.Close()
	svcRoots := x509.NewCertPool()
	svcRoots.AddCert(svc.Certificate())
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.Raw
	}
	mtls := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: svcRoots,
		Certificates: []tls.Certificate{{Certificate: raw, PrivateKey: key, Leaf: chain[0]}}}}}
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: svcRoots}}}

	call := func(c *http.Client, bearer string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", svc.URL+"/invoices", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	want := "hello biller of acme (session " + v.Session + ", trust "
	if code, body := call(mtls, ""); code != 200 || !strings.HasPrefix(body, want) {
		t.Fatalf("mTLS: %d %s", code, body)
	}
	if code, body := call(plain, v.JWTSVID); code != 200 || !strings.HasPrefix(body, want) {
		t.Fatalf("JWT-SVID: %d %s", code, body)
	}
	if code, body := call(plain, ""); code != 401 || !strings.Contains(body, "present your X.509-SVID") {
		t.Fatalf("no credential: %d %s", code, body)
	}
	// A JWT-SVID for another audience, or tampered with.
	var other api.IssuedView
	csr2, _ := sessioncred.CSR(key)
	n.must("POST", "/v1/sessions", map[string]any{"agent": "biller", "objective": "x", "csr": base64.RawURLEncoding.EncodeToString(csr2)}, &other)
	if code, body := call(plain, other.JWTSVID); code != 401 {
		t.Fatalf("JWT-SVID for audience ward: %d %s", code, body)
	}
	if code, _ := call(plain, v.JWTSVID[:len(v.JWTSVID)-4]+"AAAA"); code != 401 {
		t.Fatalf("tampered JWT-SVID: %d", code)
	}

	// Trust below the threshold.
	n.must("POST", "/v1/agents/biller/trust", map[string]any{"trust": 30}, nil)
	if code, body := call(mtls, ""); code != 403 || !strings.Contains(body, "trust 30, below the 40") {
		t.Fatalf("low trust: %d %s", code, body)
	}
	n.must("POST", "/v1/agents/biller/trust", map[string]any{"trust": 80}, nil)
	if code, body := call(mtls, ""); code != 200 || !strings.Contains(body, "trust 80") {
		t.Fatalf("trust restored: %d %s", code, body)
	}
	// Quarantined.
	n.must("POST", "/v1/agents/biller/quarantine", map[string]any{}, nil)
	if code, body := call(plain, v.JWTSVID); code != 403 || !strings.Contains(body, "quarantined") {
		t.Fatalf("quarantined: %d %s", code, body)
	}
	n.must("POST", "/v1/agents/biller/release", map[string]any{}, nil)
	// Ended (revoked) session.
	n.must("POST", "/v1/sessions/"+v.Session+"/end", map[string]any{}, nil)
	if code, body := call(mtls, ""); code != 403 || !strings.Contains(body, "no longer active") {
		t.Fatalf("ended session: %d %s", code, body)
	}
}

// TestMiddlewareFailsClosed: a node that cannot be reached denies.
func TestMiddlewareFailsClosed(t *testing.T) {
	n := startNode(t)
	mw := wardauth.Must(wardauth.Config{Node: "https://127.0.0.1:1", BundlePEM: n.n.CA.BundlePEM(), Audience: "billing", Timeout: 2 * time.Second})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig")
	rec := httptest.NewRecorder()
	mw.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Fatal("handler reached") })).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "denied") {
		t.Fatalf("unreachable node: %d %s", rec.Code, rec.Body)
	}
	for _, bad := range []wardauth.Config{
		{Node: "http://127.0.0.1:8443", BundlePEM: n.n.CA.BundlePEM()},
		{Node: "https://127.0.0.1:8443"},
		{Node: "https://127.0.0.1:8443", BundlePEM: []byte("nothing")},
		{Node: "https://127.0.0.1:8443", BundlePEM: n.n.CA.BundlePEM(), MinTrust: 101},
	} {
		if _, err := wardauth.New(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
