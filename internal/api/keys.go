package api

import (
	"context"
	"net/http"

	"github.com/ward-dev/ward/internal/keyring"
	"github.com/ward-dev/ward/internal/store"
)

// Keys lists and rotates the trust domain's signing keys (server keys.go).
type Keys interface {
	// ListKeys shows every key, never its material.
	ListKeys() []keyring.View
	// RotateKey makes a new active key of kind and returns it; by is the
	// admin who asked, for the record.
	RotateKey(ctx context.Context, kind string, by string) (keyring.View, error)
	// RetireKey retires a retiring key at once, ahead of its not-after
	// (its material leaked): what it signed is refused from then on.
	RetireKey(ctx context.Context, kid string, by string) (keyring.View, error)
}

// RetireRequest is the body of POST /v1/keys/retire.
type RetireRequest struct {
	KID string `json:"kid"`
}

// RotateRequest is the body of POST /v1/keys/rotate.
type RotateRequest struct {
	Kind string `json:"kind"`
}

// listKeys is GET /v1/keys: admins only.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return &httpError{http.StatusForbidden, "only an admin may list the trust domain's keys"}
	}
	writeJSON(w, http.StatusOK, s.cfg.Keys.ListKeys())
	return nil
}

// rotateKey is POST /v1/keys/rotate {"kind": "ca|jwt|grant|receipt"}:
// admins only.
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return &httpError{http.StatusForbidden, "only an admin may rotate the trust domain's keys"}
	}
	var req RotateRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Kind == "" {
		return badRequest("kind: the kind of key to rotate (ca, jwt, grant or receipt)")
	}
	v, err := s.cfg.Keys.RotateKey(r.Context(), req.Kind, p.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// retireKey is POST /v1/keys/retire {"kid": "…"}: admins only.
func (s *Server) retireKey(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return &httpError{http.StatusForbidden, "only an admin may retire the trust domain's keys"}
	}
	var req RetireRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.KID == "" || len(req.KID) > 64 {
		return badRequest("kid: the key ID of a retiring key (ward keys list)")
	}
	v, err := s.cfg.Keys.RetireKey(r.Context(), req.KID, p.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
