package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTLSHandshake runs a real mutual-TLS exchange: ward's server
// certificate verified by a client that trusts only CertPool, and a client
// X.509-SVID minted from a CSR verified by the server with VerifyX509SVID.
func TestTLSHandshake(t *testing.T) {
	ca := newCA(t, Config{})
	srvCert, err := ca.ServerCertificate([]string{"localhost", "127.0.0.1", "[::1]", "LOCALHOST"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := ca.VerifyX509SVID([]*x509.Certificate{srvCert.Leaf}); err != nil || id.String() != "spiffe://example.org/ward/server" {
		t.Fatalf("server certificate id %s, %v", id, err)
	}
	if got := strings.Join(srvCert.Leaf.DNSNames, ","); got != "localhost" {
		t.Fatalf("DNS SANs %q", got)
	}
	if len(srvCert.Leaf.IPAddresses) != 2 {
		t.Fatalf("IP SANs %v", srvCert.Leaf.IPAddresses)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The connection was verified during the handshake; say who it was.
		id, err := ca.VerifyX509SVID(r.TLS.PeerCertificates)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		io.WriteString(w, id.String())
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := ca.VerifyX509SVID(cs.PeerCertificates)
			return err
		},
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected below
	srv.StartTLS()
	t.Cleanup(srv.Close)

	clientFor := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      ca.CertPool(),
			Certificates: certs,
			MinVersion:   tls.VersionTLS13,
		}}}
	}

	key := newP256(t)
	id := mustSessionID(t, ca, "reporter", "01hx3k")
	chain, err := ca.MintX509SVID(makeCSR(t, key, nil), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	clientCert := tls.Certificate{Certificate: [][]byte{chain[0].Raw}, PrivateKey: key, Leaf: chain[0]}

	resp, err := clientFor(clientCert).Get(srv.URL)
	if err != nil {
		t.Fatalf("mTLS request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != id.String() {
		t.Fatalf("server saw %d %q, want %s", resp.StatusCode, body, id)
	}

	t.Run("no client certificate", func(t *testing.T) {
		if resp, err := clientFor().Get(srv.URL); err == nil {
			resp.Body.Close()
			t.Fatal("request without client certificate succeeded")
		}
	})
	t.Run("client certificate from another CA", func(t *testing.T) {
		other := newCA(t, Config{})
		chain, err := other.MintX509SVID(makeCSR(t, key, nil), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := tls.Certificate{Certificate: [][]byte{chain[0].Raw}, PrivateKey: key}
		if resp, err := clientFor(c).Get(srv.URL); err == nil {
			resp.Body.Close()
			t.Fatal("request with a foreign client certificate succeeded")
		}
	})
	t.Run("client not trusting the CA", func(t *testing.T) {
		other := newCA(t, Config{})
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: other.CertPool(), Certificates: []tls.Certificate{clientCert},
		}}}
		_, err := c.Get(srv.URL)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("err = %v, want unknown authority", err)
		}
	})
}

func TestServerCertificateRejects(t *testing.T) {
	ca := newCA(t, Config{})
	for _, hosts := range [][]string{{""}, {"bad host"}, {"-x.example"}, {"a..b"}, {"exa_mple.org"}, make([]string, maxHosts+1)} {
		if _, err := ca.ServerCertificate(hosts, 0); err == nil {
			t.Errorf("ServerCertificate(%q) succeeded", hosts)
		}
	}
	if _, err := ca.ServerCertificate([]string{"localhost"}, -1); err == nil {
		t.Error("negative ttl accepted")
	}
}
