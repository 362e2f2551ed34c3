package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/ward-dev/ward/internal/audit"
)

// checkStore checks the store against itself and against the audit log
// before the node uses it, and returns the repairs it made, to be recorded:
//
//   - every table passes SQLite's integrity check; a damaged audit index
//     (derived from the log) is rebuilt, any other damaged table stops the
//     start with its name and what to do;
//   - an empty store next to an existing audit log or CA is a lost store,
//     not a first start: the node refuses to bootstrap over it (which
//     would mint a new admin credential and forget every tool pin) unless
//     told to (reinit, recorded);
//   - the newest event the store indexed must be in the log, as the log
//     has it: a log shorter than the store's view, or another log, stops
//     the start.
func (n *Node) checkStore(ctx context.Context, dbPath string, reinit bool) ([]audit.Event, error) {
	var repairs []audit.Event
	damage, err := n.Store.CheckIntegrity(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dbPath, err)
	}
	var fatal []string
	for _, d := range damage {
		if !d.Derived() {
			fatal = append(fatal, fmt.Sprintf("table %s (%s)", d.Table, d.Detail))
			continue
		}
		if err := n.Store.ResetAuditIndex(ctx); err != nil {
			return nil, fmt.Errorf("store %s: the audit index is damaged (%s) and could not be rebuilt: %w", dbPath, d.Detail, err)
		}
		n.cfg.Logger.Warn("the store's audit index was damaged; rebuilding it from the audit log", "detail", d.Detail)
		repairs = append(repairs, audit.Event{Type: "store.repair", Actor: "ward", Data: jsonData(map[string]any{
			"table": d.Table, "damage": d.Detail, "action": "rebuilt from the audit log"})})
	}
	if len(fatal) > 0 {
		return nil, fmt.Errorf("store %s is damaged: %s. Restore ward.db from a backup (the audit log keeps the record of what it held); ward does not start on a damaged store",
			dbPath, strings.Join(fatal, "; "))
	}

	empty, err := n.Store.Empty(ctx)
	if err != nil {
		return nil, err
	}
	if empty && (n.Audit.Size() > 0 || !n.Created) {
		if !reinit {
			return nil, fmt.Errorf("store %s is empty, but this node already has a CA and an audit log of %d events: its control-plane state (sponsors, agents, sessions, credentials, tool pins) was lost, and starting as on a first start would mint a new admin credential and approve every tool again. Restore ward.db (with its -wal file) from a backup, or, to start over with an empty store next to this log and CA, run ward up --reinit-store (recorded)",
				dbPath, n.Audit.Size())
		}
		n.cfg.Logger.Warn("starting with an empty store next to an existing audit log and CA, as --reinit-store asked")
		repairs = append(repairs, audit.Event{Type: "store.reinit", Actor: "ward", Data: jsonData(map[string]any{
			"audit_size": n.Audit.Size(), "reason": "operator started with --reinit-store over an empty store"})})
	}

	last, ok, err := n.Store.LastIndexed(ctx)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dbPath, err)
	}
	if ok {
		if last.Index >= n.Audit.Size() {
			return nil, fmt.Errorf("store %s has indexed audit event %d, but the audit log holds only %d events: the log is behind the store (lost, truncated or replaced). Restore the audit log; ward does not start on a log shorter than its store has seen",
				dbPath, last.Index, n.Audit.Size())
		}
		events, err := n.Audit.Read(last.Index, last.Index+1)
		if err != nil {
			return nil, fmt.Errorf("store check: read audit event %d: %w", last.Index, err)
		}
		e := events[0]
		if e.Type != last.Type || e.Session != last.Session || e.Agent != last.Agent || !e.Time.Equal(last.Time) {
			return nil, fmt.Errorf("store %s does not belong to this audit log: event %d is %q of session %q in the log, %q of session %q in the store's index. Use the store and log of one node",
				dbPath, last.Index, e.Type, e.Session, last.Type, last.Session)
		}
	}
	return repairs, nil
}
