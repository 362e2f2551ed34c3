package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// recoverLimit bounds how long a node may take to notice that a fault
// cleared (space freed) and serve again.
const recoverLimit = time.Minute

// diskFull: the node's data directory is on a small tmpfs of its own,
// which fills up while agents call tools. Calls must then be refused (the
// audit log cannot record them) and /healthz must say unready; once the
// space is freed, the same process must be ready and answer calls again,
// without a restart. Nothing acknowledged may be missing from the log.
// It needs root (to mount); without it the scenario is skipped.
func diskFull(ctx context.Context, cfg Config, dir string) (*result, error) {
	r := &result{Scenario: "disk-full"}
	mnt := filepath.Join(dir, "disk")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", cfg.DiskMiB<<20)); err != nil {
		r.Skipped = fmt.Sprintf("cannot mount a %d MiB tmpfs for the data directory (%v); run as root", cfg.DiskMiB, err)
		return r, nil
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	f, l, stop, err := underLoad(ctx, cfg, r, dir, filepath.Join(mnt, "data"), cfg.DiskSessions, 0, "the disk filled")
	if err != nil {
		return nil, err
	}
	defer f.close()
	defer stop()

	// Counted from before the disk fills: agents may be refused (and
	// then fail to reconnect) before fill returns.
	ackedFull, failedFull := l.ackCount(), l.refusals()
	filler := filepath.Join(mnt, "filler")
	if err := fill(filler); err != nil {
		return nil, err
	}
	full := time.Now()
	unready := false
	for !unready && time.Since(full) < recoverLimit && ctx.Err() == nil {
		code, _, err := f.node.health()
		unready = err == nil && code == http.StatusServiceUnavailable
		sleep(ctx, 20*time.Millisecond)
	}
	if !unready {
		r.problem("/healthz still said ready %v after the disk filled", recoverLimit)
	}
	// Calls are refused now: fail closed.
	sleep(ctx, cfg.Interval)
	refusedFull := l.refusals() - failedFull
	ackedWhileFull := l.ackCount() - ackedFull
	if refusedFull == 0 {
		r.problem("no call was refused in %v on a full disk", cfg.Interval)
	}

	if err := os.Remove(filler); err != nil {
		return nil, err
	}
	freed := time.Now()
	ready := false
	for !ready && time.Since(freed) < recoverLimit && ctx.Err() == nil {
		code, _, err := f.node.health()
		ready = err == nil && code == http.StatusOK
		sleep(ctx, 20*time.Millisecond)
	}
	readyAfter := time.Since(freed)
	if !ready {
		r.problem("/healthz not ready %v after the space was freed", recoverLimit)
	}
	ackedFreed := l.ackCount()
	if !waitAcks(ctx, l, ackedFreed+1, recoverLimit) {
		r.problem("no call was acknowledged %v after the space was freed", recoverLimit)
	}
	callsAfter := time.Since(freed)
	if !f.node.running() || f.node.starts != 1 {
		r.problem("the node did not recover by itself (it exited or was restarted)")
	}
	sleep(ctx, cfg.Interval)
	stop()
	r.note("%d agents on a %d MiB tmpfs; on the full disk %d calls and connections refused, %d calls acknowledged while it filled, /healthz unready: %v",
		len(f.creds), cfg.DiskMiB, refusedFull, ackedWhileFull, unready)
	r.note("space freed: /healthz ready after %v, calls answered again after %v, same process", readyAfter.Round(time.Millisecond), callsAfter.Round(time.Millisecond))
	return r, finish(ctx, r, f, l, 0)
}

// fill writes to path until the file system is full.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 1 << 12, 1} {
		b := make([]byte, chunk)
		for {
			_, err := f.Write(b)
			if errors.Is(err, unix.ENOSPC) {
				break
			}
			if err != nil {
				return fmt.Errorf("filling the disk: %w", err)
			}
		}
	}
	return nil
}
