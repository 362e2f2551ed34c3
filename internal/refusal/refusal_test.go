package refusal

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
)

// openLog opens a real audit log in a temporary directory.
func openLog(t testing.TB) *audit.Log {
	t.Helper()
	skey, vkey, err := audit.NewNoteKey("test.ward/audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(audit.Config{Dir: t.TempDir(), Origin: "test.ward/audit", Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
}

// tally reads every event of l and returns the refusal events, the
// summaries and the total number of refusals they account for.
func tally(t testing.TB, l *audit.Log) (solo, summaries []audit.Event, total int) {
	t.Helper()
	evs, err := l.Read(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		switch e.Type {
		case TypeRefusal:
			solo = append(solo, e)
			total++
		case TypeSummary:
			var d summaryData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Count <= 0 {
				t.Fatalf("summary with count %d: %s", d.Count, e.Data)
			}
			n := d.Other
			for _, s := range d.Refusals {
				n += s.Count
			}
			if n != d.Count {
				t.Fatalf("summary samples add up to %d, count is %d: %s", n, d.Count, e.Data)
			}
			summaries = append(summaries, e)
			total += d.Count
		default:
			t.Fatalf("unexpected event %s", e.Type)
		}
	}
	return solo, summaries, total
}

func TestFloodFromOneSource(t *testing.T) {
	l, clk := openLog(t), newClock()
	rc, err := New(Config{Audit: l, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 100_000
	for i := range n {
		r := Refusal{Kind: "authentication", Status: 401, Method: "POST", Path: "/v1/guard/check", Source: "192.0.2.7",
			Reason: "unauthenticated: DPoP proof: proof replayed"}
		if i%2 == 1 {
			r.Reason = "unauthenticated: grant: expired"
		}
		if err := rc.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Size(); got != DefaultPerKey {
		t.Fatalf("%d events during the flood, want %d recorded one by one", got, DefaultPerKey)
	}
	clk.Add(DefaultWindow)
	if err := rc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	solo, sums, total := tally(t, l)
	if len(solo) != DefaultPerKey || len(sums) != 1 || total != n {
		t.Fatalf("%d refusals and %d summaries accounting for %d refusals; want %d, 1, %d", len(solo), len(sums), total, DefaultPerKey, n)
	}
	var d summaryData
	json.Unmarshal(sums[0].Data, &d)
	if d.Kind != "authentication" || d.Source != "192.0.2.7" || d.Recorded != DefaultPerKey || len(d.Refusals) != 2 ||
		!d.WindowEnd.Equal(d.WindowStart.Add(DefaultWindow)) {
		t.Fatalf("summary = %s", sums[0].Data)
	}
	// Nothing more to flush.
	clk.Add(10 * DefaultWindow)
	if err := rc.Flush(ctx); err != nil || l.Size() != uint64(DefaultPerKey+1) {
		t.Fatalf("second flush: %v, size %d", err, l.Size())
	}
}

func TestFloodFromManySources(t *testing.T) {
	l, clk := openLog(t), newClock()
	rc, _ := New(Config{Audit: l, Now: clk.Now})
	ctx := context.Background()
	const n = 100_000
	for i := range n {
		// Every refusal from another source and principal: the worst case
		// for the number of keys.
		r := Refusal{Kind: "transport", Status: 400, Method: "POST", Path: "/mcp", Reason: "parse error",
			Source: fmt.Sprintf("2001:db8::%x", i), Principal: fmt.Sprintf("spiffe://x/agent/a/session/%d", i), Basis: "unverified grant"}
		if err := rc.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
		if i%10_000 == 0 {
			rc.mu.Lock()
			keys := len(rc.keys)
			rc.mu.Unlock()
			if keys > DefaultMaxKeys {
				t.Fatalf("%d keys held, more than %d", keys, DefaultMaxKeys)
			}
		}
	}
	if err := rc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	solo, sums, total := tally(t, l)
	if len(solo) != DefaultMaxIndividual {
		t.Fatalf("%d refusals recorded one by one, want %d", len(solo), DefaultMaxIndividual)
	}
	if bound := DefaultMaxIndividual + DefaultMaxKeys + 1; int(l.Size()) > bound {
		t.Fatalf("%d events for one window, more than %d", l.Size(), bound)
	}
	if total != n {
		t.Fatalf("events account for %d refusals, want %d", total, n)
	}
	overflow := 0
	for _, e := range sums {
		var d summaryData
		json.Unmarshal(e.Data, &d)
		if d.Overflow {
			overflow++
			if d.Count != n-DefaultMaxKeys {
				t.Fatalf("overflow counts %d, want %d", d.Count, n-DefaultMaxKeys)
			}
		}
	}
	if overflow != 1 {
		t.Fatalf("%d overflow summaries, want 1", overflow)
	}
	t.Logf("%d refusals from %d sources: %d events (%d one by one, %d summaries)", n, n, l.Size(), len(solo), len(sums))
}

func TestFloodOverManyWindows(t *testing.T) {
	l, clk := openLog(t), newClock()
	rc, _ := New(Config{Audit: l, Now: clk.Now, Window: time.Second, PerKey: 2, MaxIndividual: 3, MaxKeys: 4})
	ctx := context.Background()
	const n, windows = 100_000, 10
	for i := range n {
		if i > 0 && i%(n/windows) == 0 {
			clk.Add(time.Second)
		}
		r := Refusal{Kind: "authentication", Status: 401, Method: "GET", Path: "/v1/agents", Source: fmt.Sprintf("192.0.2.%d", i%7)}
		if err := rc.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Second)
	if err := rc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, total := tally(t, l)
	if total != n {
		t.Fatalf("events account for %d refusals, want %d", total, n)
	}
	if bound := windows * (3 + 4 + 1); int(l.Size()) > bound {
		t.Fatalf("%d events over %d windows, more than %d", l.Size(), windows, bound)
	}
}

func TestClaimedIsNotTheActor(t *testing.T) {
	l, clk := openLog(t), newClock()
	rc, _ := New(Config{Audit: l, Now: clk.Now})
	ctx := context.Background()
	rc.Record(ctx, Refusal{Kind: "authentication", Status: 401, Method: "POST", Path: "/mcp", Source: "192.0.2.1",
		Principal: "spiffe://td/agent/a/session/s1", Basis: "unverified grant", Session: "s1", Agent: "a"})
	rc.Record(ctx, Refusal{Kind: "forbidden", Status: 403, Method: "POST", Path: "/mcp", Source: "192.0.2.1",
		Principal: "spiffe://td/agent/a/session/s2", Proven: true, Session: "s2", Agent: "a", Sponsor: "acme"})
	evs, _ := l.Read(0, l.Size())
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	claimed, proven := evs[0], evs[1]
	if claimed.Actor != "" || claimed.Session != "" || claimed.Agent != "" ||
		!strings.Contains(string(claimed.Data), `"claimed":{"principal":"spiffe://td/agent/a/session/s1","basis":"unverified grant"}`) {
		t.Fatalf("claimed refusal = %+v %s", claimed, claimed.Data)
	}
	if proven.Actor != "spiffe://td/agent/a/session/s2" || proven.Session != "s2" || proven.Sponsor != "acme" ||
		strings.Contains(string(proven.Data), "claimed") {
		t.Fatalf("proven refusal = %+v %s", proven, proven.Data)
	}
}

func TestBoundedText(t *testing.T) {
	l := openLog(t)
	rc, _ := New(Config{Audit: l})
	long := strings.Repeat("é", 5000) + "\xff"
	if err := rc.Record(context.Background(), Refusal{Kind: long, Reason: long, Path: long, Principal: long, Source: long, Method: long}); err != nil {
		t.Fatal(err)
	}
	evs, _ := l.Read(0, 1)
	var d refusalData
	if err := json.Unmarshal(evs[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"kind": d.Kind, "reason": d.Reason, "path": d.Path, "source": d.Source, "principal": d.Claimed.Principal} {
		if len(s) > maxReason+len("…") || !utf8.ValidString(s) || !strings.HasSuffix(s, "…") {
			t.Errorf("%s: %d bytes, valid %v", name, len(s), utf8.ValidString(s))
		}
	}
}

func TestCloseFlushesTheWindow(t *testing.T) {
	l, clk := openLog(t), newClock()
	rc, _ := New(Config{Audit: l, Now: clk.Now, PerKey: 1})
	ctx := context.Background()
	for range 3 {
		rc.Record(ctx, Refusal{Kind: "request", Status: 400, Source: "192.0.2.1"})
	}
	if l.Size() != 1 {
		t.Fatalf("size %d before close", l.Size())
	}
	if err := rc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, sums, total := tally(t, l)
	if len(sums) != 1 || total != 3 {
		t.Fatalf("%d summaries, %d refusals", len(sums), total)
	}
}

// TestConcurrentCountsAddUp records from many goroutines across window
// changes: nothing is lost or counted twice.
func TestConcurrentCountsAddUp(t *testing.T) {
	l, clk := openLog(t), newClock()
	rc, _ := New(Config{Audit: l, Now: clk.Now, PerKey: 2, MaxIndividual: 10, MaxKeys: 8})
	ctx := context.Background()
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if w == 0 && i%500 == 0 {
					clk.Add(DefaultWindow)
				}
				rc.Record(ctx, Refusal{Kind: "transport", Status: 400, Source: fmt.Sprintf("192.0.2.%d", (w*each+i)%13)})
			}
		})
	}
	wg.Wait()
	if err := rc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, total := tally(t, l); total != workers*each {
		t.Fatalf("events account for %d refusals, want %d", total, workers*each)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("recorder without an audit log accepted")
	}
}
