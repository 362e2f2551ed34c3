package changes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// saved scans a small upper layer and saves it, returning the directory.
func saved(t testing.TB) (dir string, s *Set) {
	t.Helper()
	upper, lower := layers(t)
	writeFile(t, upper+"/a.txt", "hello\n", 0o644)
	writeFile(t, upper+"/dir/b.txt", "b\n", 0o600)
	symlink(t, "a.txt", upper+"/link")
	s, err := Scan(upper, lower, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "set")
	must(t, Save(s, upper, dir))
	return dir, s
}

func TestSaveLayout(t *testing.T) {
	dir, s := saved(t)
	for p, want := range map[string]os.FileMode{
		"":                os.ModeDir | 0o700,
		"files":           os.ModeDir | 0o700,
		"files/dir":       os.ModeDir | 0o700,
		"files/a.txt":     0o600,
		"files/dir/b.txt": 0o600,
		"manifest.json":   0o600,
	} {
		info, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Error(err)
			continue
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "files/link")); err == nil {
		t.Error("a symlink was saved under files/; its target belongs in the manifest")
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	must(t, err)
	for _, want := range []string{`"version": 1`, `"path": "a.txt"`, `"mode": "0644"`, `"sha256": "` + sum("hello\n") + `"`, `"target": "a.txt"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("manifest lacks %s:\n%s", want, b)
		}
	}
	// Save wants a directory of its own.
	if err := Save(s, t.TempDir(), dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Save over a saved set: %v", err)
	}
}

// Content that changed between Scan and Save is not saved as if it had
// not.
func TestSaveChangedContent(t *testing.T) {
	upper, lower := layers(t)
	writeFile(t, upper+"/a.txt", "hello\n", 0o644)
	s, err := Scan(upper, lower, 1<<30)
	must(t, err)
	writeFile(t, upper+"/a.txt", "HELLO\n", 0o644)
	err = Save(s, upper, filepath.Join(t.TempDir(), "set"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "a.txt") {
		t.Fatalf("Save = %v, want ErrInvalid naming a.txt", err)
	}
}

// A saved set is read back as data an attacker may have edited.
func TestLoadRefuses(t *testing.T) {
	h := sum("hello\n")
	for _, tc := range []struct {
		name     string
		manifest string // replaces manifest.json unless empty
		tamper   func(t *testing.T, dir string)
		want     string
	}{
		{name: "content", tamper: func(t *testing.T, dir string) {
			writeFile(t, dir+"/files/a.txt", "HELLO\n", 0o600)
		}, want: "a.txt: content changed"},
		{name: "content appended", tamper: func(t *testing.T, dir string) {
			writeFile(t, dir+"/files/dir/b.txt", "b\nmore", 0o600)
		}, want: "dir/b.txt: content changed"},
		{name: "content missing", tamper: func(t *testing.T, dir string) {
			must(t, os.Remove(dir+"/files/a.txt"))
		}, want: "a.txt: content missing"},
		{name: "content through a symlink", tamper: func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "a.txt")
			writeFile(t, other, "hello\n", 0o600)
			must(t, os.Remove(dir+"/files/a.txt"))
			symlink(t, other, dir+"/files/a.txt")
		}, want: "a.txt: content missing"},
		{name: "files through a symlink", tamper: func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "files")
			must(t, os.Rename(dir+"/files", other))
			symlink(t, other, dir+"/files")
		}, want: "files"},
		{name: "dotdot", manifest: `{"version":1,"changes":[{"path":"../x","kind":"deleted","type":"file"}]}`, want: "leaves the workspace"},
		{name: "dotdot inside", manifest: `{"version":1,"changes":[{"path":"a/../../x","kind":"deleted","type":"file"}]}`, want: "not clean"},
		{name: "absolute", manifest: `{"version":1,"changes":[{"path":"/etc/passwd","kind":"deleted","type":"file"}]}`, want: "absolute"},
		{name: "empty path", manifest: `{"version":1,"changes":[{"path":"","kind":"deleted","type":"file"}]}`, want: "empty path"},
		{name: "dot", manifest: `{"version":1,"changes":[{"path":".","kind":"deleted","type":"dir"}]}`, want: "not clean"},
		{name: "trailing slash", manifest: `{"version":1,"changes":[{"path":"a/","kind":"deleted","type":"dir"}]}`, want: "not clean"},
		{name: "NUL", manifest: `{"version":1,"changes":[{"path":"a\u0000b","kind":"deleted","type":"file"}]}`, want: "NUL"},
		{name: "unknown field", manifest: `{"version":1,"changes":[{"path":"a","kind":"deleted","type":"file","owner":"root"}]}`, want: "unknown"},
		{name: "unknown top-level field", manifest: `{"version":1,"changes":[],"signed":true}`, want: "unknown"},
		{name: "duplicate path", manifest: `{"version":1,"changes":[{"path":"a","kind":"deleted","type":"file"},{"path":"a","kind":"deleted","type":"file"}]}`, want: "listed twice"},
		{name: "duplicate member", manifest: `{"version":1,"changes":[{"path":"a","path":"b","kind":"deleted","type":"file"}]}`, want: "duplicate"},
		{name: "out of order", manifest: `{"version":1,"changes":[{"path":"b","kind":"deleted","type":"file"},{"path":"a","kind":"deleted","type":"file"}]}`, want: "out of order"},
		{name: "version", manifest: `{"version":2,"changes":[]}`, want: "version 2"},
		{name: "no version", manifest: `{"changes":[]}`, want: "version 0"},
		{name: "trailing data", manifest: `{"version":1,"changes":[]} {}`, want: "manifest"},
		{name: "not JSON", manifest: `version=1`, want: "manifest"},
		{name: "unknown kind", manifest: `{"version":1,"changes":[{"path":"a","kind":"renamed","type":"file"}]}`, want: "unknown kind"},
		{name: "unknown type", manifest: `{"version":1,"changes":[{"path":"a","kind":"deleted","type":"door"}]}`, want: "unknown type"},
		{name: "beneath a deleted dir", manifest: `{"version":1,"changes":[{"path":"a","kind":"deleted","type":"dir"},{"path":"a/b","kind":"deleted","type":"file"}]}`, want: "not a directory after the change"},
		{name: "beneath a symlink", manifest: `{"version":1,"changes":[{"path":"a","kind":"added","type":"symlink","target":"/etc"},{"path":"a/passwd","kind":"deleted","type":"file"}]}`, want: "not a directory after the change"},
		{name: "gap beneath a new dir", manifest: `{"version":1,"changes":[{"path":"a","kind":"added","type":"dir","mode":"0755"},{"path":"a/b/c","kind":"deleted","type":"file"}]}`, want: "not listed"},
		{name: "deletion beneath a new dir", manifest: `{"version":1,"changes":[{"path":"a","kind":"added","type":"dir","mode":"0755"},{"path":"a/c","kind":"deleted","type":"file"}]}`, want: "deleted beneath the new directory"},
		{name: "setuid", manifest: `{"version":1,"changes":[{"path":"a.txt","kind":"added","type":"file","mode":"4755","size":6,"sha256":"` + h + `"}]}`, want: "setuid"},
		{name: "mode format", manifest: `{"version":1,"changes":[{"path":"a.txt","kind":"added","type":"file","mode":"644","size":6,"sha256":"` + h + `"}]}`, want: "four octal digits"},
		{name: "mode missing", manifest: `{"version":1,"changes":[{"path":"a.txt","kind":"added","type":"file","size":6,"sha256":"` + h + `"}]}`, want: "needs a mode"},
		{name: "mode on a symlink", manifest: `{"version":1,"changes":[{"path":"l","kind":"added","type":"symlink","mode":"0777","target":"a"}]}`, want: "has no mode"},
		{name: "hash case", manifest: `{"version":1,"changes":[{"path":"a.txt","kind":"added","type":"file","mode":"0644","size":6,"sha256":"` + strings.ToUpper(h) + `"}]}`, want: "SHA-256"},
		{name: "negative size", manifest: `{"version":1,"changes":[{"path":"a.txt","kind":"added","type":"file","mode":"0644","size":-1,"sha256":"` + h + `"}]}`, want: "SHA-256"},
		{name: "device written", manifest: `{"version":1,"changes":[{"path":"null","kind":"added","type":"device","mode":"0666"}]}`, want: "never added"},
		{name: "refused without reason", manifest: `{"version":1,"changes":[{"path":"p","kind":"refused","type":"fifo","mode":"0644"}]}`, want: "reason"},
		{name: "replaced by the same", manifest: `{"version":1,"changes":[{"path":"l","kind":"replaced","type":"symlink","prev":"symlink","target":"a"}]}`, want: "previous type"},
		{name: "invalid UTF-8", manifest: "{\"version\":1,\"changes\":[{\"path\":\"a\xff\",\"kind\":\"deleted\",\"type\":\"file\"}]}", want: "UTF-8"},
		{name: "too large", tamper: func(t *testing.T, dir string) {
			must(t, os.Truncate(dir+"/manifest.json", MaxManifest+1))
		}, want: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := saved(t)
			if tc.manifest != "" {
				must(t, os.WriteFile(dir+"/manifest.json", []byte(tc.manifest), 0o600))
			}
			if tc.tamper != nil {
				tc.tamper(t, dir)
			}
			_, err := Load(dir)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v\nwant ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoadRoundTrip(t *testing.T) {
	dir, s := saved(t)
	got, err := Load(dir)
	must(t, err)
	if diff := cmp.Diff(s, got); diff != "" {
		t.Fatalf("Load (-saved +loaded):\n%s", diff)
	}
	// Every kind and type survives the trip through the manifest.
	all := &Set{Changes: []Change{
		{Path: "a", Kind: Added, Type: Dir, Mode: 0o755 | os.ModeSetgid | os.ModeSticky},
		{Path: "a/f", Kind: Added, Type: File, Mode: 0o640, Size: 0, SHA256: sum("")},
		{Path: "a/p", Kind: Refused, Type: Fifo, Mode: 0o644, Reason: "named pipe"},
		{Path: "b", Kind: Modified, Type: Dir, Mode: 0o700},
		{Path: "b/l", Kind: Replaced, Type: Symlink, Prev: Dir, Target: "../x y"},
		{Path: "c", Kind: Deleted, Type: Socket},
		{Path: "d", Kind: Replaced, Type: Dir, Prev: Dir, Mode: 0},
		{Path: "ü/ñ", Kind: Deleted, Type: Device},
	}}
	b, err := encodeManifest(all)
	must(t, err)
	back, err := decodeManifest(b)
	must(t, err)
	if diff := cmp.Diff(all, back); diff != "" {
		t.Fatalf("decode(encode) (-want +got):\n%s", diff)
	}
}

func TestLoadIncomplete(t *testing.T) {
	dir, _ := saved(t)
	must(t, os.Remove(dir+"/manifest.json"))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("Load without manifest: %v", err)
	}
	must(t, Discard(dir))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Discard of an incomplete set left it: %v", err)
	}
}

func TestDiscard(t *testing.T) {
	must(t, Discard(filepath.Join(t.TempDir(), "none")))
	dir, _ := saved(t)
	writeFile(t, dir+"/notes.txt", "mine\n", 0o644)
	if err := Discard(dir); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("Discard of a directory with a stranger in it: %v", err)
	}
	if _, err := os.Stat(dir + "/files/a.txt"); err != nil {
		t.Fatalf("refused Discard removed something: %v", err)
	}
}
