package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder collects OnChange calls.
type recorder struct {
	mu  sync.Mutex
	got []Request
}

func (r *recorder) add(x Request) { r.mu.Lock(); defer r.mu.Unlock(); r.got = append(r.got, x) }
func (r *recorder) all() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.got...)
}

type fixture struct {
	q     *Queue
	clock *fakeClock
	rec   *recorder
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	f := &fixture{clock: &fakeClock{t: t0}, rec: &recorder{}}
	cfg.Now = f.clock.Now
	cfg.OnChange = f.rec.add
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.q = q
	return f
}

var (
	alice   = Voter{Name: "alice", Groups: []string{"sre"}}
	bob     = Voter{Name: "bob", Groups: []string{"security", "eng"}}
	carol   = Voter{Name: "carol", Groups: []string{"sre"}}
	mallory = Voter{Name: "mallory", Groups: []string{"sales"}}
	dana    = Voter{Name: "dana", Groups: []string{"sre"}, Sponsors: []string{"dana@example.org"}}
)

func request(session, args string, quorum int) Request {
	return Request{
		Session: session, Agent: "report", Sponsor: "dana@example.org",
		SPIFFEID:  "spiffe://example.org/agent/report/session/" + session,
		Objective: "weekly report", Server: "db", Method: "tools/call", Name: "db.export",
		Arguments: json.RawMessage(args), Reasons: []string{"destination from untrusted content"},
		Policies:    []string{"export-needs-approval"},
		Requirement: Requirement{Quorum: quorum, Groups: []string{"sre", "security"}},
	}
}

func submit(t testing.TB, q *Queue, r Request) Request {
	t.Helper()
	got, err := q.Submit(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSubmit(t *testing.T) {
	f := newFixture(t, Config{})
	in := request("s1", `{"to":"x@example.org", "rows":10}`, 0)
	in.Votes = []Vote{{Voter: "forged", Approve: true}}
	in.State = StateApproved
	r := submit(t, f.q, in)
	want := in
	want.ID = r.ID
	want.CallHash = mustHash(t, "tools/call", "db.export", `{"rows":10,"to":"x@example.org"}`)
	want.State = StatePending
	want.Votes = nil
	want.Created, want.Expires = t0, t0.Add(DefaultTimeout)
	want.Requirement.Quorum = 1
	want.Requirement.Timeout = DefaultTimeout
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("submitted request (-want +got):\n%s", diff)
	}
	if len(r.ID) != 26 {
		t.Errorf("id %q: want 26 base32 characters", r.ID)
	}
	got, err := f.q.Get(context.Background(), r.ID)
	if err != nil || !cmp.Equal(got, r) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, r)
	}
}

func TestSubmitInvalid(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		name string
		mod  func(*Request)
	}{
		{"empty session", func(r *Request) { r.Session = "" }},
		{"empty method", func(r *Request) { r.Method = "" }},
		{"no groups", func(r *Request) { r.Requirement.Groups = nil }},
		{"empty group", func(r *Request) { r.Requirement.Groups = []string{"sre", ""} }},
		{"negative quorum", func(r *Request) { r.Requirement.Quorum = -1 }},
		{"negative timeout", func(r *Request) { r.Requirement.Timeout = -time.Second }},
		{"bad json", func(r *Request) { r.Arguments = json.RawMessage(`{"a":`) }},
		{"duplicate key", func(r *Request) { r.Arguments = json.RawMessage(`{"a":1,"a":2}`) }},
		{"call hash mismatch", func(r *Request) { r.CallHash = "00" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request("s1", `{"a":1}`, 1)
			tc.mod(&r)
			if _, err := f.q.Submit(context.Background(), r); !errors.Is(err, ErrInvalid) {
				t.Errorf("Submit error %v, want ErrInvalid", err)
			}
		})
	}
	if n := len(f.rec.all()); n != 0 {
		t.Errorf("%d changes after invalid submits", n)
	}
}

func TestQuorumTwoOfThree(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	r := submit(t, f.q, request("s1", `{}`, 2))

	r1, err := f.q.Vote(ctx, r.ID, alice, true, "looks fine")
	if err != nil || r1.State != StatePending || len(r1.Votes) != 1 {
		t.Fatalf("first approval: %+v, %v", r1, err)
	}
	f.clock.Advance(time.Minute)
	r2, err := f.q.Vote(ctx, r.ID, bob, true, "ok")
	if err != nil || r2.State != StateApproved {
		t.Fatalf("second approval: state %q, %v", r2.State, err)
	}
	want := []Vote{
		{Voter: "alice", Groups: []string{"sre"}, Approve: true, Reason: "looks fine", Time: t0, Kind: KindHuman},
		{Voter: "bob", Groups: []string{"security"}, Approve: true, Reason: "ok", Time: t0.Add(time.Minute), Kind: KindHuman},
	}
	if diff := cmp.Diff(want, r2.Votes); diff != "" {
		t.Errorf("votes (-want +got):\n%s", diff)
	}
	if wantExp := t0.Add(time.Minute + DefaultTimeout); !r2.Expires.Equal(wantExp) {
		t.Errorf("approval expires %v, want %v (approval time + timeout)", r2.Expires, wantExp)
	}
	if _, err := f.q.Vote(ctx, r.ID, carol, true, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("third vote after quorum: %v, want ErrClosed", err)
	}
}

func TestVeto(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	r := submit(t, f.q, request("s1", `{}`, 2))
	if _, err := f.q.Vote(ctx, r.ID, alice, true, ""); err != nil {
		t.Fatal(err)
	}
	got, err := f.q.Vote(ctx, r.ID, bob, false, "exfiltration")
	if err != nil || got.State != StateDenied {
		t.Fatalf("deny: state %q, %v", got.State, err)
	}
	if _, err := f.q.Vote(ctx, r.ID, carol, true, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("approval after veto: %v, want ErrClosed", err)
	}
	if _, ok, err := f.q.Redeem(ctx, "s1", "tools/call", "db.export", json.RawMessage(`{}`)); ok || err != nil {
		t.Errorf("denied request redeemed: %v %v", ok, err)
	}
}

// TestVoteErrors checks each refusal wraps its sentinel and changes nothing.
func TestVoteErrors(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	r := submit(t, f.q, request("s1", `{}`, 2))
	if _, err := f.q.Vote(ctx, r.ID, alice, true, ""); err != nil {
		t.Fatal(err)
	}
	closed := submit(t, f.q, request("s2", `{}`, 1))
	if _, err := f.q.Vote(ctx, closed.ID, bob, false, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		id      string
		v       Voter
		approve bool
		want    error
	}{
		{"unknown id", "nope", bob, true, ErrNotFound},
		{"closed", closed.ID, carol, true, ErrClosed},
		{"non-member", r.ID, mallory, true, ErrNotEligible},
		{"non-member deny", r.ID, mallory, false, ErrNotEligible},
		{"no name", r.ID, Voter{Groups: []string{"sre"}}, true, ErrNotEligible},
		{"unknown kind", r.ID, Voter{Name: "x", Groups: []string{"sre"}, Kind: "robot"}, true, ErrNotEligible},
		{"duplicate", r.ID, alice, true, ErrDuplicateVote},
		{"duplicate changing mind", r.ID, alice, false, ErrDuplicateVote},
		{"sponsor", r.ID, dana, true, ErrSelfApproval},
		{"sponsor by name", r.ID, Voter{Name: "dana@example.org", Groups: []string{"sre"}}, true, ErrSelfApproval},
		{"agent itself", r.ID, Voter{Name: "report", Groups: []string{"sre"}, Kind: KindAgent}, true, ErrSelfApproval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.rec.all()
			stored, _ := f.q.Get(ctx, tc.id)
			_, err := f.q.Vote(ctx, tc.id, tc.v, tc.approve, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Vote error %v, want %v", err, tc.want)
			}
			after, _ := f.q.Get(ctx, tc.id)
			if diff := cmp.Diff(stored, after); diff != "" {
				t.Errorf("request changed on error (-before +after):\n%s", diff)
			}
			if n := len(f.rec.all()) - len(before); n != 0 {
				t.Errorf("%d changes reported on error", n)
			}
		})
	}
}

func TestSelfApproval(t *testing.T) {
	ctx := context.Background()
	t.Run("sponsor may veto", func(t *testing.T) {
		f := newFixture(t, Config{})
		r := submit(t, f.q, request("s1", `{}`, 1))
		got, err := f.q.Vote(ctx, r.ID, dana, false, "not what I asked for")
		if err != nil || got.State != StateDenied {
			t.Fatalf("sponsor deny: %q %v", got.State, err)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		f := newFixture(t, Config{})
		in := request("s1", `{}`, 1)
		in.Requirement.AllowSponsorSelfApproval = true
		r := submit(t, f.q, in)
		agent := Voter{Name: "report", Groups: []string{"sre"}, Kind: KindAgent}
		if _, err := f.q.Vote(ctx, r.ID, agent, true, ""); !errors.Is(err, ErrSelfApproval) {
			t.Errorf("agent approving itself with sponsor self-approval allowed: %v", err)
		}
		got, err := f.q.Vote(ctx, r.ID, dana, true, "")
		if err != nil || got.State != StateApproved {
			t.Fatalf("allowed sponsor approval: %q %v", got.State, err)
		}
	})
}

func TestTimeoutExpires(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{DefaultTimeout: time.Minute})
	r := submit(t, f.q, request("s1", `{}`, 1))

	type result struct {
		r   Request
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := f.q.Wait(ctx, r.ID)
		done <- result{got, err}
	}()
	waitForWaiter(f.q, r.ID)

	f.clock.Advance(59 * time.Second)
	if exp, err := f.q.Expire(ctx); err != nil || len(exp) != 0 {
		t.Fatalf("Expire before timeout: %v %v", exp, err)
	}
	f.clock.Advance(time.Second)
	exp, err := f.q.Expire(ctx)
	if err != nil || len(exp) != 1 || exp[0].ID != r.ID || exp[0].State != StateExpired {
		t.Fatalf("Expire at timeout: %+v %v", exp, err)
	}
	res := <-done
	if res.err != nil || res.r.State != StateExpired {
		t.Errorf("Wait = %q, %v; want expired", res.r.State, res.err)
	}
	if _, err := f.q.Vote(ctx, r.ID, alice, true, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("vote on expired: %v, want ErrClosed", err)
	}
}

func TestLazyExpiry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{DefaultTimeout: time.Minute})
	a := submit(t, f.q, request("s1", `{"n":1}`, 1))
	b := submit(t, f.q, request("s1", `{"n":2}`, 1))
	f.clock.Advance(time.Minute)
	if got, err := f.q.Get(ctx, a.ID); err != nil || got.State != StateExpired {
		t.Errorf("Get after timeout: %q %v", got.State, err)
	}
	if got, err := f.q.List(ctx, Filter{State: StatePending}); err != nil || len(got) != 0 {
		t.Errorf("List pending after timeout: %d requests, %v", len(got), err)
	}
	if got, err := f.q.Wait(ctx, b.ID); err != nil || got.State != StateExpired {
		t.Errorf("Wait after timeout: %q %v", got.State, err)
	}
}

// waitForWaiter returns once a Wait on id is registered.
func waitForWaiter(q *Queue, id string) {
	for {
		q.mu.Lock()
		ok := q.waiters[id] != nil
		q.mu.Unlock()
		if ok {
			return
		}
		runtime.Gosched()
	}
}

func TestWait(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	r := submit(t, f.q, request("s1", `{}`, 1))
	done := make(chan Request, 1)
	go func() {
		got, err := f.q.Wait(ctx, r.ID)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	waitForWaiter(f.q, r.ID)
	if _, err := f.q.Vote(ctx, r.ID, alice, true, ""); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.State != StateApproved {
		t.Errorf("Wait returned %q, want approved", got.State)
	}

	r2 := submit(t, f.q, request("s2", `{}`, 1))
	cctx, cancel := context.WithCancel(ctx)
	type result struct {
		r   Request
		err error
	}
	res := make(chan result, 1)
	go func() {
		got, err := f.q.Wait(cctx, r2.ID)
		res <- result{got, err}
	}()
	waitForWaiter(f.q, r2.ID)
	cancel()
	x := <-res
	got, err := x.r, x.err
	if !errors.Is(err, context.Canceled) || got.ID != r2.ID || got.State != StatePending {
		t.Errorf("Wait with ended context = %q %q, %v", got.ID, got.State, err)
	}
	if _, err := f.q.Wait(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wait on unknown id: %v", err)
	}
}

func TestRedeem(t *testing.T) {
	ctx := context.Background()
	const args = `{"to":"x@example.org","opts":{"b":[1,2.50,{"y":1,"x":"\u00e9"}],"a":null},"rows":10}`
	redeem := func(q *Queue, session, args string) (Request, bool) {
		t.Helper()
		r, ok, err := q.Redeem(ctx, session, "tools/call", "db.export", json.RawMessage(args))
		if err != nil {
			t.Fatalf("Redeem(%s, %s): %v", session, args, err)
		}
		return r, ok
	}
	approve := func(q *Queue, in Request) Request {
		t.Helper()
		r := submit(t, q, in)
		if _, err := q.Vote(ctx, r.ID, alice, true, ""); err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("binds to arguments", func(t *testing.T) {
		f := newFixture(t, Config{})
		if _, ok := redeem(f.q, "s1", args); ok {
			t.Fatal("redeemed before any approval")
		}
		pending := submit(t, f.q, request("s1", args, 1))
		if _, ok := redeem(f.q, "s1", args); ok {
			t.Fatal("redeemed a pending request")
		}
		if _, err := f.q.Vote(ctx, pending.ID, alice, true, ""); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, session, args string
			ok                  bool
		}{
			{"same", "s1", args, true},
			{"key order and whitespace", "s1", ` { "rows" : 10, "opts":{"a":null,"b":[1,2.50,{"x":"é","y":1}]},"to":"x@example.org"}`, true},
			{"different value", "s1", `{"to":"y@example.org","opts":{"b":[1,2.50,{"y":1,"x":"é"}],"a":null},"rows":10}`, false},
			{"number written differently", "s1", `{"to":"x@example.org","opts":{"b":[1,2.5,{"y":1,"x":"é"}],"a":null},"rows":10}`, false},
			{"extra member", "s1", `{"to":"x@example.org","opts":{"b":[1,2.50,{"y":1,"x":"é"}],"a":null},"rows":10,"all":true}`, false},
			{"array order", "s1", `{"to":"x@example.org","opts":{"b":[2.50,1,{"y":1,"x":"é"}],"a":null},"rows":10}`, false},
			{"other session", "s2", args, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, ok := redeem(f.q, tc.session, tc.args)
				if ok != tc.ok {
					t.Fatalf("redeemed = %v, want %v", ok, tc.ok)
				}
				if ok && (r.ID != pending.ID || r.State != StateApproved) {
					t.Errorf("redeemed %q in state %q", r.ID, r.State)
				}
			})
		}
		if _, _, err := f.q.Redeem(ctx, "", "tools/call", "db.export", json.RawMessage(args)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Redeem without session: %v", err)
		}
		if _, _, err := f.q.Redeem(ctx, "s1", "tools/call", "db.export", json.RawMessage(`{"rows":1,"rows":10}`)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Redeem with duplicate keys: %v", err)
		}
	})

	t.Run("single use", func(t *testing.T) {
		f := newFixture(t, Config{})
		in := request("s1", args, 1)
		in.Requirement.SingleUse = true
		r := approve(f.q, in)
		got, ok := redeem(f.q, "s1", args)
		if !ok || got.ID != r.ID || got.State != StateUsed {
			t.Fatalf("first redeem: %v %q", ok, got.State)
		}
		if _, ok := redeem(f.q, "s1", args); ok {
			t.Error("single-use approval redeemed twice")
		}
	})

	t.Run("reusable until expiry", func(t *testing.T) {
		f := newFixture(t, Config{DefaultTimeout: time.Minute})
		approve(f.q, request("s1", args, 1))
		for i := range 3 {
			if _, ok := redeem(f.q, "s1", args); !ok {
				t.Fatalf("redeem %d failed", i)
			}
		}
		f.clock.Advance(time.Minute)
		if _, ok := redeem(f.q, "s1", args); ok {
			t.Error("expired approval redeemed")
		}
	})
}

func TestSubmitDedupe(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	a := submit(t, f.q, request("s1", `{"a":1,"b":2}`, 1))
	n := len(f.rec.all())
	if b := submit(t, f.q, request("s1", `{"b":2, "a":1}`, 1)); b.ID != a.ID {
		t.Errorf("identical pending request not deduplicated")
	}
	if len(f.rec.all()) != n {
		t.Errorf("dedupe reported a change")
	}
	for name, r := range map[string]Request{
		"other session":     request("s2", `{"a":1,"b":2}`, 1),
		"other args":        request("s1", `{"a":1,"b":3}`, 1),
		"other requirement": request("s1", `{"a":1,"b":2}`, 2),
	} {
		if got := submit(t, f.q, r); got.ID == a.ID {
			t.Errorf("%s: deduplicated into %s", name, a.ID)
		}
	}
	if _, err := f.q.Vote(ctx, a.ID, alice, false, ""); err != nil {
		t.Fatal(err)
	}
	if c := submit(t, f.q, request("s1", `{"a":1,"b":2}`, 1)); c.ID == a.ID {
		t.Errorf("deduplicated into a denied request")
	}
}

// TestMaxPendingPerSessionAndSponsor: one session, or one sponsor's
// sessions, cannot fill the queue and have every other escalation denied.
func TestMaxPendingPerSessionAndSponsor(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{MaxPending: 100, MaxPendingPerSession: 3, MaxPendingPerSponsor: 5, DefaultTimeout: time.Minute})
	for i := range 3 {
		submit(t, f.q, request("s1", fmt.Sprint(i), 1))
	}
	if _, err := f.q.Submit(ctx, request("s1", `99`, 1)); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "session s1") {
		t.Fatalf("a fourth request of one session: %v", err)
	}
	other := request("s2", `1`, 1)
	submit(t, f.q, other)
	third := request("s3", `1`, 1)
	submit(t, f.q, third) // 5 pending for the sponsor
	sibling := request("s4", `1`, 1)
	if _, err := f.q.Submit(ctx, sibling); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "sponsor") {
		t.Fatalf("a sixth request of one sponsor: %v", err)
	}
	stranger := request("s5", `1`, 1)
	stranger.Sponsor = "globex"
	submit(t, f.q, stranger)
	// Counts follow decisions: a decided request frees its slot.
	first, _ := f.q.List(ctx, Filter{Session: "s1", State: StatePending})
	if _, err := f.q.Vote(ctx, first[0].ID, alice, false, ""); err != nil {
		t.Fatal(err)
	}
	submit(t, f.q, request("s1", `100`, 1))
}

func TestMaxPending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{MaxPending: 2, MaxPendingPerSession: 10, MaxPendingPerSponsor: 10, DefaultTimeout: time.Minute})
	a := submit(t, f.q, request("s1", `1`, 1))
	submit(t, f.q, request("s1", `2`, 1))
	if _, err := f.q.Submit(ctx, request("s1", `3`, 1)); !errors.Is(err, ErrFull) {
		t.Fatalf("third submit: %v, want ErrFull", err)
	}
	// A duplicate of a pending request is not a new one.
	if _, err := f.q.Submit(ctx, request("s1", `2`, 1)); err != nil {
		t.Errorf("dedupe at capacity: %v", err)
	}
	if _, err := f.q.Vote(ctx, a.ID, alice, true, ""); err != nil {
		t.Fatal(err)
	}
	c := submit(t, f.q, request("s1", `3`, 1))
	if _, err := f.q.Submit(ctx, request("s1", `4`, 1)); !errors.Is(err, ErrFull) {
		t.Fatalf("submit at capacity again: %v, want ErrFull", err)
	}
	f.clock.Advance(time.Minute)
	submit(t, f.q, request("s1", `4`, 1)) // timed-out requests make room
	if got, _ := f.q.Get(ctx, c.ID); got.State != StateExpired {
		t.Errorf("request %q not expired to make room", got.State)
	}

	// A restarted queue counts the pending requests already stored.
	st := NewMemoryStore()
	q1, _ := New(Config{Store: st, MaxPending: 1})
	submit(t, q1, request("s1", `1`, 1))
	q2, err := New(Config{Store: st, MaxPending: 1, MaxPendingPerSession: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q2.Submit(ctx, request("s1", `2`, 1)); !errors.Is(err, ErrFull) {
		t.Errorf("new queue over a full store: %v, want ErrFull", err)
	}
}

func TestOnChange(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{DefaultTimeout: time.Minute})
	in := request("s1", `{}`, 2)
	in.Requirement.SingleUse = true
	a := submit(t, f.q, in)
	f.q.Vote(ctx, a.ID, alice, true, "")
	f.q.Vote(ctx, a.ID, bob, true, "")
	f.q.Redeem(ctx, "s1", "tools/call", "db.export", json.RawMessage(`{}`))
	b := submit(t, f.q, request("s2", `{}`, 1))
	f.q.Vote(ctx, b.ID, bob, false, "no")
	c := submit(t, f.q, request("s3", `{}`, 1))
	f.clock.Advance(time.Minute)
	f.q.Expire(ctx)

	type ev struct {
		ID, State string
		Votes     int
	}
	want := []ev{
		{a.ID, StatePending, 0}, {a.ID, StatePending, 1}, {a.ID, StateApproved, 2}, {a.ID, StateUsed, 2},
		{b.ID, StatePending, 0}, {b.ID, StateDenied, 1},
		{c.ID, StatePending, 0}, {c.ID, StateExpired, 0},
	}
	var got []ev
	for _, r := range f.rec.all() {
		got = append(got, ev{r.ID, r.State, len(r.Votes)})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OnChange events (-want +got):\n%s", diff)
	}
}

// TestConcurrentVotes: many voters at once; quorum is reached exactly once
// and exactly Quorum approvals are recorded.
func TestConcurrentVotes(t *testing.T) {
	ctx := context.Background()
	const voters, quorum = 64, 10
	f := newFixture(t, Config{})
	r := submit(t, f.q, request("s1", `{}`, quorum))
	var wg sync.WaitGroup
	errs := make([]error, voters)
	for i := range voters {
		wg.Go(func() {
			v := Voter{Name: fmt.Sprintf("v%d", i), Groups: []string{"sre"}}
			_, errs[i] = f.q.Vote(ctx, r.ID, v, true, "")
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrClosed):
			t.Errorf("unexpected vote error: %v", err)
		}
	}
	approved := 0
	for _, x := range f.rec.all() {
		if x.State == StateApproved {
			approved++
		}
	}
	got, _ := f.q.Get(ctx, r.ID)
	if ok != quorum || approved != 1 || got.State != StateApproved || len(got.Votes) != quorum {
		t.Errorf("accepted %d votes, %d approval events, state %q with %d votes; want %d, 1, approved, %d",
			ok, approved, got.State, len(got.Votes), quorum, quorum)
	}
}

func TestListFilter(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	a := submit(t, f.q, request("s1", `1`, 1))
	f.clock.Advance(time.Second)
	b := submit(t, f.q, request("s2", `1`, 1))
	other := request("s3", `1`, 1)
	other.Sponsor = "erin@example.org"
	f.clock.Advance(time.Second)
	c := submit(t, f.q, other)
	f.q.Vote(ctx, b.ID, alice, false, "")
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{a.ID, b.ID, c.ID}},
		{Filter{State: StatePending}, []string{a.ID, c.ID}},
		{Filter{State: StateDenied}, []string{b.ID}},
		{Filter{Session: "s2"}, []string{b.ID}},
		{Filter{Sponsor: "dana@example.org", State: StatePending}, []string{a.ID}},
		{Filter{Session: "none"}, nil},
	} {
		rs, err := f.q.List(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		if diff := cmp.Diff(tc.want, ids); diff != "" {
			t.Errorf("List(%+v) (-want +got):\n%s", tc.f, diff)
		}
	}
	if _, err := f.q.List(ctx, Filter{State: "bogus"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("List with unknown state: %v", err)
	}
}

// TestMemoryStoreCopies: nothing a caller holds aliases stored state.
func TestMemoryStoreCopies(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	r := request("s1", `{"a":1}`, 1)
	r.ID = "x"
	r.Votes = []Vote{{Voter: "v", Groups: []string{"sre"}}}
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Arguments[2] = 'X'
	r.Reasons[0] = "changed"
	r.Votes[0].Groups[0] = "changed"
	got, err := s.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	got.Requirement.Groups[0] = "changed"
	again, _ := s.Get(ctx, "x")
	if string(again.Arguments) != `{"a":1}` || again.Reasons[0] == "changed" || again.Votes[0].Groups[0] == "changed" || again.Requirement.Groups[0] == "changed" {
		t.Errorf("stored request aliased by caller: %+v", again)
	}
	if _, err := s.Get(ctx, "y"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	moved := again
	moved.Session = "s2"
	if err := s.Put(ctx, moved); !errors.Is(err, ErrInvalid) {
		t.Errorf("Put moving a request to another session: %v", err)
	}
}

func mustHash(t testing.TB, method, name, args string) string {
	t.Helper()
	h, err := CallHash(method, name, json.RawMessage(args))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
