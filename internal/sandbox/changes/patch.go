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
	// File bounds one file's diff, counted as JSON encodes it, which
	// is how a Patch is sent and recorded. Total bounds the JSON
	// encoding of all the Patch's Files together: diffs and the
	// entries of files without one.
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
// file), a FilePatch, while the total bound allows. Changes of
// directories and symlinks, and refused changes, have none: Paths lists
// them.
type Patch struct {
	Files []FilePatch `json:"files"`
	// Unlisted counts the file changes left out once the listing
	// reached the total bound.
	Unlisted int `json:"unlisted,omitempty"`
}

// MakePatch compares, for each file change of s, the file in old (the
// workspace as it was) with the one in new (the set's saved content: the
// files directory Save writes). A nil root has no files. Text files get
// their unified diff, named a/PATH and b/PATH (or /dev/null), while the
// bounds of cfg allow; other files are listed with why they have none. A
// diff that would pass the total bound is left out (OmittedTotal); once
// not even an entry fits, the rest are only counted (Unlisted) and not
// read.
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
		if total >= cfg.Total {
			p.Unlisted++
			continue
		}
		fp := filePatch(c, hasOld, hasNew, old, new, withheld[c.Path], cfg)
		n := entryLen(fp)
		if fp.Diff != "" && total+n > cfg.Total {
			fp.Diff, fp.Omitted = "", OmittedTotal
			n = entryLen(fp)
		}
		if total+n > cfg.Total {
			p.Unlisted++
			continue
		}
		p.Files = append(p.Files, fp)
		total += n
	}
	return p
}

// filePatch is the FilePatch of one change, its diff bounded by cfg.File.
func filePatch(c Change, hasOld, hasNew bool, old, new *os.Root, withheld bool, cfg PatchConfig) FilePatch {
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
	case withheld:
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
		fp.Diff = UnifiedDiff(from, to, a, b)
		if encodedLen(fp.Diff) > cfg.File {
			fp.Diff, fp.Omitted = "", OmittedLarge
		}
	}
	return fp
}

// entryLen is the length of f as JSON encodes it in Files, its comma
// included.
func entryLen(f FilePatch) int {
	b, _ := json.Marshal(f)
	return len(b) + 1
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
