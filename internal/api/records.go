package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/store"
)

// maxRecord bounds one agent-posted record.
const maxRecord = 256 << 10

// recordKinds are the records an agent framework may post.
var recordKinds = map[string]bool{"prompt": true, "response": true, "reasoning": true, "note": true}

// postRecord lets the agent framework put what the model saw and said into
// the audit log, attributed to the session: POST /v1/records with
// {"kind": "prompt"|"response"|"reasoning"|"note", "content": <any JSON>}.
// The answer is the record's audit log index. Secrets in the content are
// redacted as for call arguments (rules may name the tool "record:KIND").
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
	content := req.Content
	var redacted []string
	if s.cfg.Redactor != nil {
		var err error
		if content, redacted, err = s.cfg.Redactor.JSON("record:"+req.Kind, content); err != nil {
			return badRequest("content: %v", err)
		}
	}
	data, _ := json.Marshal(map[string]any{"kind": req.Kind, "content": json.RawMessage(content), "redacted": redacted})
	idx, err := rec.Append(r.Context(), audit.Event{Type: "agent.record", Actor: c.SPIFFEID, Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Data: data})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]uint64{"index": idx})
	return nil
}

// NodeEvent is an audit event and the node whose log holds it.
type NodeEvent struct {
	Node string `json:"node"`
	audit.Event
}

// maxAuditLimit bounds limit= of an audit search.
const maxAuditLimit = 100_000

// auditParams are the query parameters of GET /v1/audit/events; any
// other is refused.
var auditParams = []string{"type", "session", "agent", "sponsor", "tool", "decision", "limit", "node"}

// searchAudit answers GET /v1/audit/events?session=&agent=&sponsor=&type=
// &tool=&decision=&limit=&node= from the query index, reading the events
// themselves from the log. Admins search everything; a sponsor only its
// own agents' events. On a node of several it answers over every node's
// events (SystemSearch), each with its "node", or one node's with node=;
// on a node alone, over its own. Unknown parameters are refused (as
// parameters given twice are, by checkQuery): a misspelt filter must not
// widen a search silently.
func (s *Server) searchAudit(w http.ResponseWriter, r *http.Request, p store.Principal) error {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(auditParams, k) {
			return badRequest("query parameter %s is not one of %s", shownName(k), strings.Join(auditParams, ", "))
		}
	}
	query := store.AuditQuery{Type: q.Get("type"), Session: q.Get("session"), Agent: q.Get("agent"), Sponsor: q.Get("sponsor"),
		Name: q.Get("tool"), Decision: q.Get("decision"), Node: q.Get("node")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > maxAuditLimit {
			return badRequest("limit %q: want a number from 1 to %d", l, maxAuditLimit)
		}
		query.Limit = n
	}
	if p.Kind != "admin" {
		query.Sponsor = p.Name
	}
	if s.cfg.SystemSearch != nil {
		out, err := s.cfg.SystemSearch(r.Context(), query)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	if query.Node != "" {
		return badRequest("node %q: this node is alone on its store; search without node=", query.Node)
	}
	if s.cfg.Index != nil {
		if err := s.cfg.Index.IndexAudit(r.Context()); err != nil {
			return err
		}
	}
	reader, ok := s.cfg.Audit.(EventReader)
	if !ok {
		return &httpError{http.StatusNotFound, "audit search is not available"}
	}
	idx, err := s.cfg.Store.SearchAudit(r.Context(), query)
	if err != nil {
		return err
	}
	out := make([]audit.Event, 0, len(idx))
	for _, i := range idx {
		evs, err := reader.Read(i, i+1)
		if err != nil {
			return err
		}
		out = append(out, evs...)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
