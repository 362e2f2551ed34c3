package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/strictjson"
)

// A runtime's run directory is locked (flock) by the ward process that
// started it for as long as it holds the runtime, and records what the
// runtime made outside it (its cgroups) in RUN/runtime.json before making
// it. A ward process that is killed releases the lock with its last
// descriptor, and its runtime dies with it (init has a parent-death
// signal), but the cgroups and the directory stay: [Reap] finds them by
// the free lock and the record, and removes them.

// recordName is the run directory's record of what the runtime made.
const recordName = "runtime.json"

// maxRecord bounds a record's size.
const maxRecord = 64 << 10

// runRecord is RUN/runtime.json.
type runRecord struct {
	Cgroups []string `json:"cgroups"`
}

// lockRunDir takes the run directory's lock and writes an empty record.
// The lock is held as long as the returned file is open; it is not
// inherited by the runtime (close-on-exec).
func lockRunDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("run directory %s is in use by another runtime: %w", dir, err)
	}
	if err := writeRecord(dir, nil); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeRecord replaces the run directory's record. Written whole, under a
// temporary name, then renamed: a process killed meanwhile leaves the old
// record or the new one. Not synced: after a crash of the host, neither
// the runtime nor its cgroups exist any more.
func writeRecord(dir string, cgroups []string) error {
	b, err := json.Marshal(runRecord{Cgroups: append([]string{}, cgroups...)})
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, recordName)); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	return nil
}

// Reap cleans up after a runtime that was never released because the
// ward process holding it was killed (SIGKILL) or crashed: its processes
// died with that process, but not its cgroups nor its run directory.
//
// If runDir is the run directory of such a runtime (one Start locked and
// recorded, which no process holds any more), Reap removes the cgroups
// its record names, then runDir with everything in it, and returns true.
// A run directory still in use, not owned by this user (or open to
// others), or holding no record (no runtime was started in it) is left
// alone: false, nil. A record that names anything but a runtime's cgroup
// is an error, and nothing is removed.
func Reap(runDir string) (bool, error) {
	fi, err := os.Lstat(runDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return false, nil
	}
	f, err := os.OpenFile(runDir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false, nil // in use
	}
	rf, err := os.OpenFile(filepath.Join(runDir, recordName), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reap %s: %w", runDir, err)
	}
	b, err := io.ReadAll(io.LimitReader(rf, maxRecord+1))
	rf.Close()
	if err != nil {
		return false, fmt.Errorf("reap %s: %w", runDir, err)
	}
	var rec runRecord
	if len(b) > maxRecord {
		return false, fmt.Errorf("reap %s: %s is larger than %d bytes", runDir, recordName, maxRecord)
	}
	if err := strictjson.Unmarshal(b, &rec); err != nil {
		return false, fmt.Errorf("reap %s: %s: %w", runDir, recordName, err)
	}
	for _, d := range rec.Cgroups {
		if filepath.Clean(d) != d || !strings.HasPrefix(d, "/sys/fs/cgroup/") || !isCgroupName(filepath.Base(d)) {
			return false, fmt.Errorf("reap %s: %s names %q, which is not a runtime's cgroup", runDir, recordName, d)
		}
	}
	if err := (&cgroup{dirs: rec.Cgroups}).remove(); err != nil {
		return false, fmt.Errorf("reap %s: %w", runDir, err)
	}
	if err := os.RemoveAll(runDir); err != nil {
		return false, fmt.Errorf("reap %s: %w", runDir, err)
	}
	return true, nil
}
