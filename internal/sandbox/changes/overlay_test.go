package changes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// mountOverlay mounts an overlay of lower in a fresh temporary directory
// and returns its upper layer and merged view; it is unmounted when the
// test ends. With userxattr the overlay keeps its xattrs in user.overlay.*
// as in ward's sandbox, else in trusted.overlay.*.
func mountOverlay(t *testing.T, lower string, userxattr bool) (upper, merged string) {
	t.Helper()
	base := t.TempDir()
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if userxattr {
		opts += ",userxattr"
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mounting overlayfs is not permitted here (%v): these tests need root or CAP_SYS_ADMIN", err)
		}
		if userxattr && errors.Is(err, unix.EINVAL) {
			t.Skipf("this kernel does not take the userxattr option: %v", err)
		}
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, 0); err != nil {
			t.Errorf("unmount %s: %v", merged, err)
		}
	})
	return upper, merged
}

// Tree building, in the test's own words.

func writeFile(t testing.TB, p, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, p string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sum(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

// tree describes everything beneath root, root itself aside: one line per
// path with its type, mode and content hash or symlink target.
func tree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + sum(string(b))
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// copyTree copies src to dst (which must not exist) with modes and
// symlinks.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			mkdir(t, to, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			symlink(t, target, to)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			writeFile(t, to, string(b), info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Directory modes last, so that read-only ones could be filled.
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return os.Chmod(filepath.Join(dst, rel), info.Mode()&modeBits)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// workspace builds the lower layer the overlay tests start from.
func workspace(t testing.TB) string {
	ws := filepath.Join(t.TempDir(), "lower")
	writeFile(t, ws+"/README.md", "hello\n", 0o644)
	writeFile(t, ws+"/bin/run.sh", "#!/bin/sh\necho run\n", 0o755)
	writeFile(t, ws+"/src/main.go", "package main\n", 0o644)
	writeFile(t, ws+"/src/util/util.go", "package util\n", 0o644)
	writeFile(t, ws+"/docs/guide.md", "# Guide\n", 0o644)
	symlink(t, "README.md", ws+"/link")
	symlink(t, "src/main.go", ws+"/link2")
	writeFile(t, ws+"/swap", "swap me\n", 0o644)
	writeFile(t, ws+"/notes.txt", "notes\n", 0o644)
	writeFile(t, ws+"/old/a.txt", "a\n", 0o644)
	writeFile(t, ws+"/old/sub/b.txt", "b\n", 0o644)
	writeFile(t, ws+"/build/out.o", "\x7fELF", 0o644)
	writeFile(t, ws+"/build/tmp/x.txt", "x\n", 0o644)
	writeFile(t, ws+"/config", "key=value\n", 0o644)
	writeFile(t, ws+"/tools/tool.sh", "#!/bin/sh\n", 0o755)
	writeFile(t, ws+"/tools/lib/l.txt", "l\n", 0o644)
	writeFile(t, ws+"/touched.txt", "touch\n", 0o644)
	writeFile(t, ws+"/same.txt", "same\n", 0o644)
	writeFile(t, ws+"/chmodback.txt", "cb\n", 0o644)
	writeFile(t, ws+"/dirmode/f.txt", "f\n", 0o644)
	return ws
}

func TestOverlay(t *testing.T) {
	for _, userxattr := range []bool{true, false} {
		t.Run(fmt.Sprintf("userxattr=%v", userxattr), func(t *testing.T) {
			lower := workspace(t)
			before := tree(t, lower)
			upper, m := mountOverlay(t, lower, userxattr)

			// The agent's work, through the merged view.
			writeFile(t, m+"/new.txt", "new\n", 0o644)
			writeFile(t, m+"/new.sh", "#!/bin/sh\n", 0o755)
			writeFile(t, m+"/src/new/deep.go", "package deep\n", 0o644)
			writeFile(t, m+"/src/main.go", "package main // changed\n", 0o644)
			must(t, os.Chmod(m+"/README.md", 0o600))
			must(t, os.Remove(m+"/notes.txt"))
			must(t, os.RemoveAll(m+"/old"))
			must(t, os.RemoveAll(m+"/build"))
			writeFile(t, m+"/build/fresh.txt", "fresh\n", 0o644)
			must(t, os.Remove(m+"/config"))
			writeFile(t, m+"/config/settings.json", "{}\n", 0o644)
			must(t, os.RemoveAll(m+"/tools"))
			writeFile(t, m+"/tools", "now a file\n", 0o755)
			must(t, os.Remove(m+"/link2"))
			symlink(t, "README.md", m+"/link2")
			must(t, os.Remove(m+"/swap"))
			symlink(t, "README.md", m+"/swap")
			must(t, os.Chmod(m+"/dirmode", 0o700))
			mkdir(t, m+"/emptydir", 0o750)
			// Copied up, but changed in nothing captured.
			now := time.Now().Add(time.Hour)
			must(t, os.Chtimes(m+"/touched.txt", now, now))
			must(t, os.Chmod(m+"/chmodback.txt", 0o600))
			must(t, os.Chmod(m+"/chmodback.txt", 0o644))
			writeFile(t, m+"/same.txt", "same\n", 0o644)

			s, err := Scan(upper, lower, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			want := []Change{
				{Path: "README.md", Kind: Modified, Type: File, Mode: 0o600, Size: 6, SHA256: sum("hello\n")},
				{Path: "build", Kind: Replaced, Type: Dir, Prev: Dir, Mode: 0o755},
				{Path: "build/fresh.txt", Kind: Added, Type: File, Mode: 0o644, Size: 6, SHA256: sum("fresh\n")},
				{Path: "config", Kind: Replaced, Type: Dir, Prev: File, Mode: 0o755},
				{Path: "config/settings.json", Kind: Added, Type: File, Mode: 0o644, Size: 3, SHA256: sum("{}\n")},
				{Path: "dirmode", Kind: Modified, Type: Dir, Mode: 0o700},
				{Path: "emptydir", Kind: Added, Type: Dir, Mode: 0o750},
				{Path: "link2", Kind: Modified, Type: Symlink, Target: "README.md"},
				{Path: "new.sh", Kind: Added, Type: File, Mode: 0o755, Size: 10, SHA256: sum("#!/bin/sh\n")},
				{Path: "new.txt", Kind: Added, Type: File, Mode: 0o644, Size: 4, SHA256: sum("new\n")},
				{Path: "notes.txt", Kind: Deleted, Type: File},
				{Path: "old", Kind: Deleted, Type: Dir},
				{Path: "src/main.go", Kind: Modified, Type: File, Mode: 0o644, Size: 24, SHA256: sum("package main // changed\n")},
				{Path: "src/new", Kind: Added, Type: Dir, Mode: 0o755},
				{Path: "src/new/deep.go", Kind: Added, Type: File, Mode: 0o644, Size: 13, SHA256: sum("package deep\n")},
				{Path: "swap", Kind: Replaced, Type: Symlink, Prev: File, Target: "README.md"},
				{Path: "tools", Kind: Replaced, Type: File, Prev: Dir, Mode: 0o755, Size: 11, SHA256: sum("now a file\n")},
			}
			if diff := cmp.Diff(want, s.Changes); diff != "" {
				t.Fatalf("Scan (-want +got):\n%s", diff)
			}

			saved := filepath.Join(t.TempDir(), "set")
			must(t, Save(s, upper, saved))
			loaded, err := Load(saved)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s, loaded); diff != "" {
				t.Fatalf("Load after Save (-saved +loaded):\n%s", diff)
			}

			// Applied to a copy of the workspace, the set gives the
			// merged view; applied twice, the same.
			ws := filepath.Join(t.TempDir(), "ws")
			copyTree(t, lower, ws)
			for range 2 {
				must(t, Apply(loaded, saved, ws))
				if diff := cmp.Diff(tree(t, m), tree(t, ws)); diff != "" {
					t.Fatalf("workspace after Apply differs from the merged view (-merged +applied):\n%s", diff)
				}
			}
			// Not applying it leaves the real workspace as it was.
			if diff := cmp.Diff(before, tree(t, lower)); diff != "" {
				t.Fatalf("lower layer changed (-before +after):\n%s", diff)
			}
			must(t, Discard(saved))
			if _, err := os.Stat(saved); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Discard left %s: %v", saved, err)
			}
		})
	}
}

// Special files and setuid files are recorded as refused, never saved
// and never applied.
func TestOverlayRefused(t *testing.T) {
	lower := filepath.Join(t.TempDir(), "lower")
	writeFile(t, lower+"/a.txt", "a\n", 0o644)
	writeFile(t, lower+"/tool", "#!/bin/sh\n", 0o755)
	upper, m := mountOverlay(t, lower, true)

	must(t, unix.Mkfifo(m+"/pipe", 0o644))
	must(t, unix.Mknod(m+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.Chmod(m+"/null", 0o666))
	must(t, unix.Mknod(m+"/loop", unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: m + "/sock", Net: "unix"})
	must(t, err)
	l.SetUnlinkOnClose(false)
	l.Close()
	must(t, os.Chmod(m+"/sock", 0o700))
	writeFile(t, m+"/su", "#!/bin/sh\n", 0o755|fs.ModeSetuid)
	must(t, os.Chmod(m+"/tool", 0o755|fs.ModeSetgid))
	writeFile(t, m+"/ok.txt", "ok\n", 0o644)

	s, err := Scan(upper, lower, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Path: "loop", Kind: Refused, Type: Device, Mode: 0o600, Reason: "device node"},
		{Path: "null", Kind: Refused, Type: Device, Mode: 0o666, Reason: "device node"},
		{Path: "ok.txt", Kind: Added, Type: File, Mode: 0o644, Size: 3, SHA256: sum("ok\n")},
		{Path: "pipe", Kind: Refused, Type: Fifo, Mode: 0o644, Reason: "named pipe"},
		{Path: "sock", Kind: Refused, Type: Socket, Mode: 0o700, Reason: "socket"},
		{Path: "su", Kind: Refused, Type: File, Mode: 0o755 | fs.ModeSetuid, Reason: "setuid or setgid bit"},
		{Path: "tool", Kind: Refused, Type: File, Mode: 0o755 | fs.ModeSetgid, Reason: "setuid or setgid bit"},
	}
	if diff := cmp.Diff(want, s.Changes); diff != "" {
		t.Fatalf("Scan (-want +got):\n%s", diff)
	}
	if got, want := s.Summary(), "! loop (refused: device node)\n"; !strings.HasPrefix(got, want) {
		t.Errorf("Summary starts %q, want %q", got, want)
	}

	saved := filepath.Join(t.TempDir(), "set")
	must(t, Save(s, upper, saved))
	loaded, err := Load(saved)
	must(t, err)
	ws := filepath.Join(t.TempDir(), "ws")
	copyTree(t, lower, ws)
	must(t, Apply(loaded, saved, ws))
	want2 := []string{
		"a.txt -rw-r--r-- " + sum("a\n"),
		"ok.txt -rw-r--r-- " + sum("ok\n"),
		"tool -rwxr-xr-x " + sum("#!/bin/sh\n"),
	}
	if diff := cmp.Diff(want2, tree(t, ws)); diff != "" {
		t.Fatalf("workspace after Apply (-want +got):\n%s", diff)
	}
	// Nothing but the one file was saved.
	var files []string
	filepath.WalkDir(filepath.Join(saved, "files"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, d.Name())
		}
		return err
	})
	if !slices.Equal(files, []string{"ok.txt"}) {
		t.Errorf("saved files %q, want only ok.txt", files)
	}
}
