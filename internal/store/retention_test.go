package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testPruneSessions: only trees whose sessions all ended before the
// cutoff go, whole, with their labels; a tree with an active session or
// one ended after the cutoff stays whole.
func testPruneSessions(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	// old ── old1 ── old2     (all ended at t0+10m)
	// mixed ── mixed1         (mixed1 ended at t0+10m, mixed active)
	// late                    (ended at t0+2h)
	// live                    (active)
	for i, x := range []struct{ id, parent string }{
		{"old", ""}, {"old1", "old"}, {"old2", "old1"}, {"mixed", ""}, {"mixed1", "mixed"}, {"late", ""}, {"live", ""},
	} {
		mustNil(t, "create "+x.id, s.CreateSession(ctx, session(x.id, x.parent, i)))
	}
	for _, id := range []string{"old", "mixed1"} {
		_, err := s.EndSession(ctx, id, "done", t0.Add(10*time.Minute))
		mustNil(t, "end "+id, err)
	}
	_, err := s.EndSession(ctx, "late", "done", t0.Add(2*time.Hour))
	mustNil(t, "end late", err)
	mustNil(t, "label old1", s.AddSessionLabels(ctx, "old1", "untrusted"))
	mustNil(t, "label live", s.AddSessionLabels(ctx, "live", "untrusted"))

	n, err := s.PruneSessions(ctx, t0.Add(time.Hour))
	mustNil(t, "prune", err)
	if n != 3 {
		t.Errorf("pruned %d sessions, want 3 (old, old1, old2)", n)
	}
	for _, id := range []string{"old", "old1", "old2"} {
		_, err := s.GetSession(ctx, id)
		wantErr(t, "get pruned "+id, err, ErrNotFound)
	}
	for _, id := range []string{"mixed", "mixed1", "late", "live"} {
		_, err := s.GetSession(ctx, id)
		mustNil(t, "get kept "+id, err)
	}
	if l, err := s.SessionLabels(ctx, "old1"); err != nil || len(l) != 0 {
		t.Errorf("labels of a pruned session: %v %v", l, err)
	}
	if l, err := s.SessionLabels(ctx, "live"); err != nil || !cmp.Equal(l, []string{"untrusted"}) {
		t.Errorf("labels of a live session: %v %v", l, err)
	}
	n, err = s.PruneSessions(ctx, t0.Add(time.Hour))
	mustNil(t, "prune again", err)
	if n != 0 {
		t.Errorf("second prune deleted %d", n)
	}
	// A later cutoff takes "late" too.
	n, err = s.PruneSessions(ctx, t0.Add(3*time.Hour))
	mustNil(t, "prune later", err)
	if n != 1 {
		t.Errorf("later prune deleted %d, want 1 (late)", n)
	}
}

// testPruneApprovals: final approvals older than the cutoff go; pending
// ones, newer ones, and approved ones of an active session stay.
func testPruneApprovals(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	mustNil(t, "create live", s.CreateSession(ctx, session("live", "", 0)))
	mustNil(t, "create gone", s.CreateSession(ctx, session("gone", "", 1)))
	_, err := s.EndSession(ctx, "gone", "done", t0.Add(time.Minute))
	mustNil(t, "end gone", err)
	old, recent := t0, t0.Add(2*time.Hour)
	for _, r := range []ApprovalRecord{
		{ID: "denied-old", Session: "gone", State: "denied", Created: old},
		{ID: "used-old", Session: "live", State: "used", Created: old},
		{ID: "denied-new", Session: "gone", State: "denied", Created: recent},
		{ID: "pending-old", Session: "gone", State: "pending", Created: old},
		{ID: "approved-live", Session: "live", State: "approved", Created: old},
		{ID: "approved-gone", Session: "gone", State: "approved", Created: old},
		{ID: "approved-unknown", Session: "never", State: "approved", Created: old},
	} {
		r.Sponsor, r.CallHash, r.Doc = "alice", "h", approvalDoc(r.ID, r.State)
		mustNil(t, "put "+r.ID, s.PutApproval(ctx, r))
	}
	n, err := s.PruneApprovals(ctx, t0.Add(time.Hour), []string{"denied", "expired", "used"}, []string{"approved"})
	mustNil(t, "prune", err)
	if n != 4 {
		t.Errorf("pruned %d approvals, want 4", n)
	}
	for _, id := range []string{"denied-old", "used-old", "approved-gone", "approved-unknown"} {
		_, err := s.GetApproval(ctx, id)
		wantErr(t, "get pruned "+id, err, ErrNotFound)
	}
	for _, id := range []string{"denied-new", "pending-old", "approved-live"} {
		_, err := s.GetApproval(ctx, id)
		mustNil(t, "get kept "+id, err)
	}
	n, err = s.PruneApprovals(ctx, t0.Add(time.Hour), nil, nil)
	mustNil(t, "prune with no states", err)
	if n != 0 {
		t.Errorf("prune with no states deleted %d", n)
	}
}
