package changes

import (
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinkHops is the kernel's limit on symlinks followed in one lookup
// (MAXSYMLINKS): a target needing more does not resolve.
const maxLinkHops = 40

// Escaping lists, in order, the symlinks the set writes whose target
// leaves the workspace: an absolute target (/proc/1/root/etc/shadow),
// or a relative one that, resolved in the workspace as it will be once
// the set is applied, climbs above its root. Resolution follows every
// symlink on the way, those the set writes and those already in the
// workspace (its directory on disk; "" for none), as the kernel would:
// a link d/x -> .. is harmless on its own, and y -> d/x/.. leaves the
// workspace through it. A target that cannot be resolved within the
// kernel's 40 symlinks is listed too. A component that does not exist is
// taken as a directory, so that a link stays listed when what it needs
// is created later.
//
// A person should see these before they are applied: a program in the
// runtime cannot reach the host's files, but a link it leaves in the
// workspace points whatever later reads or writes through it (an editor,
// a build, the operator's shell) at them.
func Escaping(s *Set, workspace string) []string {
	if s == nil {
		return nil
	}
	r := &resolver{set: make(map[string]Change, len(s.Changes)), workspace: workspace}
	for _, c := range s.Changes {
		if c.Kind != Refused {
			r.set[c.Path] = c
		}
	}
	var out []string
	for _, c := range s.Changes {
		if c.writes() && c.Type == Symlink && r.escapes(path.Dir(c.Path), c.Target) {
			out = append(out, c.Path)
		}
	}
	return out
}

// resolver resolves paths in the workspace as the set leaves it.
type resolver struct {
	set       map[string]Change
	workspace string
}

// escapes reports whether target, read as a symlink in the directory dir
// ("." at the root), resolves outside the workspace.
func (r *resolver) escapes(dir, target string) bool {
	if path.IsAbs(target) {
		return true
	}
	var at []string // the resolved directory, from the root
	if dir != "." {
		at = strings.Split(dir, "/")
	}
	pending := strings.Split(target, "/")
	hops := 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return true
			}
			at = at[:len(at)-1]
			continue
		}
		p := strings.Join(append(at[:len(at):len(at)], name), "/")
		if link, ok := r.link(p); ok {
			if hops++; hops > maxLinkHops || path.IsAbs(link) {
				return true
			}
			pending = append(strings.Split(link, "/"), pending...)
			continue
		}
		at = append(at, name)
	}
	return false
}

// link returns the target of p if p will be a symlink.
func (r *resolver) link(p string) (string, bool) {
	if c, ok := r.set[p]; ok {
		if c.Kind == Deleted || c.Type != Symlink {
			return "", false
		}
		return c.Target, true
	}
	// Beneath a path the set deletes, replaces or makes anew, nothing of
	// the workspace's remains.
	for q := path.Dir(p); q != "."; q = path.Dir(q) {
		if c, ok := r.set[q]; ok && c.Kind != Modified {
			return "", false
		}
	}
	if r.workspace == "" {
		return "", false
	}
	full := filepath.Join(r.workspace, filepath.FromSlash(p))
	fi, err := os.Lstat(full)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return "", false
	}
	target, err := os.Readlink(full)
	if err != nil {
		return "", false
	}
	return target, true
}
