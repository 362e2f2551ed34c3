package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/receipt"
	"github.com/ward-dev/ward/internal/store"
)

// EventReader reads audit events.
type EventReader interface {
	Read(from, to uint64) ([]audit.Event, error)
	Size() uint64
}

// maxReceiptScan bounds how many recent audit events a receipts request
// looks through (there is no query index yet).
const maxReceiptScan = 100_000

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
	size := reader.Size()
	from := uint64(0)
	if size > maxReceiptScan {
		from = size - maxReceiptScan
	}
	events, err := reader.Read(from, size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	kid, _ := grant.Thumbprint(&s.cfg.ReceiptKey.PublicKey)
	out := []*receipt.Envelope{}
	for _, e := range events {
		if e.Type != "result" || e.Session != session {
			continue
		}
		var d struct {
			Server   string `json:"server"`
			Decision uint64 `json:"decision_event"`
		}
		_ = json.Unmarshal(e.Data, &d)
		argsDigest := ""
		if d.Decision >= from && d.Decision < size {
			dec := events[d.Decision-from]
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
		env, err := receipt.Sign(s.cfg.ReceiptKey, kid, p)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, env)
	}
	writeJSON(w, http.StatusOK, out)
}

// maxRecord bounds one agent-posted record.
const maxRecord = 256 << 10

// recordKinds are the records an agent framework may post.
var recordKinds = map[string]bool{"prompt": true, "response": true, "reasoning": true, "note": true}

// postRecord lets the agent framework put what the model saw and said into
// the audit log, attributed to the session: POST /v1/records with
// {"kind": "prompt"|"response"|"reasoning"|"note", "content": <any JSON>}.
// The answer is the record's audit log index.
func (s *Server) postRecord(w http.ResponseWriter, r *http.Request, c *gateway.Caller) error {
	var req struct {
		Kind    string          `json:"kind"`
		Content json.RawMessage `json:"content"`
	}
	if err := s.decodeN(w, r, &req, maxRecord); err != nil {
		return err
	}
	if !recordKinds[req.Kind] {
		return badRequest("kind %q: want prompt, response, reasoning or note", req.Kind)
	}
	if len(req.Content) == 0 || string(req.Content) == "null" {
		return badRequest("content is required")
	}
	rec, ok := s.cfg.Audit.(interface {
		Append(context.Context, audit.Event) (uint64, error)
	})
	if !ok {
		return &httpError{http.StatusNotFound, "records are not available"}
	}
	data, _ := json.Marshal(map[string]any{"kind": req.Kind, "content": req.Content})
	idx, err := rec.Append(r.Context(), audit.Event{Type: "agent.record", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Data: data})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]uint64{"index": idx})
	return nil
}
