package sessioncred

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/grant"
)

func TestSaveLoad(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := CSR(key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CSR: %v", err)
	}
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	svid := EncodeCertificates([]*x509.Certificate{srv.Certificate()})
	dir := filepath.Join(t.TempDir(), "s")
	c := &Credentials{Info: Info{Session: "s1", SPIFFEID: "spiffe://t/agent/a/session/s1", Agent: "a", Server: "https://x", Expires: time.Now().Add(time.Hour).UTC().Round(0)},
		Key: key, Grant: "g.r.ant", JWTSVID: "j.w.t"}
	if err := Save(dir, c, svid, svid); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"key.pem": 0o600, "grant.jwt": 0o600, "jwt-svid.txt": 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v", name, err, st.Mode())
		}
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Key.Equal(key) || got.Grant != c.Grant || got.JWTSVID != c.JWTSVID || got.Session != "s1" || !got.SVID[0].Equal(srv.Certificate()) {
		t.Fatalf("loaded %+v", got.Info)
	}
	os.WriteFile(filepath.Join(dir, "key.pem"), []byte("garbage"), 0o600)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "key.pem") {
		t.Fatalf("garbage key: %v", err)
	}
}

// TestTransportProves: every request carries the grant and a fresh proof
// that ward's verifier accepts for that method and URL, once.
func TestTransportProves(t *testing.T) {
	key, _ := NewKey()
	jkt, _ := grant.Thumbprint(key.Public())
	pv := grant.NewProofVerifier(grant.ProofVerifierConfig{})
	var proofs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		p, err := pv.Verify(r.Header.Get("DPoP"), r.Method, "http://"+r.Host+r.URL.Path, tok)
		if !ok || err != nil || p.JKT != jkt {
			http.Error(w, "bad proof", http.StatusUnauthorized)
			return
		}
		proofs = append(proofs, r.Header.Get("DPoP"))
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &Transport{Key: key, Grant: "the-grant"}}
	for i := 0; i < 3; i++ {
		resp, err := hc.Post(srv.URL+"/mcp?x=1", "application/json", strings.NewReader("{}"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}
	if len(proofs) != 3 || proofs[0] == proofs[1] {
		t.Fatal("proofs are not fresh per request")
	}
	// Replaying a captured proof fails.
	req, _ := http.NewRequest("POST", srv.URL+"/mcp", strings.NewReader("{}"))
	req.Header.Set("Authorization", "DPoP the-grant")
	req.Header.Set("DPoP", proofs[0])
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed proof: %d", resp.StatusCode)
	}
}
