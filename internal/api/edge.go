package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/refusal"
	"github.com/ward-dev/ward/internal/strictjson"
)

// Every request goes through [Server.Handler], which gives it an exchange:
// what its handling learns of who sent it (authentication fills it in) and,
// when it is refused, of why. The response writer records a refusal when
// an error status (400 or more) is written, before it is written, so an
// answered refusal is already in the audit log. A handler that knows more
// than the status (the reason, a kind) says so with s.refuse before
// writing; an error status written by anything else (the router's 404 and
// 405, the witness) is recorded with what the status says.

// exchange is what one request's handling learned about it.
type exchange struct {
	who      refusal.Refusal // Principal, Proven, Basis, Session, Agent, Sponsor
	kind     string
	reason   string
	recorded bool
}

type exchangeKey struct{}

func exchangeOf(r *http.Request) *exchange {
	if x, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		return x
	}
	return &exchange{} // a request that did not come through Handler
}

// proven records that r authenticated as a session.
func proven(r *http.Request, c *gateway.Caller) {
	x := exchangeOf(r)
	x.who = refusal.Refusal{Principal: c.SPIFFEID, Proven: true, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor}
}

// provenPrincipal records that r authenticated as an operator or sponsor.
func provenPrincipal(r *http.Request, name string) {
	exchangeOf(r).who = refusal.Refusal{Principal: name, Proven: true}
}

// provenInactive records that r proved it holds a session's credentials
// (ward's signature on them checked, and possession of the session's key)
// for a session that is no longer active: the session did send it, so the
// refusal is the session's (found by its id), though it was refused.
func provenInactive(r *http.Request, principal, session, agent, sponsor string) {
	exchangeOf(r).who = refusal.Refusal{Principal: principal, Proven: true, Session: session, Agent: agent, Sponsor: sponsor}
}

// claimed records who r says it is from, without proof, unless it has
// already proven who it is.
func claimed(r *http.Request, principal, basis string) {
	x := exchangeOf(r)
	if x.who.Proven || principal == "" {
		return
	}
	x.who = refusal.Refusal{Principal: principal, Basis: basis}
}

// claimGrant records the session an unverified grant names.
func claimGrant(r *http.Request, token, basis string) {
	claimed(r, grantClaim(token), basis)
}

// maxClaimedToken bounds the token whose unverified payload is read for a
// claim.
const maxClaimedToken = 16 << 10

// grantClaim returns the SPIFFE ID (or, failing that, the session id) the
// payload of a JWT names, without verifying anything: it is only a claim,
// for the record.
func grantClaim(token string) string {
	if len(token) > maxClaimedToken {
		return ""
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		SPIFFEID string `json:"spiffe_id"`
		Session  string `json:"sid"`
	}
	if strictjson.UnmarshalOpen(payload, &c) != nil {
		return ""
	}
	if c.SPIFFEID != "" {
		return c.SPIFFEID
	}
	if c.Session != "" {
		return "session " + c.Session
	}
	return ""
}

// claimFromHeaders records who r's credentials claim it is from, without
// verifying them: a grant in the Authorization header, or the first URI of
// a client certificate.
func claimFromHeaders(r *http.Request) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme == "DPoP" || scheme == "Bearer" {
		claimGrant(r, strings.TrimSpace(token), "unverified grant")
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if uris := r.TLS.PeerCertificates[0].URIs; len(uris) > 0 {
			claimed(r, uris[0].String(), "unverified client certificate")
		}
	}
}

// refuse says why r is being refused, before its error status is
// written: kind is the class of refusal ("" derives it from the status).
func refuse(r *http.Request, kind, reason string) {
	x := exchangeOf(r)
	if kind != "" {
		x.kind = kind
	}
	x.reason = reason
}

// kindOf is the class of a refusal that did not say.
func kindOf(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusMethodNotAllowed:
		return "method"
	case status == http.StatusConflict:
		return "conflict"
	case status == http.StatusServiceUnavailable, status == http.StatusTooManyRequests:
		return "unavailable"
	case status >= 500:
		return "internal"
	}
	return "request" // malformed, too large, wrong media type, ...
}

// sourceOf is r's remote address without the port.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// record records r's refusal with status, once.
func (s *Server) record(r *http.Request, status int) {
	x := exchangeOf(r)
	if x.recorded {
		return
	}
	x.recorded = true
	if x.who.Principal == "" {
		claimFromHeaders(r) // refused before authentication looked
	}
	ref := x.who
	ref.Kind, ref.Status, ref.Method, ref.Path, ref.Source = x.kind, status, r.Method, r.URL.Path, sourceOf(r)
	if ref.Kind == "" {
		ref.Kind = kindOf(status)
	}
	ref.Reason = x.reason
	if ref.Reason == "" {
		ref.Reason = http.StatusText(status)
	}
	if err := s.refusals.Record(r.Context(), ref); err != nil {
		s.cfg.Logger.Error("recording a refusal failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
}

// recordingWriter records the request's refusal when an error status is
// written, before writing it.
type recordingWriter struct {
	http.ResponseWriter
	s     *Server
	r     *http.Request
	wrote bool
}

func (w *recordingWriter) WriteHeader(status int) {
	if !w.wrote && status >= 200 {
		w.wrote = true
		if status >= 400 {
			w.s.record(w.r, status)
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming responses through (the MCP endpoint's SSE).
func (w *recordingWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanic, deferred by Handler, turns a panic of a request's handler
// into a 500 answer, a log entry with the stack and a recorded refusal:
// no input takes the node down, and none goes unseen. The log holds the
// panic's type (and the text of a runtime error, which is ward's own), the
// stack, the method and the path: never headers, a body or a query.
func (s *Server) recoverPanic(w *recordingWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v) // net/http's way to abort a response on purpose
	}
	what := fmt.Sprintf("%T", v)
	var re runtime.Error
	if err, ok := v.(error); ok && errors.As(err, &re) {
		what = re.Error()
	}
	s.cfg.Logger.Error("panic serving a request; answered 500", "method", r.Method, "path", r.URL.Path, "panic", what, "stack", string(debug.Stack()))
	refuse(r, "panic", "internal error while handling the request")
	if !w.wrote {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error; see the server log"})
		return
	}
	// The answer had begun: record the refusal and cut the connection, so
	// the client sees a broken answer rather than a truncated one.
	s.record(r, http.StatusInternalServerError)
	panic(http.ErrAbortHandler)
}

// onMCPRefuse is the MCP transport's refusal hook: it says why, before the
// transport writes its error status.
func (s *Server) onMCPRefuse(r *http.Request, status int, reason string) {
	kind := "transport"
	switch status {
	case http.StatusUnauthorized:
		kind = "authentication"
	case http.StatusForbidden:
		kind = "forbidden"
	}
	refuse(r, kind, reason)
}

// withExchange gives r its exchange.
func withExchange(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), exchangeKey{}, &exchange{}))
}
