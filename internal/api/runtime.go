package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/store"
)

// Runtime is what the API needs of the node for `ward run`: the runtime
// that hosts an agent's program asks whether the session may run it, and
// records what the program tried and was refused.
type Runtime interface {
	// DecideExec decides the action exec for a session and records the
	// decision.
	DecideExec(ctx context.Context, session string, e policy.ExecRequest) (ExecDecision, error)
	// RecordRuntime appends a runtime's events to the session's audit
	// trail (the session may have ended: a runtime reports how it ended).
	RecordRuntime(ctx context.Context, by store.Principal, session store.Session, events []RuntimeEvent) error
}

// ExecDecision is the answer of POST /v1/sessions/{id}/exec.
type ExecDecision struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
}

// RuntimeEvent is one thing a runtime did or refused: "start", "end",
// "connect", "socket", "signal", "ptrace", "syscall", "changes", ...
type RuntimeEvent struct {
	Time   time.Time      `json:"time"`
	Kind   string         `json:"kind"`
	Detail string         `json:"detail"`
	Pid    int            `json:"pid,omitempty"`
	Data   map[string]any `json:"data,omitempty"`
}

// Bounds of one POST /v1/sessions/{id}/runtime.
const (
	maxRuntimeEvents = 100
	maxRuntimeDetail = 4096
)

// sponsored loads a session an operator may act for: an admin, or the
// session's own sponsor.
func (s *Server) sponsored(r *http.Request, p store.Principal) (store.Session, error) {
	x, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		return store.Session{}, fmt.Errorf("session %q: %w", r.PathValue("id"), err)
	}
	if p.Kind != "admin" && p.Name != x.Sponsor {
		return store.Session{}, fmt.Errorf("session %q: %w", x.ID, store.ErrNotFound)
	}
	return x, nil
}

func (s *Server) decideExec(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	x, err := s.sponsored(r, p)
	if err != nil {
		return err
	}
	var e policy.ExecRequest
	if err := s.decode(w, r, &e); err != nil {
		return err
	}
	d, err := s.cfg.Runtime.DecideExec(r.Context(), x.ID, e)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) recordRuntime(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	x, err := s.sponsored(r, p)
	if err != nil {
		return err
	}
	var body struct {
		Events []RuntimeEvent `json:"events"`
	}
	if err := s.decode(w, r, &body); err != nil {
		return err
	}
	if len(body.Events) == 0 || len(body.Events) > maxRuntimeEvents {
		return badRequest("send 1 to %d events", maxRuntimeEvents)
	}
	for _, e := range body.Events {
		if e.Kind == "" || len(e.Kind) > 32 {
			return badRequest("every event needs a kind of at most 32 bytes")
		}
		if len(e.Detail) > maxRuntimeDetail {
			return badRequest("an event's detail is at most %d bytes", maxRuntimeDetail)
		}
	}
	if err := s.cfg.Runtime.RecordRuntime(r.Context(), p, x, body.Events); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
