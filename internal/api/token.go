package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/grant"
)

// RFC 8693 names.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeGrant identifies a ward session grant.
	TokenTypeGrant = "urn:ward:params:oauth:token-type:grant"
)

// tokenError answers in the RFC 6749 §5.2 error format.
func tokenError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `DPoP algs="ES256"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// tokenExchange implements RFC 8693 token exchange for sub-agents.
//
// The delegating session sends its grant as subject_token together with a
// DPoP proof (header DPoP, ath over subject_token) signed by its own key, and
// the sub-agent's PKCS#10 request as the extension parameter "csr" (base64url
// DER). "scope" narrows (space-separated kind:pattern items), "ttl" shortens,
// "agent" names a different registered agent of the same sponsor, "audience"
// sets the JWT-SVID audience. The answer carries the child grant as
// access_token (token_type DPoP) and the child's SVIDs.
func (s *Server) tokenExchange(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "malformed form body: "+err.Error())
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != GrantTypeTokenExchange {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be "+GrantTypeTokenExchange)
		return
	}
	if f.Get("subject_token_type") != TokenTypeGrant {
		tokenError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be "+TokenTypeGrant)
		return
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != TokenTypeGrant {
		tokenError(w, http.StatusBadRequest, "invalid_request", "requested_token_type must be "+TokenTypeGrant)
		return
	}
	subject := f.Get("subject_token")
	if subject == "" {
		tokenError(w, http.StatusBadRequest, "invalid_request", "subject_token is required")
		return
	}
	_, parent, err := s.dpop(r, subject)
	if err != nil {
		if st := statusOf(err); st == http.StatusInternalServerError || st == http.StatusServiceUnavailable {
			s.fail(w, r, err)
			return
		}
		tokenError(w, http.StatusUnauthorized, "invalid_grant", err.Error())
		return
	}
	csr, err := decodeB64(f.Get("csr"))
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "csr: the sub-agent's PKCS#10 request (base64url DER) is required")
		return
	}
	req := authority.ExchangeRequest{Agent: f.Get("agent"), CSR: csr}
	if sc := f.Get("scope"); sc != "" {
		scope, err := authority.ParsePatterns(strings.Fields(sc))
		if err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_scope", err.Error())
			return
		}
		req.Scope = &scope
	}
	if req.TTL, err = parseTTL(f.Get("ttl")); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if aud := f["audience"]; len(aud) > 0 {
		req.JWTAudience = aud
	}
	is, err := s.cfg.Authority.Exchange(r.Context(), parent, req)
	if err != nil {
		status, code := statusOf(err), "invalid_request"
		switch {
		case errors.Is(err, grant.ErrWiden):
			code = "invalid_scope"
		case errors.Is(err, grant.ErrDepth), errors.Is(err, authority.ErrForbidden):
			code = "invalid_target"
		case errors.Is(err, authority.ErrUnauthenticated):
			code = "invalid_grant"
		case status == http.StatusInternalServerError:
			s.fail(w, r, err)
			return
		}
		tokenError(w, status, code, err.Error())
		return
	}
	view := s.issuedView(is)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      is.Grant,
		"issued_token_type": TokenTypeGrant,
		"token_type":        "DPoP",
		"expires_in":        int(is.Session.Expires.Sub(is.Claims.IssuedAt).Seconds()),
		"scope":             strings.Join(authority.FormatPatterns(is.Claims.Scope), " "),
		"session":           view,
	})
}
