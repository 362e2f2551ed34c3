package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/server"
)

// signNonce is session.sign with the server's nonce in the proof.
func (s *session) signNonce(t *testing.T, req *http.Request, nonce string) *http.Request {
	t.Helper()
	proof, err := grant.NewProofNonce(s.key, req.Method, host+req.URL.Path, s.view.Grant, nonce, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+s.view.Grant)
	req.Header.Set("DPoP", proof)
	return req
}

// TestDPoPNonce: a node with DPoPNonce answers a proof without its nonce
// 401 with the RFC 9449 §8 challenge and a nonce, accepts a proof that
// carries it (answering with the current nonce), and refuses a made-up
// nonce; its token endpoint answers 400
// use_dpop_nonce. A node without it asks for no nonce.
func TestDPoPNonce(t *testing.T) {
	n := newNodeWith(t, func(c *server.Config) { c.DPoPNonce = true })
	n.agent("base", "demo.echo")
	s := n.start("base")

	rec := n.serve(s.sign(t, request("GET", "/v1/session", "")))
	nonce := rec.Header().Get("DPoP-Nonce")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("no nonce: %d %q %q %s", rec.Code, rec.Header().Get("WWW-Authenticate"), nonce, rec.Body)
	}
	if rec := n.serve(s.signNonce(t, request("GET", "/v1/session", ""), nonce)); rec.Code != http.StatusOK || rec.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("with the nonce: %d %s (a successful answer carries the current nonce too: %q)", rec.Code, rec.Body, rec.Header().Get("DPoP-Nonce"))
	}
	forged := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if rec := n.serve(s.signNonce(t, request("GET", "/v1/session", ""), forged)); rec.Code != http.StatusUnauthorized || rec.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("made-up nonce: %d %s", rec.Code, rec.Body)
	}

	status, out := n.exchange(t, s, baseForm(t, s).Encode(), nil)
	if status != http.StatusBadRequest || out["error"] != "use_dpop_nonce" {
		t.Fatalf("token exchange without nonce: %d %v", status, out)
	}

	plain := newNode(t)
	plain.agent("base", "demo.echo")
	ps := plain.start("base")
	if rec := plain.serve(ps.sign(t, request("GET", "/v1/session", ""))); rec.Code != http.StatusOK || rec.Header().Get("DPoP-Nonce") != "" {
		t.Fatalf("node without nonces: %d %s", rec.Code, rec.Body)
	}
}
