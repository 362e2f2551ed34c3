package sessioncred

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ward-dev/ward/internal/grant"
)

// nonceServer answers as a ward node that asks for DPoP nonces: 401 and
// the challenge (or, on /token, 400 use_dpop_nonce), each with a fresh
// nonce, for a proof without a current nonce of its own; it records the
// bodies of the requests it accepts.
type nonceServer struct {
	pv     atomic.Pointer[grant.ProofVerifier]
	hits   atomic.Int64
	bodies chan string
}

func newNonceServer(t *testing.T) *nonceServer {
	s := &nonceServer{bodies: make(chan string, 16)}
	s.restart(t)
	return s
}

// restart gives the server a new nonce key, as a restarted node has.
func (s *nonceServer) restart(t *testing.T) {
	n, err := grant.NewNonces(grant.NoncesConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s.pv.Store(grant.NewProofVerifier(grant.ProofVerifierConfig{Nonces: n}))
}

func (s *nonceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
	pv := s.pv.Load()
	_, err := pv.Verify(r.Header.Get("DPoP"), r.Method, "http://"+r.Host+r.URL.Path, tok)
	switch {
	case errors.Is(err, grant.ErrUseNonce) && r.URL.Path == "/token":
		w.Header().Set("DPoP-Nonce", pv.Nonce())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"use_dpop_nonce","error_description":"x"}`)
	case errors.Is(err, grant.ErrUseNonce):
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", algs="ES256"`)
		w.Header().Set("DPoP-Nonce", pv.Nonce())
		w.WriteHeader(http.StatusUnauthorized)
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnauthorized)
	default:
		s.bodies <- string(body)
	}
}

// TestTransportNonce: the Transport sends a request refused for want of
// the node's nonce once more with it, body and all, keeps the nonce for
// the requests that follow, and gets the new one when the node restarts;
// a token endpoint's 400 use_dpop_nonce is retried the same way, and
// another 400 is passed on untouched.
func TestTransportNonce(t *testing.T) {
	key, _ := NewKey()
	ns := newNonceServer(t)
	srv := httptest.NewServer(ns)
	defer srv.Close()
	hc := &http.Client{Transport: &Transport{Key: key, Grant: "the-grant"}}
	post := func(path, body string) int {
		t.Helper()
		resp, err := hc.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if got := <-ns.bodies; got != body {
				t.Fatalf("the server got body %q, want %q", got, body)
			}
		}
		return resp.StatusCode
	}
	for i, tc := range []struct {
		restart  bool
		path     string
		wantHits int64
	}{
		{false, "/mcp", 2},   // no nonce yet: refused, then sent again
		{false, "/mcp", 1},   // the kept nonce
		{true, "/mcp", 2},    // the node restarted: its nonces are new
		{false, "/token", 1}, // kept nonce, token endpoint
		{true, "/token", 2},  // token endpoint asks with 400
	} {
		if tc.restart {
			ns.restart(t)
		}
		before := ns.hits.Load()
		if code := post(tc.path, `{"n":`+string(rune('0'+i))+`}`); code != http.StatusOK {
			t.Fatalf("step %d: status %d", i, code)
		}
		if got := ns.hits.Load() - before; got != tc.wantHits {
			t.Fatalf("step %d: %d requests reached the server, want %d", i, got, tc.wantHits)
		}
	}

	// A 400 that is not use_dpop_nonce reaches the caller with its body.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", "n-1")
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
	}))
	defer other.Close()
	resp, err := hc.Post(other.URL+"/token", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "invalid_request") {
		t.Fatalf("other 400: %d %s", resp.StatusCode, b)
	}
}

// TestSidecarNonce: the sidecar's request to a node that asks for a nonce
// gets through on the retry with its whole body.
func TestSidecarNonce(t *testing.T) {
	key, _ := NewKey()
	ns := newNonceServer(t)
	srv := httptest.NewServer(ns)
	defer srv.Close()
	target, _ := url.Parse(srv.URL + "/mcp")
	h := Sidecar(target, &Transport{Key: key, Grant: "the-grant"}, 0)
	const body = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	req := httptest.NewRequest("POST", "http://127.0.0.1/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || ns.hits.Load() != 2 {
		t.Fatalf("sidecar: %d after %d requests: %s", rec.Code, ns.hits.Load(), rec.Body)
	}
	if got := <-ns.bodies; got != body {
		t.Fatalf("the node got %q", got)
	}
}

// TestTransportTakesNewNonce: a nonce the node sends with a successful
// answer is the one the next proof carries, without a refusal.
func TestTransportTakesNewNonce(t *testing.T) {
	key, _ := NewKey()
	var got []string
	next := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.Header.Get("DPoP"), ".")
		var c struct {
			Nonce string `json:"nonce"`
		}
		if len(parts) == 3 {
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			json.Unmarshal(b, &c)
		}
		got = append(got, c.Nonce)
		next++
		w.Header().Set("DPoP-Nonce", fmt.Sprintf("n%d", next))
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &Transport{Key: key, Grant: "the-grant"}}
	for range 3 {
		resp, err := hc.Get(srv.URL + "/v1/session")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if want := []string{"", "n1", "n2"}; !slices.Equal(got, want) {
		t.Fatalf("the proofs carried nonces %q, want %q", got, want)
	}
}
