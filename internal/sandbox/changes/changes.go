// Package changes is the change set of an overlay workspace: what an agent
// changed in its sandbox, shown to a person, kept for forensics, and applied
// to the real workspace only when asked.
//
// # Model
//
// The sandbox's workspace is an overlayfs mount. Its lower layer is the real
// workspace, read-only; its upper layer is a scratch directory that receives
// every change. [Scan] reads the upper layer against the lower one and
// returns a [Set]: one [Change] per path, paths relative to the workspace
// root, slash-separated and sorted, each of one kind:
//
//	added     the path did not exist in the lower layer
//	modified  same type, but other content, mode or symlink target
//	deleted   a whiteout: the lower path is gone, a directory with all of it
//	replaced  the type changed (a file became a directory, a directory a
//	          symlink, ...), or an opaque directory hides a lower directory
//	          (rm -rf d; mkdir d): the lower path is removed first
//	refused   something that is never captured nor applied: a device node,
//	          a named pipe, a socket, a file with a setuid or setgid bit, a
//	          name that is not UTF-8
//
// Overlayfs marks deletions and opaque directories in the upper layer with
// whiteouts (a character device 0/0, or a zero-size regular file with the
// xattr overlay.whiteout) and with the xattr overlay.opaque="y". Mounted in
// a user namespace with the userxattr option these xattrs are
// user.overlay.*; mounted by real root they are trusted.overlay.*; Scan
// reads both. overlay.opaque="x" is not opaque: the kernel uses it to mark a
// directory that may hold xattr whiteouts, and still merges the lower
// directory into it. Upper layers written with redirect_dir or metacopy
// (never the case with userxattr) are refused with an error, since their
// content lives partly in the lower layer.
//
// What is captured of a path: its type, its permission bits (with setgid
// and sticky on directories), the size and SHA-256 of a file's content, a
// symlink's target. Not captured: owners, timestamps, xattrs, hard links
// (each link is a file of its own). A copy-up that changed none of the
// captured properties (touch, chmod and back, rewriting the same bytes) is
// no change. A directory in both layers is a change only if its mode
// changed; what changed beneath it is listed path by path. Beneath a deleted
// directory nothing is listed; beneath an added or replaced directory
// everything is, as added.
//
// # Summary
//
// [Set.Summary] reads like git status:
//
//	A build/
//	A build/out.txt
//	M main.go
//	D old/
//	R config/
//	A link -> main.go
//	! pipe (refused: named pipe)
//	3 added, 1 modified, 1 deleted, 1 replaced, 1 refused (1234 bytes)
//
// # Saved sets
//
// [Save] writes a set to a directory of its own, for forensics and for a
// later [Apply]:
//
//	manifest.json   {"version": 1, "changes": [...]}, written last
//	files/<path>    the content of each added, modified or replaced file,
//	                copied from the upper layer
//
// Directories are created 0700 and files 0600 whatever the recorded mode;
// symlinks live in the manifest only (their target), so the saved directory
// holds no link that a careless reader could follow. A manifest entry:
//
//	{"path": "bin/run.sh", "kind": "modified", "type": "file", "mode": "0755",
//	 "size": 120, "sha256": "<64 hex digits>"}
//	{"path": "link", "kind": "replaced", "type": "symlink", "prev": "file",
//	 "target": "bin/run.sh"}
//	{"path": "old", "kind": "deleted", "type": "dir"}
//	{"path": "pipe", "kind": "refused", "type": "fifo", "mode": "0644",
//	 "reason": "named pipe"}
//
// Modes are four octal digits. [Load] reads a saved set back as data an
// attacker may have edited: unknown or duplicate JSON members, another
// version, a path that is absolute, unclean, escapes with "..", repeats or
// is out of order, an entry beneath a path that is not a directory after the
// change, a file whose content does not hash to its record: each is an
// error wrapping [ErrInvalid].
//
// # Applying
//
// [Apply] makes the real workspace match the set. It validates everything
// first (the set, every file's hash, every parent directory in the
// workspace) and only then writes. It never follows a symlink in the
// workspace and never leaves it: every path is resolved beneath the
// workspace with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV),
// so a parent that is a symlink, or a mount point, is an error wrapping
// [ErrConflict] and nothing is written. Files and symlinks are written to a
// temporary name and renamed into place, so a path holds either its old
// content or its new one, and an existing file's inode (maybe a hard link
// to something outside) is never written into.
//
// # Protected paths
//
// [Protected] says which changes touch paths a person must look at twice:
// .git/**, *.pem, .env.
//
// # Links out of the workspace
//
// Apply writes a symlink's target as recorded, without resolving it. A
// link whose target leaves the workspace (/proc/1/root/etc/shadow,
// ../../.ssh, or d/x/.. where d/x -> ..) is harmless to Apply but not to
// whatever later follows it; [Escaping] lists such links, resolving every
// link on the way as the kernel would, so that they are applied only
// after a person has seen them.
//
// # Diffs
//
// [UnifiedDiff] is the diff -u of two texts. [MakePatch] is the diff of a
// whole set, made to leave the host: the workspace before the change
// against the saved files, one [FilePatch] a file, bounded per file and in
// total as JSON encodes it (DefaultPatchFile, DefaultPatchTotal). A file
// that is not text, is too large, or whose name says it holds a secret
// (DefaultWithheld) is listed with the reason, never with its bytes:
//
//	{"files": [
//	  {"path": "notes.txt", "kind": "modified", "old_size": 11, "size": 11,
//	   "diff": "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,2 +1,2 @@\n alpha\n-beta\n+BETA\n"},
//	  {"path": ".env", "kind": "added", "omitted": "withheld: its name suggests a secret",
//	   "old_size": -1, "size": 12}]}
package changes

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits.
const (
	// MaxEntries bounds the entries Scan visits in an upper layer,
	// changed or not.
	MaxEntries = 100_000
	// MaxChanges bounds the changes of a set that is saved, loaded or
	// applied.
	MaxChanges = 100_000
	// MaxManifest bounds the size of manifest.json, in bytes.
	MaxManifest = 64 << 20
	// maxPath is PATH_MAX less its NUL: a longer path cannot be opened.
	maxPath = 4095
	// maxName is NAME_MAX.
	maxName = 255
	// maxReason bounds a refused change's reason.
	maxReason = 1024
)

// Version is the manifest format that Save writes and Load accepts.
const Version = 1

var (
	// ErrTooLarge is returned by Scan for an upper layer of more than
	// MaxEntries entries or more bytes than it was allowed: the change is
	// too large to capture.
	ErrTooLarge = errors.New("upper layer too large to capture")
	// ErrInvalid is wrapped by every error about a set that does not hang
	// together: a malformed or tampered manifest, content that does not
	// match its hash.
	ErrInvalid = errors.New("invalid change set")
	// ErrConflict is wrapped by Apply's errors about a workspace that does
	// not fit the set: a parent directory that is missing, is a symlink or
	// not a directory, or is on another mount.
	ErrConflict = errors.New("change set does not fit the workspace")
)

// Kind says what happened to a path.
type Kind string

// Kinds of change.
const (
	Added    Kind = "added"
	Modified Kind = "modified"
	Deleted  Kind = "deleted"
	Replaced Kind = "replaced"
	Refused  Kind = "refused"
)

// letter is k's letter in Summary.
func (k Kind) letter() string {
	switch k {
	case Added:
		return "A"
	case Modified:
		return "M"
	case Deleted:
		return "D"
	case Replaced:
		return "R"
	case Refused:
		return "!"
	}
	return "?"
}

// Type is the type of file at a path.
type Type string

// Types of file. Only File, Dir and Symlink are ever written by Apply; the
// others appear in deleted and refused changes.
const (
	File    Type = "file"
	Dir     Type = "dir"
	Symlink Type = "symlink"
	Fifo    Type = "fifo"
	Socket  Type = "socket"
	Device  Type = "device"
)

func (t Type) valid() bool {
	switch t {
	case File, Dir, Symlink, Fifo, Socket, Device:
		return true
	}
	return false
}

// modeBits are the mode bits a change may carry.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Change is what happened to one path.
type Change struct {
	// Path is relative to the workspace root, slash-separated and clean.
	Path string
	Kind Kind
	// Type is what the path is after the change; for Deleted, what it
	// was.
	Type Type
	// Prev is what the path was before, for Replaced only.
	Prev Type
	// Mode holds the permission bits of a file or directory, and setgid
	// and sticky for a directory. Zero for symlinks.
	Mode fs.FileMode
	// Size and SHA256 (lowercase hex) describe a file's content.
	Size   int64
	SHA256 string
	// Target is a symlink's target, as stored: never resolved.
	Target string
	// Reason says why a change was refused.
	Reason string
}

// writes reports whether Apply creates something at c.Path.
func (c Change) writes() bool {
	return c.Kind == Added || c.Kind == Modified || c.Kind == Replaced
}

// hasContent reports whether c's content is kept under files/.
func (c Change) hasContent() bool { return c.writes() && c.Type == File }

// removesDir reports whether applying c may remove a directory tree.
func (c Change) removesDir() bool {
	return (c.Kind == Deleted && c.Type == Dir) || (c.Kind == Replaced && c.Prev == Dir)
}

// Set is a workspace's change set. Changes are sorted by Path, each path
// once.
type Set struct {
	Changes []Change
}

// Paths lists the changed paths in order, refused ones included.
func (s *Set) Paths() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.Changes))
	for i, c := range s.Changes {
		out[i] = c.Path
	}
	return out
}

// Summary is one line per change (A added, M modified, D deleted,
// R replaced, ! refused; directories end in "/", symlinks show their
// target, unprintable paths are quoted) and a line of totals; the bytes are
// the content Apply would write.
func (s *Set) Summary() string {
	var b strings.Builder
	n := map[Kind]int{}
	var bytes int64
	if s != nil {
		for _, c := range s.Changes {
			n[c.Kind]++
			if c.hasContent() {
				bytes += c.Size
			}
			name := c.Path
			if c.Type == Dir {
				name += "/"
			}
			b.WriteString(c.Kind.letter() + " " + display(name))
			if c.Type == Symlink && c.writes() {
				b.WriteString(" -> " + display(c.Target))
			}
			if c.Kind == Refused {
				b.WriteString(" (refused: " + c.Reason + ")")
			}
			b.WriteByte('\n')
		}
	}
	fmt.Fprintf(&b, "%d added, %d modified, %d deleted, %d replaced", n[Added], n[Modified], n[Deleted], n[Replaced])
	if n[Refused] > 0 {
		fmt.Fprintf(&b, ", %d refused", n[Refused])
	}
	fmt.Fprintf(&b, " (%d bytes)\n", bytes)
	return b.String()
}

// display quotes s if it would not read as one plain line.
func display(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// checkPath reports why p cannot name a path in a workspace.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > maxPath:
		return errors.New("path too long")
	case !utf8.ValidString(p):
		return errors.New("path is not UTF-8")
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("path contains NUL")
	case p[0] == '/':
		return errors.New("absolute path")
	case p == "." || path.Clean(p) != p:
		return errors.New("path is not clean")
	case p == ".." || strings.HasPrefix(p, "../"):
		return errors.New("path leaves the workspace")
	}
	for seg := range strings.SplitSeq(p, "/") {
		if len(seg) > maxName {
			return errors.New("path has a name longer than 255 bytes")
		}
	}
	return nil
}

// checkChange reports why c is not a well-formed change on its own.
func checkChange(c Change) error {
	if err := checkPath(c.Path); err != nil {
		return err
	}
	if !c.Type.valid() {
		return fmt.Errorf("unknown type %q", c.Type)
	}
	if c.Kind != Replaced && c.Prev != "" {
		return errors.New("prev is for replaced changes only")
	}
	if c.Kind != Refused && c.Reason != "" {
		return errors.New("reason is for refused changes only")
	}
	if c.Mode&^modeBits != 0 {
		return fmt.Errorf("mode %v has bits other than permissions", c.Mode)
	}
	switch c.Kind {
	case Added, Modified, Replaced:
		if c.Kind == Replaced && (!c.Prev.valid() || (c.Prev == c.Type && c.Type != Dir)) {
			return fmt.Errorf("replaced needs the previous type of another kind, not %q", c.Prev)
		}
		switch c.Type {
		case File:
			if c.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
				return errors.New("a file with a setuid or setgid bit is refused, not written")
			}
			if c.Size < 0 || !isSHA256(c.SHA256) || c.Target != "" {
				return errors.New("a file needs a size and a SHA-256 and nothing else")
			}
		case Dir:
			if c.Size != 0 || c.SHA256 != "" || c.Target != "" {
				return errors.New("a directory has no size, hash or target")
			}
		case Symlink:
			if c.Target == "" || len(c.Target) > maxPath || strings.IndexByte(c.Target, 0) >= 0 || !utf8.ValidString(c.Target) {
				return errors.New("a symlink needs a target of 1 to 4095 bytes of UTF-8 without NUL")
			}
			if c.Mode != 0 || c.Size != 0 || c.SHA256 != "" {
				return errors.New("a symlink has no mode, size or hash")
			}
		default:
			return fmt.Errorf("a %s is never %s", c.Type, c.Kind)
		}
	case Deleted:
		if c.Mode != 0 || c.Size != 0 || c.SHA256 != "" || c.Target != "" {
			return errors.New("a deletion has only a type")
		}
	case Refused:
		if c.Reason == "" || len(c.Reason) > maxReason || !utf8.ValidString(c.Reason) {
			return errors.New("a refusal needs a reason of 1 to 1024 bytes of UTF-8")
		}
		if c.Size != 0 || c.SHA256 != "" || c.Target != "" {
			return errors.New("a refusal has only a type, a mode and a reason")
		}
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// check reports why changes is not a set that can be saved or applied:
// a malformed change, paths out of order or repeated, or an entry whose
// place does not exist after the changes before it. Every error wraps
// ErrInvalid.
func check(changes []Change) error {
	if len(changes) > MaxChanges {
		return fmt.Errorf("%w: more than %d changes", ErrInvalid, MaxChanges)
	}
	at := make(map[string]int, len(changes))
	for i, c := range changes {
		if err := checkChange(c); err != nil {
			return fmt.Errorf("%w: change %d (%q): %v", ErrInvalid, i, c.Path, err)
		}
		if i > 0 && c.Path <= changes[i-1].Path {
			if c.Path == changes[i-1].Path {
				return fmt.Errorf("%w: %q: listed twice", ErrInvalid, c.Path)
			}
			return fmt.Errorf("%w: %q: out of order", ErrInvalid, c.Path)
		}
		at[c.Path] = i
	}
	// Each change's nearest listed ancestor must be a directory that
	// exists after its own change; beneath an added or replaced
	// directory, which is created afresh, everything is new and listed.
	for _, c := range changes {
		direct := true
		for q := path.Dir(c.Path); q != "."; q = path.Dir(q) {
			i, ok := at[q]
			if !ok {
				direct = false
				continue
			}
			a := changes[i]
			if a.Type != Dir || !a.writes() {
				return fmt.Errorf("%w: %q: beneath %q, which is not a directory after the change", ErrInvalid, c.Path, q)
			}
			if a.Kind == Added || a.Kind == Replaced {
				if !direct {
					return fmt.Errorf("%w: %q: its parent in the new directory %q is not listed", ErrInvalid, c.Path, q)
				}
				if c.Kind != Added && c.Kind != Refused {
					return fmt.Errorf("%w: %q: %s beneath the new directory %q", ErrInvalid, c.Path, c.Kind, q)
				}
			}
			break
		}
	}
	return nil
}
