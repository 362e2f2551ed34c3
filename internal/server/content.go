package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/scan"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/taint"
)

// SuspiciousLabel is the taint label of a session that received a result
// carrying instructions aimed at the model; policies may refuse sinks to
// it.
const SuspiciousLabel = enforce.SuspiciousLabel

// suspiciousScore is the scan.Score from which a tool definition looks
// poisoned (and a result suspicious, see enforce.SuspiciousScore).
const suspiciousScore = enforce.SuspiciousScore

// openSessions creates the sessions' taint and provenance state, whose
// changes are recorded: each new label, each result that looks like it
// gives the model orders (which also raises the session's risk for the
// monitor), each result provenance could index only in part.
func (n *Node) openSessions(labeler *taint.Labeler) {
	n.sessions = enforce.NewSessions(enforce.SessionsConfig{
		Labeler:     labeler,
		ScanResults: n.cfg.ScanResults,
		OnLabel: func(ctx context.Context, c *enforce.Caller, label, from string) {
			if _, err := n.Audit.Append(ctx, audit.Event{Type: "taint", Actor: "ward", Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor,
				Data: jsonData(map[string]any{"label": label, "from": from})}); err != nil {
				n.cfg.Logger.Error("recording a taint label failed", "session", c.Session, "err", err)
			}
			n.shareLabels(ctx, c.Session, label)
		},
		OnContent: func(ctx context.Context, c *enforce.Caller, source string, event uint64, score int, hits []scan.Hit) {
			n.record(ctx, c, "signal", map[string]any{"kind": "content", "source": source, "event": event, "score": score, "hits": n.hitList(source, hits)})
			n.watch.raise(c.Session, min(100, 10*score))
		},
		OnPartial: func(ctx context.Context, c *enforce.Caller, source string, event uint64, note string) {
			n.record(ctx, c, "provenance.partial", map[string]any{"source": source, "event": event, "note": note})
		},
		Ended: n.Auth.Ended,
	})
}

// inspect is the gateway's Inspect hook: tool poisoning.
func (n *Node) inspect(def json.RawMessage) string {
	var d struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"inputSchema"`
	}
	if json.Unmarshal(def, &d) != nil {
		return "the definition is not a JSON tool definition"
	}
	hits := scan.ToolDefinition(d.Name, d.Description, d.InputSchema)
	if scan.Score(hits) < suspiciousScore {
		return ""
	}
	var parts []string
	for _, h := range hits {
		parts = append(parts, h.Kind+": "+h.Detail)
	}
	return strings.Join(parts, "; ")
}

// hitList is what a content signal records of its hits; their details
// quote the result, so they are redacted like recorded results.
func (n *Node) hitList(source string, hits []scan.Hit) []map[string]any {
	out := make([]map[string]any, 0, len(hits))
	for _, h := range hits {
		out = append(out, map[string]any{"kind": h.Kind, "detail": n.redactText(source, h.Detail), "offset": h.Offset, "weight": h.Weight})
	}
	return out
}

func (n *Node) record(ctx context.Context, c *enforce.Caller, typ string, data any) {
	if _, err := n.Audit.Append(ctx, audit.Event{Type: typ, Actor: "ward", Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Data: jsonData(data)}); err != nil {
		n.cfg.Logger.Error("recording failed", "type", typ, "err", err)
	}
}

// LabelConfig implements api.Labels. Besides the labels it gives the tool
// declarations in force (tools: in the configuration), under
// "declarations": whether a tool is a sink, and which of its arguments are
// consequential, decide where provenance is checked; `ward tools list`
// shows from them how each tool is treated.
func (n *Node) LabelConfig() any {
	decls := n.cfg.Tools
	if decls == nil {
		decls = map[string]enforce.ToolDeclaration{}
	}
	return map[string]any{"tools": n.cfg.TaintTools, "hosts": n.cfg.TaintHosts, "fields": n.cfg.TaintFields, "default": []string{taint.Untrusted},
		"operator_clearable": []string{ReviewLabel, SuspiciousLabel}, "declarations": decls}
}

// SessionLabels implements api.Labels.
func (n *Node) SessionLabels(session string) []string { return n.sessions.Labels(session) }

// ClearLabel implements api.Labels: an operator may clear the labels a
// playbook (review) or a content scan (suspicious) gave; what a session
// received (private, untrusted) stays.
func (n *Node) ClearLabel(ctx context.Context, by store.Principal, session, label string) error {
	if label != ReviewLabel && label != SuspiciousLabel {
		return fmt.Errorf("%w: only %q and %q can be cleared; a session keeps the labels of what it received", authority.ErrInvalid, ReviewLabel, SuspiciousLabel)
	}
	if !slices.Contains(n.sessions.Labels(session), label) {
		return fmt.Errorf("session %s has no label %q: %w", session, label, store.ErrNotFound)
	}
	// Recorded first: a clearing that cannot be recorded does not happen.
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "taint.clear", Actor: by.Name, Session: session, Data: jsonData(map[string]string{"label": label})}); err != nil {
		return err
	}
	if err := n.unshareLabel(ctx, session, label); err != nil {
		return err
	}
	n.sessions.RemoveLabel(session, label)
	return nil
}
