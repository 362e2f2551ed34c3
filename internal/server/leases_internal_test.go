package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/store"
)

// leaseStore opens a fresh schema of the PostgreSQL test server for tb,
// dropped at the end; it skips tb if the server is unreachable.
func leaseStore(tb testing.TB) *store.Store {
	tb.Helper()
	dsn := os.Getenv("WARD_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	var b [6]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("ward_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.OpenPostgres(ctx, store.Config{DSN: dsn, Schema: schema, Node: "bench"})
	if err != nil {
		tb.Skipf("PostgreSQL test server unavailable: %v", err)
	}
	tb.Cleanup(func() {
		st.Close()
		if db, err := sql.Open("pgx", dsn); err == nil {
			db.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`)
			db.Close()
		}
	})
	return st
}

// BenchmarkReserveShared: the cost per call of a group budget kept exact
// across nodes by leases (a lease is a tenth of the limit, so one call in
// a few hundred here goes to PostgreSQL), against the same limiter alone
// and against asking PostgreSQL on every call (a lease of exactly the
// call's cost).
//
//	go test -run '^$' -bench BenchmarkReserveShared -benchmem ./internal/server
func BenchmarkReserveShared(b *testing.B) {
	limits := []quota.Limit{{ID: "budget", Scope: quota.ScopeGroup, Window: time.Hour, Max: 1e7}}
	call := quota.Call{Session: "s", Agent: "a", Groups: []string{"swarm"}, Tool: "db.x"}
	run := func(b *testing.B, ledger quota.Ledger) {
		l, err := quota.New(quota.Config{Limits: limits, Ledger: ledger})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, exceeded, err := l.Reserve(call); err != nil || exceeded != nil {
				b.Fatal(exceeded, err)
			}
		}
	}
	b.Run("local", func(b *testing.B) { run(b, nil) })
	b.Run("leased", func(b *testing.B) { run(b, newLeaseLedger(leaseStore(b), "bench")) })
	b.Run("per-call", func(b *testing.B) {
		st := leaseStore(b)
		run(b, perCallLedger{st})
	})
}

// perCallLedger takes every call's cost from PostgreSQL: the baseline
// leases avoid.
type perCallLedger struct{ st *store.Store }

func (p perCallLedger) Take(lim quota.Limit, key string, amount float64, now time.Time) (bool, time.Duration, error) {
	l, err := p.st.TakeLease(context.Background(), store.LeaseRequest{Limit: lim.ID, Scope: string(lim.Scope), Key: key, Node: "bench",
		Max: lim.Max, Window: lim.Window, Want: amount, Need: amount, TTL: time.Second, Now: now})
	return l.Amount > 0, 0, err
}

func (perCallLedger) Give(quota.Limit, string, float64, time.Time) {}

// TestLeasedBudgetExact: three nodes' limiters, each with its own store
// connection and lease ledger on one schema, and 1,000 agents calling at
// once, three calls each, against one group budget of 1,000: exactly
// 1,000 calls are admitted.
func TestLeasedBudgetExact(t *testing.T) {
	first := leaseStore(t)
	const budget, agents, calls = 1000, 1000, 3
	limits := []quota.Limit{{ID: "budget", Scope: quota.ScopeGroup, Window: time.Hour, Max: budget}}
	var nodes []*quota.Limiter
	for i := range 3 {
		ledger := newLeaseLedger(first, fmt.Sprint("node-", i))
		l, err := quota.New(quota.Config{Limits: limits, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, l)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for a := range agents {
		wg.Go(func() {
			for range calls {
				_, exceeded, err := nodes[a%3].Reserve(quota.Call{Session: fmt.Sprint("s", a), Agent: fmt.Sprint("a", a), Groups: []string{"swarm"}, Tool: "db.x"})
				if err != nil {
					t.Error(err)
					return
				}
				if exceeded == nil {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if admitted.Load() != budget {
		t.Fatalf("admitted %d calls of a budget of %d over three nodes", admitted.Load(), budget)
	}
}
