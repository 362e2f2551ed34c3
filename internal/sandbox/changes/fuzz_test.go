package changes

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzLoad feeds Load arbitrary manifests next to one saved file,
// files/a.txt = "hello\n". Whatever it accepts must be a set that check
// accepts, that survives a trip through the encoder unchanged, and that
// Summary and Protected can read.
func FuzzLoad(f *testing.F) {
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", "a.txt"), []byte("hello\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	h := sum("hello\n")
	for _, seed := range []string{
		`{"version":1,"changes":[]}`,
		`{"version":1,"changes":[{"path":"a.txt","kind":"added","type":"file","mode":"0644","size":6,"sha256":"` + h + `"}]}`,
		`{"version":1,"changes":[{"path":"a.txt","kind":"replaced","type":"file","prev":"dir","mode":"0755","size":6,"sha256":"` + h + `"},{"path":"b","kind":"deleted","type":"dir"}]}`,
		`{"version":1,"changes":[{"path":"d","kind":"modified","type":"dir","mode":"2775"},{"path":"d/l","kind":"added","type":"symlink","target":"../a.txt"}]}`,
		`{"version":1,"changes":[{"path":"d","kind":"replaced","type":"dir","prev":"dir","mode":"0700"},{"path":"d/p","kind":"refused","type":"fifo","mode":"0644","reason":"named pipe"}]}`,
		`{"version":1,"changes":[{"path":"../a","kind":"deleted","type":"file"}]}`,
		`{"version":1,"changes":[{"path":"a","kind":"deleted","type":"file","x":1}]}`,
		`{"version":1,"version":1}`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	manifest := filepath.Join(dir, "manifest.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(manifest, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir)
		if err != nil {
			return
		}
		if err := check(s.Changes); err != nil {
			t.Fatalf("Load accepted a set that check refuses: %v", err)
		}
		enc, err := encodeManifest(s)
		if err != nil {
			t.Fatalf("encode a loaded set: %v", err)
		}
		back, err := decodeManifest(enc)
		if err != nil {
			t.Fatalf("decode an encoded set: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(s, back); diff != "" {
			t.Fatalf("decode(encode(s)) differs (-s +back):\n%s", diff)
		}
		_ = s.Summary()
		var applied []string
		for _, c := range s.Changes {
			if c.Kind != Refused {
				applied = append(applied, c.Path)
			}
		}
		if got := Protected(s, []string{"**"}); !slices.Equal(got, applied) {
			t.Fatalf("Protected(**) = %q, want every applied path %q", got, applied)
		}
	})
}
