package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The contract under concurrency. Each test works on two stores over the
// same data, as two nodes on one PostgreSQL database (or a CLI next to a
// server on one SQLite file) have, and checks an invariant that any serial
// order of the same calls keeps.

// twoNodes opens a store and a second one over the same data.
func twoNodes(t *testing.T, b backend) [2]*Store {
	s, reopen := b.open(t)
	return [2]*Store{s, reopen()}
}

// checkTrees fails if an active session has an ended (or missing) parent:
// no sub-agent may outlive the session that spawned it.
func checkTrees(t *testing.T, s *Store) {
	t.Helper()
	all, err := s.ListSessions(t.Context(), SessionFilter{})
	mustNil(t, "list", err)
	byID := map[string]Session{}
	for _, x := range all {
		byID[x.ID] = x
	}
	for _, x := range all {
		if x.Status != SessionActive || x.ParentID == "" {
			continue
		}
		if p, ok := byID[x.ParentID]; !ok || p.Status != SessionActive {
			t.Errorf("session %s is active under ended parent %s (%s)", x.ID, x.ParentID, p.Status)
		}
	}
}

// testMaxTreeTwoNodes: a tree's bound holds exactly when delegations at
// every level of it race on two nodes, and ended sessions free places.
func testMaxTreeTwoNodes(t *testing.T, b backend) {
	ctx := t.Context()
	nodes := twoNodes(t, b)
	seed(t, nodes[0])
	mustNil(t, "root", nodes[0].CreateSession(ctx, session("root", "", 0)))
	mustNil(t, "mid", nodes[1].CreateSession(ctx, session("mid", "root", 0)))
	const limit = 6
	var made, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			parent := []string{"root", "mid"}[i%2]
			c := session(fmt.Sprint("c", i), parent, 1)
			c.MaxTree = limit
			switch err := nodes[(i/2)%2].CreateSession(ctx, c); {
			case err == nil:
				made.Add(1)
			case errors.Is(err, ErrConflict):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if made.Load() != limit-2 || refused.Load() != 24-(limit-2) {
		t.Fatalf("a tree bounded to %d active sessions (2 there) got %d more (%d refused)", limit, made.Load(), refused.Load())
	}
	active, err := nodes[0].ListSessions(ctx, SessionFilter{Status: SessionActive})
	mustNil(t, "list", err)
	if len(active) != limit {
		t.Fatalf("%d active sessions in a tree bounded to %d", len(active), limit)
	}
	// Ending mid's subtree frees its places, and exactly those.
	ended, err := nodes[1].EndSession(ctx, "mid", "done", t0.Add(time.Minute))
	mustNil(t, "end mid", err)
	made.Store(0)
	for i := range 12 {
		wg.Go(func() {
			c := session(fmt.Sprint("d", i), "root", 2)
			c.MaxTree = limit
			if err := nodes[i%2].CreateSession(ctx, c); err == nil {
				made.Add(1)
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if int(made.Load()) != len(ended) {
		t.Fatalf("ending %d sessions freed %d places", len(ended), made.Load())
	}
}

// testEndWhileDelegating: ending a tree while its sessions delegate, on
// two nodes, leaves no active session under an ended one.
func testEndWhileDelegating(t *testing.T, b backend) {
	ctx := t.Context()
	nodes := twoNodes(t, b)
	seed(t, nodes[0])
	for round := range 15 {
		root, mid := fmt.Sprint("r", round), fmt.Sprint("m", round)
		mustNil(t, "root", nodes[0].CreateSession(ctx, session(root, "", 0)))
		mustNil(t, "mid", nodes[0].CreateSession(ctx, session(mid, root, 0)))
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				err := nodes[i%2].CreateSession(ctx, session(fmt.Sprint(mid, "-", i), mid, 1))
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			target := []string{root, mid}[round%2]
			if _, err := nodes[round%2].EndSession(ctx, target, "stop", t0.Add(time.Minute)); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}
	checkTrees(t, nodes[0])
}

// testExpireWhileDelegating: the same, with the tree ended by expiry.
func testExpireWhileDelegating(t *testing.T, b backend) {
	ctx := t.Context()
	nodes := twoNodes(t, b)
	seed(t, nodes[0])
	for round := range 15 {
		root := fmt.Sprint("r", round)
		x := session(root, "", 0)
		x.Expires = t0.Add(10 * time.Minute)
		mustNil(t, "root", nodes[0].CreateSession(ctx, x))
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				err := nodes[i%2].CreateSession(ctx, session(fmt.Sprint(root, "-", i), root, 1))
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			if _, err := nodes[round%2].ExpireSessions(ctx, t0.Add(10*time.Minute)); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if x, err := nodes[0].GetSession(ctx, root); err != nil || x.Status != SessionEnded {
			t.Fatalf("root after expiry: %+v, %v", x, err)
		}
	}
	checkTrees(t, nodes[0])
}

// testQuarantineWhileStarting: a quarantine followed by ending the agent's
// active sessions leaves none active, however sessions being started at
// the same time on another node interleave.
func testQuarantineWhileStarting(t *testing.T, b backend) {
	ctx := t.Context()
	nodes := twoNodes(t, b)
	seed(t, nodes[0])
	for round := range 10 {
		mustNil(t, "release", nodes[0].SetAgentStatus(ctx, "reporter", AgentActive))
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				err := nodes[1].CreateSession(ctx, session(fmt.Sprint("s", round, "-", i), "", 0))
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			if err := nodes[0].SetAgentStatus(ctx, "reporter", AgentQuarantined); err != nil {
				t.Error(err)
				return
			}
			active, err := nodes[0].ListSessions(ctx, SessionFilter{Agent: "reporter", Status: SessionActive})
			if err != nil {
				t.Error(err)
				return
			}
			for _, x := range active {
				if _, err := nodes[0].EndSession(ctx, x.ID, "quarantined", t0.Add(time.Minute)); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Wait()
		active, err := nodes[0].ListSessions(ctx, SessionFilter{Agent: "reporter", Status: SessionActive})
		mustNil(t, "list", err)
		if len(active) != 0 {
			t.Fatalf("round %d: %d sessions of a quarantined agent are active, e.g. %s", round, len(active), active[0].ID)
		}
	}
}

// testToolSetRace: when a new server is listed at once on two nodes,
// exactly one listing creates its first set, and every listing is told
// that same first set.
func testToolSetRace(t *testing.T, b backend) {
	ctx := t.Context()
	nodes := twoNodes(t, b)
	for round := range 5 {
		server := fmt.Sprint("race", round)
		var created atomic.Int32
		firsts := make([][]string, 8)
		var wg sync.WaitGroup
		for i := range firsts {
			wg.Go(func() {
				set, _, c, err := nodes[i%2].ObserveToolSet(ctx, server, []string{fmt.Sprint("t", i), "common"})
				if err != nil {
					t.Error(err)
					return
				}
				if c {
					created.Add(1)
				}
				firsts[i] = set.First
			})
		}
		wg.Wait()
		final, err := nodes[0].GetToolSet(ctx, server)
		mustNil(t, "get", err)
		if created.Load() != 1 {
			t.Fatalf("%s: %d listings created the first set", server, created.Load())
		}
		for i, f := range firsts {
			if !slices.Equal(f, final.First) {
				t.Fatalf("%s: listing %d was told first set %v, the store keeps %v", server, i, f, final.First)
			}
		}
	}
}

// testObservePinRace: of first observations of one tool racing on two
// nodes, exactly one pins it, and first-use approval covers exactly that
// definition; an operator's approval is never undone by an observation.
func testObservePinRace(t *testing.T, b backend) {
	ctx := t.Context()
	nodes := twoNodes(t, b)
	for round := range 5 {
		tool := fmt.Sprint("tool", round)
		var created atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				hash := fmt.Sprint("h", i)
				p, c, _, err := nodes[i%2].ObservePin(ctx, "srv", tool, hash, json.RawMessage(`{}`), "first-use")
				if err != nil {
					t.Error(err)
					return
				}
				if c {
					created.Add(1)
					winner.Store(hash)
					if p.ApprovedHash != hash {
						t.Errorf("the pinning observation approved %q, not its own %q", p.ApprovedHash, hash)
					}
				}
			})
		}
		wg.Wait()
		if created.Load() != 1 {
			t.Fatalf("%s: %d observations pinned it", tool, created.Load())
		}
		p, err := nodes[0].GetPin(ctx, "srv", tool)
		mustNil(t, "get", err)
		if p.ApprovedHash != winner.Load() || p.ApprovedBy != "first-use" {
			t.Fatalf("%s: first use approved %q by %q, the first definition was %q", tool, p.ApprovedHash, p.ApprovedBy, winner.Load())
		}
		// An operator approves what is observed now while observations of
		// that same definition race with it: the approval stays.
		mustNil(t, "approve", nodes[1].ApprovePin(ctx, "srv", tool, p.Hash, "operator"))
		for i := range 6 {
			wg.Go(func() {
				if _, _, _, err := nodes[i%2].ObservePin(ctx, "srv", tool, p.Hash, json.RawMessage(`{}`), "first-use"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if q, _ := nodes[0].GetPin(ctx, "srv", tool); q.ApprovedHash != p.Hash || q.ApprovedBy != "operator" {
			t.Fatalf("%s: observations undid an approval: %+v", tool, q)
		}
	}
}

// testApprovalVotes: votes recorded with UpdateApproval on two nodes at
// once are all kept, and the quorum is reached by exactly one of them.
func testApprovalVotes(t *testing.T, b backend) {
	ctx := t.Context()
	nodes := twoNodes(t, b)
	const quorum, voters = 3, 12
	mustNil(t, "put", nodes[0].PutApproval(ctx, ApprovalRecord{ID: "a1", Session: "s1", Sponsor: "alice", State: "pending",
		CallHash: "h", Created: t0, Doc: approvalDoc("a1", "pending")}))
	var reached atomic.Int32
	var wg sync.WaitGroup
	for i := range voters {
		wg.Go(func() {
			var before string
			r, err := nodes[i%2].UpdateApproval(ctx, "a1", func(r ApprovalRecord) (ApprovalRecord, error) {
				var d struct {
					ID, State string
					Votes     []string
				}
				if err := json.Unmarshal(r.Doc, &d); err != nil {
					return r, err
				}
				before = r.State
				d.Votes = append(d.Votes, fmt.Sprint("voter", i))
				if len(d.Votes) >= quorum {
					r.State = "approved"
				}
				r.Doc = approvalDoc("a1", r.State, d.Votes...)
				return r, nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			if before == "pending" && r.State == "approved" {
				reached.Add(1)
			}
		})
	}
	wg.Wait()
	doc, err := nodes[0].GetApproval(ctx, "a1")
	mustNil(t, "get", err)
	var d struct {
		State string
		Votes []string
	}
	mustNil(t, "decode", json.Unmarshal(doc, &d))
	if len(d.Votes) != voters || d.State != "approved" {
		t.Fatalf("after %d votes: %d kept, state %s", voters, len(d.Votes), d.State)
	}
	if reached.Load() != 1 {
		t.Fatalf("the quorum was reached %d times", reached.Load())
	}
}
