package policytest

import (
	"os"
	"testing"
)

func BenchmarkLoad(b *testing.B) {
	src, err := os.ReadFile("testdata/cases.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := parse("testdata/cases.yaml", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRun(b *testing.B) {
	f, set := loadFile(b, "testdata/cases.yaml")
	for b.Loop() {
		rs := Run(f, set)
		if _, failed := Summary(rs); failed != 0 {
			b.Fatal("a case failed")
		}
	}
}
