package changes

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func link(p, target string) Change {
	return Change{Path: p, Kind: Added, Type: Symlink, Target: target}
}

func dir(p string) Change { return Change{Path: p, Kind: Added, Type: Dir, Mode: 0o755} }

// TestEscaping: every shape of link whose target leaves the workspace is
// listed, through any chain of links, new or already there; links that
// stay inside are not.
func TestEscaping(t *testing.T) {
	ws := t.TempDir()
	mkdir(t, ws+"/d", 0o755)
	mkdir(t, ws+"/d/e", 0o755)
	symlink(t, "..", ws+"/d/up")      // already there: d/up is the root
	symlink(t, "/usr", ws+"/vendor")  // already there, absolute
	symlink(t, "d/e", ws+"/shortcut") // already there, inside
	symlink(t, "/etc", ws+"/gone")    // deleted by the set
	for _, tt := range []struct {
		name    string
		changes []Change
		want    []string
	}{
		{"absolute", []Change{link("evil", "/proc/1/root/etc/shadow")}, []string{"evil"}},
		{"absolute in a new directory", []Change{dir("a"), dir("a/b"), link("a/b/evil", "/etc/passwd")}, []string{"a/b/evil"}},
		{"relative, climbing", []Change{link("rel", "../../etc/passwd")}, []string{"rel"}},
		{"relative from deep", []Change{dir("a"), dir("a/b"), link("a/b/deep", "../../../x")}, []string{"a/b/deep"}},
		{"relative, in and out", []Change{link("io", "d/../../x")}, []string{"io"}},
		{"dot dot alone", []Change{link("top", "..")}, []string{"top"}},
		{"chain of new links", []Change{link("d/x", ".."), link("y", "d/x/..")}, []string{"y"}},
		{"chain through an old link", []Change{link("z", "d/up/..")}, []string{"z"}},
		{"through an old absolute link", []Change{link("lib", "vendor/lib")}, []string{"lib"}},
		{"loop", []Change{link("l1", "l2"), link("l2", "l1/x")}, []string{"l1", "l2"}},
		{"modified link", []Change{{Path: "shortcut", Kind: Modified, Type: Symlink, Target: "/root"}}, []string{"shortcut"}},
		{"replaced file", []Change{{Path: "d/e", Kind: Replaced, Type: Symlink, Prev: Dir, Target: "../../.."}}, []string{"d/e"}},
		{"inside", []Change{link("good", "d/e"), link("d/sib", "../d/e/f"), link("via", "shortcut/x"), link("self", "."),
			link("d/e/back", "../../d")}, nil},
		{"inside through d/up", []Change{link("ok", "d/up/d/e")}, nil},
		{"old link deleted", []Change{{Path: "gone", Kind: Deleted, Type: Symlink}, link("g", "gone/x")}, nil},
		{"old link replaced by a directory", []Change{{Path: "vendor", Kind: Replaced, Type: Dir, Prev: Symlink, Mode: 0o755},
			link("v", "vendor/lib")}, nil},
		{"refused changes are not applied", []Change{{Path: "evil", Kind: Refused, Type: Symlink, Reason: "x"}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &Set{Changes: tt.changes}
			sortChanges(s)
			if got := Escaping(s, ws); !cmp.Equal(got, tt.want) {
				t.Errorf("Escaping = %q, want %q", got, tt.want)
			}
		})
	}
	// Without a workspace, only the set's own links are followed.
	if got := Escaping(&Set{Changes: []Change{link("a", "b/.."), link("b", "c"), link("z", "d/up/..")}}, ""); len(got) != 0 {
		t.Errorf("no workspace: %q", got)
	}
}

// sortChanges sorts a hand-made set by path, as Scan does.
func sortChanges(s *Set) {
	slices.SortFunc(s.Changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
}

// FuzzEscaping: Escaping agrees with the kernel. The set's links are made
// in a directory, and each is resolved there with openat2
// RESOLVE_BENEATH, which fails with EXDEV exactly when resolution would
// leave the directory: a link Escaping does not list must not. (Escaping
// may list more: it takes a missing component for a directory.)
func FuzzEscaping(f *testing.F) {
	f.Add("y\x00d/x/..\nd/x\x00..")
	f.Add("a/b/c\x00../../..\na/l\x00b/c")
	f.Add("l1\x00l2\nl2\x00l1")
	f.Add("a\x00b/../b/./c\nb/c\x00..\nb/d\x00/etc")
	f.Fuzz(func(t *testing.T, spec string) {
		links := map[string]string{}
		dirs := map[string]bool{}
		for _, line := range strings.Split(spec, "\n") {
			p, target, ok := strings.Cut(line, "\x00")
			if !ok || checkPath(p) != nil || target == "" || strings.ContainsAny(target, "\x00\n") || len(target) > 200 || len(p) > 200 {
				continue
			}
			if _, dup := links[p]; dup || dirs[p] {
				continue
			}
			clash := false
			for q := path.Dir(p); q != "."; q = path.Dir(q) {
				if _, isLink := links[q]; isLink {
					clash = true
				}
			}
			for l := range links {
				if strings.HasPrefix(l, p+"/") {
					clash = true
				}
			}
			if clash {
				continue
			}
			links[p] = target
			for q := path.Dir(p); q != "."; q = path.Dir(q) {
				dirs[q] = true
			}
		}
		if len(links) == 0 || len(links) > 20 {
			return
		}
		s := &Set{}
		for d := range dirs {
			s.Changes = append(s.Changes, dir(d))
		}
		for p, target := range links {
			s.Changes = append(s.Changes, link(p, target))
		}
		sortChanges(s)
		if check(s.Changes) != nil {
			return
		}
		root := t.TempDir()
		for _, c := range s.Changes {
			if c.Type == Dir {
				must(t, os.MkdirAll(filepath.Join(root, c.Path), 0o755))
			}
		}
		for _, c := range s.Changes {
			if c.Type == Symlink {
				must(t, os.Symlink(c.Target, filepath.Join(root, c.Path)))
			}
		}
		rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		must(t, err)
		defer unix.Close(rfd)
		listed := map[string]bool{}
		for _, p := range Escaping(s, "") {
			listed[p] = true
		}
		for p := range links {
			fd, err := unix.Openat2(rfd, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
			if err == nil {
				unix.Close(fd)
			}
			if err == unix.EXDEV && !listed[p] {
				t.Fatalf("%s -> %s leaves the directory, but Escaping does not list it (set %v)", p, links[p], s.Changes)
			}
		}
	})
}
