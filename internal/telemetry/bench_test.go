package telemetry

import (
	"testing"
	"time"
)

// BenchmarkDecided is what metrics add to each decided call: one counter
// and one histogram, labels looked up.
func BenchmarkDecided(b *testing.B) {
	m := NewMetrics(Sources{})
	b.ReportAllocs()
	for b.Loop() {
		m.Decided("demo", "tools/call", "demo.echo", "allow", 40*time.Microsecond)
	}
}

// BenchmarkUpstream is what metrics add to each forwarded call.
func BenchmarkUpstream(b *testing.B) {
	m := NewMetrics(Sources{})
	b.ReportAllocs()
	for b.Loop() {
		m.Upstream("demo", "ok", time.Millisecond)
	}
}
