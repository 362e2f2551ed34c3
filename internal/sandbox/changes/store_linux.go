package changes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ward-dev/ward/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Names in a saved set's directory.
const (
	manifestName = "manifest.json"
	filesName    = "files"
)

// copyBuffer is the size of the buffer content is copied through.
const copyBuffer = 64 << 10

// Save writes s to the directory dir, which must not exist or be empty,
// copying each file's content from the overlay upper layer upper (see the
// package comment for the layout). A file whose content no longer matches
// its record, because the layer changed after Scan, is an error. Files and
// directories are fsynced, and manifest.json is written last, by rename:
// a directory without it is an incomplete save, which Load refuses and
// Discard removes.
func Save(s *Set, upper, dir string) error {
	if s == nil {
		s = &Set{}
	}
	if err := check(s.Changes); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	m, err := encodeManifest(s)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if len(m) > MaxManifest {
		return fmt.Errorf("save: manifest larger than %d bytes", MaxManifest)
	}
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		if entries, err := os.ReadDir(dir); err != nil {
			return fmt.Errorf("save: %w", err)
		} else if len(entries) > 0 {
			return fmt.Errorf("save: %s is not empty", dir)
		}
	} else if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, filesName), 0o700); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	up, err := openRoot(upper)
	if err != nil {
		return fmt.Errorf("save: upper layer: %w", err)
	}
	defer up.Close()
	files, err := openRoot(filepath.Join(dir, filesName))
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer files.Close()
	dirs := map[string]bool{".": true} // beneath files/, to fsync
	buf := make([]byte, copyBuffer)
	for _, c := range s.Changes {
		if !c.hasContent() {
			continue
		}
		if err := copyOut(int(up.Fd()), int(files.Fd()), c, buf); err != nil {
			return fmt.Errorf("save %s: %w", c.Path, err)
		}
		for q := path.Dir(c.Path); !dirs[q]; q = path.Dir(q) {
			dirs[q] = true
		}
	}
	for q := range dirs {
		if err := syncBeneath(int(files.Fd()), q); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, manifestName), m, 0o600); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	// Make dir itself durable in its parent.
	parent, err := os.Open(filepath.Dir(dir))
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer parent.Close()
	if err := parent.Sync(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// copyOut copies c's content from the upper layer up to files/c.Path,
// mode 0600, and checks it against c.
func copyOut(up, files int, c Change, buf []byte) error {
	src, _, err := regular(up, c.Path)
	if err != nil {
		return err
	}
	defer src.Close()
	dir, name := splitParent(c.Path)
	pfd, err := mkdirBeneath(files, dir)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := fdFile(fd, name)
	defer dst.Close()
	if err := copyChecked(dst, src, c, buf); err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return err
	}
	return dst.Close()
}

// copyChecked copies c's content from src to dst, through buf, and checks
// its size and hash; a mismatch wraps ErrInvalid.
func copyChecked(dst io.Writer, src io.Reader, c Change, buf []byte) error {
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(dst, h), io.LimitReader(src, c.Size+1), buf)
	if err != nil {
		return err
	}
	if n != c.Size || hex.EncodeToString(h.Sum(nil)) != c.SHA256 {
		return fmt.Errorf("%w: %s: content changed since it was recorded", ErrInvalid, c.Path)
	}
	return nil
}

// Load reads the set saved in dir and checks it as data an attacker may
// have edited: the manifest strictly (see the package comment) and every
// file's content against its size and hash. Errors about the set's
// content wrap ErrInvalid and name the path at fault.
func Load(dir string) (*Set, error) {
	root, err := openRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer root.Close()
	f, st, err := regular(int(root.Fd()), manifestName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load: %s has no %s: not a saved change set, or an incomplete one", dir, manifestName)
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer f.Close()
	if st.Size > MaxManifest {
		return nil, fmt.Errorf("load: %w: manifest larger than %d bytes", ErrInvalid, MaxManifest)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	s, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := verify(s, int(root.Fd())); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return s, nil
}

// verify checks the content that s records under files/ in the saved
// set's directory root.
func verify(s *Set, root int) error {
	files := -1
	buf := make([]byte, copyBuffer)
	defer func() {
		if files >= 0 {
			unix.Close(files)
		}
	}()
	for _, c := range s.Changes {
		if !c.hasContent() {
			continue
		}
		if files < 0 {
			fd, err := openBeneath(root, filesName, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			files = fd
		}
		f, _, err := regular(files, c.Path)
		if err != nil {
			return fmt.Errorf("%w: %s: content missing: %v", ErrInvalid, c.Path, err)
		}
		err = copyChecked(io.Discard, f, c, buf)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Discard removes the directory of a saved set, complete or not. It
// refuses a directory holding anything Save does not write, so that a
// wrong path removes nothing. A directory that does not exist is no error.
func Discard(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("discard: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); n != manifestName && n != filesName && !strings.HasPrefix(n, manifestName+".tmp-") {
			return fmt.Errorf("discard: %s is not a saved change set: it holds %q", dir, n)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("discard: %w", err)
	}
	return nil
}
