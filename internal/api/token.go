package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/grant"
)

// RFC 8693 names.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeGrant identifies a ward session grant.
	TokenTypeGrant = "urn:ward:params:oauth:token-type:grant"
)

// tokenError answers in the RFC 6749 §5.2 error format; the refusal is
// recorded as kind "token_exchange".
func tokenError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `DPoP algs="ES256"`)
	}
	refuse(r, "token_exchange", code+": "+desc)
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// tokenParams are the parameters the token endpoint reads; multi are those
// RFC 8693 §2.1 lets a client repeat.
var (
	tokenParams = []string{"grant_type", "subject_token", "subject_token_type", "requested_token_type", "scope", "audience", "csr", "ttl", "agent"}
	tokenMulti  = map[string]bool{"audience": true}
	// tokenUnsupported are RFC 8693 parameters ward does not implement:
	// ignoring them would issue something other than what was asked.
	tokenUnsupported = map[string]bool{"actor_token": true, "actor_token_type": true, "resource": true}
)

// shownName is how an error names a parameter the client sent: quoted
// when it looks like a parameter name, and not shown otherwise (a token
// pasted where a name goes must not come back in the answer or the log).
func shownName(name string) string {
	if len(name) <= 32 && !strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) {
		return fmt.Sprintf("%q", name)
	}
	return "(a name that is not a parameter name, not shown)"
}

// tokenForm reads the token endpoint's form strictly: the body only
// (application/x-www-form-urlencoded, bounded), nothing in the URL's
// query, valid UTF-8, every parameter one ward reads, spelled exactly so,
// and none but "audience" more than once (RFC 6749 §3.1: parameters
// "MUST NOT be included more than once"). RFC 6749 §3.2 has a server
// ignore parameters it does not know; ward refuses them instead, because a
// misspelt "scope" ignored would give the sub-agent its parent's whole
// scope. The error comes with the status to answer: 413 for a body over
// the limit (so a client knows to send less, not to fix its form), 400
// otherwise.
func (s *Server) tokenForm(w http.ResponseWriter, r *http.Request) (url.Values, int, error) {
	f, err := s.readTokenForm(w, r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the request body exceeds %d bytes: send a smaller form", s.cfg.MaxBody)
		}
		return nil, http.StatusBadRequest, err
	}
	return f, 0, nil
}

func (s *Server) readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" ||
		(params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		return nil, errors.New("the request body must be application/x-www-form-urlencoded (UTF-8)")
	}
	if r.URL.RawQuery != "" {
		return nil, errors.New("parameters go in the request body, not in the URL's query")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, err
		}
		return nil, errors.New("the request body could not be read")
	}
	if !utf8.Valid(body) {
		return nil, errors.New("the request body is not valid UTF-8")
	}
	f, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("malformed form body: %v", err)
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range f {
			if !yield(k) {
				return
			}
		}
	}) {
		vals := f[name]
		switch {
		case !utf8.ValidString(name) || slices.ContainsFunc(vals, func(v string) bool { return !utf8.ValidString(v) }):
			return nil, fmt.Errorf("parameter %s: not valid UTF-8", shownName(name))
		case tokenUnsupported[name]:
			return nil, fmt.Errorf("parameter %q is not supported: the sub-agent proves its own key with csr", name)
		case !slices.Contains(tokenParams, name):
			return nil, fmt.Errorf("unknown parameter %s (names are case-sensitive): send only %s", shownName(name), strings.Join(tokenParams, ", "))
		case len(vals) > 1 && !tokenMulti[name]:
			return nil, fmt.Errorf("parameter %q is repeated: send it once (RFC 6749 §3.1)", name)
		}
	}
	return f, nil
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
	f, status, err := s.tokenForm(w, r)
	if err != nil {
		tokenError(w, r, status, "invalid_request", err.Error())
		return
	}
	claimGrant(r, f.Get("subject_token"), "unverified grant")
	if f.Get("grant_type") != GrantTypeTokenExchange {
		tokenError(w, r, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be "+GrantTypeTokenExchange)
		return
	}
	if f.Get("subject_token_type") != TokenTypeGrant {
		tokenError(w, r, http.StatusBadRequest, "invalid_request", "subject_token_type must be "+TokenTypeGrant)
		return
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != TokenTypeGrant {
		tokenError(w, r, http.StatusBadRequest, "invalid_request", "requested_token_type must be "+TokenTypeGrant)
		return
	}
	subject := f.Get("subject_token")
	if subject == "" {
		tokenError(w, r, http.StatusBadRequest, "invalid_request", "subject_token is required")
		return
	}
	_, parent, err := s.dpop(r, subject)
	if err != nil {
		if st := statusOf(err); st == http.StatusInternalServerError || st == http.StatusServiceUnavailable {
			refuse(r, "token_exchange", "")
			s.fail(w, r, err)
			return
		}
		if errors.Is(err, grant.ErrUseNonce) {
			// RFC 9449 §8: an authorization server answers 400.
			w.Header().Set("DPoP-Nonce", s.cfg.Proofs.Nonce())
			tokenError(w, r, http.StatusBadRequest, "use_dpop_nonce", err.Error())
			return
		}
		tokenError(w, r, http.StatusUnauthorized, "invalid_grant", err.Error())
		return
	}
	csr, err := decodeB64(f.Get("csr"))
	if err != nil {
		tokenError(w, r, http.StatusBadRequest, "invalid_request", "csr: the sub-agent's PKCS#10 request (base64url DER) is required")
		return
	}
	req := authority.ExchangeRequest{Agent: f.Get("agent"), CSR: csr}
	if sc := f.Get("scope"); sc != "" {
		scope, err := authority.ParsePatterns(strings.Fields(sc))
		if err != nil {
			tokenError(w, r, http.StatusBadRequest, "invalid_scope", err.Error())
			return
		}
		req.Scope = &scope
	}
	if req.TTL, err = parseTTL(f.Get("ttl")); err != nil {
		tokenError(w, r, http.StatusBadRequest, "invalid_request", err.Error())
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
			refuse(r, "token_exchange", "")
			s.fail(w, r, err)
			return
		}
		tokenError(w, r, status, code, err.Error())
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
