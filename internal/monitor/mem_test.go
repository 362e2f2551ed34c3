package monitor

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestMemory measures what an agent with a learned baseline and a session
// cost, and holds them to the package documentation's figures.
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates")
	}
	const n = 2000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	cfg := testConfig(&clock{now: t0})
	cfg.Learn = 20
	m := mustNew(t, cfg)
	before := heap()
	for a := range n {
		name := fmt.Sprint("agent-", a)
		for _, e := range routine(name, "", nil, t0, 80) { // no session: agents only
			m.Observe(e)
		}
	}
	perAgent := float64(heap()-before) / n
	before = heap()
	for s := range n {
		m.Observe(Event{Time: t0.Add(time.Hour), Agent: "agent-0", Session: fmt.Sprint("session-", s), Name: "db.query"})
	}
	perSession := float64(heap()-before) / n
	t.Logf("%.0f bytes per learned agent, %.0f bytes per session", perAgent, perSession)
	if st := m.Snapshot(); !st.Agents[0].Baseline.Learned {
		t.Fatal("agents did not learn")
	}
	if perAgent > 2048 || perSession > 200 {
		t.Errorf("%.0f bytes per agent (want ≤ 2 KiB), %.0f per session (want ≤ 200)", perAgent, perSession)
	}
	runtime.KeepAlive(m)
}
