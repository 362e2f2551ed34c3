package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/store"
)

// Readiness and liveness.
//
//	GET /livez     200 "ok": the process serves HTTP. Nothing else.
//	GET /healthz   readiness (also GET /readyz): every check, run now
//	GET /v1/health the same for an admin, with each check's full error
//	               and each upstream by name
//
// /healthz answers 200 when every check that can fail the node passes
// ("status": "ready", or "degraded" when a check that only degrades it
// fails), and 503 with the failing checks when one that fails the node
// fails ("status": "unready", and "error" saying which, as every error of
// the API does). It tells the state of the moment: it
// recovers by itself when the fault clears.
//
// ward's checks (see server.Open): "audit" fails the node when the audit
// log cannot append (a write fault it is retrying, damage a verification
// pass found, or less than audit.MinFreeBytes free on its disk), since
// ward refuses every call it cannot record; "store" fails it when a cheap
// read of the store fails; "upstreams" only degrades it, when an upstream
// MCP server failed its last connection: the node still enforces (calls to
// that server fail, others work), and an upstream ward has not connected
// to yet is not counted.
//
// /healthz is public, so what it says is short and names no path, host or
// server ("disk full", "1 of 3 upstreams failed their last connection");
// /v1/health adds the detail, for admins. A 503 of /healthz is the answer to the
// question asked, not a refused request: it is not recorded in the audit
// log (a probe every few seconds would flood it, and the log may be what
// fails).

// Check is one readiness check.
type Check struct {
	Name string
	// Degrades says a failure degrades the node rather than making it
	// unready.
	Degrades bool
	// Run checks now; it should return within the context's deadline.
	Run func(ctx context.Context) Status
}

// Status is what a check found.
type Status struct {
	OK bool
	// Reason says, to anyone, why it failed: short, with no path, host or
	// server name.
	Reason string
	// Detail is the full error, for operators.
	Detail string
	// Parts are the states of the things checked (each upstream), for
	// operators.
	Parts []Part
}

// Part is one thing a check looked at.
type Part struct {
	Name  string    `json:"name"`
	State string    `json:"state"` // "ok", "failed" or "not connected yet"
	At    time.Time `json:"at,omitzero"`
	Error string    `json:"error,omitempty"`
}

// checkTimeout bounds one readiness answer.
const checkTimeout = 2 * time.Second

type checkResult struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Degrades bool   `json:"degrades,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Parts    []Part `json:"parts,omitempty"`
}

type readiness struct {
	Status string        `json:"status"` // "ready", "degraded" or "unready"
	Error  string        `json:"error,omitempty"`
	Checks []checkResult `json:"checks"`
}

// ready runs every check.
func (s *Server) ready(ctx context.Context, detail bool) (readiness, int) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	out := readiness{Status: "ready", Checks: make([]checkResult, len(s.cfg.Ready))}
	var wg sync.WaitGroup
	for i, c := range s.cfg.Ready {
		wg.Go(func() {
			st := c.Run(ctx)
			r := checkResult{Name: c.Name, OK: st.OK, Degrades: c.Degrades}
			if !st.OK {
				r.Reason = st.Reason
			}
			if detail {
				r.Detail, r.Parts = st.Detail, st.Parts
			}
			out.Checks[i] = r
		})
	}
	wg.Wait()
	if s.drain.isDraining() {
		out.Checks = append(out.Checks, checkResult{Name: "shutdown", Reason: "the node is shutting down"})
	}
	status := http.StatusOK
	for _, r := range out.Checks {
		switch {
		case r.OK:
		case r.Degrades:
			if out.Status == "ready" {
				out.Status = "degraded"
			}
		default:
			out.Status, status = "unready", http.StatusServiceUnavailable
			if out.Error == "" {
				out.Error = "not ready: " + r.Reason
			} else {
				out.Error += "; " + r.Reason
			}
		}
	}
	return out, status
}

// healthz answers readiness to anyone.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	out, status := s.ready(r.Context(), false)
	exchangeOf(r).recorded = true // an answer, not a refusal
	writeJSON(w, status, out)
}

// health answers readiness to an admin, in detail.
func (s *Server) health(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	if p.Kind != "admin" {
		return fmt.Errorf("%w: only an admin may see the node's health in detail (GET /healthz says it in short)", authority.ErrForbidden)
	}
	out, status := s.ready(r.Context(), true)
	exchangeOf(r).recorded = true
	writeJSON(w, status, out)
	return nil
}

// AuditCheck checks that the audit log can append (see
// audit.Log.Writable).
func AuditCheck(log interface{ Writable() error }) Check {
	return Check{Name: "audit", Run: func(context.Context) Status {
		err := log.Writable()
		if err == nil {
			return Status{OK: true}
		}
		reason := "the audit log cannot write"
		switch {
		case errors.Is(err, syscall.ENOSPC):
			reason = "the audit log's disk is full"
		case errors.Is(err, audit.ErrTampered), errors.Is(err, audit.ErrCorrupt):
			reason = "the audit log failed verification"
		case errors.Is(err, audit.ErrClosed):
			reason = "the audit log is closed"
		}
		return Status{Reason: reason, Detail: err.Error()}
	}}
}

// StoreCheck checks that the store answers a cheap read.
func StoreCheck(read func(ctx context.Context) error) Check {
	return Check{Name: "store", Run: func(ctx context.Context) Status {
		if err := read(ctx); err != nil {
			return Status{Reason: "the store cannot be read", Detail: err.Error()}
		}
		return Status{OK: true}
	}}
}

// Upstreams remembers the result of the latest connection to each
// configured upstream, as the gateway reports them
// (gateway.Config.OnConnect).
type Upstreams struct {
	mu    sync.Mutex
	names []string
	last  map[string]Part
	now   func() time.Time
}

// NewUpstreams tracks the upstreams named.
func NewUpstreams(names []string) *Upstreams {
	return &Upstreams{names: slices.Clone(names), last: map[string]Part{}, now: time.Now}
}

// Record notes the result of a connection to server: nil, or why it
// failed.
func (u *Upstreams) Record(server string, err error) {
	p := Part{Name: server, State: "ok", At: u.now().UTC()}
	if err != nil {
		p.State, p.Error = "failed", err.Error()
	}
	u.mu.Lock()
	u.last[server] = p
	u.mu.Unlock()
}

// Check degrades the node while an upstream's latest connection failed.
func (u *Upstreams) Check() Check {
	return Check{Name: "upstreams", Degrades: true, Run: func(context.Context) Status {
		u.mu.Lock()
		defer u.mu.Unlock()
		st := Status{OK: true}
		failed := 0
		var detail []string
		for _, name := range u.names {
			p, ok := u.last[name]
			if !ok {
				p = Part{Name: name, State: "not connected yet"}
			}
			if p.State == "failed" {
				failed++
				detail = append(detail, name+": "+p.Error)
			}
			st.Parts = append(st.Parts, p)
		}
		if failed > 0 {
			st.OK = false
			st.Reason = fmt.Sprintf("%d of %d upstreams failed their latest connection", failed, len(u.names))
			st.Detail = strings.Join(detail, "; ")
		}
		return st
	}}
}
