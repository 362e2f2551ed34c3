package server_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// TestRetention: a node with a Retention prunes an ended session and a
// finished approval from the store once they are old enough, keeps the
// active session and the pending approval, and leaves the audit log as
// it was (its events of the pruned session are still there). A node
// without one prunes nothing.
func TestRetention(t *testing.T) {
	for _, keep := range []bool{false, true} {
		cfg := server.Config{Upstreams: demoOnly}
		if !keep {
			cfg.Retention = server.Retention{Approvals: time.Hour, Sessions: time.Hour}
		}
		n := startNode(t, cfg)
		ctx := t.Context()
		n.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
		_, ended := n.startSession("scribe", "done soon", nil, "")
		_, live := n.startSession("scribe", "still working", nil, "")
		n.must("POST", "/v1/sessions/"+ended.Session+"/end", map[string]string{"reason": "done"}, nil)
		now := time.Now()
		for _, r := range []store.ApprovalRecord{
			{ID: "denied", Session: ended.Session, State: "denied"},
			{ID: "pending", Session: live.Session, State: "pending"},
		} {
			r.Sponsor, r.CallHash, r.Created, r.Doc = "acme", "h", now, []byte(`{"id":"`+r.ID+`"}`)
			if err := n.Store.PutApproval(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		size := n.Audit.Size()

		// Not old enough yet.
		if a, s, err := n.PruneRetained(ctx, now.Add(30*time.Minute)); err != nil || a+s != 0 {
			t.Fatalf("keep=%v: pruned %d approvals and %d sessions too early: %v", keep, a, s, err)
		}
		a, s, err := n.PruneRetained(ctx, now.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := int64(1)
		if keep {
			want = 0
		}
		if a != want || s != want {
			t.Fatalf("keep=%v: pruned %d approvals and %d sessions, want %d each", keep, a, s, want)
		}
		_, errS := n.Store.GetSession(ctx, ended.Session)
		_, errA := n.Store.GetApproval(ctx, "denied")
		if gone := errors.Is(errS, store.ErrNotFound) && errors.Is(errA, store.ErrNotFound); gone == keep {
			t.Fatalf("keep=%v: ended session and denied approval: %v, %v", keep, errS, errA)
		}
		if _, err := n.Store.GetSession(ctx, live.Session); err != nil {
			t.Fatalf("the active session was pruned: %v", err)
		}
		if _, err := n.Store.GetApproval(ctx, "pending"); err != nil {
			t.Fatalf("the pending approval was pruned: %v", err)
		}
		if n.Audit.Size() != size {
			t.Fatalf("the audit log changed size: %d, was %d", n.Audit.Size(), size)
		}
		evs, err := n.Audit.Read(0, size)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range evs {
			found = found || e.Session == ended.Session && e.Type == "session.end"
		}
		if !found {
			t.Fatalf("the audit log has no session.end of the pruned session")
		}
		// The pruned session is refused, as it was once ended.
		status, body := n.call(n.admin, "GET", "/v1/sessions/"+ended.Session, nil)
		if !keep && (status != http.StatusNotFound || !strings.Contains(string(body), "not found")) {
			t.Fatalf("a pruned session: %d %s", status, body)
		}
	}
}
