package changes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// layers makes an empty lower and upper layer.
func layers(t testing.TB) (upper, lower string) {
	base := t.TempDir()
	upper, lower = filepath.Join(base, "upper"), filepath.Join(base, "lower")
	mkdir(t, upper, 0o755)
	mkdir(t, lower, 0o755)
	return upper, lower
}

func setxattr(t testing.TB, p, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		t.Skipf("cannot set xattr %s on %s: %v", name, p, err)
	}
}

// Upper layers as overlayfs writes them, crafted by hand: the markers are
// read in both xattr namespaces, and mean what the kernel makes of them.
func TestScanMarkers(t *testing.T) {
	for _, ns := range []string{"user.overlay.", "trusted.overlay."} {
		t.Run(ns, func(t *testing.T) {
			upper, lower := layers(t)
			for _, d := range []string{"x", "y"} {
				writeFile(t, lower+"/"+d+"/old.txt", "old\n", 0o644)
				writeFile(t, upper+"/"+d+"/new.txt", "new\n", 0o644)
				mkdir(t, upper+"/"+d, 0o755)
				setxattr(t, upper+"/"+d, ns+"opaque", d)
			}
			writeFile(t, lower+"/gone.txt", "gone\n", 0o644)
			writeFile(t, upper+"/gone.txt", "", 0o644)
			setxattr(t, upper+"/gone.txt", ns+"whiteout", "")
			writeFile(t, upper+"/never.txt", "", 0o644) // a whiteout of nothing
			setxattr(t, upper+"/never.txt", ns+"whiteout", "")
			must(t, unix.Mknod(upper+"/nothing", unix.S_IFCHR, 0))

			s, err := Scan(upper, lower, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			want := []Change{
				{Path: "gone.txt", Kind: Deleted, Type: File},
				// "x" marks a directory that may hold xattr whiteouts; the
				// kernel still merges the lower one into it.
				{Path: "x/new.txt", Kind: Added, Type: File, Mode: 0o644, Size: 4, SHA256: sum("new\n")},
				{Path: "y", Kind: Replaced, Type: Dir, Prev: Dir, Mode: 0o755},
				{Path: "y/new.txt", Kind: Added, Type: File, Mode: 0o644, Size: 4, SHA256: sum("new\n")},
			}
			if diff := cmp.Diff(want, s.Changes); diff != "" {
				t.Fatalf("Scan (-want +got):\n%s", diff)
			}
		})
	}
}

// Layers whose content is partly in the lower layer are refused.
func TestScanUnsupported(t *testing.T) {
	for _, tc := range []struct{ xattr, want string }{
		{"redirect", "redirect_dir"},
		{"metacopy", "metacopy"},
	} {
		t.Run(tc.xattr, func(t *testing.T) {
			upper, lower := layers(t)
			p := upper + "/d"
			if tc.xattr == "metacopy" {
				writeFile(t, p, "", 0o644)
			} else {
				mkdir(t, p, 0o755)
			}
			setxattr(t, p, "user.overlay."+tc.xattr, "x")
			if _, err := Scan(upper, lower, 1<<30); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Scan = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestScanLimit(t *testing.T) {
	upper, lower := layers(t)
	for i := range 3 {
		writeFile(t, fmt.Sprintf("%s/d/%d", upper, i), "", 0o644)
	}
	if _, err := scan(upper, lower, 4, 1<<30); err != nil {
		t.Fatalf("4 entries, limit 4: %v", err)
	}
	_, err := scan(upper, lower, 3, 1<<30)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 3") {
		t.Fatalf("4 entries, limit 3: %v, want ErrTooLarge", err)
	}
}

// Sizes are counted before content is read: a sparse file of 1 TiB, or a
// file linked many times, is refused at once.
func TestScanByteLimit(t *testing.T) {
	upper, lower := layers(t)
	writeFile(t, upper+"/small", "0123456789", 0o644)
	if _, err := Scan(upper, lower, 10); err != nil {
		t.Fatalf("10 bytes, limit 10: %v", err)
	}
	if err := os.Link(upper+"/small", upper+"/again"); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(upper, lower, 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a hard link over the limit: %v, want ErrTooLarge", err)
	}
	os.Remove(upper + "/again")
	f, err := os.Create(upper + "/sparse")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Scan(upper, lower, 1<<30); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("a sparse file of 1 TiB: %v, want ErrTooLarge", err)
	}
}

// A name that JSON cannot carry is refused, with everything beneath it.
func TestScanNotUTF8(t *testing.T) {
	upper, lower := layers(t)
	writeFile(t, upper+"/bad\xff/inside.txt", "x\n", 0o644)
	writeFile(t, upper+"/ok.txt", "ok\n", 0o644)
	s, err := Scan(upper, lower, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Path: "bad\uFFFD", Kind: Refused, Type: Dir, Mode: 0o755, Reason: "name is not valid UTF-8"},
		{Path: "ok.txt", Kind: Added, Type: File, Mode: 0o644, Size: 3, SHA256: sum("ok\n")},
	}
	if diff := cmp.Diff(want, s.Changes); diff != "" {
		t.Fatalf("Scan (-want +got):\n%s", diff)
	}
	saved := filepath.Join(t.TempDir(), "set")
	must(t, Save(s, upper, saved))
	if _, err := Load(saved); err != nil {
		t.Fatal(err)
	}
}

// Scan never follows a symlink: not in the upper layer, not in the lower.
func TestScanSymlinks(t *testing.T) {
	upper, lower := layers(t)
	outside := t.TempDir()
	writeFile(t, outside+"/secret", "secret\n", 0o644)
	symlink(t, outside, upper+"/escape")
	symlink(t, outside, lower+"/dir")
	writeFile(t, upper+"/dir/secret", "mine\n", 0o644)
	s, err := Scan(upper, lower, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Path: "dir", Kind: Replaced, Type: Dir, Prev: Symlink, Mode: 0o755},
		{Path: "dir/secret", Kind: Added, Type: File, Mode: 0o644, Size: 5, SHA256: sum("mine\n")},
		{Path: "escape", Kind: Added, Type: Symlink, Target: outside},
	}
	if diff := cmp.Diff(want, s.Changes); diff != "" {
		t.Fatalf("Scan (-want +got):\n%s", diff)
	}
}

func TestScanMissingLayer(t *testing.T) {
	upper, lower := layers(t)
	if _, err := Scan(upper+"/none", lower, 1<<30); err == nil {
		t.Error("Scan of a missing upper layer succeeded")
	}
	if _, err := Scan(upper, os.DevNull, 1<<30); err == nil {
		t.Error("Scan of a lower layer that is not a directory succeeded")
	}
}
