package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/keyring"
	"github.com/ward-dev/ward/internal/receipt"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/sessioncred"
	"github.com/ward-dev/ward/wardauth"
)

// keyState is one row of GET /v1/keys.
type keyState = keyring.View

// keys lists the node's keys by kind: the active one and the others.
func (n *testNode) keys() (active map[keyring.Kind]keyState, all []keyState) {
	n.t.Helper()
	n.must("GET", "/v1/keys", nil, &all)
	active = map[keyring.Kind]keyState{}
	for _, k := range all {
		if k.State == keyring.Active {
			if _, dup := active[k.Kind]; dup {
				n.t.Fatalf("two active %s keys: %+v", k.Kind, all)
			}
			active[k.Kind] = k
		}
	}
	if len(active) != 4 {
		n.t.Fatalf("active keys %+v", all)
	}
	return active, all
}

func stateOf(all []keyState, kid string) keyState {
	for _, k := range all {
		if k.KID == kid {
			return k
		}
	}
	return keyState{}
}

// jwsKID returns the kid of a compact JWS's header.
func jwsKID(t testing.TB, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	json.Unmarshal(raw, &hdr)
	return hdr.Kid
}

// rootKID returns the thumbprint of the root that signed leaf, among roots.
func rootKID(t testing.TB, leaf *x509.Certificate, roots []*x509.Certificate) string {
	t.Helper()
	for _, r := range roots {
		if leaf.CheckSignatureFrom(r) == nil {
			kid, err := keyring.Thumbprint(r.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			return kid
		}
	}
	t.Fatalf("no root signed %s", leaf.Subject)
	return ""
}

// publishedBundle fetches the node's SPIFFE bundle with a client that
// trusts pool, and checks that it holds no private key.
func publishedBundle(t testing.TB, url string, pool *x509.CertPool) *spiffebundle.Bundle {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path string) []byte {
		resp, err := hc.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	raw := get("/.well-known/spiffe-bundle")
	jwks := get("/.well-known/jwks.json")
	for name, doc := range map[string][]byte{"bundle": raw, "jwks": jwks} {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(doc, &set); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				t.Fatalf("the %s publishes a private key (%s)", name, k.KeyID)
			}
		}
		var members struct {
			Keys []map[string]json.RawMessage `json:"keys"`
		}
		json.Unmarshal(doc, &members)
		for _, k := range members.Keys {
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
				if _, ok := k[private]; ok {
					t.Fatalf("the %s has a private member %q", name, private)
				}
			}
		}
	}
	b, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("test.ward"), raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// agentSession is a session's credentials and what the node issued.
type agentSession struct {
	creds *sessioncred.Credentials
	v     api.IssuedView
}

func (n *testNode) agentSession(agent, objective string) agentSession {
	n.t.Helper()
	key := sessioncredKey(n.t)
	v := n.startSessionWith(key, map[string]any{"agent": agent, "objective": objective, "jwt_audience": []string{"billing"}})
	return agentSession{n.credentials(key, v), v}
}

// callOnce connects to the gateway afresh (new TLS connection) and calls
// demo.echo once.
func (n *testNode) callOnce(s agentSession, mtls bool) error {
	hc := s.creds.HTTPClient(mtls)
	client := mcp.NewClient(&mcp.Implementation{Name: "ward-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: n.url + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "hi"}})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool error: %s", textOf(res))
	}
	return nil
}

// verifyAt asks POST /v1/verify about an SVID and returns the status.
func (n *testNode) verifyAt(body map[string]string) int {
	n.t.Helper()
	status, _ := n.call("", "POST", "/v1/verify", body)
	return status
}

func chainPEM(s agentSession) string { return s.v.X509SVID }

// fetchReceipts returns a session's receipts, as the session fetches them.
func (n *testNode) fetchReceipts(s agentSession) []json.RawMessage {
	n.t.Helper()
	resp, err := s.creds.HTTPClient(false).Get(n.url + "/v1/receipts?session=" + s.v.Session)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		n.t.Fatalf("receipts: %d %s", resp.StatusCode, b)
	}
	var envs []json.RawMessage
	json.Unmarshal(b, &envs)
	return envs
}

func receiptKID(t testing.TB, env []byte) string {
	t.Helper()
	var e receipt.Envelope
	if err := json.Unmarshal(env, &e); err != nil || len(e.Signatures) != 1 {
		t.Fatalf("receipt: %v", err)
	}
	return e.Signatures[0].KeyID
}

// TestKeyRotation: on a running node, each of the CA, JWT-SVID, grant and
// receipt keys is rotated over the API. What was issued before keeps
// working until it expires (an X.509-SVID over mutual TLS, a JWT-SVID
// through /v1/verify and wardauth, a grant with its DPoP proof, a receipt
// checked as ward claim verify does) even for clients that pinned the
// bundle from before; new credentials carry the new keys; go-spiffe
// verifies both generations against the published bundle, which holds no
// private key; an agent calling all along never sees a failed call. Once
// the retirement time has passed, the old keys are gone and what they
// signed is refused.
func TestKeyRotation(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, server.Config{Data: data, Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	oldPool := n.pool // what clients pinned before the rotation
	oldBundle := n.CA.BundlePEM()
	before, _ := n.keys()

	old := n.agentSession("reporter", "before the rotation")
	for _, mtls := range []bool{false, true} {
		if err := n.callOnce(old, mtls); err != nil {
			t.Fatalf("before rotation (mtls %v): %v", mtls, err)
		}
	}
	oldReceipts := n.fetchReceipts(old)
	if len(oldReceipts) != 2 || receiptKID(t, oldReceipts[0]) != before[keyring.Receipt].KID {
		t.Fatalf("receipts before rotation: %d", len(oldReceipts))
	}

	// An agent calls without pause across the rotation, on one MCP
	// session over DPoP and one over mutual TLS.
	var calls, failures atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	running := n.agentSession("reporter", "calls all along")
	for _, mtls := range []bool{false, true} {
		cs := n.connect(t, running.creds.HTTPClient(mtls), nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "tick"}})
				cancel()
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error: %s", textOf(res))
				}
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
				calls.Add(1)
			}
		}()
	}
	waitCalls := func(more int64) {
		t.Helper()
		target := calls.Load() + more
		deadline := time.Now().Add(time.Minute)
		for calls.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("the running agent made %d calls, waiting for %d", calls.Load(), target)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCalls(10)

	// Rotation is for admins, with a well-formed request.
	var sponsor struct{ Credential string }
	n.must("POST", "/v1/sponsors/acme/credentials", map[string]any{}, &sponsor)
	for _, tc := range []struct {
		token string
		body  any
		code  int
	}{
		{"", map[string]string{"kind": "ca"}, http.StatusUnauthorized},
		{"ward_" + strings.Repeat("A", 43), map[string]string{"kind": "ca"}, http.StatusUnauthorized},
		{n.admin[:len(n.admin)-1] + "x", map[string]string{"kind": "ca"}, http.StatusUnauthorized},
		{sponsor.Credential, map[string]string{"kind": "ca"}, http.StatusForbidden},
		{n.admin, map[string]string{"kind": "CA"}, http.StatusBadRequest},
		{n.admin, map[string]string{"kind": "hsm"}, http.StatusBadRequest},
		{n.admin, map[string]string{}, http.StatusBadRequest},
		{n.admin, map[string]any{"kind": "ca", "force": true}, http.StatusBadRequest},
		{n.admin, map[string]any{"kind": 1}, http.StatusBadRequest},
		// The log's key rotates too (logkeys.go): an overlap starts.
		{n.admin, map[string]string{"kind": "log"}, http.StatusOK},
	} {
		if code, b := n.call(tc.token, "POST", "/v1/keys/rotate", tc.body); code != tc.code {
			t.Errorf("rotate %v with credential %.8q: %d %s, want %d", tc.body, tc.token, code, b, tc.code)
		}
	}
	for _, raw := range []string{`{"kind":"ca","kind":"jwt"}`, `{"Kind":"ca"}`, `{"kind":"ca"} {}`, `{"kind":"c\u0061"`} {
		req, _ := http.NewRequest("POST", n.url+"/v1/keys/rotate", strings.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+n.admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := n.tlsClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("rotate %s: %d", raw, resp.StatusCode)
		}
	}
	if code, _ := n.call(sponsor.Credential, "GET", "/v1/keys", nil); code != http.StatusForbidden {
		t.Errorf("a sponsor lists keys: %d", code)
	}
	if after, _ := n.keys(); after[keyring.CA].KID != before[keyring.CA].KID {
		t.Fatal("a refused rotation changed the CA")
	}

	rotatedAt := time.Now()
	for _, kind := range keyring.Kinds {
		var v keyState
		n.must("POST", "/v1/keys/rotate", map[string]string{"kind": string(kind)}, &v)
		if v.Kind != kind || v.State != keyring.Active || v.KID == before[kind].KID {
			t.Fatalf("rotate %s: %+v", kind, v)
		}
		waitCalls(3) // the running agent keeps calling between rotations
	}
	after, all := n.keys()
	maxTTL := authority.DefaultMaxSessionTTL
	for _, kind := range keyring.Kinds {
		prev := stateOf(all, before[kind].KID)
		if after[kind].KID == before[kind].KID || prev.State != keyring.Retiring || prev.NotAfter == nil {
			t.Fatalf("%s after rotation: active %+v, previous %+v", kind, after[kind], prev)
		}
		if d := prev.NotAfter.Sub(rotatedAt); d < maxTTL || d > maxTTL+5*time.Minute {
			t.Fatalf("%s: the previous key is trusted for %s after the rotation, want the maximum session lifetime and some skew", kind, d)
		}
	}

	// What was issued before still works, for clients that pinned the
	// bundle from before: a new TLS connection to the node, DPoP with the
	// old grant, mutual TLS with the old X.509-SVID.
	for _, mtls := range []bool{false, true} {
		if err := n.callOnce(old, mtls); err != nil {
			t.Fatalf("old credentials after rotation (mtls %v): %v", mtls, err)
		}
	}
	if code := n.verifyAt(map[string]string{"jwt_svid": old.v.JWTSVID, "audience": "billing"}); code != 200 {
		t.Fatalf("/v1/verify, old JWT-SVID: %d", code)
	}
	if code := n.verifyAt(map[string]string{"x509_svid": chainPEM(old)}); code != 200 {
		t.Fatalf("/v1/verify, old X.509-SVID: %d", code)
	}

	// New credentials carry the new keys.
	fresh := n.agentSession("reporter", "after the rotation")
	roots := n.CA.X509Authorities()
	if len(roots) != 2 {
		t.Fatalf("%d roots in force, want the new and the retiring", len(roots))
	}
	switch {
	case rootKID(t, fresh.creds.SVID[0], roots) != after[keyring.CA].KID:
		t.Fatal("the new X.509-SVID is not signed by the new root")
	case rootKID(t, old.creds.SVID[0], roots) != before[keyring.CA].KID:
		t.Fatal("the old X.509-SVID is not signed by the old root")
	case jwsKID(t, fresh.v.JWTSVID) != after[keyring.JWT].KID:
		t.Fatal("the new JWT-SVID does not name the new key")
	case jwsKID(t, fresh.v.Grant) != after[keyring.Grant].KID:
		t.Fatal("the new grant does not name the new key")
	}
	for _, mtls := range []bool{false, true} {
		if err := n.callOnce(fresh, mtls); err != nil {
			t.Fatalf("new credentials (mtls %v): %v", mtls, err)
		}
	}
	newReceipts := n.fetchReceipts(fresh)
	if len(newReceipts) != 2 || receiptKID(t, newReceipts[0]) != after[keyring.Receipt].KID {
		t.Fatal("new receipts are not signed by the new key")
	}

	// go-spiffe verifies both generations against the published bundle
	// (fetched by a client that pinned the old one).
	bundle := publishedBundle(t, n.url, oldPool)
	if len(bundle.X509Authorities()) != 2 || len(bundle.JWTAuthorities()) != 2 {
		t.Fatalf("published bundle: %d roots, %d JWT keys", len(bundle.X509Authorities()), len(bundle.JWTAuthorities()))
	}
	for _, s := range []agentSession{old, fresh} {
		if _, _, err := x509svid.Verify(s.creds.SVID, bundle); err != nil {
			t.Fatalf("go-spiffe, X.509-SVID: %v", err)
		}
		if _, err := jwtsvid.ParseAndValidate(s.v.JWTSVID, bundle, []string{"billing"}); err != nil {
			t.Fatalf("go-spiffe, JWT-SVID: %v", err)
		}
		if code := n.verifyAt(map[string]string{"jwt_svid": s.v.JWTSVID, "audience": "billing"}); code != 200 {
			t.Fatalf("/v1/verify: %d", code)
		}
	}
	for _, b := range [][]byte{n.CA.BundlePEM(), mustRead(t, filepath.Join(data, "bundle.pem")), mustRead(t, filepath.Join(data, "keys", "receipt.pub"))} {
		if strings.Contains(string(b), "PRIVATE") {
			t.Fatal("a published bundle or key file holds a private key")
		}
	}

	// A service behind wardauth that pinned the bundle from before lets
	// both generations in.
	mw := wardauth.Must(wardauth.Config{Node: n.url, BundlePEM: oldBundle, Audience: "billing", CacheTTL: -1})
	svc := httptest.NewServer(mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := wardauth.CallerFrom(r.Context())
		io.WriteString(w, c.Session)
	})))
	defer svc.Close()
	viaWardauth := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", svc.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, s := range []agentSession{old, fresh} {
		if code, body := viaWardauth(s.v.JWTSVID); code != 200 || body != s.v.Session {
			t.Fatalf("wardauth: %d %s", code, body)
		}
	}

	// Receipts of both keys check out as ward claim verify checks them.
	keys, err := server.ReceiptKeys(data)
	if err != nil || len(keys) != 2 {
		t.Fatalf("receipt keys: %d %v", len(keys), err)
	}
	verifier, origin, _ := server.AuditVerifier(data)
	checkClaim := func(s agentSession, env []byte) error {
		ks, err := server.ReceiptKeys(data)
		if err != nil {
			return err
		}
		_, err = receipt.CheckClaimKeys(receipt.Claim{Session: s.v.Session, Tool: "demo.echo", Outcome: receipt.OutcomeSuccess}, env, ks, filepath.Join(data, "audit"), verifier, origin)
		return err
	}
	if err := checkClaim(old, oldReceipts[0]); err != nil {
		t.Fatalf("old receipt after rotation: %v", err)
	}
	if err := checkClaim(fresh, newReceipts[0]); err != nil {
		t.Fatalf("new receipt: %v", err)
	}

	// The running agent never saw a failed call.
	waitCalls(10)
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d calls failed across the rotation; first: %v", f, calls.Load(), firstFailure.Load())
	}
	t.Logf("%d calls across the rotation, none failed", calls.Load())

	// Past the retirement time the old keys are gone and what they
	// signed is refused, even where it has not expired yet.
	retired, err := n.SweepKeys(context.Background(), time.Now().Add(maxTTL+10*time.Minute))
	if err != nil || len(retired) != 4 {
		t.Fatalf("sweep: %v %v", retired, err)
	}
	newPool := x509.NewCertPool()
	newPool.AppendCertsFromPEM(mustRead(t, filepath.Join(data, "bundle.pem")))
	n.pool = newPool // the test's own client fetched the new bundle
	_, all = n.keys()
	for _, kind := range keyring.Kinds {
		if s := stateOf(all, before[kind].KID); s.State != keyring.Retired {
			t.Fatalf("%s key after its retirement: %+v", kind, s)
		}
	}
	if len(n.CA.X509Authorities()) != 1 {
		t.Fatal("the old root is still trusted")
	}
	bundle = publishedBundle(t, n.url, newPool)
	if len(bundle.X509Authorities()) != 1 || len(bundle.JWTAuthorities()) != 1 {
		t.Fatal("the published bundle still carries the old keys")
	}
	if _, _, err := x509svid.Verify(old.creds.SVID, bundle); err == nil {
		t.Fatal("go-spiffe verifies an X.509-SVID of the retired root")
	}
	if _, err := jwtsvid.ParseAndValidate(old.v.JWTSVID, bundle, []string{"billing"}); err == nil {
		t.Fatal("go-spiffe verifies a JWT-SVID of the retired key")
	}
	if code := n.verifyAt(map[string]string{"jwt_svid": old.v.JWTSVID, "audience": "billing"}); code != http.StatusUnauthorized {
		t.Fatalf("/v1/verify, retired JWT-SVID: %d", code)
	}
	if code := n.verifyAt(map[string]string{"x509_svid": chainPEM(old)}); code != http.StatusUnauthorized {
		t.Fatalf("/v1/verify, retired X.509-SVID: %d", code)
	}
	if code := n.verifyAt(map[string]string{"jwt_svid": fresh.v.JWTSVID, "audience": "billing"}); code != 200 {
		t.Fatalf("/v1/verify, new JWT-SVID after the sweep: %d", code)
	}
	// The node's TLS certificate now comes from the new root: a client
	// that never fetched the new bundle cannot connect any more; one
	// that did can, but not with the old grant or X.509-SVID.
	if _, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: oldPool}}}).Get(n.url + "/livez"); err == nil {
		t.Fatal("a client with only the retired root still trusts the node")
	}
	old.creds.Bundle, fresh.creds.Bundle = newPool, newPool
	for _, mtls := range []bool{false, true} {
		if err := n.callOnce(old, mtls); err == nil {
			t.Fatalf("retired credentials accepted (mtls %v)", mtls)
		}
		if err := n.callOnce(fresh, mtls); err != nil {
			t.Fatalf("new credentials after the sweep (mtls %v): %v", mtls, err)
		}
	}
	if err := checkClaim(old, oldReceipts[0]); err == nil {
		t.Fatal("a receipt of the retired key still checks out")
	}
	if err := checkClaim(old, n.fetchReceiptsAdmin(old.v.Session)[0]); err != nil {
		t.Fatalf("a receipt fetched again: %v", err)
	}
	if keys, _ := server.ReceiptKeys(data); len(keys) != 1 {
		t.Fatalf("%d receipt keys after the sweep", len(keys))
	}
}

// fetchReceiptsAdmin fetches a session's receipts as the admin.
func (n *testNode) fetchReceiptsAdmin(session string) []json.RawMessage {
	n.t.Helper()
	var envs []json.RawMessage
	n.must("GET", "/v1/receipts?session="+session, nil, &envs)
	return envs
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitKeys waits until node n's active keys are want's.
func waitKeys(t testing.TB, n *testNode, want map[keyring.Kind]keyState) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := map[keyring.Kind]string{}
		for _, k := range n.ListKeys() {
			if k.State == keyring.Active {
				got[k.Kind] = k.KID
			}
		}
		same := true
		for kind, k := range want {
			same = same && got[kind] == k.KID
		}
		if same {
			return time.Since(start)
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("node %s's keys %v, want %v", n.NodeID(), got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeyRotationTwoNodes: on two nodes sharing PostgreSQL, a rotation
// made on A is used by B (B verifies A's new credentials and signs with
// the new keys) once B follows the change feed; a node stopped during
// the rotation takes the new keys when it starts again, and a node that
// joins later gets them too; a retirement swept on A leaves B too.
func TestKeyRotationTwoNodes(t *testing.T) {
	dsn, schema := testPostgres(t)
	cfg := server.Config{StoreDSN: dsn, StoreSchema: schema, Upstreams: demoOnly}
	ca := cfg
	ca.Data = t.TempDir()
	a := startNode(t, ca)
	tok := string(mustRead(t, filepath.Join(ca.Data, "keys", "join.token")))
	join := func(data string) *testNode {
		c := cfg
		c.Data, c.JoinToken = data, tok
		n := startNode(t, c)
		n.admin = a.admin
		return n
	}
	b := join(t.TempDir())
	sleeper := join(t.TempDir()) // stopped during the rotation
	a.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	before, _ := a.keys()
	old := a.agentSession("reporter", "before the rotation")
	sleeperData := sleeper.data
	sleeper.Close()

	// An agent started on A calls through B without pause across the
	// rotation, over DPoP and over mutual TLS.
	var calls, failures atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	running := a.agentSession("reporter", "calls through B all along")
	for _, mtls := range []bool{false, true} {
		cs := b.connect(t, running.creds.HTTPClient(mtls), nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo.echo", Arguments: map[string]any{"text": "tick"}})
				cancel()
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error: %s", textOf(res))
				}
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
				calls.Add(1)
			}
		}()
	}
	waitCalls := func(more int64) {
		t.Helper()
		target := calls.Load() + more
		deadline := time.Now().Add(time.Minute)
		for calls.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("the running agent made %d calls, waiting for %d", calls.Load(), target)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCalls(10)

	after := map[keyring.Kind]keyState{}
	for _, kind := range keyring.Kinds {
		var v keyState
		a.must("POST", "/v1/keys/rotate", map[string]string{"kind": string(kind)}, &v)
		after[kind] = v
		t.Logf("node B uses the %s key rotated on A %s after the rotation returned", kind, waitKeys(t, b, map[keyring.Kind]keyState{kind: v}))
		waitCalls(3)
	}
	bAll := b.ListKeys()
	for _, kind := range keyring.Kinds {
		if s := stateOf(bAll, before[kind].KID); s.State != keyring.Retiring {
			t.Fatalf("node B: the previous %s key is %+v", kind, s)
		}
	}
	if string(a.CA.BundlePEM()) != string(b.CA.BundlePEM()) {
		t.Fatal("the nodes publish different bundles")
	}

	// B signs with the new keys, and A and B each take the other's new
	// credentials and the old ones.
	onA := a.agentSession("reporter", "started on A")
	onB := b.agentSession("reporter", "started on B")
	if jwsKID(t, onB.v.Grant) != after[keyring.Grant].KID || jwsKID(t, onB.v.JWTSVID) != after[keyring.JWT].KID ||
		rootKID(t, onB.creds.SVID[0], b.CA.X509Authorities()) != after[keyring.CA].KID {
		t.Fatal("node B does not sign with the new keys")
	}
	for _, n := range []*testNode{a, b} {
		for _, s := range []agentSession{old, onA, onB} {
			for _, mtls := range []bool{false, true} {
				if err := n.callOnce(s, mtls); err != nil {
					t.Fatalf("node %s, session %s (mtls %v): %v", n.NodeID(), s.v.Session, mtls, err)
				}
			}
			if code := n.verifyAt(map[string]string{"jwt_svid": s.v.JWTSVID, "audience": "billing"}); code != 200 {
				t.Fatalf("node %s verifies a JWT-SVID: %d", n.NodeID(), code)
			}
		}
	}
	if receiptKID(t, b.fetchReceipts(onA)[0]) != after[keyring.Receipt].KID {
		t.Fatal("node B signs receipts with the old key")
	}
	waitCalls(10)
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d calls through B failed across the rotation on A; first: %v", f, calls.Load(), firstFailure.Load())
	}
	t.Logf("%d calls through B across the rotation on A, none failed", calls.Load())

	// A node stopped during the rotation, and one that joins now, start
	// with the new keys.
	c := cfg
	c.Data = sleeperData
	woke := startNode(t, c)
	late := join(t.TempDir())
	for _, n := range []*testNode{woke, late} {
		waitKeys(t, n, after)
		if string(n.CA.BundlePEM()) != string(a.CA.BundlePEM()) {
			t.Fatalf("node %s publishes another bundle", n.NodeID())
		}
		if err := n.callOnce(old, true); err != nil {
			t.Fatalf("node %s, old credentials: %v", n.NodeID(), err)
		}
	}

	// The retirement, swept on A, reaches B.
	if retired, err := a.SweepKeys(context.Background(), time.Now().Add(authority.DefaultMaxSessionTTL+10*time.Minute)); err != nil || len(retired) != 4 {
		t.Fatalf("sweep on A: %v %v", retired, err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(b.CA.X509Authorities()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("node B still trusts the retired root")
		}
		time.Sleep(5 * time.Millisecond)
	}
	newPool := x509.NewCertPool()
	newPool.AppendCertsFromPEM(b.CA.BundlePEM())
	a.pool, b.pool, old.creds.Bundle = newPool, newPool, newPool
	if code := b.verifyAt(map[string]string{"jwt_svid": old.v.JWTSVID, "audience": "billing"}); code != http.StatusUnauthorized {
		t.Fatalf("node B, retired JWT-SVID: %d", code)
	}
	if err := b.callOnce(old, false); err == nil {
		t.Fatal("node B accepts a grant of the retired key")
	}

	// Rotations on A and B at once apply one after the other: both
	// nodes end with the same keys, one of the two new grant keys
	// active and the other retiring.
	var rotated [2]keyState
	var rwg sync.WaitGroup
	for i, n := range []*testNode{a, b} {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			status, body := n.call(a.admin, "POST", "/v1/keys/rotate", map[string]string{"kind": "grant"})
			if status != 200 {
				t.Errorf("concurrent rotation on %s: %d %s", n.NodeID(), status, body)
				return
			}
			json.Unmarshal(body, &rotated[i])
		}()
	}
	rwg.Wait()
	// Each node applies the other's rotation from the change feed: read
	// the keys they both end with (A's right after its rotation returned
	// may not hold B's yet, if B's came second).
	var final map[keyring.Kind]keyState
	deadline = time.Now().Add(time.Minute)
	for {
		fa, _ := a.keys()
		fb, _ := b.keys()
		if reflect.DeepEqual(kids(fa), kids(fb)) {
			final = fa
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after concurrent rotations, A's keys %v and B's %v", kids(fa), kids(fb))
		}
		time.Sleep(5 * time.Millisecond)
	}
	bAll = b.ListKeys()
	if final[keyring.Grant].KID != rotated[0].KID && final[keyring.Grant].KID != rotated[1].KID {
		t.Fatal("neither concurrent rotation's key is active")
	}
	for _, r := range rotated {
		if s := stateOf(bAll, r.KID); s.State != keyring.Active && s.State != keyring.Retiring {
			t.Fatalf("a concurrently rotated key is %+v on B", s)
		}
	}
}

// TestKeyRingFromOlderDataDir: a data directory from before rotation
// existed (key files, no ring) gets a ring of the same keys on start:
// what was issued before still works, and the keys rotate.
func TestKeyRingFromOlderDataDir(t *testing.T) {
	data := t.TempDir()
	cfg := server.Config{Data: data, Upstreams: demoOnly}
	n := startNode(t, cfg)
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	before, _ := n.keys()
	old := n.agentSession("reporter", "before the upgrade")
	admin := n.admin
	n.Close()
	if err := os.Remove(filepath.Join(data, "keys", "ring.json")); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, cfg)
	n.admin = admin
	if got, _ := n.keys(); fmt.Sprint(kids(got)) != fmt.Sprint(kids(before)) {
		t.Fatalf("keys after the upgrade %v, before %v", kids(got), kids(before))
	}
	if err := n.callOnce(old, true); err != nil {
		t.Fatal(err)
	}
	n.must("POST", "/v1/keys/rotate", map[string]string{"kind": "grant"}, nil)
	if err := n.callOnce(old, false); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(data, "keys", "ring.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the ring: %v %v", st, err)
	}
}

func kids(m map[keyring.Kind]keyState) map[keyring.Kind]string {
	out := map[keyring.Kind]string{}
	for k, v := range m {
		out[k] = v.KID
	}
	return out
}

// TestKeyRotationLegacySealed: a system whose store holds keys sealed
// before rotation existed (no ring) rotates: the first rotation makes
// the ring of the sealed keys, and a node that joined before it takes it.
func TestKeyRotationLegacySealed(t *testing.T) {
	dsn, schema := testPostgres(t)
	cfg := server.Config{StoreDSN: dsn, StoreSchema: schema, Upstreams: demoOnly}
	ca := cfg
	ca.Data = t.TempDir()
	a := startNode(t, ca)
	a.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	old := a.agentSession("reporter", "before the rotation")
	if err := a.SealWithoutRing(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := cfg
	c.Data, c.JoinToken = t.TempDir(), string(mustRead(t, filepath.Join(ca.Data, "keys", "join.token")))
	b := startNode(t, c)
	b.admin = a.admin
	before, _ := a.keys()
	if got, _ := b.keys(); fmt.Sprint(kids(got)) != fmt.Sprint(kids(before)) {
		t.Fatalf("node B joined with keys %v, A has %v", kids(got), kids(before))
	}
	var v keyState
	a.must("POST", "/v1/keys/rotate", map[string]string{"kind": "ca"}, &v)
	waitKeys(t, b, map[keyring.Kind]keyState{keyring.CA: v})
	for _, n := range []*testNode{a, b} {
		if err := n.callOnce(old, true); err != nil {
			t.Fatalf("node %s, old X.509-SVID: %v", n.NodeID(), err)
		}
		if s := stateOf(n.ListKeys(), before[keyring.CA].KID); s.State != keyring.Retiring {
			t.Fatalf("node %s: the old CA is %+v", n.NodeID(), s)
		}
	}
}

// TestKeyRetireEarly: a retiring key whose material leaked is retired at
// once (ward keys retire): what it signed is refused from then on though
// it has not expired, and what the new keys signed is not touched. Only a
// retiring key can be, and only by an admin.
func TestKeyRetireEarly(t *testing.T) {
	n := startNode(t, server.Config{Upstreams: demoOnly})
	n.setupAgent("reporter", nil, map[string][]string{"tools": {"demo.*"}})
	before, _ := n.keys()
	old := n.agentSession("reporter", "before the rotation")
	for _, kind := range []keyring.Kind{keyring.CA, keyring.JWT, keyring.Grant} {
		n.must("POST", "/v1/keys/rotate", map[string]string{"kind": string(kind)}, nil)
	}
	fresh := n.agentSession("reporter", "after the rotation")
	after, _ := n.keys()
	if err := n.callOnce(old, false); err != nil {
		t.Fatal(err)
	}
	var sponsor struct{ Credential string }
	n.must("POST", "/v1/sponsors/acme/credentials", map[string]any{}, &sponsor)
	for _, tc := range []struct {
		token, kid string
		code       int
	}{
		{sponsor.Credential, before[keyring.Grant].KID, http.StatusForbidden},
		{"", before[keyring.Grant].KID, http.StatusUnauthorized},
		{n.admin, after[keyring.Grant].KID, http.StatusConflict},    // active: rotate first
		{n.admin, before[keyring.Receipt].KID, http.StatusConflict}, // never rotated: active
		{n.admin, "no-such-key", http.StatusNotFound},
		{n.admin, "", http.StatusBadRequest},
		{n.admin, strings.Repeat("k", 65), http.StatusBadRequest},
	} {
		if code, b := n.call(tc.token, "POST", "/v1/keys/retire", map[string]string{"kid": tc.kid}); code != tc.code {
			t.Errorf("retire %.16q with %.8q: %d %s, want %d", tc.kid, tc.token, code, b, tc.code)
		}
	}
	if err := n.callOnce(old, false); err != nil {
		t.Fatalf("a refused retirement changed something: %v", err)
	}

	var v keyState
	n.must("POST", "/v1/keys/retire", map[string]string{"kid": before[keyring.Grant].KID}, &v)
	if v.State != keyring.Retired {
		t.Fatalf("retired key: %+v", v)
	}
	if err := n.callOnce(old, false); err == nil {
		t.Fatal("a grant of a retired key is accepted")
	}
	if err := n.callOnce(fresh, false); err != nil {
		t.Fatalf("new grant: %v", err)
	}
	if code, _ := n.call(n.admin, "POST", "/v1/keys/retire", map[string]string{"kid": before[keyring.Grant].KID}); code != http.StatusConflict {
		t.Fatalf("retiring twice: %d", code)
	}

	n.must("POST", "/v1/keys/retire", map[string]string{"kid": before[keyring.JWT].KID}, nil)
	if code := n.verifyAt(map[string]string{"jwt_svid": old.v.JWTSVID, "audience": "billing"}); code != http.StatusUnauthorized {
		t.Fatalf("JWT-SVID of a retired key: %d", code)
	}
	if code := n.verifyAt(map[string]string{"jwt_svid": fresh.v.JWTSVID, "audience": "billing"}); code != 200 {
		t.Fatalf("new JWT-SVID: %d", code)
	}
	n.must("POST", "/v1/keys/retire", map[string]string{"kid": before[keyring.CA].KID}, nil)
	n.pool = x509.NewCertPool()
	n.pool.AppendCertsFromPEM(n.CA.BundlePEM())
	if code := n.verifyAt(map[string]string{"x509_svid": chainPEM(old)}); code != http.StatusUnauthorized {
		t.Fatalf("X.509-SVID of a retired root: %d", code)
	}
	fresh.creds.Bundle = n.pool
	if err := n.callOnce(fresh, true); err != nil {
		t.Fatalf("new X.509-SVID after the old root was retired: %v", err)
	}
}
