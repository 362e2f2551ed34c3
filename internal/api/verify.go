package api

import "net/http"

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
// service>"}. The JWT-SVID must verify against ward's trust bundle for that
// audience; holding it is what entitles the caller to the answer, so no
// other credential is needed. An ended session or a quarantined agent is
// reported as not valid, never as an error.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	var req struct {
		JWTSVID  string `json:"jwt_svid"`
		Audience string `json:"audience"`
	}
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.JWTSVID == "" || req.Audience == "" {
		s.fail(w, r, badRequest("jwt_svid and audience are required"))
		return
	}
	id, err := s.cfg.CA.VerifyJWTSVID(req.JWTSVID, []string{req.Audience})
	if err != nil {
		s.fail(w, r, &httpError{http.StatusUnauthorized, "the JWT-SVID does not verify for this audience"})
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
