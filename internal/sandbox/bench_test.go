package sandbox

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkStart compares starting /bin/true directly with starting it in
// a runtime (namespaces, root file system, overlay, Landlock, seccomp,
// cgroup), and reports the runtime's start-to-execve and teardown times.
func BenchmarkStart(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("runtime", func(b *testing.B) {
		var started, teardown time.Duration
		for b.Loop() {
			sb, err := Start(context.Background(), Spec{Argv: []string{"/bin/true"}, RunDir: b.TempDir(), Env: []string{"PATH=/usr/bin"}})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sb.Wait(); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := sb.Release(); err != nil {
				b.Fatal(err)
			}
			teardown += time.Since(t0)
			started += sb.StartedIn()
		}
		b.ReportMetric(float64(started.Microseconds())/float64(b.N), "start-µs/op")
		b.ReportMetric(float64(teardown.Microseconds())/float64(b.N), "teardown-µs/op")
	})
}
