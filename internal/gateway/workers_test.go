package gateway

import (
	"runtime"
	"sync"
	"testing"
)

// TestWorkers: run never waits for a worker (more blocked requests than
// workers may wait all run at once), at most cap(idle) workers stay
// waiting afterwards, a request that panics and recovers leaves its
// worker serving, and work handed in after close still runs.
func TestWorkers(t *testing.T) {
	w := newWorkers()
	n := 3 * cap(w.idle)
	release := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for range n {
		w.run(func() {
			defer done.Done()
			started.Done()
			<-release
		})
	}
	started.Wait() // all n run at once: none waited for another
	close(release)
	done.Wait()
	for len(w.idle) < cap(w.idle) {
		runtime.Gosched() // the finished workers park
	}
	if len(w.idle) != cap(w.idle) {
		t.Fatalf("%d workers wait, want at most %d", len(w.idle), cap(w.idle))
	}

	// A request that panics and recovers (as Session.recover does).
	var ran sync.WaitGroup
	ran.Add(2)
	w.run(func() {
		defer ran.Done()
		defer func() { _ = recover() }()
		panic("request failed")
	})
	w.run(ran.Done)
	ran.Wait()

	w.close()
	w.close() // idempotent
	for len(w.idle) > 0 {
		runtime.Gosched() // the waiting workers end
	}
	var after sync.WaitGroup
	after.Add(2)
	w.run(after.Done)
	w.run(after.Done)
	after.Wait()
	for len(w.idle) > 0 {
		runtime.Gosched() // and their workers end rather than wait
	}
}
