package changes

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"golang.org/x/sys/unix"
)

// Apply makes the workspace match the set s, whose content Save wrote to
// the directory from. Refused changes are skipped.
//
// Nothing is written before everything is checked: the set (as Load checks
// it), the content of every file under from against its hash, and the
// workspace: the parent of each change must be a directory reachable from
// the workspace root without a symlink or mount point, or be created by
// the set; a directory whose mode changed must still be a directory. A
// failed check wraps ErrInvalid (the set) or ErrConflict (the workspace).
//
// Then, in path order: a deleted path is removed, a directory with all of
// it; a replaced path loses what it held the same way; a file or symlink
// is written under a temporary name in its directory, fsynced, and
// renamed over whatever is there (a directory there is removed first); a
// directory is created 0700 if missing
// (an existing one keeps its content). Directory modes are set last,
// deepest first, so that a read-only directory can be filled first;
// finally every directory written into is fsynced. Files are created by
// the calling process, which owns them: apply as the workspace's owner.
//
// If a step fails midway, Apply stops and returns an error naming the
// path: the changes before it are in place, the rest are not. A file or
// symlink that failed is not in place either (its temporary file is
// removed); a removal that failed may have removed part of a directory. Applying the same set again after fixing the cause finishes
// the job: every step is idempotent. (A crash, unlike an error, can leave
// a temporary .ward-apply-* file beside the path being written.)
func Apply(s *Set, from, workspace string) error {
	if s == nil {
		s = &Set{}
	}
	if err := check(s.Changes); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	src, err := openRoot(from)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	defer src.Close()
	if err := verify(s, int(src.Fd())); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	ws, err := openRoot(workspace)
	if err != nil {
		return fmt.Errorf("apply: workspace: %w", err)
	}
	defer ws.Close()
	if err := fits(s, int(ws.Fd())); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	a := &applier{ws: int(ws.Fd()), files: -1, parentFD: -1, touched: map[string]bool{}, buf: make([]byte, copyBuffer)}
	defer a.close()
	for _, c := range s.Changes {
		if c.Kind == Refused {
			continue
		}
		if c.hasContent() && a.files < 0 {
			if a.files, err = openBeneath(int(src.Fd()), filesName, unix.O_RDONLY|unix.O_DIRECTORY, 0); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
		}
		if err := a.apply(c); err != nil {
			return fmt.Errorf("apply %s: %w", c.Path, err)
		}
	}
	return a.finish()
}

// fits checks that the workspace ws has a place for every change of s.
func fits(s *Set, ws int) error {
	listed := make(map[string]Change, len(s.Changes))
	for _, c := range s.Changes {
		listed[c.Path] = c
	}
	checked := map[string]bool{".": true} // directories found in the workspace
	isDir := func(p string) error {
		if checked[p] {
			return nil
		}
		fd, err := openBeneath(ws, p, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("%w: %s is not a directory reachable without a symlink or mount point: %v", ErrConflict, p, err)
		}
		unix.Close(fd)
		checked[p] = true
		return nil
	}
	for _, c := range s.Changes {
		if c.Kind == Refused {
			continue
		}
		dir := path.Dir(c.Path)
		if pc, ok := listed[dir]; ok && pc.Kind != Modified {
			continue // beneath a directory the set creates afresh
		}
		if err := isDir(dir); err != nil {
			return err
		}
		if c.Kind == Modified && c.Type == Dir {
			if err := isDir(c.Path); err != nil {
				return err
			}
			continue
		}
		// What is there now is replaced or removed: it may be anything
		// but a mount point.
		fd, err := openBeneath(ws, c.Path, unix.O_PATH, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrConflict, c.Path, err)
		}
		unix.Close(fd)
	}
	return nil
}

type applier struct {
	ws, files int
	// The directory of the last change, kept open for its siblings.
	parent   string
	parentFD int
	modes    []Change        // directories whose mode is set at the end
	touched  map[string]bool // directories to fsync at the end
	buf      []byte          // for copying content
}

func (a *applier) close() {
	if a.parentFD >= 0 {
		unix.Close(a.parentFD)
	}
	if a.files >= 0 {
		unix.Close(a.files)
	}
}

// dir returns the directory p of the workspace, open.
func (a *applier) dir(p string) (int, error) {
	if a.parentFD >= 0 && a.parent == p {
		return a.parentFD, nil
	}
	if a.parentFD >= 0 {
		unix.Close(a.parentFD)
		a.parentFD = -1
	}
	fd, err := openBeneath(a.ws, p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	a.parent, a.parentFD = p, fd
	return fd, nil
}

func (a *applier) apply(c Change) error {
	dir, name := splitParent(c.Path)
	pfd, err := a.dir(dir)
	if err != nil {
		return err
	}
	a.touched[dir] = true
	if c.Kind == Deleted || (c.Kind == Replaced && c.Type == Dir) {
		if err := removeAllAt(pfd, name); err != nil {
			return err
		}
	}
	switch {
	case c.Kind == Deleted:
		return nil
	case c.Type == File:
		return a.file(pfd, name, c)
	case c.Type == Symlink:
		tmp := tempName()
		if err := unix.Symlinkat(c.Target, pfd, tmp); err != nil {
			return err
		}
		return place(pfd, tmp, name)
	default:
		return a.mkdir(pfd, name, c)
	}
}

// file writes c's content next to name and renames it into place.
func (a *applier) file(pfd int, name string, c Change) error {
	src, _, err := regular(a.files, c.Path)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := tempName()
	fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := fdFile(fd, tmp)
	err = copyChecked(dst, src, c, a.buf)
	if err == nil {
		err = unix.Fchmod(fd, UnixMode(c.Mode))
	}
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return err
	}
	return place(pfd, tmp, name)
}

// place renames tmp over name in pfd, removing a directory there first.
func place(pfd int, tmp, name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = removeAllAt(pfd, name)
	} else if err == unix.ENOENT {
		err = nil
	}
	if err == nil {
		err = unix.Renameat(pfd, tmp, pfd, name)
	}
	if err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return err
	}
	return nil
}

// mkdir makes sure name in pfd is a directory; its mode is set by finish.
func (a *applier) mkdir(pfd int, name string, c Change) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
	case err == nil:
		if err := unix.Unlinkat(pfd, name, 0); err != nil {
			return err
		}
		fallthrough
	case err == unix.ENOENT:
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil {
			return err
		}
	default:
		return err
	}
	a.modes = append(a.modes, c)
	a.touched[c.Path] = true
	return nil
}

// finish sets directory modes, deepest first, and fsyncs what was written.
func (a *applier) finish() error {
	for i := len(a.modes) - 1; i >= 0; i-- {
		c := a.modes[i]
		fd, err := openBeneath(a.ws, c.Path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("apply %s: %w", c.Path, err)
		}
		err = unix.Fchmod(fd, UnixMode(c.Mode))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("apply %s: chmod: %w", c.Path, err)
		}
	}
	for p := range a.touched {
		if err := syncBeneath(a.ws, p); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
	}
	return nil
}

// tempName is a fresh name for a file on its way into place.
func tempName() string { return ".ward-apply-" + rand.Text() }
