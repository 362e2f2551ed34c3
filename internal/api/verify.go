package api

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net/http"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// maxSVIDChainPEM bounds the PEM chain a service may send to /v1/verify.
const maxSVIDChainPEM = 16 << 10

// VerifyView is what ward tells a service about an agent that called it.
type VerifyView struct {
	Valid    bool   `json:"valid"` // the session is active and its agent not quarantined
	SPIFFEID string `json:"spiffe_id"`
	Agent    string `json:"agent"`
	Sponsor  string `json:"sponsor"`
	Session  string `json:"session"`
	Status   string `json:"status"` // the agent's: active or quarantined
	Trust    int    `json:"trust"`  // the agent's trust score, 0-100
	// ObjectiveHash commits to the session's objective without telling it
	// to whoever holds the token (a service may pass it on).
	ObjectiveHash string `json:"objective_hash"`
	Depth         int    `json:"depth"`
}

// verify lets a service that an agent called ask about it: POST /v1/verify
// with {"jwt_svid": "<token the agent presented>", "audience": "<the
// service>"}, or, for an agent that called over mutual TLS, {"x509_svid":
// "<the PEM chain it presented>"}. The SVID must verify against ward's
// trust bundle (for that audience); holding it is what entitles the caller
// to the answer, so no other credential is needed: a service holds it only
// because the agent presented it. An ended session or a quarantined agent
// is reported as not valid, never as an error.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		JWTSVID  string `json:"jwt_svid"`
		Audience string `json:"audience"`
		X509SVID string `json:"x509_svid"`
	}
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	var id spiffeid.ID
	switch {
	case req.X509SVID != "" && req.JWTSVID == "" && req.Audience == "":
		chain, err := parseChain(req.X509SVID)
		if err == nil {
			id, err = s.cfg.CA.VerifyX509SVID(chain)
		}
		if err != nil {
			s.fail(w, r, &httpError{http.StatusUnauthorized, "the X.509-SVID does not verify against this trust domain's bundle"})
			return
		}
	case req.X509SVID == "" && req.JWTSVID != "" && req.Audience != "":
		var err error
		if id, err = s.cfg.CA.VerifyJWTSVID(req.JWTSVID, []string{req.Audience}); err != nil {
			s.fail(w, r, &httpError{http.StatusUnauthorized, "the JWT-SVID does not verify for this audience"})
			return
		}
	default:
		s.fail(w, r, badRequest("send jwt_svid and audience, or x509_svid alone"))
		return
	}
	session, err := s.cfg.Authority.SessionFromSPIFFEID(id)
	if err != nil {
		s.fail(w, r, &httpError{http.StatusUnauthorized, "the JWT-SVID names no ward session"})
		return
	}
	sess, err := s.cfg.Store.GetSession(r.Context(), session)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ag, err := s.cfg.Store.GetAgent(r.Context(), sess.Agent)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, callerErr := s.cfg.Authority.Caller(r.Context(), session)
	writeJSON(w, http.StatusOK, VerifyView{
		Valid: callerErr == nil && ag.Status == "active", SPIFFEID: id.String(), Agent: ag.Name, Sponsor: ag.Sponsor,
		Session: session, Status: ag.Status, Trust: ag.Trust, ObjectiveHash: sess.ObjectiveHash, Depth: sess.Depth,
	})
}

// parseChain reads a PEM chain of certificates, leaf first, and nothing
// else.
func parseChain(p string) ([]*x509.Certificate, error) {
	if len(p) > maxSVIDChainPEM {
		return nil, badRequest("x509_svid is over %d bytes", maxSVIDChainPEM)
	}
	rest := []byte(p)
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, badRequest("x509_svid holds a %s block", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, badRequest("x509_svid: %v", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 || len(bytes.TrimSpace(rest)) > 0 {
		return nil, badRequest("x509_svid must be PEM certificates and nothing else")
	}
	return chain, nil
}
