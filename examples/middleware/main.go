// Command middleware is a service that AI agents call, protected by ward
// in one line (package wardauth): only an agent whose session ward vouches
// for — SVID valid, session active, agent not quarantined, trust score at
// least --min-trust — reaches the handler, which learns who called.
//
// Run it against a node (`ward up` prints WARD_SERVER and WARD_CA):
//
//	go run ./examples/middleware --listen 127.0.0.1:9443 --audience billing --min-trust 50
//
// then call it as an agent, with a JWT-SVID for its audience:
//
//	ward session start --agent reporter --objective "send the invoices" --jwt-audience billing -o json > s.json
//	curl -k -H "Authorization: Bearer $(jq -r .jwt_svid s.json)" https://127.0.0.1:9443/invoices
//
// or over mutual TLS with the session's X.509-SVID (--cert, --key).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/ward-dev/ward/wardauth"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9443", "address to serve on")
	node := flag.String("node", os.Getenv("WARD_SERVER"), "the ward node's URL (default $WARD_SERVER)")
	bundle := flag.String("bundle", os.Getenv("WARD_CA"), "the trust domain's bundle.pem (default $WARD_CA)")
	audience := flag.String("audience", "billing", "this service's JWT-SVID audience")
	minTrust := flag.Int("min-trust", 50, "lowest trust score let in")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("billing service on https://%s/invoices, checking callers with ward at %s (min trust %d)\n", ln.Addr(), *node, *minTrust)
	if err := serve(ctx, ln, wardauth.Config{Node: *node, Bundle: *bundle, Audience: *audience, MinTrust: *minTrust}); err != nil {
		log.Fatal(err)
	}
}

// serve runs the service on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, cfg wardauth.Config) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /invoices", func(w http.ResponseWriter, r *http.Request) {
		c, _ := wardauth.CallerFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"invoices": []string{"INV-1", "INV-2"}, "for_agent": c.Agent, "sponsor": c.Sponsor, "session": c.Session, "trust": c.Trust})
	})

	// The one line: every request passes ward's check first.
	verifier, err := wardauth.New(cfg)
	if err != nil {
		return err
	}
	handler := verifier.Wrap(mux)

	cert, err := selfSigned(ln.Addr().String())
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, TLSConfig: verifier.TLSConfig(cert), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// selfSigned makes the service's own TLS certificate (a real service has
// one from its own PKI).
func selfSigned(addr string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	host, _, _ := net.SplitHostPort(addr)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "billing"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP(host)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
