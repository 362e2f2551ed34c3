package server_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// TestClusterRetention: a session started and ended on node A, which node
// B has served, is pruned by B's sweep; both nodes then refuse its
// credentials (401, as for any session they do not know) and the other
// session of the agent is untouched.
func TestClusterRetention(t *testing.T) {
	a, b := twoNodes(t, server.Config{Retention: server.Retention{Approvals: time.Hour, Sessions: time.Hour}})
	a.setupAgent("scribe", nil, map[string][]string{"tools": {"demo.*"}})
	ended, endedView := a.startSession("scribe", "one", nil, "")
	live, _ := a.startSession("scribe", "two", nil, "")
	for _, n := range []*testNode{a, b} {
		if code, body := whoami(t, n, ended.HTTPClient(false)); code != http.StatusOK {
			t.Fatalf("before: %d %s", code, body)
		}
	}
	a.must("POST", "/v1/sessions/"+endedView.Session+"/end", map[string]string{"reason": "done"}, nil)
	waitApplied(t, a.Store, b)
	_, s, err := b.PruneRetained(ctxT(t), time.Now().Add(2*time.Hour))
	if err != nil || s != 1 {
		t.Fatalf("B pruned %d sessions: %v", s, err)
	}
	if _, err := a.Store.GetSession(ctxT(t), endedView.Session); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the pruned session on A's store: %v", err)
	}
	for _, n := range []*testNode{a, b} {
		if code, body := whoami(t, n, ended.HTTPClient(false)); code != http.StatusUnauthorized {
			t.Fatalf("pruned session on %s: %d %s", n.NodeID(), code, body)
		}
		if code, body := whoami(t, n, live.HTTPClient(false)); code != http.StatusOK {
			t.Fatalf("live session on %s: %d %s", n.NodeID(), code, body)
		}
	}
}
