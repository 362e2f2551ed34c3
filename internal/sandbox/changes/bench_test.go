package changes

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// benchLayers is an upper layer of 1,000 new files of 4 KiB in 10
// directories, over an empty lower layer.
func benchLayers(b *testing.B) (upper, lower string) {
	upper, lower = layers(b)
	for i := range 1000 {
		content := fmt.Sprintf("%04d", i) + strings.Repeat("x", 4096-4)
		writeFile(b, fmt.Sprintf("%s/d%d/f%03d.txt", upper, i/100, i), content, 0o644)
	}
	return upper, lower
}

func BenchmarkScan(b *testing.B) {
	upper, lower := benchLayers(b)
	b.SetBytes(1000 * 4096)
	for b.Loop() {
		s, err := Scan(upper, lower, 1<<30)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Changes) != 1010 {
			b.Fatalf("%d changes, want 1010", len(s.Changes))
		}
	}
}

// BenchmarkWalkOnly is the floor under BenchmarkScan: visiting the same
// upper layer without reading anything.
func BenchmarkWalkOnly(b *testing.B) {
	upper, _ := benchLayers(b)
	for b.Loop() {
		n := 0
		err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
			n++
			return err
		})
		if err != nil || n != 1011 {
			b.Fatalf("walked %d entries: %v", n, err)
		}
	}
}
