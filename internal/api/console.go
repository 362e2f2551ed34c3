package api

import (
	"context"
	"net/http"

	"github.com/ward-dev/ward/internal/store"
)

// operatorKey keys the principal an in-process caller has authenticated.
type operatorKey struct{}

// AsOperator returns a copy of ctx under which the operator routes act for
// p without an Authorization header. Only code in this process can set it:
// the console (internal/console) does, for the operator it has
// authenticated with its own login, session cookie and CSRF token, and
// for the routes its role allows. No request from the network carries it.
func AsOperator(ctx context.Context, p store.Principal) context.Context {
	return context.WithValue(ctx, operatorKey{}, p)
}

// operatorOf returns the principal AsOperator put in ctx, if any.
func operatorOf(ctx context.Context) (store.Principal, bool) {
	p, ok := ctx.Value(operatorKey{}).(store.Principal)
	return p, ok && p.Name != ""
}

// Mount serves h at pattern ("/console/") behind the API's own request
// checks: header and query limits, panic recovery and the recording of
// every refusal. Call it before serving.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Routes is the API's router without the checks of Handler, for an
// in-process caller that forwards a request Handler already took (the
// console): the request keeps its refusal record.
func (s *Server) Routes() http.Handler { return s.mux }
