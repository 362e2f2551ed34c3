package rules

import (
	"os"
	"testing"
)

// BenchmarkCompile compiles the golden rule files (about 35 sentences).
func BenchmarkCompile(b *testing.B) {
	var srcs [][]byte
	for _, f := range []string{"testdata/spec.rules", "testdata/more.rules"} {
		src, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, src := range srcs {
			if _, err := CompileToCedar("bench.rules", src); err != nil {
				b.Fatal(err)
			}
		}
	}
}
