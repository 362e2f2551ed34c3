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
// channel of the runtime that hosts an active session. The request body
// is a stream of lines: "alive" at least every RuntimeLiveTimeout while
// the runtime lives, and "end" once its `ward run` has ended the session
// itself. The node answers 200 at once, with a line "live" (the channel
// is held), and later one last line:
//
//	end            the channel ended with "end"
//	closing        the node is shutting down: connect again to the next
//	gone: REASON   the runtime is taken to be gone; the session was ended
//
// The runtime is gone when the channel ends any other way: it closed
// (`ward run` was killed: its kernel closed the socket), fell silent (its
// host went away), or carried something else. The node then ends the
// session at once, revoking its grants, rather than letting it live on
// to its TTL with nothing to confine it.
func (s *Server) runtimeLive(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	x, err := s.sponsored(r, p)
	if err != nil {
		return err
	}
	if x.Status != store.SessionActive {
		return &httpError{http.StatusConflict, fmt.Sprintf("session %s is %s, not active", x.ID, x.Status)}
	}
	rc := http.NewResponseController(w)
	// The answer starts before the request ends (HTTP/2 always allows
	// it; HTTP/1.1 must be told).
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	say := func(line string) {
		io.WriteString(w, line+"\n")
		rc.Flush()
	}
	say("live")
	// Lines are read by a goroutine of their own, so that the node's
	// shutdown can let go of the channel without ending the session.
	lines := make(chan liveLine, 1)
	done := make(chan struct{})
	defer close(done)
	go readLive(rc, r.Body, lines, done)
	var why string
	for why == "" {
		var l liveLine
		select {
		case <-s.closing:
			// The node stops, not the runtime. The rest of the body is
			// not waited for (the server would, to reuse the connection).
			say("closing")
			rc.SetReadDeadline(time.Now())
			return nil
		case l = <-lines:
		}
		var ne net.Error
		switch err := l.err; {
		case errors.As(err, &ne) && ne.Timeout():
			why = fmt.Sprintf("nothing came on its liveness channel for %s", RuntimeLiveTimeout)
		case errors.Is(err, bufio.ErrBufferFull):
			why = "its liveness channel carried a line too long"
		case err != nil && !errors.Is(err, io.EOF) || err != nil && l.text != "":
			why = "its liveness channel broke off"
		case err != nil:
			why = "its liveness channel closed without the session ending"
		case l.text == "alive":
		case l.text == "end":
			say("end")
			return nil
		default:
			why = "its liveness channel carried something other than alive or end"
		}
	}
	// The caller is gone: end the session on a context of the node's.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	reason := "its runtime is gone: " + why
	if now, err := s.cfg.Store.GetSession(ctx, x.ID); err != nil || now.Status != store.SessionActive {
		if err != nil {
			s.cfg.Logger.Error("liveness channel: session not ended", "session", x.ID, "err", err)
		}
		return nil // ended meanwhile: nothing to do
	}
	if _, err := s.cfg.Authority.EndSession(ctx, p, x.ID, reason); err != nil {
		s.cfg.Logger.Error("liveness channel: session not ended", "session", x.ID, "err", err)
		return nil // the answer has started: nothing more to say
	}
	say("gone: " + reason)
	return nil
}

// liveLine is one line of a liveness channel, without its newline, or why
// there is none.
type liveLine struct {
	text string
	err  error
}

// readLive reads the lines of a liveness channel, each within
// RuntimeLiveTimeout, until an error (which it sends too) or done.
func readLive(rc *http.ResponseController, body io.Reader, lines chan<- liveLine, done <-chan struct{}) {
	br := bufio.NewReaderSize(body, maxLiveLine)
	for {
		var l liveLine
		// Without deadlines (a writer that has none), only a channel that
		// closes or breaks ends the session.
		if err := rc.SetReadDeadline(time.Now().Add(RuntimeLiveTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			l.err = fmt.Errorf("liveness channel: %w", err)
		} else {
			b, err := br.ReadSlice('\n')
			l.text, l.err = strings.TrimSuffix(string(b), "\n"), err
		}
		select {
		case lines <- l:
		case <-done:
			return
		}
		if l.err != nil {
			return
		}
	}
}
