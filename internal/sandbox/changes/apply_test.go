package changes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// modifiedSet is a saved set changing a/b.txt, in a workspace where a is
// a directory.
func modifiedSet(t *testing.T) (s *Set, dir, lower string) {
	t.Helper()
	upper, lower := layers(t)
	writeFile(t, lower+"/a/b.txt", "old\n", 0o644)
	writeFile(t, upper+"/a/b.txt", "new\n", 0o644)
	s, err := Scan(upper, lower, 1<<30)
	must(t, err)
	if got := s.Paths(); !cmp.Equal(got, []string{"a/b.txt"}) {
		t.Fatalf("Paths = %q", got)
	}
	dir = filepath.Join(t.TempDir(), "set")
	must(t, Save(s, upper, dir))
	s, err = Load(dir)
	must(t, err)
	return s, dir, lower
}

// A set never writes through a symlink in the workspace, even one that
// stays inside it.
func TestApplySymlinkedParent(t *testing.T) {
	for _, where := range []string{"outside", "inside"} {
		t.Run(where, func(t *testing.T) {
			s, dir, _ := modifiedSet(t)
			ws := t.TempDir()
			target := t.TempDir()
			if where == "inside" {
				target = ws + "/real"
			}
			writeFile(t, target+"/b.txt", "theirs\n", 0o644)
			symlink(t, target, ws+"/a")
			before := tree(t, target)

			err := Apply(s, dir, ws)
			if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "a is not a directory") {
				t.Fatalf("Apply = %v, want ErrConflict about a", err)
			}
			if diff := cmp.Diff(before, tree(t, target)); diff != "" {
				t.Fatalf("Apply wrote through the symlink (-before +after):\n%s", diff)
			}
		})
	}
}

// A symlink or hard link at the changed path itself is replaced, not
// written through.
func TestApplyReplacesLinks(t *testing.T) {
	for _, link := range []string{"symlink", "hardlink"} {
		t.Run(link, func(t *testing.T) {
			s, dir, _ := modifiedSet(t)
			ws := filepath.Join(t.TempDir(), "ws")
			outside := filepath.Join(filepath.Dir(ws), "outside.txt")
			writeFile(t, outside, "secret\n", 0o644)
			mkdir(t, ws+"/a", 0o755)
			if link == "symlink" {
				symlink(t, outside, ws+"/a/b.txt")
			} else {
				must(t, os.Link(outside, ws+"/a/b.txt"))
			}
			must(t, Apply(s, dir, ws))
			if b, _ := os.ReadFile(outside); string(b) != "secret\n" {
				t.Fatalf("Apply wrote through a %s: outside now %q", link, b)
			}
			want := []string{"a drwxr-xr-x", "a/b.txt -rw-r--r-- " + sum("new\n")}
			if diff := cmp.Diff(want, tree(t, ws)); diff != "" {
				t.Fatalf("workspace (-want +got):\n%s", diff)
			}
		})
	}
}

// A mount point inside the workspace is not part of what the agent saw.
func TestApplyMountPoint(t *testing.T) {
	s, dir, _ := modifiedSet(t)
	ws := t.TempDir()
	other := t.TempDir()
	mkdir(t, ws+"/a", 0o755)
	if err := unix.Mount(other, ws+"/a", "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ws+"/a", 0) })
	if err := Apply(s, dir, ws); !errors.Is(err, ErrConflict) {
		t.Fatalf("Apply across a mount point = %v, want ErrConflict", err)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Fatalf("Apply wrote into the mounted directory: %v", entries)
	}
}

func TestApplyMissingParent(t *testing.T) {
	s, dir, _ := modifiedSet(t)
	if err := Apply(s, dir, t.TempDir()); !errors.Is(err, ErrConflict) {
		t.Fatalf("Apply without a = %v, want ErrConflict", err)
	}
}

// Content edited after Load is caught before anything is written.
func TestApplyTampered(t *testing.T) {
	s, dir, lower := modifiedSet(t)
	writeFile(t, dir+"/files/a/b.txt", "evil\n", 0o600)
	ws := filepath.Join(t.TempDir(), "ws")
	copyTree(t, lower, ws)
	err := Apply(s, dir, ws)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "a/b.txt") {
		t.Fatalf("Apply = %v, want ErrInvalid naming a/b.txt", err)
	}
	if diff := cmp.Diff(tree(t, lower), tree(t, ws)); diff != "" {
		t.Fatalf("a refused Apply changed the workspace (-before +after):\n%s", diff)
	}
}

// A set built by hand is checked like a loaded one.
func TestApplyChecksTheSet(t *testing.T) {
	ws := t.TempDir()
	s := &Set{Changes: []Change{{Path: "../escape", Kind: Deleted, Type: File}}}
	if err := Apply(s, t.TempDir(), ws); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Apply = %v, want ErrInvalid", err)
	}
}

// Applying over a workspace that drifted: what the set deletes may be
// gone already, and what it creates may exist; the set wins.
func TestApplyDrift(t *testing.T) {
	upper, lower := layers(t)
	writeFile(t, lower+"/gone.txt", "x\n", 0o644)
	writeFile(t, lower+"/d/keep.txt", "k\n", 0o644)
	must(t, unix.Mknod(upper+"/gone.txt", unix.S_IFCHR, 0))
	mkdir(t, upper+"/new", 0o555)
	writeFile(t, upper+"/new/f.txt", "f\n", 0o444)
	writeFile(t, upper+"/file-now-dir", "x\n", 0o644)
	s, err := Scan(upper, lower, 1<<30)
	must(t, err)
	dir := filepath.Join(t.TempDir(), "set")
	must(t, Save(s, upper, dir))

	ws := t.TempDir()
	writeFile(t, ws+"/d/keep.txt", "k\n", 0o644)
	writeFile(t, ws+"/new/old.txt", "o\n", 0o644)    // created since
	writeFile(t, ws+"/file-now-dir/x", "x\n", 0o644) // a directory since
	must(t, Apply(s, dir, ws))
	want := []string{
		"d drwxr-xr-x",
		"d/keep.txt -rw-r--r-- " + sum("k\n"),
		"file-now-dir -rw-r--r-- " + sum("x\n"),
		"new dr-xr-xr-x",
		"new/f.txt -r--r--r-- " + sum("f\n"),
		"new/old.txt -rw-r--r-- " + sum("o\n"),
	}
	if diff := cmp.Diff(want, tree(t, ws)); diff != "" {
		t.Fatalf("workspace (-want +got):\n%s", diff)
	}
	must(t, os.Chmod(ws+"/new", 0o755)) // for t.TempDir to clean up without root
}
