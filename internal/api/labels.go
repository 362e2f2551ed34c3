package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ward-dev/ward/internal/store"
)

// Labels is what the API needs of the node's taint tracking.
type Labels interface {
	// LabelConfig describes the labels in force: per tool and host
	// pattern, and the default for what is not listed.
	LabelConfig() any
	// SessionLabels are a session's labels now.
	SessionLabels(session string) []string
	// ClearLabel removes a label an operator may clear (one a playbook
	// or a content scan gave), recording who did it.
	ClearLabel(ctx context.Context, by store.Principal, session, label string) error
}

func (s *Server) taintConfig(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	writeJSON(w, http.StatusOK, s.cfg.Labels.LabelConfig())
	return nil
}

// session returns the session named in the path if p may see it.
func (s *Server) session(r *http.Request, p store.Principal) (store.Session, error) {
	x, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		return x, fmt.Errorf("session %q: %w", r.PathValue("id"), err)
	}
	if p.Kind != "admin" && p.Name != x.Sponsor {
		return x, fmt.Errorf("session %q: %w", x.ID, store.ErrNotFound)
	}
	return x, nil
}

func (s *Server) sessionLabels(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	x, err := s.session(r, p)
	if err != nil {
		return err
	}
	labels := s.cfg.Labels.SessionLabels(x.ID)
	if labels == nil {
		labels = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": x.ID, "labels": labels})
	return nil
}

func (s *Server) clearLabel(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return &httpError{http.StatusForbidden, "only an admin may clear a session's label"}
	}
	x, err := s.session(r, p)
	if err != nil {
		return err
	}
	if err := s.cfg.Labels.ClearLabel(r.Context(), p, x.ID, r.PathValue("label")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": x.ID, "labels": s.cfg.Labels.SessionLabels(x.ID)})
	return nil
}
