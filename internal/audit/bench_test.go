package audit

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func benchEvent() Event {
	e := testEvent(1)
	e.Time = time.Unix(1767225600, 0)
	return e
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppend is one appender: every event is its own batch and
// waits for its own journal sync. cpu-µs/op is the process's CPU time
// (every goroutine of the log: the writer, the checkpointer, the index's
// syncer) per append.
func BenchmarkAppend(b *testing.B) {
	k := newTestKey(b, testOrigin)
	l := mustOpen(b, testConfig(b.TempDir(), k))
	e := benchEvent()
	ctx := context.Background()
	n := 0
	cpu := cpuTime(b)
	for b.Loop() {
		if _, err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(n), "cpu-µs/op")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendParallel shows group commit: many appenders share fsyncs.
func BenchmarkAppendParallel(b *testing.B) {
	k := newTestKey(b, testOrigin)
	l := mustOpen(b, testConfig(b.TempDir(), k))
	e := benchEvent()
	ctx := context.Background()
	b.SetParallelism(64)
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawFileAppendFsync is the floor: write one framed event and
// fsync, to a plain file.
func BenchmarkRawFileAppendFsync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	l := &Log{cfg: Config{Now: time.Now, MaxEventSize: DefaultMaxEventSize}}
	body, err := l.encode(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	frame = append(frame, body...)
	n := 0
	cpu := cpuTime(b)
	for b.Loop() {
		if _, err := f.Write(frame); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(n), "cpu-µs/op")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendLatency is what an append adds to a call: 8 appenders
// (a busy gateway), each timing its own appends; p50 and p99 in µs.
func BenchmarkAppendLatency(b *testing.B) {
	k := newTestKey(b, testOrigin)
	l := mustOpen(b, testConfig(b.TempDir(), k))
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(4) // 4 × GOMAXPROCS (2 here) appenders
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		i := 0
		for pb.Next() {
			e := benchEvent()
			e.Session = "lat-" + strconv.Itoa(i%64)
			i++
			start := time.Now()
			if _, err := l.Append(ctx, e); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCallRecords is what one tool call at a time costs the log, as
// ward's gateway records it: a decision, then its result. "durable"
// appends both durably (two syncs in a row); "unsynced" appends the
// decision with AppendUnsynced, so that the result's sync covers it too
// (one sync). syncs/op is the journal's syncs per call.
func BenchmarkCallRecords(b *testing.B) {
	for _, mode := range []string{"durable", "unsynced"} {
		b.Run(mode, func(b *testing.B) {
			k := newTestKey(b, testOrigin)
			l := mustOpen(b, testConfig(b.TempDir(), k))
			ctx := context.Background()
			e := benchEvent()
			syncs := l.jr.syncs
			for b.Loop() {
				if mode == "durable" {
					if _, err := l.Append(ctx, e); err != nil {
						b.Fatal(err)
					}
				} else if _, err := l.AppendUnsynced(ctx, e); err != nil {
					b.Fatal(err)
				}
				if _, err := l.Append(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(l.jr.syncs-syncs)/float64(b.N), "syncs/op")
		})
	}
}
