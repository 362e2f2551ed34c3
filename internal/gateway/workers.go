package gateway

import (
	"runtime"
	"sync"
)

// workers runs the gateway's per-request work (a client request, decided
// and forwarded) on goroutines that outlive it: a request's goroutine
// grows its stack through the decision, the audit append and the upstream
// round trip to tens of KiB, and a new goroutine per request copied its
// stack three or four times on every call (runtime.newstack, a twentieth
// of the node's CPU per call). An idle worker keeps its grown stack for
// the next request. The hand-off is a channel send to a parked worker,
// which costs what starting a goroutine costs.
//
// At most workersPerCPU × GOMAXPROCS workers wait for work; a worker that
// finishes when that many wait ends. Close ends the waiting ones; work handed in after Close
// still runs, each on a goroutine of its own that then ends.
type workers struct {
	work chan func()   // unbuffered: a send succeeds only if a worker waits
	idle chan struct{} // a token per waiting worker, at most cap(idle)
	stop chan struct{} // closed by close
	once sync.Once
}

// workersPerCPU bounds the idle workers: enough for the requests the CPUs
// can serve at once, each waiting on its upstream or its audit append.
const workersPerCPU = 8

func newWorkers() *workers {
	return &workers{work: make(chan func()), idle: make(chan struct{}, workersPerCPU*runtime.GOMAXPROCS(0)), stop: make(chan struct{})}
}

// run runs f on an idle worker, or on a new one if none is waiting.
func (w *workers) run(f func()) {
	select {
	case w.work <- f:
	default:
		go w.loop(f)
	}
}

// loop runs f, then waits for more work unless enough workers wait.
func (w *workers) loop(f func()) {
	for {
		f()
		f = nil // not kept alive while waiting
		select {
		case w.idle <- struct{}{}:
		default:
			return // enough are waiting
		}
		select {
		case f = <-w.work:
			<-w.idle
		case <-w.stop:
			<-w.idle
			return
		}
	}
}

// close ends the waiting workers; it is idempotent.
func (w *workers) close() { w.once.Do(func() { close(w.stop) }) }
