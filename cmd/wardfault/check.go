package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// logCalls is what the audit log says of the tool calls made by load, read
// back with the ward CLI after `ward audit verify` passed.
type logCalls struct {
	allowed  map[string]string // call id -> tool, of "allow" decisions
	answered map[string]bool   // call ids with a "result" event for their allowed decision
	refunded map[string]bool   // call ids whose allowed decision was refunded (never forwarded)
	// session and at are each allowed call's session and the time of its
	// decision's event.
	session map[string]string
	at      map[string]time.Time
	events  int
}

// errUnverified is readLog's error for a log that does not verify.
var errUnverified = errors.New("the audit log does not verify")

// readLog verifies the node's audit log against the log key pinned at its
// first start (`ward audit verify`) and reads its tool calls (`ward audit
// search`). The node must not be running. A log that does not verify is
// an error wrapping errUnverified.
func readLog(ctx context.Context, n *node, key string) (*logCalls, error) {
	if _, err := n.ward(ctx, "audit", "verify", "--data", n.data, "--key", key); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnverified, err)
	}
	out, err := n.ward(ctx, "audit", "search", "--data", n.data, "--key", key, "-n", "0", "-o", "json")
	if err != nil {
		return nil, err
	}
	lc := &logCalls{allowed: map[string]string{}, answered: map[string]bool{}, refunded: map[string]bool{},
		session: map[string]string{}, at: map[string]time.Time{}}
	byIndex := map[uint64]string{} // decision event -> call id
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e struct {
			Index   uint64
			Time    time.Time
			Type    string
			Session string
			Data    struct {
				Name          string
				Decision      string
				Arguments     json.RawMessage
				DecisionEvent *uint64 `json:"decision_event"`
				Refunded      bool
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("ward audit search: %w", err)
		}
		lc.events++
		switch {
		case e.Type == "decision" && e.Data.Decision == "allow" && slices.Contains([]string{toolWork, toolSpend}, e.Data.Name):
			var a callArgs
			if err := json.Unmarshal(e.Data.Arguments, &a); err != nil || a.ID == "" {
				return nil, fmt.Errorf("event %d: the allowed call of %s has no recorded id (arguments %s)", e.Index, e.Data.Name, e.Data.Arguments)
			}
			if _, dup := lc.allowed[a.ID]; dup {
				return nil, fmt.Errorf("event %d: call %s allowed twice", e.Index, a.ID)
			}
			lc.allowed[a.ID] = e.Data.Name
			lc.session[a.ID], lc.at[a.ID] = e.Session, e.Time
			byIndex[e.Index] = a.ID
		case e.Type == "result" && e.Data.DecisionEvent != nil:
			if id, ok := byIndex[*e.Data.DecisionEvent]; ok {
				lc.answered[id] = true
				if e.Data.Refunded {
					lc.refunded[id] = true
				}
			}
		}
	}
	return lc, sc.Err()
}

// loss is what a scenario found missing or exceeded.
type loss struct {
	// Lost are calls acknowledged to an agent that the log does not hold
	// as allowed and answered.
	Lost []string `json:"lost"`
	// Unrecorded are calls the upstream ran that the log does not hold
	// as allowed: ward forwarded what it had not recorded.
	Unrecorded []string `json:"unrecorded"`
	// Over is how far the budget was exceeded: allowed calls of the
	// budgeted tool in the log, not refunded, beyond the budget, or runs
	// of it by the upstream beyond the budget, whichever is more.
	Over int `json:"over"`
}

func (l loss) none() bool { return len(l.Lost) == 0 && len(l.Unrecorded) == 0 && l.Over == 0 }

// compare checks what agents were told and what the upstream ran against
// the log, and the budget (budget <= 0: none) against both.
func compare(acked, ran map[string]string, lc *logCalls, budget int) (loss, budgetUse) {
	var l loss
	for id := range acked {
		if _, ok := lc.allowed[id]; !ok || !lc.answered[id] {
			l.Lost = append(l.Lost, id)
		}
	}
	for id := range ran {
		if _, ok := lc.allowed[id]; !ok {
			l.Unrecorded = append(l.Unrecorded, id)
		}
	}
	slices.Sort(l.Lost)
	slices.Sort(l.Unrecorded)
	var u budgetUse
	u.Max = budget
	for id, tool := range lc.allowed {
		if tool == toolSpend && !lc.refunded[id] {
			u.Allowed++
		}
	}
	for _, tool := range ran {
		if tool == toolSpend {
			u.Ran++
		}
	}
	for _, tool := range acked {
		if tool == toolSpend {
			u.Acked++
		}
	}
	if budget > 0 {
		l.Over = max(u.Allowed-budget, u.Ran-budget, 0)
	}
	return l, u
}

// budgetUse is how much of the budget the log, the upstream and the
// agents saw used.
type budgetUse struct {
	Max     int `json:"max"`
	Allowed int `json:"allowed"` // allowed in the log, not refunded
	Ran     int `json:"ran"`     // run by the upstream
	Acked   int `json:"acked"`   // acknowledged to agents
}
