package approval

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// sharedStore is a MemoryStore that several queues share, with Update
// made atomic by a lock, as the PostgreSQL store's row lock makes it.
type sharedStore struct {
	*MemoryStore
	mu sync.Mutex
}

func (s *sharedStore) Update(ctx context.Context, id string, fn func(Request) (Request, error)) (Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.Get(ctx, id)
	if err != nil {
		return Request{}, err
	}
	next, err := fn(r)
	if err != nil {
		return Request{}, err
	}
	return next, s.Put(ctx, next)
}

var _ Updater = (*sharedStore)(nil)

// TestSharedQueues: two queues on one store (two nodes): votes cast on
// both at once are all counted and the quorum is reached once; a call
// held on one queue wakes when the other decides and Changed is called;
// a single-use approval is redeemed once across queues.
func TestSharedQueues(t *testing.T) {
	st := &sharedStore{MemoryStore: NewMemoryStore()}
	clock := &fakeClock{t: t0}
	var mu sync.Mutex
	approvedEvents := 0
	queue := func() *Queue {
		q, err := New(Config{Store: st, Now: clock.Now, OnChange: func(r Request) {
			if r.State == StateApproved {
				mu.Lock()
				approvedEvents++
				mu.Unlock()
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	a, b := queue(), queue()
	const voters = 12
	req := request("s1", `{"to":"x"}`, voters/2)
	req.Requirement.SingleUse = true
	r := submit(t, a, req)

	ctx := context.Background()
	waited := make(chan Request, 1)
	go func() {
		got, err := a.Wait(ctx, r.ID)
		if err != nil {
			t.Error(err)
		}
		waited <- got
	}()
	var wg sync.WaitGroup
	for i := range voters {
		wg.Go(func() {
			q := a
			if i%2 == 1 {
				q = b
			}
			_, err := q.Vote(ctx, r.ID, Voter{Name: fmt.Sprint("voter", i), Groups: []string{"sre"}}, true, "")
			if err != nil && !errorsIsClosed(err) {
				t.Errorf("voter %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, err := b.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateApproved || len(got.Votes) != voters/2 {
		t.Fatalf("state %s with %d votes, want approved with %d", got.State, len(got.Votes), voters/2)
	}
	if approvedEvents != 1 {
		t.Fatalf("the quorum was reached %d times", approvedEvents)
	}
	// Whichever queue took the quorum vote, a's waiter wakes once told.
	if err := a.Changed(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-waited:
		if w.State != StateApproved {
			t.Fatalf("the held call woke to %s", w.State)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held call on a never woke")
	}
	if a.pending != 0 || b.pending != 0 {
		t.Fatalf("pending counts %d and %d after the decision", a.pending, b.pending)
	}
	// Redeemed once across both queues.
	redeemed := 0
	for _, q := range []*Queue{a, b, a} {
		_, ok, err := q.Redeem(ctx, "s1", req.Method, req.Name, req.Arguments)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			redeemed++
		}
	}
	if redeemed != 1 {
		t.Fatalf("a single-use approval was redeemed %d times", redeemed)
	}

	// Held on a, decided on b: a's waiter wakes when a is told.
	r2 := submit(t, a, request("s2", `{"to":"y"}`, 1))
	go func() {
		got, err := a.Wait(ctx, r2.ID)
		if err != nil {
			t.Error(err)
		}
		waited <- got
	}()
	if _, err := b.Vote(ctx, r2.ID, alice, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Changed(ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-waited:
		if w.ID != r2.ID || w.State != StateApproved {
			t.Fatalf("the held call woke to %s %s", w.ID, w.State)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call held on a never woke")
	}

	// A queue that missed changes wakes every held call.
	r3 := submit(t, a, request("s3", `{"to":"z"}`, 1))
	go func() {
		got, err := a.Wait(ctx, r3.ID)
		if err != nil {
			t.Error(err)
		}
		waited <- got
	}()
	if _, err := b.Vote(ctx, r3.ID, alice, false, "no"); err != nil {
		t.Fatal(err)
	}
	if err := a.ChangedAll(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-waited:
		if w.ID != r3.ID || w.State != StateDenied {
			t.Fatalf("the held call woke to %s %s", w.ID, w.State)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call held on a never woke after ChangedAll")
	}
}

func errorsIsClosed(err error) bool {
	return errors.Is(err, ErrClosed)
}

// TestSharedExpiry: on a shared store a request past its time is
// resolved to expired once, whichever queue finds it, and a vote after
// that is refused.
func TestSharedExpiry(t *testing.T) {
	st := &sharedStore{MemoryStore: NewMemoryStore()}
	clock := &fakeClock{t: t0}
	rec := &recorder{}
	newQueue := func() *Queue {
		q, err := New(Config{Store: st, Now: clock.Now, OnChange: rec.add})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	a, b := newQueue(), newQueue()
	r := submit(t, a, request("s1", `{"to":"x"}`, 1))
	clock.Advance(DefaultTimeout + time.Second)
	ctx := context.Background()
	got, err := b.Get(ctx, r.ID)
	if err != nil || got.State != StateExpired {
		t.Fatalf("b finds %s %v", got.State, err)
	}
	if got, err := a.Get(ctx, r.ID); err != nil || got.State != StateExpired {
		t.Fatalf("a finds %s %v", got.State, err)
	}
	expired := 0
	for _, x := range rec.all() {
		if x.State == StateExpired {
			expired++
		}
	}
	if expired != 1 {
		t.Fatalf("expired %d times", expired)
	}
	if _, err := a.Vote(ctx, r.ID, alice, true, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("a vote after expiry: %v", err)
	}
}
