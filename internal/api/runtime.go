package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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

// RuntimeLiveTimeout is how long the node waits for the next line on a
// runtime's liveness channel before it takes the runtime to be gone;
// `ward run` sends one every 5s.
const RuntimeLiveTimeout = 20 * time.Second

// maxLiveLine bounds one line of a liveness channel.
const maxLiveLine = 16

// runtimeLive serves POST /v1/sessions/{id}/runtime/live: the liveness
// channel of the runtime that hosts an active session. Its body is a
// stream of lines: "alive" at least every RuntimeLiveTimeout while the
// runtime lives, and "end" once its `ward run` has ended the session
// itself, which the node answers with 204.
//
// Any other end of the channel means the runtime is gone without ending
// its session: the connection closed (`ward run` was killed: its kernel
// closed the socket), fell silent (its host went away), or carried
// something else. The node then ends the session at once, revoking its
// grants, rather than letting it live on to its TTL with nothing to
// confine it; the answer, if anyone still reads it, is 410.
func (s *Server) runtimeLive(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	x, err := s.sponsored(r, p)
	if err != nil {
		return err
	}
	if x.Status != store.SessionActive {
		return &httpError{http.StatusConflict, fmt.Sprintf("session %s is %s, not active", x.ID, x.Status)}
	}
	rc := http.NewResponseController(w)
	br := bufio.NewReaderSize(r.Body, maxLiveLine)
	var why string
	for why == "" {
		if err := rc.SetReadDeadline(time.Now().Add(RuntimeLiveTimeout)); err != nil {
			return fmt.Errorf("liveness channel: %w", err)
		}
		line, err := br.ReadSlice('\n')
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			why = fmt.Sprintf("nothing came on its liveness channel for %s", RuntimeLiveTimeout)
		case errors.Is(err, bufio.ErrBufferFull):
			why = "its liveness channel carried a line too long"
		case err != nil && !errors.Is(err, io.EOF) || err != nil && len(line) > 0:
			why = "its liveness channel broke off"
		case err != nil:
			why = "its liveness channel closed without the session ending"
		default:
			switch strings.TrimSuffix(string(line), "\n") {
			case "alive":
			case "end":
				w.WriteHeader(http.StatusNoContent)
				return nil
			default:
				why = "its liveness channel carried something other than alive or end"
			}
		}
	}
	// The caller is gone: end the session on a context of the node's.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	if now, err := s.cfg.Store.GetSession(ctx, x.ID); err != nil || now.Status != store.SessionActive {
		return err // ended meanwhile: nothing to do
	}
	if _, err := s.cfg.Authority.EndSession(ctx, p, x.ID, "its runtime is gone: "+why); err != nil {
		return err
	}
	writeJSON(w, http.StatusGone, map[string]string{"error": "the runtime is taken to be gone (" + why + "): session " + x.ID + " ended"})
	return nil
}
