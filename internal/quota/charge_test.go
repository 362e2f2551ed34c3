package quota

import (
	"testing"
	"time"
)

// TestChargesRebuildUsage: the charges of reservations, applied to a fresh
// limiter (a restarted node), give it the same usage, and refunding
// recorded charges takes back exactly them.
func TestChargesRebuildUsage(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	limits := []Limit{
		{ID: "calls", Scope: ScopeGroup, Window: time.Hour, Max: 10},
		{ID: "rows", Scope: ScopeAgent, Window: time.Hour, Max: 1000, Cost: "rows"},
	}
	a, err := New(Config{Limits: limits, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	var all [][]Charge
	for i := range 7 {
		now = now.Add(time.Minute)
		r, ex, err := a.Reserve(Call{Session: "s", Agent: "ag", Groups: []string{"g"}, Tool: "t", Costs: map[string]float64{"rows": float64(10 * (i + 1))}})
		if err != nil || len(ex) > 0 {
			t.Fatal(err, ex)
		}
		all = append(all, r.Charges())
	}
	b, _ := New(Config{Limits: limits, Now: clock})
	for _, cs := range all {
		if _, err := b.ApplyCharges(cs); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []struct {
		scope    Scope
		key, lim string
		want     float64
	}{{ScopeGroup, "g", "calls", 7}, {ScopeAgent, "ag", "rows", 280}} {
		if got, want := b.Usage(k.scope, k.key, k.lim), a.Usage(k.scope, k.key, k.lim); got != want || got != k.want {
			t.Fatalf("%s: rebuilt %v, original %v, want %v", k.lim, got, want, k.want)
		}
	}
	// The third call is recorded as refunded.
	if err := b.RefundCharges(all[2]); err != nil {
		t.Fatal(err)
	}
	if got := b.Usage(ScopeGroup, "g", "calls"); got != 6 {
		t.Fatalf("after a refund, %v calls", got)
	}
	if got := b.Usage(ScopeAgent, "ag", "rows"); got != 250 {
		t.Fatalf("after a refund, %v rows", got)
	}
	// The budget holds on the rebuilt limiter: 4 more calls fit, not 5.
	for i := range 5 {
		_, ex, err := b.Reserve(Call{Session: "s", Agent: "ag", Groups: []string{"g"}, Tool: "t", Costs: map[string]float64{"rows": 1}})
		if err != nil {
			t.Fatal(err)
		}
		if (len(ex) > 0) != (i == 4) {
			t.Fatalf("call %d after rebuilding: exceeded %v", i, ex)
		}
	}
	// Charges of limits no longer configured are skipped; malformed ones refused.
	c, _ := New(Config{Limits: limits[:1], Now: clock})
	if _, err := c.ApplyCharges(all[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyCharges([]Charge{{Limit: "calls", Scope: ScopeGroup, Key: "g", Amount: -1, Time: now}}); err == nil {
		t.Fatal("a negative charge was applied")
	}
	// Usage charged an hour ago has left the window.
	now = now.Add(2 * time.Hour)
	if got := b.Usage(ScopeGroup, "g", "calls"); got != 0 {
		t.Fatalf("two hours later, %v calls", got)
	}
}
