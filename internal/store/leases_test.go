package store

import (
	"sync"
	"testing"
	"time"
)

// testLeases: leases taken at once on two stores never together exceed
// the budget; what is returned unspent can be leased again; a lease
// stops counting a window after it expires.
func testLeases(t *testing.T, b backend) {
	a, reopen := b.open(t)
	other := reopen()
	ctx := t.Context()
	req := func(now time.Time, want, need float64) LeaseRequest {
		return LeaseRequest{Limit: "schema-changes", Scope: "group", Key: "swarm", Node: "n", Max: 40, Window: time.Hour,
			Want: want, Need: need, TTL: time.Minute, Now: now}
	}
	var mu sync.Mutex
	var total float64
	var leases []Lease
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			s := a
			if i%2 == 1 {
				s = other
			}
			for {
				l, err := s.TakeLease(ctx, req(t0, 4, 1))
				if err != nil {
					t.Error(err)
					return
				}
				if l.Amount == 0 {
					if l.Used != 40 || l.RetryAfter != time.Minute+time.Hour {
						t.Errorf("refusal: used %g, retry after %s", l.Used, l.RetryAfter)
					}
					return
				}
				if l.Amount < 1 || l.Amount > 4 {
					t.Errorf("lease of %g", l.Amount)
				}
				mu.Lock()
				total += l.Amount
				leases = append(leases, l)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if total != 40 {
		t.Fatalf("leases total %g of a budget of 40", total)
	}
	// Return one lease with one unit spent: the rest can be leased again.
	l := leases[0]
	mustNil(t, "return", a.ReturnLease(ctx, l.ID, 1))
	again, err := other.TakeLease(ctx, req(t0.Add(time.Second), l.Amount, 1))
	mustNil(t, "take again", err)
	if again.Amount == 0 || again.Amount > l.Amount-1 {
		t.Fatalf("after returning %g unspent: lease of %g", l.Amount-1, again.Amount)
	}
	mustNil(t, "return never raises", a.ReturnLease(ctx, again.ID, 1000))
	// A window after the leases expired, the whole budget is there.
	later, err := a.TakeLease(ctx, req(t0.Add(time.Hour+2*time.Minute), 100, 1))
	mustNil(t, "later", err)
	if later.Amount != 20 { // half of what is left, however much is wanted
		t.Fatalf("a window after expiry: lease of %g", later.Amount)
	}
	if _, err := a.TakeLease(ctx, LeaseRequest{Limit: "x", Scope: "group", Key: "k", Max: 1, Window: time.Hour, Want: 1, Need: 0, TTL: time.Second, Now: t0}); err == nil {
		t.Fatal("a lease of nothing was granted")
	}
}

func TestSQLiteLeases(t *testing.T) { testLeases(t, sqliteBackend()) }

func TestPostgresLeases(t *testing.T) { testLeases(t, postgresBackend()) }

// TestPostgresPruneShared: leases that no longer count and the labels of
// sessions ended long enough ago are pruned; the rest stay.
func TestPostgresPruneShared(t *testing.T) {
	s := openPostgres(t, newPostgresSchema(t))
	ctx := t.Context()
	req := LeaseRequest{Limit: "l", Scope: "group", Key: "k", Node: "n", Max: 10, Window: time.Hour, Want: 2, Need: 1, TTL: time.Minute, Now: t0}
	_, err := s.TakeLease(ctx, req)
	mustNil(t, "lease", err)
	if n, err := s.PruneLeases(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("pruned a counting lease: %d %v", n, err)
	}
	if n, err := s.PruneLeases(ctx, t0.Add(time.Hour+time.Minute)); err != nil || n != 1 {
		t.Fatalf("prune leases: %d %v", n, err)
	}
	mustNil(t, "principal", s.CreatePrincipal(ctx, Principal{Name: "alice", Kind: KindSponsor}))
	mustNil(t, "agent", s.CreateAgent(ctx, Agent{Name: "bot", Sponsor: "alice"}))
	for _, id := range []string{"old", "live"} {
		mustNil(t, "session", s.CreateSession(ctx, Session{ID: id, Agent: "bot", Created: t0, Expires: t0.Add(24 * time.Hour)}))
		mustNil(t, "labels", s.AddSessionLabels(ctx, id, "untrusted"))
	}
	_, err = s.EndSession(ctx, "old", "done", t0.Add(time.Minute))
	mustNil(t, "end", err)
	if n, err := s.PruneSessionLabels(ctx, t0.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("prune labels: %d %v", n, err)
	}
	if l, _ := s.SessionLabels(ctx, "live"); len(l) != 1 {
		t.Fatalf("the live session's labels: %v", l)
	}
	mustNil(t, "labels", s.AddSessionLabels(ctx, "live", "private"))
	active, err := s.ActiveSessionLabels(ctx)
	mustNil(t, "active labels", err)
	if len(active) != 1 || len(active["live"]) != 2 || active["live"][0] != "private" {
		t.Fatalf("active sessions' labels: %v", active)
	}
}
