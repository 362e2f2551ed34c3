package server

import (
	"context"
	"time"

	"github.com/ward-dev/ward/internal/store"
)

// Taint across nodes.
//
// On a node of several, each taint label a session gets here (from what
// it received, from a playbook, from its parent when delegated) is also
// written to the store, whose change feed gives it to every other node
// within the freshness bound (feed.go); a label an operator clears is
// removed there too. Argument provenance (which values came from
// untrusted content) stays with the node that saw the content.

// shareLabels writes labels of session to the store, on a node of
// several. A label that cannot be written is logged: the node itself
// keeps it, and a node that cannot reach the store soon refuses calls.
func (n *Node) shareLabels(ctx context.Context, session string, labels ...string) {
	if n.nodeID == "" || len(labels) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FreshnessBound)
	defer cancel()
	if err := n.Store.AddSessionLabels(ctx, session, labels...); err != nil {
		n.cfg.Logger.Error("sharing a session's taint labels with the other nodes failed", "session", session, "err", err)
	}
}

// shareDelegated shares what a delegated session inherited.
func (n *Node) shareDelegated(child string) {
	n.shareLabels(context.Background(), child, n.sessions.Labels(child)...)
}

// unshareLabel removes a cleared label from the store, on a node of
// several.
func (n *Node) unshareLabel(ctx context.Context, session, label string) error {
	if n.nodeID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return n.Store.RemoveSessionLabel(ctx, session, label)
}

// applyLabel applies a label change made on another node.
func (n *Node) applyLabel(c store.Change) {
	session, label, ok := store.SplitLabelSubject(c.Subject)
	if !ok || n.Auth.Ended(session) {
		return
	}
	if c.Kind == store.ChangeLabel {
		n.sessions.Seed(session, label)
	} else {
		n.sessions.RemoveLabel(session, label)
	}
}
