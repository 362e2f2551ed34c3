package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/api"
	"github.com/ward-dev/ward/internal/audit"
)

// TestClusterAuditSearch: an event recorded on node A is found through
// node B's API, with A as its node, read from A's entry in the store only
// after it was proven in A's log against A's signed head; node= keeps one
// node's events; unknown, repeated or out-of-range parameters are refused;
// an entry or a tile altered in the store is an error, never an answer.
func TestClusterAuditSearch(t *testing.T) {
	nodes, db := cosignCluster(t)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	mark := func(n *testNode, what string) {
		t.Helper()
		if _, err := n.Audit.Append(ctx, audit.Event{Type: "test.search", Actor: "tester", Agent: what, Data: json.RawMessage(`{"on":"` + n.NodeID() + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 300 { // more than a tile's 256 leaves
		mark(a, "a-agent")
	}
	mark(b, "b-agent")
	cosignAll(t, nodes) // heads, index rows and tiles published; keys pinned
	search := func(n *testNode, q string) (int, []api.NodeEvent, string) {
		t.Helper()
		status, body := n.call(a.admin, "GET", "/v1/audit/events?"+q, nil)
		var evs []api.NodeEvent
		if status == http.StatusOK {
			if err := json.Unmarshal(body, &evs); err != nil {
				t.Fatal(err)
			}
		}
		return status, evs, string(body)
	}
	status, evs, body := search(b, "type=test.search&limit=1000")
	if status != http.StatusOK || len(evs) != 301 {
		t.Fatalf("B's search across nodes: %d, %d events: %.300s", status, len(evs), body)
	}
	on := map[string]int{}
	for _, e := range evs {
		var d struct{ On string }
		json.Unmarshal(e.Data, &d)
		if d.On != e.Node {
			t.Fatalf("event %d of node %s was recorded on %s", e.Index, e.Node, d.On)
		}
		on[e.Node]++
	}
	if on[a.NodeID()] != 300 || on[b.NodeID()] != 1 {
		t.Fatalf("events by node: %v", on)
	}
	if status, evs, body := search(b, "type=test.search&node="+a.NodeID()+"&agent=a-agent&limit=5"); status != http.StatusOK || len(evs) != 5 || evs[0].Node != a.NodeID() {
		t.Fatalf("B's search of A's events: %d %v %.300s", status, evs, body)
	}
	if status, evs, _ := search(b, "type=test.search&node="+b.NodeID()); status != http.StatusOK || len(evs) != 1 || evs[0].Agent != "b-agent" {
		t.Fatalf("B's search of its own events: %d %v", status, evs)
	}
	// The same answer from A (one code path, its own log and B's entry).
	if status, evs, _ := search(a, "type=test.search&limit=1000"); status != http.StatusOK || len(evs) != 301 {
		t.Fatalf("A's search across nodes: %d, %d events", status, len(evs))
	}
	for q, want := range map[string]string{
		"type=test.search&sesion=x":      "not one of",
		"type=test.search&type=decision": "given 2 times",
		"limit=0":                        "limit",
		"limit=100001":                   "limit",
		"limit=ten":                      "limit",
	} {
		if status, _, body := search(b, q); status != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("?%s: %d %s", q, status, body)
		}
	}

	// An entry of A's altered in the store: B does not answer with it.
	var idx int64
	var entry string
	if err := db.QueryRow(`SELECT idx, entry FROM audit_index WHERE node = $1 AND type = 'test.search' ORDER BY idx LIMIT 1`, a.NodeID()).Scan(&idx, &entry); err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(entry, `"actor":"tester"`, `"actor":"someone"`, 1)
	if forged == entry {
		t.Fatalf("entry %s", entry)
	}
	if _, err := db.Exec(`UPDATE audit_index SET entry = $3 WHERE node = $1 AND idx = $2`, a.NodeID(), idx, forged); err != nil {
		t.Fatal(err)
	}
	if status, _, body := search(b, "type=test.search&node="+a.NodeID()+"&limit=1000"); status != http.StatusConflict || !strings.Contains(body, "not proven") {
		t.Fatalf("a search over an altered entry: %d %.300s", status, body)
	}
	if _, err := db.Exec(`UPDATE audit_index SET entry = $3 WHERE node = $1 AND idx = $2`, a.NodeID(), idx, entry); err != nil {
		t.Fatal(err)
	}
	// A tile of A's altered in the store: the same.
	if _, err := db.Exec(`UPDATE audit_tiles SET data = overlay(data placing '\x00'::bytea from 1 for 1) WHERE node = $1 AND level = 0 AND n = 0`, a.NodeID()); err != nil {
		t.Fatal(err)
	}
	if status, _, body := search(b, "type=test.search&node="+a.NodeID()+"&limit=1000"); status != http.StatusConflict || !strings.Contains(body, "do not prove") {
		t.Fatalf("a search over an altered tile: %d %.300s", status, body)
	}
}
