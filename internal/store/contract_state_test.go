package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The contract, continued: trust, pins observed, tool-set counts,
// approvals, the audit index and the order of names.

func testAgentTrust(t *testing.T, s *Store) {
	ctx := t.Context()
	seed(t, s)
	if a, _ := s.GetAgent(ctx, "reporter"); a.Trust != DefaultTrust {
		t.Fatalf("new agent trust %d", a.Trust)
	}
	mustNil(t, "set trust", s.SetAgentTrust(ctx, "reporter", 80))
	if a, _ := s.GetAgent(ctx, "reporter"); a.Trust != 80 {
		t.Fatalf("trust %d", a.Trust)
	}
	for _, bad := range []int{-1, 101} {
		if err := s.SetAgentTrust(ctx, "reporter", bad); err == nil {
			t.Errorf("trust %d accepted", bad)
		}
	}
	if a, _ := s.GetAgent(ctx, "reporter"); a.Trust != 80 {
		t.Fatalf("refused trust changed it to %d", a.Trust)
	}
	wantErr(t, "unknown agent", s.SetAgentTrust(ctx, "nobody", 10), ErrNotFound)
}

func testObservePin(t *testing.T, s *Store) {
	ctx := t.Context()
	def := json.RawMessage(`{"name":"x"}`)
	p, created, changed, err := s.ObservePin(ctx, "srv", "x", "h1", def, "first-use")
	if err != nil || !created || changed || p.ApprovedHash != "h1" || p.ApprovedBy != "first-use" || string(p.Definition) != string(def) {
		t.Fatalf("first observation: %+v %v %v %v", p, created, changed, err)
	}
	stored, err := s.GetPin(ctx, "srv", "x")
	mustNil(t, "get", err)
	if diff := cmp.Diff(p, stored); diff != "" {
		t.Errorf("returned and stored pin differ (-returned +stored):\n%s", diff)
	}
	p, created, changed, err = s.ObservePin(ctx, "srv", "x", "h1", def, "first-use")
	if err != nil || created || changed || p.Hash != "h1" {
		t.Fatalf("same definition again: %+v %v %v %v", p, created, changed, err)
	}
	def2 := json.RawMessage(`{"name":"x","description":"now different"}`)
	p, created, changed, err = s.ObservePin(ctx, "srv", "x", "h2", def2, "first-use")
	if err != nil || created || !changed || p.Hash != "h2" || p.ApprovedHash != "h1" || string(p.Definition) != string(def2) {
		t.Fatalf("changed definition: %+v %v %v %v", p, created, changed, err)
	}
	stored, err = s.GetPin(ctx, "srv", "x")
	mustNil(t, "get changed", err)
	if diff := cmp.Diff(p, stored); diff != "" {
		t.Errorf("returned and stored pin differ (-returned +stored):\n%s", diff)
	}
	mustNil(t, "approve", s.ApprovePin(ctx, "srv", "x", "h2", "operator"))
	// Observing the same definition again never undoes the approval.
	p, _, changed, err = s.ObservePin(ctx, "srv", "x", "h2", def2, "first-use")
	if err != nil || changed || p.ApprovedHash != "h2" || p.ApprovedBy != "operator" {
		t.Fatalf("after approval: %+v %v", p, err)
	}
	// Manual mode: a new tool is pinned but not approved.
	p, created, _, err = s.ObservePin(ctx, "srv", "y", "h9", def, "")
	if err != nil || !created || p.ApprovedHash != "" {
		t.Fatalf("manual: %+v %v", p, err)
	}
	if _, _, _, err := s.ObservePin(ctx, "srv", "", "h", def, ""); err == nil {
		t.Error("an empty tool name was accepted")
	}
}

func testCountToolSets(t *testing.T, s *Store) {
	ctx := t.Context()
	for _, server := range []string{"fs~a~b", "web~a~b", "fs~c", "x", "naïve~ü"} {
		_, _, _, err := s.ObserveToolSet(ctx, server, []string{"t"})
		mustNil(t, "observe "+server, err)
	}
	for _, tc := range []struct {
		suffix string
		want   int
	}{
		{"~a~b", 2}, {"~c", 1}, {"fs~a~b", 1}, {"x", 1}, {"~ü", 1}, {"ü", 1},
		{"a~fs~a~b", 0}, {"~A~B", 0}, {"nothing", 0}, {"", 5},
	} {
		n, err := s.CountToolSets(ctx, tc.suffix)
		mustNil(t, "count "+tc.suffix, err)
		if n != tc.want {
			t.Errorf("CountToolSets(%q) = %d, want %d", tc.suffix, n, tc.want)
		}
	}
}

func approvalDoc(id, state string, votes ...string) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "state": state, "votes": append([]string{}, votes...)})
	return b
}

func testApprovals(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err := s.GetApproval(ctx, "r1")
	wantErr(t, "get missing", err, ErrNotFound)
	recs := []ApprovalRecord{
		{ID: "r1", Session: "s1", Sponsor: "alice", State: "pending", CallHash: "h1", Created: t0, Doc: approvalDoc("r1", "pending")},
		{ID: "r2", Session: "s2", Sponsor: "bob", State: "pending", CallHash: "h2", Created: t0.Add(time.Second), Doc: approvalDoc("r2", "pending")},
		{ID: "a-first", Session: "s1", Sponsor: "alice", State: "approved", CallHash: "h1", Created: t0, Doc: approvalDoc("a-first", "approved")},
	}
	for _, r := range recs {
		mustNil(t, "put "+r.ID, s.PutApproval(ctx, r))
	}
	doc, err := s.GetApproval(ctx, "r1")
	mustNil(t, "get r1", err)
	if string(doc) != string(recs[0].Doc) {
		t.Errorf("get r1 = %s", doc)
	}
	ids := func(docs [][]byte) []string {
		var out []string
		for _, d := range docs {
			var v struct{ ID string }
			if err := json.Unmarshal(d, &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v.ID)
		}
		return out
	}
	list := func(f ApprovalFilter, want ...string) {
		t.Helper()
		docs, err := s.ListApprovals(ctx, f)
		mustNil(t, "list", err)
		if diff := cmp.Diff(want, ids(docs)); diff != "" {
			t.Errorf("list %+v (-want +got):\n%s", f, diff)
		}
	}
	list(ApprovalFilter{}, "a-first", "r1", "r2") // by created, then id
	list(ApprovalFilter{State: "pending"}, "r1", "r2")
	list(ApprovalFilter{Session: "s1"}, "a-first", "r1")
	list(ApprovalFilter{Sponsor: "bob"}, "r2")
	list(ApprovalFilter{CallHash: "h1"}, "a-first", "r1")
	list(ApprovalFilter{Session: "s1", State: "pending", CallHash: "h1", Sponsor: "alice"}, "r1")
	list(ApprovalFilter{Session: "nobody"})

	// Replacing changes the state and the document only: what a request
	// is for (session, sponsor, call, creation) is fixed when it is made.
	mustNil(t, "replace r1", s.PutApproval(ctx, ApprovalRecord{ID: "r1", Session: "s9", Sponsor: "mallory", State: "approved",
		CallHash: "h9", Created: t0.Add(time.Hour), Doc: approvalDoc("r1", "approved", "dana")}))
	doc, err = s.GetApproval(ctx, "r1")
	mustNil(t, "get replaced", err)
	if string(doc) != string(approvalDoc("r1", "approved", "dana")) {
		t.Errorf("replaced doc = %s", doc)
	}
	list(ApprovalFilter{State: "approved"}, "a-first", "r1")
	list(ApprovalFilter{Session: "s1", Sponsor: "alice", CallHash: "h1"}, "a-first", "r1")
	list(ApprovalFilter{Session: "s9"})

	for _, bad := range []ApprovalRecord{
		{Session: "s", Sponsor: "a", State: "pending", CallHash: "h", Created: t0, Doc: []byte(`{}`)},
		{ID: "x", Session: "s", Sponsor: "a", State: "pending", CallHash: "h", Created: t0, Doc: []byte(`{`)},
		{ID: "x", Session: "s", Sponsor: "a", State: "", CallHash: "h", Created: t0, Doc: []byte(`{}`)},
		{ID: "x", Session: "s", Sponsor: "a\x00", State: "pending", CallHash: "h", Created: t0, Doc: []byte(`{}`)},
	} {
		if err := s.PutApproval(ctx, bad); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("PutApproval(%+v) = %v, want an input error", bad, err)
		}
	}
	list(ApprovalFilter{}, "a-first", "r1", "r2")

	// UpdateApproval.
	_, err = s.UpdateApproval(ctx, "ghost", func(r ApprovalRecord) (ApprovalRecord, error) { return r, nil })
	wantErr(t, "update unknown", err, ErrNotFound)
	refusal := errors.New("not today")
	_, err = s.UpdateApproval(ctx, "r2", func(r ApprovalRecord) (ApprovalRecord, error) {
		r.State = "denied"
		return r, refusal
	})
	wantErr(t, "update refused", err, refusal)
	list(ApprovalFilter{State: "pending"}, "r2")
	_, err = s.UpdateApproval(ctx, "r2", func(r ApprovalRecord) (ApprovalRecord, error) {
		r.Doc = []byte(`{"broken"`)
		return r, nil
	})
	if err == nil {
		t.Error("UpdateApproval stored invalid JSON")
	}
	got, err := s.UpdateApproval(ctx, "r2", func(r ApprovalRecord) (ApprovalRecord, error) {
		want := recs[1]
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("update saw (-want +got):\n%s", diff)
		}
		r.State, r.Doc = "denied", approvalDoc("r2", "denied")
		r.Session, r.Created = "elsewhere", t0.Add(time.Hour) // ignored
		return r, nil
	})
	mustNil(t, "update r2", err)
	want := recs[1]
	want.State, want.Doc = "denied", approvalDoc("r2", "denied")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("update returned (-want +got):\n%s", diff)
	}
	list(ApprovalFilter{State: "denied", Session: "s2"}, "r2")
	list(ApprovalFilter{}, "a-first", "r1", "r2")
}

func testAuditIndex(t *testing.T, s *Store) {
	ctx := t.Context()
	empty, err := s.Empty(ctx)
	mustNil(t, "empty", err)
	if !empty {
		t.Error("a new store is not empty")
	}
	n, err := s.AuditIndexed(ctx)
	mustNil(t, "indexed", err)
	if n != 0 {
		t.Errorf("a new index holds %d", n)
	}
	if _, ok, err := s.LastIndexed(ctx); err != nil || ok {
		t.Errorf("LastIndexed on a new index = %v, %v", ok, err)
	}
	if got, err := s.SearchAudit(ctx, AuditQuery{}); err != nil || len(got) != 0 {
		t.Errorf("search of a new index = %v, %v", got, err)
	}
	damage, err := s.CheckIntegrity(ctx)
	mustNil(t, "check new", err)
	if len(damage) != 0 {
		t.Errorf("a new store is damaged: %+v", damage)
	}

	var rows []AuditRow
	for i := range 10 {
		r := AuditRow{Index: uint64(i), Time: t0.Add(time.Duration(i) * time.Minute), Type: "call",
			Session: fmt.Sprint("s", i%3), Agent: "reporter", Sponsor: "alice", Name: fmt.Sprint("tool", i%2), Decision: "allow"}
		if i%4 == 0 {
			r.Type, r.Decision = "refusal", "deny"
		}
		rows = append(rows, r)
	}
	mustNil(t, "index", s.IndexAudit(ctx, rows))
	mustNil(t, "index nothing", s.IndexAudit(ctx, nil))
	n, err = s.AuditIndexed(ctx)
	mustNil(t, "indexed", err)
	if n != 10 {
		t.Errorf("AuditIndexed = %d, want 10", n)
	}
	last, ok, err := s.LastIndexed(ctx)
	mustNil(t, "last", err)
	if diff := cmp.Diff(rows[9], last); !ok || diff != "" {
		t.Errorf("LastIndexed ok=%v (-want +got):\n%s", ok, diff)
	}
	// Rows already indexed are left as they are.
	changed := rows[9]
	changed.Type = "forged"
	mustNil(t, "index again", s.IndexAudit(ctx, []AuditRow{rows[8], changed}))
	last, _, err = s.LastIndexed(ctx)
	mustNil(t, "last", err)
	if last.Type != "call" {
		t.Errorf("re-indexing rewrote a row: %+v", last)
	}

	for _, tc := range []struct {
		name string
		q    AuditQuery
		want []uint64
	}{
		{"all", AuditQuery{}, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"session", AuditQuery{Session: "s1"}, []uint64{1, 4, 7}},
		{"type", AuditQuery{Type: "refusal"}, []uint64{0, 4, 8}},
		{"decision and name", AuditQuery{Decision: "allow", Name: "tool1"}, []uint64{1, 3, 5, 7, 9}},
		{"agent and sponsor", AuditQuery{Agent: "reporter", Sponsor: "alice", Session: "s0"}, []uint64{0, 3, 6, 9}},
		{"since inclusive, until exclusive", AuditQuery{Since: t0.Add(2 * time.Minute), Until: t0.Add(5 * time.Minute)}, []uint64{2, 3, 4}},
		{"newest limit, oldest first", AuditQuery{Limit: 3}, []uint64{7, 8, 9}},
		{"no match", AuditQuery{Agent: "ghost"}, nil},
	} {
		got, err := s.SearchAudit(ctx, tc.q)
		mustNil(t, tc.name, err)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// AuditIndexed counts to the highest index, gaps included.
	mustNil(t, "index with a gap", s.IndexAudit(ctx, []AuditRow{{Index: 12, Time: t0, Type: "call"}}))
	if n, _ := s.AuditIndexed(ctx); n != 13 {
		t.Errorf("AuditIndexed after a gap = %d, want 13", n)
	}

	mustNil(t, "create principal", s.CreatePrincipal(ctx, Principal{Name: "root", Kind: KindAdmin}))
	if empty, _ := s.Empty(ctx); empty {
		t.Error("a store with a principal is empty")
	}

	mustNil(t, "reset", s.ResetAuditIndex(ctx))
	if n, _ := s.AuditIndexed(ctx); n != 0 {
		t.Errorf("AuditIndexed after reset = %d", n)
	}
	if _, ok, _ := s.LastIndexed(ctx); ok {
		t.Error("LastIndexed after reset found a row")
	}
	if _, err := s.GetPrincipal(ctx, "root"); err != nil {
		t.Errorf("reset lost other data: %v", err)
	}
	mustNil(t, "index after reset", s.IndexAudit(ctx, rows[:2]))
	if got, _ := s.SearchAudit(ctx, AuditQuery{}); !slices.Equal(got, []uint64{0, 1}) {
		t.Errorf("search after reset = %v", got)
	}
	damage, err = s.CheckIntegrity(ctx)
	mustNil(t, "check", err)
	if len(damage) != 0 {
		t.Errorf("a healthy store is damaged: %+v", damage)
	}
}

// testBytewise: names are compared and ordered by their bytes on every
// backend, whatever the database's locale.
func testBytewise(t *testing.T, s *Store) {
	ctx := t.Context()
	names := []string{"alice", "Zed", "Émile", "bob", "_x", "a b", "B", "a", "ünter", "Ω"}
	sorted := slices.Sorted(slices.Values(names))
	for _, n := range names {
		mustNil(t, "create "+n, s.CreatePrincipal(ctx, Principal{Name: n, Kind: KindSponsor, Created: t0}))
	}
	ps, err := s.ListPrincipals(ctx)
	mustNil(t, "list principals", err)
	var got []string
	for _, p := range ps {
		got = append(got, p.Name)
	}
	if diff := cmp.Diff(sorted, got); diff != "" {
		t.Errorf("principals not in byte order (-want +got):\n%s", diff)
	}
	// Case matters: "alice" and "Alice" are two names.
	mustNil(t, "create Alice", s.CreatePrincipal(ctx, Principal{Name: "Alice", Kind: KindSponsor}))

	for _, n := range names {
		mustNil(t, "create agent "+n, s.CreateAgent(ctx, Agent{Name: n, Sponsor: "alice", Created: t0}))
	}
	as, err := s.ListAgents(ctx, "alice")
	mustNil(t, "list agents", err)
	got = nil
	for _, a := range as {
		got = append(got, a.Name)
	}
	if diff := cmp.Diff(sorted, got); diff != "" {
		t.Errorf("agents not in byte order (-want +got):\n%s", diff)
	}

	def := json.RawMessage(`{}`)
	for _, n := range names {
		_, _, _, err := s.ObservePin(ctx, "mixed", n, "h", def, "first-use")
		mustNil(t, "pin "+n, err)
	}
	pins, err := s.ListPins(ctx, "mixed")
	mustNil(t, "list pins", err)
	got = nil
	for _, p := range pins {
		got = append(got, p.Tool)
	}
	if diff := cmp.Diff(sorted, got); diff != "" {
		t.Errorf("pins not in byte order (-want +got):\n%s", diff)
	}
	// A server pinned before tool sets were kept: its pins, in byte order,
	// are its first set.
	set, _, _, err := s.ObserveToolSet(ctx, "mixed", names)
	mustNil(t, "tool set", err)
	if diff := cmp.Diff(sorted, set.First); diff != "" {
		t.Errorf("first set from pins not in byte order (-want +got):\n%s", diff)
	}

	// Sessions created at the same time: ListSessions breaks ties by id,
	// descending; EndSession lists ended siblings by id.
	mustNil(t, "root", s.CreateSession(ctx, Session{ID: "root", Agent: "alice", Created: t0, Expires: t0.Add(time.Hour)}))
	for _, n := range names {
		mustNil(t, "child "+n, s.CreateSession(ctx, Session{ID: n, Agent: "alice", ParentID: "root", Created: t0.Add(time.Second), Expires: t0.Add(time.Hour)}))
	}
	ss, err := s.ListSessions(ctx, SessionFilter{Agent: "alice"})
	mustNil(t, "list sessions", err)
	got = nil
	for _, x := range ss[:len(ss)-1] {
		got = append(got, x.ID)
	}
	desc := slices.Clone(sorted)
	slices.Reverse(desc)
	if diff := cmp.Diff(desc, got); diff != "" {
		t.Errorf("sessions not in descending byte order (-want +got):\n%s", diff)
	}
	ended, err := s.EndSession(ctx, "root", "done", t0.Add(time.Minute))
	mustNil(t, "end", err)
	if diff := cmp.Diff(append([]string{"root"}, sorted...), ended); diff != "" {
		t.Errorf("ended sessions not in byte order (-want +got):\n%s", diff)
	}
}
