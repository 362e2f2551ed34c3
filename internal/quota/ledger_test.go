package quota

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixedLedger has total units per (limit, key), shared by every limiter
// given it.
type fixedLedger struct {
	mu    sync.Mutex
	left  map[string]float64
	total float64
	fail  bool
}

func (f *fixedLedger) Take(lim Limit, key string, amount float64, _ time.Time) (bool, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return false, 0, errors.New("database unreachable")
	}
	k := lim.ID + "/" + key
	if _, ok := f.left[k]; !ok {
		f.left[k] = f.total
	}
	if f.left[k] < amount {
		return false, 0, nil
	}
	f.left[k] -= amount
	return true, 0, nil
}

func (f *fixedLedger) Give(lim Limit, key string, amount float64, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[lim.ID+"/"+key] += amount
}

// TestLedger: three limiters sharing a ledger admit exactly what it
// holds, however many calls race; a call refused by one of its limits
// takes nothing from the ledger for the others; a cancelled call gives
// its cost back; a ledger error refuses.
func TestLedger(t *testing.T) {
	ledger := &fixedLedger{left: map[string]float64{}, total: 25}
	limits := []Limit{
		{ID: "group-budget", Scope: ScopeGroup, Window: time.Hour, Max: 1000},
		{ID: "per-agent", Scope: ScopeAgent, Window: time.Hour, Max: 1000},
	}
	var nodes []*Limiter
	for range 3 {
		l, err := New(Config{Limits: limits, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, l)
	}
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			_, exceeded, err := nodes[i%3].Reserve(Call{Session: "s", Agent: "a", Groups: []string{"swarm"}, Tool: "db.x"})
			if err != nil {
				t.Error(err)
			}
			if exceeded == nil {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 25 {
		t.Fatalf("admitted %d calls, the ledger held 25", admitted.Load())
	}
	if ledger.left["per-agent/a"] != 0 || ledger.left["group-budget/swarm"] != 0 {
		t.Fatalf("ledger after: %v", ledger.left)
	}
	// An agent with its own ledger share left but a group used up takes
	// nothing for the agent.
	_, exceeded, _ := nodes[0].Reserve(Call{Session: "s2", Agent: "b", Groups: []string{"swarm"}, Tool: "db.x"})
	if len(exceeded) != 1 || exceeded[0].Limit.ID != "group-budget" {
		t.Fatalf("exceeded: %+v", exceeded)
	}
	if left, ok := ledger.left["per-agent/b"]; ok && left != 25 {
		t.Fatalf("the refused call kept %g of agent b's share", 25-left)
	}
	// Cancel gives back.
	ledger.Give(Limit{ID: "group-budget"}, "swarm", 1, time.Now())
	r, exceeded, err := nodes[1].Reserve(Call{Session: "s3", Agent: "b", Groups: []string{"swarm"}, Tool: "db.x"})
	if err != nil || exceeded != nil {
		t.Fatalf("with one unit given back: %v %v", exceeded, err)
	}
	r.Cancel()
	if ledger.left["group-budget/swarm"] != 1 || ledger.left["per-agent/b"] != 25 {
		t.Fatalf("after cancel: %v", ledger.left)
	}
	ledger.fail = true
	if _, _, err := nodes[2].Reserve(Call{Session: "s4", Agent: "c", Groups: []string{"swarm"}, Tool: "db.x"}); err == nil {
		t.Fatal("a ledger error admitted the call")
	}
}
