package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/authority"
	"github.com/ward-dev/ward/internal/gateway"
	"github.com/ward-dev/ward/internal/provenance"
	"github.com/ward-dev/ward/internal/scan"
	"github.com/ward-dev/ward/internal/store"
	"github.com/ward-dev/ward/internal/taint"
)

// Content scanning thresholds (scan.Score of a result or tool definition).
const (
	// suspiciousScore marks a result as carrying instructions aimed at the
	// model: the session gets the "suspicious" label and content risk.
	suspiciousScore = 3
	// SuspiciousLabel is the taint label of a session that received such a
	// result; policies may refuse sinks to it.
	SuspiciousLabel = "suspicious"
)

// provenances holds each session's provenance index.
type provenances struct {
	mu sync.Mutex
	m  map[string]*provenance.Index
}

// index returns the session's provenance index, created with the
// session's objective as trusted input.
func (n *Node) index(c *gateway.Caller) *provenance.Index {
	n.prov.mu.Lock()
	defer n.prov.mu.Unlock()
	ix, ok := n.prov.m[c.Session]
	if !ok {
		ix = provenance.New(provenance.Config{})
		ix.AddTrusted(c.Objective)
		if !n.Auth.Ended(c.Session) { // ended: a call still in flight; keep nothing
			n.prov.m[c.Session] = ix
		}
	}
	return ix
}

func (n *Node) forgetProvenance(ids []string) {
	n.prov.mu.Lock()
	defer n.prov.mu.Unlock()
	for _, id := range ids {
		delete(n.prov.m, id)
	}
}

// checkProvenance is the gateway's Provenance hook.
func (n *Node) checkProvenance(ctx context.Context, c *gateway.Caller, op *gateway.Operation, paths []string) ([]string, string, error) {
	findings, err := n.index(c).Check(op.Arguments, paths)
	if err != nil {
		return nil, "", err
	}
	tainted, why := provenance.Explain(findings, "event")
	return tainted, why, nil
}

// onResult labels the session with what a tool's result carries, indexes
// its values for provenance and scans it for instructions aimed at the
// model.
func (n *Node) onResult(ctx context.Context, c *gateway.Caller, op *gateway.Operation, out gateway.Outcome) {
	labels := n.labels.Tool(op.Name)
	n.taintFrom(ctx, c.Session, c.Agent, c.Sponsor, op.Name, labels)
	ix := n.index(c)
	switch {
	case slices.Contains(labels, taint.Untrusted):
		if sum := ix.AddUntrusted(op.Name, out.Decision, out.Result); sum.Partial {
			n.record(ctx, c, "provenance.partial", map[string]any{"source": op.Name, "event": out.Decision, "note": sum.Note})
		}
	case slices.Equal(labels, []string{taint.Trusted}):
		ix.AddTrustedResult(out.Result)
	}
	var hits []scan.Hit
	for _, t := range scan.Texts(out.Result, 0) {
		hits = append(hits, scan.Result(t)...)
	}
	if out.Error != "" {
		hits = append(hits, scan.Result(out.Error)...) // an upstream's error message
	}
	if score := scan.Score(hits); score >= suspiciousScore {
		n.record(ctx, c, "signal", map[string]any{"kind": "content", "source": op.Name, "event": out.Decision, "score": score, "hits": n.hitList(op.Name, hits)})
		n.taintFrom(ctx, c.Session, c.Agent, c.Sponsor, op.Name, []string{SuspiciousLabel})
		n.watch.raise(c.Session, min(100, 10*score))
	}
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

func (n *Node) record(ctx context.Context, c *gateway.Caller, typ string, data any) {
	if _, err := n.Audit.Append(ctx, audit.Event{Type: typ, Actor: "ward", Session: c.Session, Agent: c.Agent, Sponsor: c.Sponsor, Data: jsonData(data)}); err != nil {
		n.cfg.Logger.Error("recording failed", "type", typ, "err", err)
	}
}

// LabelConfig implements api.Labels.
func (n *Node) LabelConfig() any {
	return map[string]any{"tools": n.cfg.TaintTools, "hosts": n.cfg.TaintHosts, "default": []string{taint.Untrusted},
		"operator_clearable": []string{ReviewLabel, SuspiciousLabel}}
}

// SessionLabels implements api.Labels.
func (n *Node) SessionLabels(session string) []string { return n.taint.Labels(session) }

// ClearLabel implements api.Labels: an operator may clear the labels a
// playbook (review) or a content scan (suspicious) gave; what a session
// received (private, untrusted) stays.
func (n *Node) ClearLabel(ctx context.Context, by store.Principal, session, label string) error {
	if label != ReviewLabel && label != SuspiciousLabel {
		return fmt.Errorf("%w: only %q and %q can be cleared; a session keeps the labels of what it received", authority.ErrInvalid, ReviewLabel, SuspiciousLabel)
	}
	if !slices.Contains(n.taint.Labels(session), label) {
		return fmt.Errorf("session %s has no label %q: %w", session, label, store.ErrNotFound)
	}
	// Recorded first: a clearing that cannot be recorded does not happen.
	if _, err := n.Audit.Append(ctx, audit.Event{Type: "taint.clear", Actor: by.Name, Session: session, Data: jsonData(map[string]string{"label": label})}); err != nil {
		return err
	}
	n.taint.Remove(session, label)
	return nil
}
