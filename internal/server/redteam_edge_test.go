package server_test

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamTransportRefusalsLeaveNoRecord (red team, refusals without an
// audit record).
//
// Attack: the README promises that every API answer of 400 or more, and a
// client certificate that does not belong to the trust domain, becomes a
// "refusal" event. Two refusals happen before ward's handler runs, so
// internal/api/edge.go never sees them:
//
//  1. A request whose headers exceed the server's MaxHeaderBytes
//     (internal/server/server.go, Serve: 64 KiB) is answered 431 by
//     net/http itself.
//  2. An agent's X.509-SVID is not a secret (it is sent in every mutual
//     TLS handshake, shown by `ward session show`). An attacker presents a
//     real session's certificate chain with a key of its own: the
//     handshake fails on CertificateVerify and the connection is dropped
//     (logged at debug level only, ErrorLog at slog.LevelDebug). The
//     impersonation attempt, naming a real session, leaves no trace.
//
// What ward did: answered (or dropped) without recording. What it should
// do: record these refusals too (a ConnState/handshake hook, or
// VerifyConnection/GetConfigForClient that records, and a handler-level
// header bound below net/http's).
func TestRedteamTransportRefusalsLeaveNoRecord(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	creds, _ := n.startSession("scribe", "tidy the notes", nil, "")

	// Control: a refused request is recorded.
	before := n.Audit.Size()
	if status, _ := n.call("guessing", "GET", "/v1/agents", nil); status != http.StatusUnauthorized {
		t.Fatalf("control: status %d", status)
	}
	if n.Audit.Size() == before {
		t.Fatal("control: a 401 was not recorded")
	}

	// 1. Oversized headers.
	before = n.Audit.Size()
	req, _ := http.NewRequest("GET", n.url+"/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("A", 100<<10))
	resp, err := n.tlsClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("oversized headers: status %d", resp.StatusCode)
	}
	if n.Audit.Size() == before {
		t.Errorf("a request refused with %d (headers over the limit) left no record", resp.StatusCode)
	}

	// 2. A real session's certificate chain with another key.
	before = n.Audit.Size()
	var chain [][]byte
	for _, c := range creds.SVID {
		chain = append(chain, c.Raw)
	}
	stolen := tls.Certificate{Certificate: chain, PrivateKey: sessioncredKey(t)}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stolen, nil }}}}
	if resp, err := hc.Get(n.url + "/v1/guard/filter"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("a stolen certificate without its key was served: %d", resp.StatusCode)
		}
	}
	// The server may record the failed handshake after the client saw it
	// fail: give it until a deadline.
	for deadline := time.Now().Add(3 * time.Second); n.Audit.Size() == before && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n.Audit.Size() == before {
		t.Errorf("a handshake presenting session %s's certificate with another key was refused without a record", creds.Session)
	}
}
