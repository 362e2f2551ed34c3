package changes

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// root writes files (path -> content; a content starting with "->" is a
// symlink) beneath a new directory and opens it as a root.
func root(t *testing.T, files map[string]string) *os.Root {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestMakePatch: each kind of file change gets its diff or the reason it
// has none, and the bytes of a binary, withheld or too large file are in
// no part of the patch.
func TestMakePatch(t *testing.T) {
	secret := "AWS_SECRET=do-not-show-me"
	old := root(t, map[string]string{
		"notes.txt": "alpha\nbeta\ngamma\n",
		"gone.txt":  "bye\n",
		"logo.bin":  "\x00\x01PNGOLD",
		"was.txt":   "file before\n",
		"big.txt":   strings.Repeat("old line\n", 20),
		"sub/.env":  "A=1\n",
	})
	new := root(t, map[string]string{
		"notes.txt":  "alpha\nBETA\ngamma\n",
		"hi.txt":     "hello\n",
		"logo.bin":   "\x00\x02PNGNEW",
		"big.txt":    strings.Repeat("new line\n", 20),
		"sub/.env":   secret + "\n",
		"huge.txt":   strings.Repeat("h", 300),
		"swapped":    "->notes.txt",
		"zlater.txt": "one more\n",
		"a/deep.pem": "-----BEGIN KEY-----\n",
	})
	s := &Set{Changes: []Change{
		{Path: "a", Kind: Added, Type: Dir},
		{Path: "a/deep.pem", Kind: Added, Type: File},
		{Path: "big.txt", Kind: Modified, Type: File},
		{Path: "gone.txt", Kind: Deleted, Type: File},
		{Path: "hi.txt", Kind: Added, Type: File},
		{Path: "huge.txt", Kind: Added, Type: File},
		{Path: "link", Kind: Added, Type: Symlink, Target: "notes.txt"},
		{Path: "logo.bin", Kind: Modified, Type: File},
		{Path: "notes.txt", Kind: Modified, Type: File},
		{Path: "olddir", Kind: Deleted, Type: Dir},
		{Path: "pipe", Kind: Refused, Type: Fifo, Reason: "named pipe"},
		{Path: "sub/.env", Kind: Modified, Type: File},
		{Path: "swapped", Kind: Added, Type: File},
		{Path: "was.txt", Kind: Replaced, Type: Dir, Prev: File},
		{Path: "zlater.txt", Kind: Added, Type: File},
	}}
	// big.txt's diff is over File, huge.txt over Read.
	cfg := PatchConfig{File: 300, Read: 200}
	p := MakePatch(s, old, new, cfg)
	got := map[string]FilePatch{}
	var order []string
	for _, f := range p.Files {
		got[f.Path] = f
		order = append(order, f.Path)
	}
	if want := "a/deep.pem big.txt gone.txt hi.txt huge.txt logo.bin notes.txt sub/.env swapped was.txt zlater.txt"; strings.Join(order, " ") != want {
		t.Errorf("files %q, want %q", order, want)
	}
	for _, c := range []struct {
		path, diff, omitted string
		oldSize, size       int64
	}{
		{"a/deep.pem", "", OmittedWithheld, -1, 20},
		{"big.txt", "", OmittedLarge, 180, 180},
		{"gone.txt", "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n", "", 4, -1},
		{"hi.txt", "--- /dev/null\n+++ b/hi.txt\n@@ -0,0 +1 @@\n+hello\n", "", -1, 6},
		{"huge.txt", "", OmittedLarge, -1, 300},
		{"zlater.txt", "--- /dev/null\n+++ b/zlater.txt\n@@ -0,0 +1 @@\n+one more\n", "", -1, 9},
		{"logo.bin", "", OmittedBinary, 8, 8},
		{"notes.txt", "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n alpha\n-beta\n+BETA\n gamma\n", "", 17, 17},
		{"sub/.env", "", OmittedWithheld, 4, int64(len(secret) + 1)},
		{"swapped", "", OmittedUnread, -1, 0},
		{"was.txt", "--- a/was.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-file before\n", "", 12, -1},
	} {
		f := got[c.path]
		if f.Diff != c.diff || f.Omitted != c.omitted {
			t.Errorf("%s: diff %q omitted %q, want %q %q", c.path, f.Diff, f.Omitted, c.diff, c.omitted)
		}
		if f.Omitted != OmittedUnread && (f.OldSize != c.oldSize || f.Size != c.size) {
			t.Errorf("%s: sizes %d -> %d, want %d -> %d", c.path, f.OldSize, f.Size, c.oldSize, c.size)
		}
	}
	doc, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, never := range []string{"PNG", "do-not-show-me", "BEGIN KEY", "new line", "hhhh"} {
		if strings.Contains(string(doc), never) {
			t.Errorf("the patch shows %q: %s", never, doc)
		}
	}
}

// TestPatchBounds: however many and however large the files, no diff is
// over File, counted as JSON encodes it, and the encoded listing is not
// over Total; what does not fit is listed as such, then only counted.
func TestPatchBounds(t *testing.T) {
	files := map[string]string{}
	var s Set
	seed := uint32(7)
	rnd := func(n int) int { seed = seed*1664525 + 1013904223; return int(seed>>16) % n }
	for i := range 60 {
		p := string(rune('a'+i%26)) + strings.Repeat("x", i/26) + ".txt"
		// Text that JSON escapes: each '<' is 6 bytes encoded.
		files[p] = strings.Repeat("line <b>&\n", 1+rnd(40))
		s.Changes = append(s.Changes, Change{Path: p, Kind: Added, Type: File})
	}
	slices.SortFunc(s.Changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	cfg := PatchConfig{File: 600, Total: 4000}
	p := MakePatch(&s, nil, root(t, files), cfg)
	shown, large, over := 0, 0, 0
	for _, f := range p.Files {
		switch f.Omitted {
		case "":
			shown++
			if n := encodedLen(f.Diff); n > cfg.File {
				t.Errorf("%s: diff of %d bytes encoded, over %d", f.Path, n, cfg.File)
			}
		case OmittedLarge:
			large++
		case OmittedTotal:
			over++
		default:
			t.Errorf("%s: omitted %q", f.Path, f.Omitted)
		}
		if f.Omitted != "" && f.Diff != "" {
			t.Errorf("%s: omitted, yet a diff", f.Path)
		}
	}
	doc, _ := json.Marshal(p.Files)
	if len(doc) > cfg.Total+2 {
		t.Errorf("a listing of %d bytes encoded, over %d", len(doc), cfg.Total)
	}
	if len(p.Files)+p.Unlisted != 60 || shown == 0 || large == 0 || over == 0 || p.Unlisted == 0 {
		t.Errorf("%d files: %d shown, %d too large, %d over the total, %d unlisted", len(p.Files), shown, large, over, p.Unlisted)
	}
	// Without bounds to speak of, every diff is shown.
	if p := MakePatch(&s, nil, root(t, files), PatchConfig{File: 1 << 20, Total: 1 << 20}); p.Unlisted != 0 || len(p.Files) != 60 {
		t.Errorf("unbounded: %d files, %d unlisted", len(p.Files), p.Unlisted)
	}
}

// FuzzMakePatch: whatever the agent wrote, a patch keeps its bounds, shows
// a diff only of text, and a shown diff patches the old file into the new.
func FuzzMakePatch(f *testing.F) {
	f.Add("a\nb\n", "a\nc\n", 200, 400)
	f.Add("", "<script>\x00</script>", 64, 64)
	f.Add("same\n", strings.Repeat("\"<>&\n", 50), 300, 1000)
	f.Fuzz(func(t *testing.T, before, after string, file, total int) {
		if len(before) > 2048 || len(after) > 2048 || file <= 0 || total <= 0 || file > 1<<16 || total > 1<<16 {
			return
		}
		old, new := t.TempDir(), t.TempDir()
		os.WriteFile(filepath.Join(old, "f.txt"), []byte(before), 0o644)
		os.WriteFile(filepath.Join(new, "f.txt"), []byte(after), 0o644)
		os.WriteFile(filepath.Join(new, "g.txt"), []byte(after), 0o644)
		or, _ := os.OpenRoot(old)
		nr, _ := os.OpenRoot(new)
		defer or.Close()
		defer nr.Close()
		s := &Set{Changes: []Change{{Path: "f.txt", Kind: Modified, Type: File}, {Path: "g.txt", Kind: Added, Type: File}}}
		cfg := PatchConfig{File: file, Total: total, Read: 1024}
		p := MakePatch(s, or, nr, cfg)
		doc, _ := json.Marshal(p.Files)
		if len(doc) > total+2 {
			t.Fatalf("listing of %d bytes, total %d", len(doc), total)
		}
		if len(p.Files)+p.Unlisted != 2 {
			t.Fatalf("%d files and %d unlisted of 2", len(p.Files), p.Unlisted)
		}
		for _, fp := range p.Files {
			if fp.Diff == "" {
				continue
			}
			sides := []string{before, after}
			if fp.Path == "g.txt" {
				sides = []string{after}
			}
			for _, side := range sides {
				if !IsText([]byte(side)) || len(side) > int(cfg.Read) {
					t.Fatalf("%s: a diff of a side not text or over Read: %q", fp.Path, fp.Diff)
				}
			}
			if encodedLen(fp.Diff) > file || fp.Omitted != "" {
				t.Fatalf("%s: diff %q shown (omitted %q)", fp.Path, fp.Diff, fp.Omitted)
			}
			if fp.Path == "f.txt" && !strings.HasPrefix(fp.Diff, "--- a/f.txt\n+++ b/f.txt\n") {
				t.Fatalf("f.txt: %q", fp.Diff)
			}
		}
	})
}
