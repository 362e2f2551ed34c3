package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/store"
)

// maxListed bounds the missing records named in the log and the event.
const maxListed = 50

// reconcileChunk is how many audit events the reconciliation reads at once.
const reconcileChunk = 4096

// maxUnindexedReconcile bounds the log a node reconciles from its start
// when its store has indexed nothing (a first start after an upgrade, or
// an index rebuilt after damage): beyond it, start time would grow with
// the log, so the pass is skipped, and said so.
const maxUnindexedReconcile = 200_000

// reconcileStore checks the store against the record of the audit log
// after the newest event the store indexed (normally the last few
// seconds' events; after a lost write-ahead log or a restored backup,
// everything since the store's state). What the log says happened must
// hold in the store where it matters to security, so it is applied again
// where doing so only takes authority away:
//
//   - a session the log says ended (session.end, session.expire) is ended
//     in the store if the store still has it active: a store restored to
//     an older state must not bring a revoked session back;
//   - an agent the log says was quarantined last stays quarantined;
//   - a server's first tool (or prompt) set, which trust on first use
//     approves, is recreated from tools.first if the store lost it, so
//     that first use is not granted again to whatever the server lists
//     next.
//
// What cannot be applied again without granting authority (a sponsor,
// agent or session the log says was created but the store lacks, which a
// crash between the record and the write also leaves) is reported: a
// warning naming them and a store.behind event. It returns the events to
// record.
func (n *Node) reconcileStore(ctx context.Context) ([]audit.Event, error) {
	size := n.Audit.Size()
	from := uint64(0)
	last, ok, err := n.Store.LastIndexed(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case ok:
		from = last.Index + 1
	case size > maxUnindexedReconcile:
		n.cfg.Logger.Warn("the store has indexed none of the audit log's events, and the log is long: the store is not checked against the log at this start", "events", size)
		return nil, nil
	}
	if from >= size {
		return nil, nil
	}
	r := reconciliation{ended: map[string]uint64{}, quarantined: map[string]bool{}, firstSets: map[string][]string{},
		created: map[string]uint64{}}
	for at := from; at < size; at += reconcileChunk {
		to := min(at+reconcileChunk, size)
		events, err := n.Audit.Read(at, to)
		if err != nil {
			return nil, fmt.Errorf("store check: read audit events %d-%d: %w", at, to, err)
		}
		for _, e := range events {
			r.observe(e)
		}
	}
	return r.apply(ctx, n, from, size)
}

type reconciliation struct {
	ended       map[string]uint64   // session → index of the event that ended it
	quarantined map[string]bool     // agent → quarantined by its last status event
	firstSets   map[string][]string // tool-set key → first set
	created     map[string]uint64   // "sponsor NAME", "agent NAME", "session ID" → index
}

func (r *reconciliation) observe(e audit.Event) {
	var d struct {
		Ended  []string `json:"ended"`
		Server string   `json:"server"`
		Names  []string `json:"names"`
	}
	_ = json.Unmarshal(e.Data, &d)
	switch e.Type {
	case "session.end", "session.expire":
		for _, id := range d.Ended {
			r.ended[id] = e.Index
		}
		if e.Session != "" {
			r.ended[e.Session] = e.Index
		}
	case "agent.quarantine":
		r.quarantined[e.Agent] = true
	case "agent.release":
		r.quarantined[e.Agent] = false
	case "tools.first":
		if d.Server != "" {
			r.firstSets[d.Server] = d.Names
		}
	case "sponsor.create":
		r.created["sponsor "+e.Sponsor] = e.Index
	case "agent.register":
		r.created["agent "+e.Agent] = e.Index
	case "session.start":
		r.created["session "+e.Session] = e.Index
	}
}

func (r *reconciliation) apply(ctx context.Context, n *Node, from, size uint64) ([]audit.Event, error) {
	var reapplied, lost []string
	for _, id := range slices.Sorted(maps.Keys(r.ended)) {
		s, err := n.Store.GetSession(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if s.Status == store.SessionEnded {
			continue
		}
		if _, err := n.Store.EndSession(ctx, id, "ended again at start: the audit log records its end (event "+fmt.Sprint(r.ended[id])+") but the store had it active", time.Now()); err != nil {
			return nil, fmt.Errorf("store check: end session %s again: %w", id, err)
		}
		reapplied = append(reapplied, "session "+id+" ended")
	}
	for _, name := range slices.Sorted(maps.Keys(r.quarantined)) {
		if !r.quarantined[name] {
			continue
		}
		ag, err := n.Store.GetAgent(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ag.Status == "quarantined" {
			continue
		}
		if err := n.Store.SetAgentStatus(ctx, name, "quarantined"); err != nil {
			return nil, fmt.Errorf("store check: quarantine agent %s again: %w", name, err)
		}
		reapplied = append(reapplied, "agent "+name+" quarantined")
	}
	for _, server := range slices.Sorted(maps.Keys(r.firstSets)) {
		if _, err := n.Store.GetToolSet(ctx, server); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if _, _, _, err := n.Store.ObserveToolSet(ctx, server, r.firstSets[server]); err != nil {
			return nil, fmt.Errorf("store check: recreate the first tool set of %s: %w", server, err)
		}
		reapplied = append(reapplied, "first tool set of "+server+" recreated")
	}
	for _, k := range slices.Sorted(maps.Keys(r.created)) {
		var err error
		switch kind, name := splitKey(k); kind {
		case "sponsor":
			_, err = n.Store.GetPrincipal(ctx, name)
		case "agent":
			_, err = n.Store.GetAgent(ctx, name)
		case "session":
			_, err = n.Store.GetSession(ctx, name)
		}
		if errors.Is(err, store.ErrNotFound) {
			lost = append(lost, fmt.Sprintf("%s (event %d)", k, r.created[k]))
		} else if err != nil {
			return nil, err
		}
	}
	if len(reapplied) == 0 && len(lost) == 0 {
		return nil, nil
	}
	missing := len(lost)
	if len(lost) > maxListed {
		lost = append(lost[:maxListed], fmt.Sprintf("and %d more", len(lost)-maxListed))
	}
	if len(reapplied) > maxListed {
		reapplied = append(reapplied[:maxListed], fmt.Sprintf("and %d more", len(reapplied)-maxListed))
	}
	if len(reapplied) > 0 {
		n.cfg.Logger.Warn("the store was behind the audit log; what the log records that takes authority away was applied again", "applied", reapplied)
	}
	if len(lost) > 0 {
		n.cfg.Logger.Warn("the audit log records state the store does not hold (a crash between recording and storing it, or a store restored to an older state): it is not recreated, since that would grant authority", "missing", lost)
	}
	return []audit.Event{{Type: "store.behind", Actor: "ward", Data: jsonData(map[string]any{
		"checked_from": from, "checked_to": size, "applied_again": reapplied, "missing": lost, "missing_count": missing,
	})}}, nil
}

func splitKey(k string) (kind, name string) {
	for i := 0; i < len(k); i++ {
		if k[i] == ' ' {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}
