package changes

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Scan returns the changes that the overlay upper layer upper makes to the
// lower layer lower, sorted by path (see the package comment for the
// model). It follows no symlink in either layer: every directory is opened
// by name relative to its parent with O_NOFOLLOW, so the layers may be
// changing under it, as long as they are the layers of one mount.
//
// An upper layer of more than MaxEntries entries, or whose regular files
// add up to more than maxBytes (their apparent sizes, each hard link
// counted: what Save would copy), is an error wrapping ErrTooLarge. The
// size is checked before any content is read, so a sparse file of
// exabytes costs nothing. One written with redirect_dir or metacopy is an
// error, since part of its content is in the lower layer.
func Scan(upper, lower string, maxBytes int64) (*Set, error) {
	return scan(upper, lower, MaxEntries, maxBytes)
}

func scan(upper, lower string, limit int, maxBytes int64) (*Set, error) {
	up, err := openRoot(upper)
	if err != nil {
		return nil, fmt.Errorf("scan: upper layer: %w", err)
	}
	defer up.Close()
	low, err := openRoot(lower)
	if err != nil {
		return nil, fmt.Errorf("scan: lower layer: %w", err)
	}
	defer low.Close()
	sc := &scanner{limit: limit, maxBytes: maxBytes, buf: make([]byte, copyBuffer)}
	if err := sc.dir(up, low, ""); err != nil {
		return nil, err
	}
	slices.SortFunc(sc.out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(sc.out); i++ {
		if sc.out[i].Path == sc.out[i-1].Path {
			// Only names that are not UTF-8 can end up the same.
			return nil, fmt.Errorf("scan %q: two names that are not UTF-8 read the same", sc.out[i].Path)
		}
	}
	return &Set{Changes: sc.out}, nil
}

type scanner struct {
	limit, seen     int
	maxBytes, bytes int64
	out             []Change
	buf             []byte // for reading content
}

// dir scans the upper directory up, at rel ("" at the root), against the
// lower directory low: nil where the lower layer has none or it is hidden.
func (sc *scanner) dir(up, low *os.File, rel string) error {
	for {
		names, err := up.Readdirnames(1024)
		for _, name := range names {
			if sc.seen++; sc.seen > sc.limit {
				return fmt.Errorf("scan: %w: more than %d entries", ErrTooLarge, sc.limit)
			}
			if err := sc.entry(up, low, rel, name); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("scan %s/: %w", rel, err)
		}
	}
}

// entry scans the name in the upper directory up.
func (sc *scanner) entry(up, low *os.File, rel, name string) error {
	p := name
	if rel != "" {
		p = rel + "/" + name
	}
	utf := utf8.ValidString(name)
	if !utf {
		p = strings.ToValidUTF8(p, "\uFFFD")
	}
	if len(p) > maxPath {
		return fmt.Errorf("scan %s: path longer than %d bytes", p, maxPath)
	}
	var st, lst unix.Stat_t
	if err := unix.Fstatat(int(up.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("scan %s: %w", p, err)
	}
	var prev Type // what the lower layer has here; "" nothing
	if low != nil {
		switch err := unix.Fstatat(int(low.Fd()), name, &lst, unix.AT_SYMLINK_NOFOLLOW); err {
		case nil:
			prev = typeOf(lst.Mode)
		case unix.ENOENT:
		default:
			return fmt.Errorf("scan %s: lower layer: %w", p, err)
		}
	}
	c := Change{Path: p, Kind: Added, Type: typeOf(st.Mode), Mode: modeOf(st)}
	switch {
	case prev == c.Type:
		c.Kind = Modified
	case prev != "":
		c.Kind, c.Prev = Replaced, prev
	}
	whiteout := st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
	if !utf {
		if whiteout {
			c = Change{Path: p, Type: prev}
		}
		if c.Type != "" {
			sc.refuse(c, "name is not valid UTF-8")
		}
		return nil
	}
	if whiteout {
		sc.whiteout(p, prev)
		return nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		sc.refuse(c, "device node")
	case unix.S_IFBLK:
		sc.refuse(c, "device node")
	case unix.S_IFIFO:
		sc.refuse(c, "named pipe")
	case unix.S_IFSOCK:
		sc.refuse(c, "socket")
	case unix.S_IFLNK:
		return sc.symlink(up, low, name, c)
	case unix.S_IFREG:
		return sc.file(up, low, name, &st, &lst, c)
	case unix.S_IFDIR:
		return sc.subdir(up, low, name, &st, &lst, c)
	default:
		sc.refuse(c, "unknown file type")
	}
	return nil
}

func (sc *scanner) whiteout(p string, prev Type) {
	if prev != "" { // else a whiteout of nothing: no change
		sc.out = append(sc.out, Change{Path: p, Kind: Deleted, Type: prev})
	}
}

// prevOf is what the lower layer has at c.Path, as entry found it.
func prevOf(c Change) Type {
	switch c.Kind {
	case Modified:
		return c.Type
	case Replaced:
		return c.Prev
	}
	return ""
}

func (sc *scanner) refuse(c Change, reason string) {
	sc.out = append(sc.out, Change{Path: c.Path, Kind: Refused, Type: c.Type, Mode: c.Mode, Reason: reason})
}

func (sc *scanner) symlink(up, low *os.File, name string, c Change) error {
	target, err := readlinkAt(int(up.Fd()), name)
	if err != nil {
		return fmt.Errorf("scan %s: %w", c.Path, err)
	}
	if !utf8.ValidString(target) {
		sc.refuse(c, "symlink target is not valid UTF-8")
		return nil
	}
	if c.Kind == Modified {
		old, err := readlinkAt(int(low.Fd()), name)
		if err != nil {
			return fmt.Errorf("scan %s: lower layer: %w", c.Path, err)
		}
		if old == target {
			return nil
		}
	}
	c.Mode, c.Target = 0, target
	sc.out = append(sc.out, c)
	return nil
}

func (sc *scanner) file(up, low *os.File, name string, st, lst *unix.Stat_t, c Change) error {
	f, err := openSame(int(up.Fd()), name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, st)
	if err != nil {
		return fmt.Errorf("scan %s: %w", c.Path, err)
	}
	defer f.Close()
	if sc.bytes += st.Size; sc.bytes > sc.maxBytes {
		return fmt.Errorf("scan %s: %w: files of more than %d bytes (sparse files or hard links?)", c.Path, ErrTooLarge, sc.maxBytes)
	}
	fd := int(f.Fd())
	if st.Size == 0 {
		if _, ok, err := overlayXattr(fd, "whiteout"); err != nil {
			return fmt.Errorf("scan %s: %w", c.Path, err)
		} else if ok {
			sc.whiteout(c.Path, prevOf(c))
			return nil
		}
	}
	if _, ok, err := overlayXattr(fd, "metacopy"); err != nil || ok {
		return fmt.Errorf("scan %s: %w", c.Path, errors.Join(err, errors.New("metadata-only copy-up (metacopy=on) is not supported")))
	}
	if c.SHA256, c.Size, err = hashAll(f, sc.buf); err != nil {
		return fmt.Errorf("scan %s: %w", c.Path, err)
	}
	if c.Kind == Modified && modeOf(*lst) == c.Mode && lst.Size == c.Size {
		lf, err := openSame(int(low.Fd()), name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, lst)
		if err != nil {
			return fmt.Errorf("scan %s: lower layer: %w", c.Path, err)
		}
		sum, _, err := hashAll(lf, sc.buf)
		lf.Close()
		if err != nil {
			return fmt.Errorf("scan %s: lower layer: %w", c.Path, err)
		}
		if sum == c.SHA256 {
			return nil // copied up, not changed
		}
	}
	if c.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		sc.refuse(c, "setuid or setgid bit")
		return nil
	}
	sc.out = append(sc.out, c)
	return nil
}

func (sc *scanner) subdir(up, low *os.File, name string, st, lst *unix.Stat_t, c Change) error {
	d, err := openSame(int(up.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY, st)
	if err != nil {
		return fmt.Errorf("scan %s: %w", c.Path, err)
	}
	defer d.Close()
	if _, ok, err := overlayXattr(int(d.Fd()), "redirect"); err != nil || ok {
		return fmt.Errorf("scan %s: %w", c.Path, errors.Join(err, errors.New("renamed merged directory (redirect_dir=on) is not supported")))
	}
	opaque, _, err := overlayXattr(int(d.Fd()), "opaque")
	if err != nil {
		return fmt.Errorf("scan %s: %w", c.Path, err)
	}
	var ld *os.File // the lower directory merged into this one
	switch {
	case c.Kind == Modified && opaque == "y":
		c.Kind, c.Prev = Replaced, Dir
		sc.out = append(sc.out, c)
	case c.Kind == Modified:
		if modeOf(*lst) != c.Mode {
			sc.out = append(sc.out, c)
		}
		if ld, err = openSame(int(low.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY, lst); err != nil {
			return fmt.Errorf("scan %s: lower layer: %w", c.Path, err)
		}
		defer ld.Close()
	default:
		sc.out = append(sc.out, c)
	}
	return sc.dir(d, ld, c.Path)
}

// openSame opens name in dirfd, not following a symlink, and checks that
// it is still the file st describes.
func openSame(dirfd int, name string, flags int, st *unix.Stat_t) (*os.File, error) {
	fd, err := openAt(dirfd, name, flags)
	if err != nil {
		return nil, err
	}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		unix.Close(fd)
		return nil, errors.New("replaced while being scanned")
	}
	return fdFile(fd, name), nil
}

// modeOf is the permission bits of st as a FileMode.
func modeOf(st unix.Stat_t) fs.FileMode { return fileMode(st.Mode & 0o7777) }
