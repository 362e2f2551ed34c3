package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/ward-dev/ward/internal/identity"
)

// A CA mints a session's X.509-SVID from the agent's CSR and a JWT-SVID;
// a relying party verifies both with go-spiffe and the published bundle.
func Example() {
	dir, err := os.MkdirTemp("", "ward-identity")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ca, _, err := identity.Open(identity.Config{TrustDomain: "example.org", Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	id, err := identity.SessionID(ca.TrustDomain(), "reporter", "01hx3k")
	if err != nil {
		log.Fatal(err)
	}

	// The agent keeps its key and sends only a CSR.
	agentKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, agentKey)
	chain, err := ca.MintX509SVID(csr, id, 0)
	if err != nil {
		log.Fatal(err)
	}
	token, _, err := ca.MintJWTSVID(id, []string{"files"}, 0)
	if err != nil {
		log.Fatal(err)
	}

	// A relying party fetched /.well-known/spiffe-bundle.
	doc, _ := ca.BundleJSON()
	bundle, err := spiffebundle.Parse(ca.TrustDomain(), doc)
	if err != nil {
		log.Fatal(err)
	}
	svid, err := jwtsvid.ParseAndValidate(token, bundle, []string{"files"})
	if err != nil {
		log.Fatal(err)
	}
	x509ID, err := ca.VerifyX509SVID(chain)
	if err != nil {
		log.Fatal(err)
	}
	agent, session, _ := identity.ParseSessionID(svid.ID)
	fmt.Println(x509ID)
	fmt.Println(svid.ID)
	fmt.Println(agent, session)
	// Output:
	// spiffe://example.org/agent/reporter/session/01hx3k
	// spiffe://example.org/agent/reporter/session/01hx3k
	// reporter 01hx3k
}
