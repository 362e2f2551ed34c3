package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// damage: pages of a killed node's store are overwritten. A damaged audit
// index (derived from the audit log) must be rebuilt by the next start,
// which records it (store.repair); a damaged sessions table must stop the
// start, naming the table and what to do, not fail later with "database
// disk image is malformed". The audit log must still hold every
// acknowledged call.
func damage(ctx context.Context, cfg Config, dir string) (*result, error) {
	r := &result{Scenario: "damage"}
	f, l, stop, err := underLoad(ctx, cfg, r, dir, filepath.Join(dir, "data"), cfg.DiskSessions, 0, "the kill")
	if err != nil {
		return nil, err
	}
	defer f.close()
	defer stop()
	f.node.kill()
	db := filepath.Join(f.node.data, "ward.db")

	// The audit index: derived, rebuilt.
	if err := overwritePage(ctx, db, "audit_index"); err != nil {
		return nil, err
	}
	if err := f.node.start(ctx); err != nil {
		r.problem("ward up did not start over a damaged audit index (derived from the log: it can be rebuilt): %v", err)
	} else {
		if !waitAcks(ctx, l, l.ackCount()+1, time.Minute) {
			r.problem("no call was acknowledged after the audit index was rebuilt")
		}
		f.node.kill()
		out, err := f.node.ward(ctx, "audit", "search", "--data", f.node.data, "--key", f.key, "--type", "store.repair", "-n", "1")
		switch {
		case err != nil:
			return nil, err
		case !strings.Contains(out, "audit_index"):
			r.problem("the rebuilt audit index was not recorded (store.repair naming audit_index): %q", out)
		default:
			r.note("overwrote a page of the audit index: rebuilt on start and recorded: %s", firstWords(strings.TrimSpace(out), 300))
		}
	}
	stop()

	// The sessions table: not derived, the start stops.
	if err := overwritePage(ctx, db, "sessions"); err != nil {
		return nil, err
	}
	err = f.node.start(ctx)
	switch {
	case err == nil:
		r.problem("ward up started over a damaged sessions table")
		f.node.stop()
	case f.node.cmd.ProcessState == nil || f.node.cmd.ProcessState.ExitCode() == 0:
		r.problem("ward up did not exit non-zero over a damaged sessions table: %v", err)
	default:
		msg := err.Error()
		if !strings.Contains(msg, "table sessions") || !strings.Contains(msg, "backup") {
			r.problem("ward up's refusal of a damaged sessions table does not name the table and what to do: %s", msg)
		}
		r.note("overwrote a page of the sessions table: ward up refused, exit %d: %s", f.node.cmd.ProcessState.ExitCode(), damageLine(msg))
	}
	return r, finish(ctx, r, f, l, 0)
}

// overwritePage writes junk over the root page of table in a stopped
// node's store, after folding the write-ahead log into it.
func overwritePage(ctx context.Context, path, table string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	var root, size int64
	if err := db.QueryRowContext(ctx, `SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&root); err != nil {
		return fmt.Errorf("table %s of %s: %w", table, path, err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		return err
	}
	db.Close()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	junk := []byte(strings.Repeat("\x5a", int(size)))
	if _, err := fh.WriteAt(junk, (root-1)*size); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// damageLine picks the line of a node's output that names the damage.
func damageLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "damaged") {
			return firstWords(strings.TrimSpace(line), 1000)
		}
	}
	return firstWords(out, 300)
}
