package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/receipt"
	"github.com/ward-dev/ward/internal/store"
)

// EventReader reads audit events.
type EventReader interface {
	Read(from, to uint64) ([]audit.Event, error)
	Size() uint64
}

// checkpointSyncer makes the audit log sign a checkpoint over every event
// it acknowledged (audit.Log.Sync): the log signs checkpoints on its own
// cadence, a little after the events they cover.
type checkpointSyncer interface {
	Sync(ctx context.Context) ([]byte, error)
}

// maxReceipts bounds the receipts one request returns (the newest).
const maxReceipts = 10_000

// receipts returns signed receipts for the tool calls of one session, newest
// last: GET /v1/receipts?session=ID. The session itself (agent
// authentication), its sponsor or an admin may ask.
func (s *Server) receipts(w http.ResponseWriter, r *http.Request) {
	if s.cfg.ReceiptKey == nil {
		s.fail(w, r, &httpError{http.StatusNotFound, "receipts are not enabled"})
		return
	}
	session := r.URL.Query().Get("session")
	if session == "" {
		s.fail(w, r, badRequest("session: the session whose receipts you want"))
		return
	}
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		p, err := s.operator(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		x, err := s.cfg.Store.GetSession(r.Context(), session)
		if err != nil || (p.Kind != "admin" && p.Name != x.Sponsor) {
			s.fail(w, r, fmt.Errorf("session %q: %w", session, store.ErrNotFound))
			return
		}
	} else {
		c, _, err := s.agent(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if c.Session != session {
			s.fail(w, r, fmt.Errorf("%w: a session may fetch only its own receipts", authority.ErrForbidden))
			return
		}
	}
	reader, ok := s.cfg.Audit.(EventReader)
	if !ok {
		s.fail(w, r, &httpError{http.StatusNotFound, "receipts are not available"})
		return
	}
	// Every receipt handed out names an event a signed checkpoint in the
	// log's files covers, so that ward claim verify proves it at once.
	if cs, ok := s.cfg.Audit.(checkpointSyncer); ok {
		if _, err := cs.Sync(r.Context()); err != nil {
			s.fail(w, r, &httpError{http.StatusServiceUnavailable, "the audit log cannot sign a checkpoint over the calls' records now; try again later"})
			return
		}
	}
	if s.cfg.Index != nil {
		if err := s.cfg.Index.IndexAudit(r.Context()); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	idx, err := s.cfg.Store.SearchAudit(r.Context(), store.AuditQuery{Session: session, Type: "result", Limit: maxReceipts})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	read := func(i uint64) (audit.Event, bool) {
		evs, err := reader.Read(i, i+1)
		if err != nil || len(evs) != 1 {
			return audit.Event{}, false
		}
		return evs[0], true
	}
	key := s.cfg.ReceiptKey()
	kid, _ := grant.Thumbprint(&key.PublicKey)
	out := []*receipt.Envelope{}
	for _, i := range idx {
		e, ok := read(i)
		if !ok || e.Type != "result" || e.Session != session {
			continue
		}
		var d struct {
			Server   string `json:"server"`
			Decision uint64 `json:"decision_event"`
		}
		_ = json.Unmarshal(e.Data, &d)
		argsDigest := ""
		if dec, ok := read(d.Decision); ok {
			var dd struct {
				Args string `json:"arguments_sha256"`
			}
			_ = json.Unmarshal(dec.Data, &dd)
			argsDigest = dd.Args
		}
		p, err := receipt.PredicateFor(e, "", d.Server, argsDigest, d.Decision)
		if err != nil {
			continue
		}
		p.SPIFFEID = e.Actor
		env, err := receipt.Sign(key, kid, p)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, env)
	}
	writeJSON(w, http.StatusOK, out)
}
