package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// largeEnv gates the benchmarks that build a log of a million events
// (minutes of appends and about half a gigabyte of disk).
const largeEnv = "WARD_BENCH_LARGE"

// openChildEnv names the log a child process of BenchmarkOpen opens.
const openChildEnv = "WARD_AUDIT_OPEN_CHILD"

// buildLog appends n events, each of its own session (the worst case for
// the session table), from many goroutines so that they share group
// commits, and returns the log's config.
func buildLog(b *testing.B, k testKey, n int) Config {
	b.Helper()
	cfg := testConfig(filepath.Join(b.TempDir(), "audit"), k)
	l, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan int, 4096)
	var wg sync.WaitGroup
	for range 1024 {
		wg.Go(func() {
			for i := range ch {
				e := testEvent(i)
				e.Time = time.Unix(1767225600, 0)
				if _, err := l.Append(context.Background(), e); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range n {
		ch <- i
	}
	close(ch)
	wg.Wait()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// openStats is what a child process measured opening a log.
type openStats struct {
	Millis  float64 `json:"ms"`
	HeapKiB uint64  `json:"heap_kib"` // live heap after Open, less before
	RSSKiB  uint64  `json:"rss_kib"`  // resident set after Open
	PeakKiB uint64  `json:"peak_kib"` // peak resident set
}

// TestOpenChild is the child half of BenchmarkOpen: it opens the log
// named in its environment once, in a fresh process, and prints what it
// measured.
func TestOpenChild(t *testing.T) {
	spec := os.Getenv(openChildEnv)
	if spec == "" {
		t.Skip("child process of BenchmarkOpen")
	}
	var c struct{ Dir, Skey, Vkey string }
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	k := keyFrom(t, c.Skey, c.Vkey)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	l, err := Open(testConfig(c.Dir, k))
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := openStats{Millis: float64(elapsed.Microseconds()) / 1000, HeapKiB: (after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)) >> 10}
	st.RSSKiB, st.PeakKiB = procStatus(t, "VmRSS:"), procStatus(t, "VmHWM:")
	if os.Getenv(openChildEnv+"_PASS") != "" {
		start := time.Now()
		if _, err := l.Verify(context.Background()); err != nil {
			t.Fatal(err)
		}
		st.Millis = float64(time.Since(start).Microseconds()) / 1000
		st.PeakKiB = procStatus(t, "VmHWM:")
	}
	runtime.KeepAlive(l)
	l.Close()
	out, _ := json.Marshal(st)
	fmt.Printf("open-stats %s\n", out)
}

func procStatus(t *testing.T, field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkOpen is the start of a node: Open of a log of 10,000 and of
// 1,000,000 events (the second with WARD_BENCH_LARGE=1), each in a fresh
// process, reporting the time, the heap the open log holds and the
// process's resident set; then ("pass") the verification pass a node runs
// after start, with its time and the process's peak resident set.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			if n > 100_000 && os.Getenv(largeEnv) == "" {
				b.Skipf("set %s=1 to build a log of %d events (minutes, and about half a gigabyte of disk)", largeEnv, n)
			}
			k := newTestKey(b, testOrigin)
			cfg := buildLog(b, k, n)
			spec, _ := json.Marshal(struct{ Dir, Skey, Vkey string }{cfg.Dir, k.skey, k.vkey})
			b.Run("open", func(b *testing.B) { openInChild(b, spec, false) })
			b.Run("pass", func(b *testing.B) { openInChild(b, spec, true) })
		})
	}
}

// openInChild opens the log in a child process per iteration and reports
// the mean of what the children measured.
func openInChild(b *testing.B, spec []byte, pass bool) {
	var sum openStats
	count := 0
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenChild$", "-test.v")
		cmd.Env = append(os.Environ(), openChildEnv+"="+string(spec))
		if pass {
			cmd.Env = append(cmd.Env, openChildEnv+"_PASS=1")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		i := bytes.Index(out, []byte("open-stats "))
		if i < 0 {
			b.Fatalf("child said %s", out)
		}
		var st openStats
		line, _, _ := bytes.Cut(out[i+len("open-stats "):], []byte("\n"))
		if err := json.Unmarshal(line, &st); err != nil {
			b.Fatal(err)
		}
		sum.Millis += st.Millis
		sum.HeapKiB += st.HeapKiB
		sum.RSSKiB += st.RSSKiB
		sum.PeakKiB += st.PeakKiB
		count++
	}
	c := float64(count)
	if pass {
		b.ReportMetric(sum.Millis/c, "pass-ms")
		b.ReportMetric(float64(sum.PeakKiB)/c, "peak-rss-KiB")
		return
	}
	b.ReportMetric(sum.Millis/c, "open-ms")
	b.ReportMetric(float64(sum.HeapKiB)/c, "heap-KiB")
	b.ReportMetric(float64(sum.RSSKiB)/c, "rss-KiB")
	b.ReportMetric(float64(sum.PeakKiB)/c, "peak-rss-KiB")
}
