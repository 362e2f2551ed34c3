package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/server"
)

// TestRedteamVerifyForgeries: POST /v1/verify tells nothing about a
// caller whose "SVID" is the trust domain's own CA certificate, the node's
// TLS certificate, a JWT-SVID re-labelled alg none or HS256 (signed with
// the public bundle), or a token with its payload swapped.
func TestRedteamVerifyForgeries(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("payer", nil, map[string][]string{"tools": {"demo.*"}})
	_, v := n.startSession("payer", "pay the invoices", nil, "")
	_, other := n.startSession("payer", "something else", nil, "")

	u, _ := url.Parse(n.url)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: n.pool})
	if err != nil {
		t.Fatal(err)
	}
	var serverPEM strings.Builder
	for _, c := range conn.ConnectionState().PeerCertificates {
		pem.Encode(&serverPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	conn.Close()

	parts := strings.Split(v.JWTSVID, ".")
	otherParts := strings.Split(other.JWTSVID, ".")
	b64 := base64.RawURLEncoding
	none := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	hsHead := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	m := hmac.New(sha256.New, n.CA.BundlePEM())
	m.Write([]byte(hsHead + "." + parts[1]))
	hs := hsHead + "." + parts[1] + "." + b64.EncodeToString(m.Sum(nil))
	swapped := parts[0] + "." + otherParts[1] + "." + parts[2]

	if status, b := n.call("", "POST", "/v1/verify", map[string]string{"jwt_svid": v.JWTSVID, "audience": "ward"}); status != http.StatusOK {
		t.Fatalf("the genuine token: %d %s", status, b)
	}
	for name, body := range map[string]map[string]string{
		"CA certificate":     {"x509_svid": string(n.CA.BundlePEM())},
		"node TLS cert":      {"x509_svid": serverPEM.String()},
		"alg none":           {"jwt_svid": none, "audience": "ward"},
		"HS256 with bundle":  {"jwt_svid": hs, "audience": "ward"},
		"payload swapped":    {"jwt_svid": swapped, "audience": "ward"},
		"both kinds":         {"jwt_svid": v.JWTSVID, "audience": "ward", "x509_svid": string(n.CA.BundlePEM())},
		"no audience":        {"jwt_svid": v.JWTSVID},
		"audience wildcard":  {"jwt_svid": v.JWTSVID, "audience": "*"},
		"audience case":      {"jwt_svid": v.JWTSVID, "audience": "WARD"},
		"audience with tail": {"jwt_svid": v.JWTSVID, "audience": "ward "},
	} {
		status, b := n.call("", "POST", "/v1/verify", body)
		if status == http.StatusOK {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
}
