package changes

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Defaults of a PatchConfig.
const (
	// DefaultPatchFile bounds one file's diff in a Patch: 64 KiB.
	DefaultPatchFile = 64 << 10
	// DefaultPatchTotal bounds all the diffs of a Patch together: 256 KiB.
	DefaultPatchTotal = 256 << 10
	// DefaultPatchRead bounds what is read of either side of a file to
	// compare them: 1 MiB. A larger file is not compared.
	DefaultPatchRead = 1 << 20
)

// DefaultWithheld are the names whose content a Patch never shows: files
// that by their name hold secrets. Patterns as Protected reads them.
var DefaultWithheld = []string{".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", ".ssh", ".gnupg", ".aws", ".docker",
	".kube", ".netrc", ".npmrc", ".pypirc", ".git-credentials", "id_rsa*", "id_ecdsa*", "id_ed25519*", "id_dsa*"}

// PatchConfig bounds a Patch. Zero fields take their defaults.
type PatchConfig struct {
	// File bounds one file's diff, Total all of them, both counted as
	// the diff's JSON encoding, which is what a Patch is sent and
	// recorded as.
	File, Total int
	// Read bounds what is read of either side of a file.
	Read int64
	// Withheld are patterns (see Protected) of paths whose content is
	// never shown; nil means DefaultWithheld.
	Withheld []string
}

// Reasons a FilePatch has no diff.
const (
	OmittedBinary   = "binary"
	OmittedLarge    = "too large"
	OmittedTotal    = "over the total limit"
	OmittedWithheld = "withheld: its name suggests a secret"
	OmittedUnread   = "could not be read"
)

// FilePatch is one file of a Patch: the diff of its content, or why it is
// not shown. Never the bytes of a binary, too large or withheld file.
type FilePatch struct {
	Path string `json:"path"`
	Kind Kind   `json:"kind"`
	// Diff is the unified diff (UnifiedDiff) of the file's text, "" if
	// Omitted says why there is none.
	Diff    string `json:"diff,omitempty"`
	Omitted string `json:"omitted,omitempty"`
	// OldSize and Size are the sizes of the two sides, -1 for a side
	// that is not a file.
	OldSize int64 `json:"old_size"`
	Size    int64 `json:"size"`
}

// Patch is the bounded diff of the files of a change set, in the set's
// order: for each file added, modified, deleted or replaced (from or to a
// file), a FilePatch. Changes of directories and symlinks, and refused
// changes, have none: Paths lists them.
type Patch struct {
	Files []FilePatch `json:"files"`
}

// MakePatch compares, for each file change of s, the file in old (the
// workspace as it was) with the one in new (the set's saved content: the
// files directory Save writes). A nil root has no files. Text files get
// their unified diff, named a/PATH and b/PATH (or /dev/null), while the
// bounds of cfg allow; other files are listed with why they have none.
func MakePatch(s *Set, old, new *os.Root, cfg PatchConfig) Patch {
	if cfg.File <= 0 {
		cfg.File = DefaultPatchFile
	}
	if cfg.Total <= 0 {
		cfg.Total = DefaultPatchTotal
	}
	if cfg.Read <= 0 {
		cfg.Read = DefaultPatchRead
	}
	if cfg.Withheld == nil {
		cfg.Withheld = DefaultWithheld
	}
	p := Patch{Files: []FilePatch{}}
	if s == nil {
		return p
	}
	withheld := map[string]bool{}
	for _, w := range Protected(s, cfg.Withheld) {
		withheld[w] = true
	}
	total := 0
	for _, c := range s.Changes {
		hasOld := ((c.Kind == Modified || c.Kind == Deleted) && c.Type == File) || (c.Kind == Replaced && c.Prev == File)
		hasNew := c.Type == File && c.writes()
		if !hasOld && !hasNew {
			continue
		}
		fp := FilePatch{Path: c.Path, Kind: c.Kind, OldSize: -1, Size: -1}
		var a, b []byte
		var aOK, bOK bool
		if hasOld {
			a, fp.OldSize, aOK = ReadBounded(old, c.Path, cfg.Read)
		}
		if hasNew {
			b, fp.Size, bOK = ReadBounded(new, c.Path, cfg.Read)
		}
		switch {
		case withheld[c.Path]:
			fp.Omitted = OmittedWithheld
		case (hasOld && !aOK) || (hasNew && !bOK):
			fp.Omitted = OmittedUnread
		case fp.OldSize > cfg.Read || fp.Size > cfg.Read:
			fp.Omitted = OmittedLarge
		case !IsText(a) || !IsText(b):
			fp.Omitted = OmittedBinary
		default:
			from, to := "a/"+c.Path, "b/"+c.Path
			if !hasOld {
				from = "/dev/null"
			}
			if !hasNew {
				to = "/dev/null"
			}
			d := UnifiedDiff(from, to, a, b)
			n := encodedLen(d)
			switch {
			case n > cfg.File:
				fp.Omitted = OmittedLarge
			case total+n > cfg.Total:
				fp.Omitted = OmittedTotal
			default:
				fp.Diff = d
				total += n
			}
		}
		p.Files = append(p.Files, fp)
	}
	return p
}

// encodedLen is the length of s as JSON encodes it.
func encodedLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b)
}

// ReadBounded reads the regular file at path (slash-separated) beneath
// root: its content if it is at most limit bytes, else nil; its size; and
// whether there is such a file. A nil root has none. The file is opened
// without following a final symlink nor blocking, and checked again once
// open, so that a path swapped for a FIFO or a link cannot hold the
// reader up or lead it elsewhere.
func ReadBounded(root *os.Root, path string, limit int64) ([]byte, int64, bool) {
	if root == nil {
		return nil, 0, false
	}
	name := filepath.FromSlash(path)
	st, err := root.Lstat(name)
	if err != nil || !st.Mode().IsRegular() {
		return nil, 0, false
	}
	if st.Size() > limit {
		return nil, st.Size(), true
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, 0, false
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, false
	}
	if int64(len(b)) > limit {
		return nil, int64(len(b)), true
	}
	return b, int64(len(b)), true
}
