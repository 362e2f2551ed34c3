package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite"

	"github.com/ward-dev/ward/internal/sessioncred"
)

// storeLoss: a node is killed under load and its SQLite store (ward.db,
// its write-ahead log and shared memory) is deleted. `ward up` must then
// refuse to start as on a first start (which would mint a new admin
// credential and approve every tool again), exit non-zero and say how to
// recover; the audit log must still hold every acknowledged call.
func storeLoss(ctx context.Context, cfg Config, dir string) (*result, error) {
	r := &result{Scenario: "store-loss"}
	f, l, stop, err := underLoad(ctx, cfg, r, dir, filepath.Join(dir, "data"), cfg.DiskSessions, 0, "the kill")
	if err != nil {
		return nil, err
	}
	defer f.close()
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
		if credential.MatchString(msg) {
			r.problem("ward up printed a new admin credential over an empty store")
		}
		if !strings.Contains(msg, "--reinit-store") || !strings.Contains(msg, "backup") {
			r.problem("ward up's refusal does not say how to recover (restore from a backup, or --reinit-store): %s", msg)
		}
		r.note("ward up refused, exit %d: %s", f.node.cmd.ProcessState.ExitCode(), refusalLine(msg))
	}
	return r, finish(ctx, r, f, l, 0)
}

// credential is an admin credential as ward up prints it on a first start.
var credential = regexp.MustCompile(`WARD_TOKEN=ward_[A-Za-z0-9_-]{43}`)

// refusalLine picks the line of a node's output that says why it stopped.
func refusalLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "is empty") {
			return firstWords(strings.TrimSpace(line), 1000)
		}
	}
	return "(no line says the store is empty)"
}

// walLoss: the store's write-ahead log (ward.db-wal, with ward.db-shm) is
// deleted while the node runs under load, after a checkpoint, so that
// ward.db keeps the sponsor, the agent and the sessions; then a session is
// ended, its end written only to the lost write-ahead log (and to the
// audit log), and the node is killed. `ward up` must then start from what
// ward.db kept, checked against the audit log (never as on a first
// start, with a new admin credential), and the ended session must stay
// ended: a store that lost it would give it back its authority. (Refusing
// as over a lost store, saying how to recover, is also keeping the
// promise.) The audit log must still hold every acknowledged call.
func walLoss(ctx context.Context, cfg Config, dir string) (*result, error) {
	r := &result{Scenario: "wal-loss"}
	f, l, stop, err := underLoad(ctx, cfg, r, dir, filepath.Join(dir, "data"), cfg.DiskSessions, 1, "the write-ahead log was deleted")
	if err != nil {
		return nil, err
	}
	defer f.close()
	defer stop()
	victim := f.creds[len(f.creds)-1]
	db := filepath.Join(f.node.data, "ward.db")
	if err := checkpoint(ctx, db); err != nil {
		return nil, err
	}
	var removed []string
	for _, name := range []string{"ward.db-wal", "ward.db-shm"} {
		if err := os.Remove(db + strings.TrimPrefix(name, "ward.db")); err == nil {
			removed = append(removed, name)
		}
	}
	if _, err := f.node.ward(ctx, "session", "end", victim.Session, "--reason", "wardfault: ended before the crash"); err != nil {
		return nil, err
	}
	before := l.ackCount()
	if !waitAcks(ctx, l, before+1, time.Minute) {
		r.problem("no call was acknowledged after the write-ahead log was deleted")
	}
	f.node.kill()
	stop()
	r.note("checkpointed, removed %s while the node ran, ended session %s, killed the node %d acknowledged calls later (%d in all)",
		strings.Join(removed, ", "), victim.Session, l.ackCount()-before, l.ackCount())

	err = f.node.start(ctx)
	switch {
	case err != nil && (f.node.cmd.ProcessState == nil || f.node.cmd.ProcessState.ExitCode() == 0):
		r.problem("ward up did not exit non-zero: %v", err)
	case err != nil:
		msg := err.Error()
		if !strings.Contains(msg, "--reinit-store") && !strings.Contains(msg, "backup") {
			r.problem("ward up's refusal does not say how to recover: %s", msg)
		}
		r.note("ward up refused, exit %d: %s", f.node.cmd.ProcessState.ExitCode(), firstLine(msg))
	default:
		if credential.MatchString(f.node.said) {
			r.problem("ward up started as on a first start over a lost write-ahead log: it printed a new admin credential")
		}
		// A session the store kept still works; the ended one must not.
		if err := oneCall(ctx, f.endpoint(), f.creds[0], "a-after"); err != nil {
			r.problem("a session from before the checkpoint no longer works after the restart: %v", err)
		}
		if err := oneCall(ctx, f.endpoint(), victim, "victim-after"); err == nil {
			r.problem("session %s, ended before the crash, acts again after it: the store's loss gave it back its authority", victim.Session)
		} else {
			r.note("the ended session stays ended: %s", firstWords(err.Error(), 120))
		}
		f.node.stop()
		out, err := f.node.ward(ctx, "audit", "search", "--data", f.node.data, "--key", f.key, "--type", "store.behind", "-n", "1")
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(out) != "" {
			r.note("ward up found the store behind the log and recorded it: %s", firstWords(strings.TrimSpace(out), 240))
		} else {
			r.note("ward up started from ward.db; the store was not behind the log")
		}
	}
	return r, finish(ctx, r, f, l, 0)
}

// checkpoint copies the write-ahead log of a running node's store into
// ward.db, as SQLite does by itself from time to time.
func checkpoint(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var busy, logged, done int
	for range 10 {
		if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(FULL)`).Scan(&busy, &logged, &done); err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
		if busy == 0 {
			return nil
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("checkpoint %s: busy (%d of %d pages done)", path, done, logged)
}

// oneCall makes one call of toolWork as the session c, on a new MCP session.
func oneCall(ctx context.Context, endpoint string, c *sessioncred.Credentials, id string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "wardfault-agent", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: c.HTTPClient(false), MaxRetries: -1}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: toolWork, Arguments: callArgs{ID: id}})
	if err != nil {
		return err
	}
	if res.IsError || textOf(res) != id {
		return fmt.Errorf("unexpected answer %+v", res.Content)
	}
	return nil
}

func firstWords(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// firstLine is the line of a node's output that names the fault.
func firstLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "ward.db") || strings.Contains(line, "store") {
			return firstWords(strings.TrimSpace(line), 1000)
		}
	}
	return firstWords(s, 240)
}
