package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testSealed: a sealed blob is created once, by one of several racing
// callers, and every caller gets that one.
func testSealed(t *testing.T, b backend) {
	a, reopen := b.open(t)
	other := reopen()
	ctx := t.Context()
	var calls atomic.Int32
	const n = 8
	got := make([][]byte, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = other
			}
			blob, c, err := s.Sealed(ctx, "keys", func() ([]byte, error) {
				calls.Add(1)
				return fmt.Appendf(nil, "blob of caller %d", i), nil
			})
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			got[i], created[i] = blob, c
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("create ran %d times, want once", calls.Load())
	}
	ncreated := 0
	for i := range n {
		if created[i] {
			ncreated++
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("caller %d got %q, caller 0 %q", i, got[i], got[0])
		}
	}
	if ncreated != 1 {
		t.Fatalf("%d callers say they created the blob", ncreated)
	}
	// A failing create stores nothing, and the error is the caller's.
	boom := errors.New("boom")
	if _, _, err := a.Sealed(ctx, "other", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failing create: %v", err)
	}
	if _, _, err := a.Sealed(ctx, "other", func() ([]byte, error) { return nil, nil }); err == nil {
		t.Fatal("an empty blob was stored")
	}
	blob, c, err := a.Sealed(ctx, "other", func() ([]byte, error) { return []byte("x"), nil })
	if err != nil || !c || string(blob) != "x" {
		t.Fatalf("after failed creates: %q %v %v", blob, c, err)
	}
}

func TestSQLiteSealed(t *testing.T) { testSealed(t, sqliteBackend()) }

func TestSQLiteUpdateSealed(t *testing.T) { testUpdateSealed(t, sqliteBackend()) }

func TestPostgresUpdateSealed(t *testing.T) { testUpdateSealed(t, postgresBackend()) }

// testUpdateSealed: updates of a sealed blob made at once from two stores
// apply one after the other, each to the result of the one before; an
// update that returns nil or fails changes nothing; a blob that does not
// exist is not created. On PostgreSQL each change is on the feed.
func testUpdateSealed(t *testing.T, b backend) {
	a, reopen := b.open(t)
	other := reopen()
	ctx := t.Context()
	if _, _, err := a.UpdateSealed(ctx, "keys", func(old []byte) ([]byte, error) { return []byte("x"), nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing blob: %v", err)
	}
	if _, _, err := a.Sealed(ctx, "keys", func() ([]byte, error) { return []byte("0"), nil }); err != nil {
		t.Fatal(err)
	}
	v0, _ := a.ChangeVersion(ctx)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = other
			}
			_, changed, err := s.UpdateSealed(ctx, "keys", func(old []byte) ([]byte, error) {
				return append(bytes.Clone(old), '+'), nil
			})
			if err != nil || !changed {
				t.Errorf("update %d: %v %v", i, changed, err)
			}
		}()
	}
	wg.Wait()
	blob, _, err := other.Sealed(ctx, "keys", func() ([]byte, error) { return nil, errors.New("gone") })
	if err != nil || string(blob) != "0"+strings.Repeat("+", n) {
		t.Fatalf("after %d concurrent updates: %q %v", n, blob, err)
	}
	boom := errors.New("boom")
	if _, _, err := a.UpdateSealed(ctx, "keys", func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failing update: %v", err)
	}
	if got, changed, err := a.UpdateSealed(ctx, "keys", func([]byte) ([]byte, error) { return nil, nil }); err != nil || changed || !bytes.Equal(got, blob) {
		t.Fatalf("no-op update: %q %v %v", got, changed, err)
	}
	if _, _, err := a.UpdateSealed(ctx, "keys", func([]byte) ([]byte, error) { return make([]byte, MaxSealedLen+1), nil }); err == nil {
		t.Fatal("an oversized blob was stored")
	}
	if !a.pg {
		return
	}
	v, _ := a.ChangeVersion(ctx)
	changes, err := a.ChangesSince(ctx, v0, 100)
	if err != nil || v != v0+n || len(changes) != n {
		t.Fatalf("feed: version %d after %d, %d changes, %v", v, v0, len(changes), err)
	}
	for _, c := range changes {
		if c.Kind != ChangeKeys || c.Subject != "keys" {
			t.Fatalf("change %+v", c)
		}
	}
}

func TestPostgresSealed(t *testing.T) { testSealed(t, postgresBackend()) }

// TestPostgresChangeFeed: ending a session, quarantining an agent and
// deciding an approval each number a change, in commit order without
// gaps, readable from another store over the schema, and notified to its
// listener.
func TestPostgresChangeFeed(t *testing.T) {
	schema := newPostgresSchema(t)
	a := openPostgres(t, schema)
	b := openPostgres(t, schema)
	ctx := t.Context()
	l, err := b.ListenChanges(ctx)
	mustNil(t, "listen", err)
	defer l.Close()
	v0, err := b.ChangeVersion(ctx)
	mustNil(t, "version", err)
	if v0 != 0 {
		t.Fatalf("fresh schema's version %d", v0)
	}
	mustNil(t, "principal", a.CreatePrincipal(ctx, Principal{Name: "alice", Kind: KindSponsor}))
	mustNil(t, "agent", a.CreateAgent(ctx, Agent{Name: "bot", Sponsor: "alice"}))
	exp := time.Now().Add(time.Hour)
	for _, id := range []string{"s1", "s2", "s3"} {
		mustNil(t, "session", a.CreateSession(ctx, Session{ID: id, Agent: "bot", Expires: exp}))
	}
	if v, _ := b.ChangeVersion(ctx); v != 0 {
		t.Fatalf("creating records made changes: version %d", v)
	}
	_, err = a.EndSession(ctx, "s1", "done", time.Time{})
	mustNil(t, "end", err)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seq, err := l.Wait(wctx)
	mustNil(t, "wait", err)
	if seq != 1 {
		t.Fatalf("notified version %d, want 1", seq)
	}
	mustNil(t, "quarantine", a.SetAgentStatus(ctx, "bot", AgentQuarantined))
	mustNil(t, "trust unchanged", a.SetAgentStatus(ctx, "bot", AgentQuarantined))
	// Concurrent ends are numbered one after the other.
	var wg sync.WaitGroup
	for _, id := range []string{"s2", "s3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.EndSession(ctx, id, "quarantined", time.Time{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	v, err := b.ChangeVersion(ctx)
	mustNil(t, "version", err)
	if v != 4 {
		t.Fatalf("version %d after 4 changes", v)
	}
	got, err := b.ChangesSince(ctx, 0, 0)
	mustNil(t, "since", err)
	if len(got) != 4 {
		t.Fatalf("changes: %+v", got)
	}
	kinds := map[string]int{}
	for i, c := range got {
		if c.Seq != uint64(i+1) {
			t.Fatalf("change %d numbered %d", i, c.Seq)
		}
		kinds[c.Kind+" "+c.Subject]++
	}
	for _, want := range []string{"session s1", "agent bot", "session s2", "session s3"} {
		if kinds[want] != 1 {
			t.Fatalf("changes %v lack %q", kinds, want)
		}
	}
	later, err := b.ChangesSince(ctx, 2, 0)
	mustNil(t, "since 2", err)
	if len(later) != 2 || later[0].Seq != 3 {
		t.Fatalf("since 2: %+v", later)
	}
	n, err := a.PruneChanges(ctx, time.Now().Add(time.Minute))
	mustNil(t, "prune", err)
	if n != 4 {
		t.Fatalf("pruned %d", n)
	}
	if v, _ := b.ChangeVersion(ctx); v != 4 {
		t.Fatalf("pruning changed the version to %d", v)
	}
}

// TestPostgresAuditIndexByNode: two nodes index their own logs in one
// schema without meeting.
func TestPostgresAuditIndexByNode(t *testing.T) {
	schema := newPostgresSchema(t)
	ctx := t.Context()
	open := func(node string) *Store {
		s, err := OpenPostgres(ctx, Config{DSN: testPostgresDSN(), Schema: schema, MaxConns: 2, Node: node})
		mustNil(t, "open", err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("node-a"), open("node-b")
	row := func(i uint64, typ string) AuditRow {
		return AuditRow{Index: i, Time: t0, Type: typ, Session: "s"}
	}
	mustNil(t, "index a", a.IndexAudit(ctx, []AuditRow{row(0, "a0"), row(1, "a1"), row(2, "a2")}))
	mustNil(t, "index b", b.IndexAudit(ctx, []AuditRow{row(0, "b0")}))
	na, _ := a.AuditIndexed(ctx)
	nb, _ := b.AuditIndexed(ctx)
	if na != 3 || nb != 1 {
		t.Fatalf("indexed: a %d, b %d", na, nb)
	}
	last, ok, err := b.LastIndexed(ctx)
	if err != nil || !ok || last.Type != "b0" {
		t.Fatalf("b's last: %+v %v %v", last, ok, err)
	}
	found, err := b.SearchAudit(ctx, AuditQuery{Session: "s"})
	mustNil(t, "search", err)
	if len(found) != 1 || found[0] != 0 {
		t.Fatalf("b finds %v", found)
	}
	if _, err := OpenPostgres(ctx, Config{DSN: testPostgresDSN(), Schema: schema, Node: "Bad Name"}); err == nil {
		t.Fatal("a bad node name was accepted")
	}
	mustNil(t, "reset", a.ResetAuditIndex(ctx))
	mustNil(t, "index after reset", a.IndexAudit(ctx, []AuditRow{row(0, "a0")}))
	mustNil(t, "index b after reset", b.IndexAudit(ctx, []AuditRow{row(0, "b0")}))
}

// TestPostgresLabelFeed: labels added and removed are on the change feed,
// and read back.
func TestPostgresLabelFeed(t *testing.T) {
	schema := newPostgresSchema(t)
	a := openPostgres(t, schema)
	ctx := t.Context()
	mustNil(t, "add", a.AddSessionLabels(ctx, "s1", "untrusted", "private"))
	mustNil(t, "add again", a.AddSessionLabels(ctx, "s1", "untrusted"))
	mustNil(t, "remove", a.RemoveSessionLabel(ctx, "s1", "private"))
	mustNil(t, "remove absent", a.RemoveSessionLabel(ctx, "s1", "private"))
	got, err := a.ChangesSince(ctx, 0, 0)
	mustNil(t, "changes", err)
	var seen []string
	for _, c := range got {
		session, label, ok := SplitLabelSubject(c.Subject)
		if !ok || session != "s1" {
			t.Fatalf("subject %q", c.Subject)
		}
		seen = append(seen, c.Kind+" "+label)
	}
	want := []string{"label private", "label untrusted", "unlabel private"}
	if len(seen) != 3 || !(seen[0] == want[0] && seen[1] == want[1] || seen[0] == want[1] && seen[1] == want[0]) || seen[2] != want[2] {
		t.Fatalf("changes %v, want %v in some order then the removal", seen, want)
	}
	labels, err := a.SessionLabels(ctx, "s1")
	mustNil(t, "labels", err)
	if len(labels) != 1 || labels[0] != "untrusted" {
		t.Fatalf("labels %v", labels)
	}
}
