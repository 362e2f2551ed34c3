package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ward-dev/ward/internal/atomicfile"
	"github.com/ward-dev/ward/internal/quota"
)

// Budgets survive restarts exactly. Every decision that counts against a
// limit records what it counted ("charged" in its decision event) before
// the call goes ahead, and every refund is recorded ("refunded" in the
// result event) before it is made. DATA/budgets.json holds a snapshot of
// the limiter taken while no reservation or refund was half done, with the
// size of the audit log at that moment (enforce.Pipeline.Quiesce). On
// start the snapshot is restored and the events after it are applied
// again: the usage is then exactly what the log says it is, whether the
// node stopped cleanly, was killed or lost its snapshot. Start time depends
// on the events since the last snapshot (taken every expirySweep and on
// Close), not on the log's length — unless there is no snapshot, when the
// log is read back as far as the longest window of any limit.

// budgetsFile is the snapshot of the limiter.
type budgetsFile struct {
	// Size is the audit log's size when the snapshot was taken: events
	// from Size on are not in it.
	Size  uint64      `json:"audit_size"`
	State quota.State `json:"state"`
}

// openBudgets rebuilds the limiter's usage from the snapshot and the log.
func (n *Node) openBudgets(l *quota.Limiter) error {
	path := n.budgetsPath()
	from := uint64(0)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var f budgetsFile
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("budgets %s: %w (delete it to rebuild usage from the audit log)", path, err)
		}
		if f.Size > n.Audit.Size() {
			return fmt.Errorf("budgets %s: the snapshot covers %d audit events but the log has %d; the log is behind its own budgets", path, f.Size, n.Audit.Size())
		}
		if err := l.Restore(f.State); err != nil {
			return fmt.Errorf("budgets %s: %w (delete it to rebuild usage from the audit log)", path, err)
		}
		from = f.Size
	case errors.Is(err, os.ErrNotExist):
		from = n.firstInWindow(l)
	default:
		return fmt.Errorf("budgets: %w", err)
	}
	return n.replayCharges(l, from)
}

func (n *Node) budgetsPath() string { return filepath.Join(n.cfg.Data, "budgets.json") }

// firstInWindow finds, from the end of the log backwards, the first event
// that may still count against a limit: none older than the longest
// window.
func (n *Node) firstInWindow(l *quota.Limiter) uint64 {
	var longest time.Duration
	for _, lim := range l.Limits() {
		longest = max(longest, lim.Window)
	}
	horizon := time.Now().Add(-longest)
	size := n.Audit.Size()
	for end := size; end > 0; {
		start := end - min(end, indexChunk)
		events, err := n.Audit.Read(start, end)
		if err != nil {
			return 0
		}
		for i := len(events) - 1; i >= 0; i-- {
			if events[i].Time.Before(horizon) {
				return events[i].Index + 1
			}
		}
		end = start
	}
	return 0
}

// replayCharges applies the charges and refunds recorded from event from
// on.
func (n *Node) replayCharges(l *quota.Limiter, from uint64) error {
	charged := map[uint64][]quota.Charge{}
	size := n.Audit.Size()
	for start := from; start < size; start += indexChunk {
		events, err := n.Audit.Read(start, min(start+indexChunk, size))
		if err != nil {
			return fmt.Errorf("budgets: read the audit log: %w", err)
		}
		for _, e := range events {
			switch e.Type {
			case "decision":
				var d struct {
					Charged []quota.Charge `json:"charged"`
				}
				if json.Unmarshal(e.Data, &d) != nil || len(d.Charged) == 0 {
					continue
				}
				if _, err := l.ApplyCharges(d.Charged); err != nil {
					return fmt.Errorf("budgets: event %d: %w", e.Index, err)
				}
				charged[e.Index] = d.Charged
			case "result":
				var r struct {
					Refunded bool   `json:"refunded"`
					Decision uint64 `json:"decision_event"`
				}
				if json.Unmarshal(e.Data, &r) != nil || !r.Refunded {
					continue
				}
				cs, ok := charged[r.Decision]
				if !ok && r.Decision < from {
					// Charged before the snapshot, which counts it.
					cs, err = n.chargesOf(r.Decision)
					if err != nil {
						return err
					}
				}
				if err := l.RefundCharges(cs); err != nil {
					return fmt.Errorf("budgets: event %d: %w", e.Index, err)
				}
			}
		}
	}
	return nil
}

// chargesOf reads the charges recorded with decision event i.
func (n *Node) chargesOf(i uint64) ([]quota.Charge, error) {
	events, err := n.Audit.Read(i, i+1)
	if err != nil {
		return nil, fmt.Errorf("budgets: read decision %d: %w", i, err)
	}
	var d struct {
		Charged []quota.Charge `json:"charged"`
	}
	if events[0].Type != "decision" || json.Unmarshal(events[0].Data, &d) != nil {
		return nil, nil
	}
	return d.Charged, nil
}

// saveBudgets writes a snapshot of the limiter, durably.
func (n *Node) saveBudgets() error {
	if n.limiter == nil || n.pipeline == nil {
		return nil
	}
	var f budgetsFile
	n.pipeline.Quiesce(func() {
		f.State = n.limiter.Snapshot()
		f.Size = n.Audit.Size()
	})
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return atomicfile.Write(n.budgetsPath(), b, 0o600)
}
