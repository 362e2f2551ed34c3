package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
	"github.com/ward-dev/ward/wardauth"
)

// TestExampleRuns: the example service, run against a live node, serves
// an agent holding a JWT-SVID for its audience and tells it who it is;
// without one it refuses.
func TestExampleRuns(t *testing.T) {
	data := t.TempDir()
	n, err := server.Open(context.Background(), server.Config{Data: data, Addr: "127.0.0.1:0", TrustDomain: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); n.Serve(context.Background()) }()
	defer func() { n.Close(); <-done }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.CA.BundlePEM())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	admin := func(path string, body, out any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", n.URL()+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+n.AdminCredential)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
		if out != nil {
			json.Unmarshal(raw, out)
		}
	}
	admin("/v1/sponsors", map[string]any{"name": "acme", "kind": "platform", "ceiling": map[string][]string{"tools": {"*"}}}, nil)
	admin("/v1/agents", map[string]any{"name": "reporter", "sponsor": "acme", "ceiling": map[string][]string{"tools": {"*"}}}, nil)
	key, _ := sessioncred.NewKey()
	csr, _ := sessioncred.CSR(key)
	var v api.IssuedView
	admin("/v1/sessions", map[string]any{"agent": "reporter", "objective": "send the invoices", "csr": base64.RawURLEncoding.EncodeToString(csr), "jwt_audience": []string{"billing"}}, &v)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, ln, wardauth.Config{Node: n.URL(), Bundle: filepath.Join(data, "bundle.pem"), Audience: "billing", MinTrust: 50, CacheTTL: -1})
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the example's self-signed certificate
	get := func(bearer string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/invoices", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := get(v.JWTSVID); code != 200 || out["for_agent"] != "reporter" || out["session"] != v.Session {
		t.Fatalf("agent with a JWT-SVID: %d %v", code, out)
	}
	if code, _ := get(""); code != 401 {
		t.Fatalf("no credential: %d", code)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
