package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// storeLoss: a node is killed under load and its SQLite store (ward.db,
// its write-ahead log and shared memory) is deleted. `ward up` must then
// refuse to start as on a first start (which would mint a new admin
// credential and approve every tool again), exit non-zero and say how to
// recover; the audit log must still hold every acknowledged call.
func storeLoss(ctx context.Context, cfg Config, dir string) (*result, error) {
	r := &result{Scenario: "store-loss"}
	f, err := setup(ctx, cfg, dir, filepath.Join(dir, "data"), 0, cfg.DiskSessions)
	if err != nil {
		return nil, err
	}
	defer f.close()
	l := newLoad(f.endpoint(), f.creds, 0)
	stop := runLoad(ctx, l)
	sleep(ctx, cfg.Interval)
	if !waitAcks(ctx, l, 1, time.Minute) {
		r.problem("no call was acknowledged before the kill")
	}
	f.node.kill()
	stop()
	var removed []string
	for _, name := range []string{"ward.db", "ward.db-wal", "ward.db-shm", "ward.db-journal"} {
		if err := os.Remove(filepath.Join(f.node.data, name)); err == nil {
			removed = append(removed, name)
		}
	}
	r.note("killed under load after %d acknowledged calls; removed %s", l.ackCount(), strings.Join(removed, ", "))

	err = f.node.start(ctx)
	switch {
	case err == nil:
		r.problem("ward up started over an empty store next to an existing audit log and CA")
		f.node.stop()
	case f.node.cmd.ProcessState == nil || f.node.cmd.ProcessState.ExitCode() == 0:
		r.problem("ward up did not exit non-zero over an empty store: %v", err)
	default:
		msg := err.Error()
		if strings.Contains(msg, "WARD_TOKEN=") || strings.Contains(msg, "Admin credential") {
			r.problem("ward up printed a new admin credential over an empty store")
		}
		if !strings.Contains(msg, "--reinit-store") || !strings.Contains(msg, "backup") {
			r.problem("ward up's refusal does not say how to recover (restore from a backup, or --reinit-store): %s", msg)
		}
		r.note("ward up refused, exit %d: %s", f.node.cmd.ProcessState.ExitCode(), refusalLine(msg))
	}
	return r, finish(ctx, r, f, l, 0)
}

// refusalLine picks the line of a node's output that says why it stopped.
func refusalLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "is empty") {
			if len(line) > 240 {
				line = line[:240] + "…"
			}
			return strings.TrimSpace(line)
		}
	}
	return "(no line says the store is empty)"
}
