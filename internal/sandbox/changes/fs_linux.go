package changes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// resolve confines openat2 to the directory it starts from: no "..", no
// absolute path, no symlink (magic or not) and no mount point on the way.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openBeneath opens rel (a clean relative path, or ".") beneath the
// directory root without following any symlink.
func openBeneath(root int, rel string, flags int, perm uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: resolve}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(perm)
	}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(root, rel, &how)
		// EAGAIN: a concurrent rename or mount; the kernel asks to retry.
		if (err == unix.EAGAIN && tries < 16) || err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
		return fd, nil
	}
}

// openAt opens the single name in directory dirfd without following it if
// it is a symlink.
func openAt(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return fd, nil
	}
}

// openRoot opens the directory at path, which the caller trusts.
func openRoot(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// fdFile wraps fd, which it then owns.
func fdFile(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }

// regular opens the regular file rel beneath root for reading: O_NONBLOCK
// so that a FIFO swapped in cannot block, then checked to be a regular
// file.
func regular(root int, rel string) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openBeneath(root, rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, st, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, st, fmt.Errorf("%s: not a regular file", rel)
	}
	return fdFile(fd, rel), st, nil
}

// hashAll reads f to its end, through buf, and returns the SHA-256 and
// length of what it read.
func hashAll(f io.Reader, buf []byte) (string, int64, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf) // not f's WriterTo, which brings its own buffer
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// overlayXattr reads the overlayfs xattr overlay.<name> of fd in either
// namespace (trusted. for a mount by real root, user. for userxattr).
func overlayXattr(fd int, name string) (value string, ok bool, err error) {
	buf := make([]byte, 256)
	for _, ns := range []string{"trusted.overlay.", "user.overlay."} {
		n, err := unix.Fgetxattr(fd, ns+name, buf)
		switch {
		case err == nil:
			return string(buf[:n]), true, nil
		case err == unix.ERANGE:
			return "", true, nil // present, and longer than any value we look for
		case err == unix.ENODATA || err == unix.EOPNOTSUPP || err == unix.EPERM:
			continue
		default:
			return "", false, fmt.Errorf("read xattr %s%s: %w", ns, name, err)
		}
	}
	return "", false, nil
}

// typeOf is the Type of a stat mode.
func typeOf(mode uint32) Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return File
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	case unix.S_IFIFO:
		return Fifo
	case unix.S_IFSOCK:
		return Socket
	}
	return Device
}

// readlinkAt returns the target of the symlink name in dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	buf := make([]byte, maxPath+1)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	if n > maxPath {
		return "", errors.New("symlink target too long")
	}
	return string(buf[:n]), nil
}

// mkdirBeneath makes sure the directory rel exists beneath root, creating
// what is missing with mode 0700, and returns it open.
func mkdirBeneath(root int, rel string) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	if rel == "." {
		return fd, nil
	}
	for _, name := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(fd, name, 0o700); err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return -1, &fs.PathError{Op: "mkdir", Path: rel, Err: err}
		}
		next, err := openBeneath(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// removeAllAt removes name in dirfd and, if it is a directory, everything
// in it, never following a symlink nor entering another mount. A name that
// does not exist is no error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	// Read a batch of names, remove them, and read again from the start,
	// as os.RemoveAll does: reading on while removing may skip names.
	for {
		fd, err := openBeneath(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		d := fdFile(fd, name)
		names, err := d.Readdirnames(1024)
		if err != nil && err != io.EOF {
			d.Close()
			return err
		}
		for _, n := range names {
			if err := removeAllAt(fd, n); err != nil {
				d.Close()
				return err
			}
		}
		d.Close()
		if len(names) < 1024 {
			break
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

// syncBeneath fsyncs the directory rel beneath root.
func syncBeneath(root int, rel string) error {
	fd, err := openBeneath(root, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: rel, Err: err}
	}
	return nil
}

// splitParent splits a clean relative path into its parent ("." at the
// top) and its name.
func splitParent(rel string) (dir, name string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return ".", rel
}
