package enforce_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/quota"
	"github.com/ward-dev/ward/internal/store"
)

func openLog(t *testing.T) *audit.Log {
	t.Helper()
	skey, vkey, err := audit.NewNoteKey("test/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	log, err := audit.Open(audit.Config{Dir: filepath.Join(t.TempDir(), "audit"), Origin: "test/audit", Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return log
}

func policies(t *testing.T, src string) func() *policy.Set {
	t.Helper()
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	return func() *policy.Set { return set }
}

func caller(session string) *enforce.Caller {
	return &enforce.Caller{Session: session, Agent: "a", Sponsor: "acme", Groups: []string{"g"}, SPIFFEID: "spiffe://t/agent/a/session/" + session,
		Scope: grant.Scope{Tools: []string{"up.*"}}}
}

func call(name string) *enforce.Operation {
	return &enforce.Operation{Action: policy.ActionCallTool, Method: "tools/call", Server: "up", Name: name, Upstream: strings.TrimPrefix(name, "up.")}
}

// flakyLog appends to a real log until told to fail.
type flakyLog struct {
	*audit.Log
	mu   sync.Mutex
	fail bool
}

func (l *flakyLog) Append(ctx context.Context, e audit.Event) (uint64, error) {
	l.mu.Lock()
	fail := l.fail
	l.mu.Unlock()
	if fail {
		return 0, errors.New("disk full")
	}
	return l.Log.Append(ctx, e)
}

func limiter(t *testing.T, max float64) *quota.Limiter {
	t.Helper()
	l, err := quota.New(quota.Config{Limits: []quota.Limit{{ID: "budget", Scope: quota.ScopeGroup, Window: time.Hour, Max: max}}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestReservationRefundedWhenRecordFails: a call whose decision cannot be
// recorded is denied and uses none of the budget.
func TestReservationRefundedWhenRecordFails(t *testing.T) {
	log := &flakyLog{Log: openLog(t)}
	q := limiter(t, 3)
	p, err := enforce.New(enforce.Config{Policies: policies(t, `permit (principal, action, resource);`), Audit: log, Quotas: q})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log.fail = true
	for range 5 {
		if _, err := p.Check(ctx, caller("s1"), call("up.x")); err == nil {
			t.Fatal("a decision that could not be recorded was not refused")
		}
	}
	if used := q.Usage(quota.ScopeGroup, "g", "budget"); used != 0 {
		t.Fatalf("budget used %v by calls that were never recorded, want 0", used)
	}
	log.fail = false
	for i := range 3 {
		if v, err := p.Check(ctx, caller("s1"), call("up.x")); err != nil || !v.Allow {
			t.Fatalf("call %d: %+v, %v", i, v, err)
		}
	}
	if v, _ := p.Check(ctx, caller("s1"), call("up.x")); v.Allow {
		t.Fatal("the fourth call went over the budget")
	}
}

// TestOutcomesSettleOnlyTheirOwnReservation: an outcome names its
// decision; one naming another session's decision refunds nothing, and an
// outcome the agent's side reports never refunds.
func TestOutcomesSettleOnlyTheirOwnReservation(t *testing.T) {
	q := limiter(t, 2)
	p, err := enforce.New(enforce.Config{Policies: policies(t, `permit (principal, action, resource);`), Audit: openLog(t), Quotas: q})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := p.Check(ctx, caller("A"), call("up.x"))
	if err != nil || !a.Allow {
		t.Fatal(a, err)
	}
	// Session B claims A's call failed: nothing is refunded.
	if err := p.Observe(ctx, caller("B"), call("up.x"), enforce.Outcome{Error: "failed", Decision: a.Event}); err != nil {
		t.Fatal(err)
	}
	if used := q.Usage(quota.ScopeGroup, "g", "budget"); used != 1 {
		t.Fatalf("after another session's outcome, used %v, want 1", used)
	}
	// A's own side reports the failure (ward mcp wrap): still nothing.
	if err := p.Observe(ctx, caller("A"), call("up.x"), enforce.Outcome{Error: "failed", Decision: a.Event, Reported: true}); err != nil {
		t.Fatal(err)
	}
	if used := q.Usage(quota.ScopeGroup, "g", "budget"); used != 1 {
		t.Fatalf("after a reported failure, used %v, want 1", used)
	}
	// Observed by ward itself, a failure is refunded, once.
	b, _ := p.Check(ctx, caller("A"), call("up.x"))
	for range 2 {
		if err := p.Observe(ctx, caller("A"), call("up.x"), enforce.Outcome{Error: "upstream down", Decision: b.Event}); err != nil {
			t.Fatal(err)
		}
	}
	if used := q.Usage(quota.ScopeGroup, "g", "budget"); used != 1 {
		t.Fatalf("after a failure ward saw, used %v, want 1", used)
	}
	if n := p.Reservations(); n != 0 {
		t.Fatalf("%d reservations left", n)
	}
}

// orderedQueue is an approval queue that checks, at every submission, the
// contract the pipeline promises: the decision it names is already in the
// log, recorded as an escalation of this very call.
type orderedQueue struct {
	t   *testing.T
	log *audit.Log
	n   int
}

func (q *orderedQueue) Submit(ctx context.Context, r approval.Request) (approval.Request, error) {
	if r.Decision == 0 || r.Decision >= q.log.Size() {
		q.t.Errorf("submitted with decision event %d, log size %d: the decision is not recorded yet", r.Decision, q.log.Size())
	} else {
		es, err := q.log.Read(r.Decision, r.Decision+1)
		if err != nil || es[0].Type != "decision" || !strings.Contains(string(es[0].Data), `"decision":"escalate"`) || !strings.Contains(string(es[0].Data), r.Name) {
			q.t.Errorf("event %d is not the escalated decision of %s: %v %s", r.Decision, r.Name, err, es[0].Data)
		}
	}
	q.n++
	r.ID, r.State = fmt.Sprintf("req-%d", q.n), approval.StatePending
	return r, nil
}
func (q *orderedQueue) List(context.Context, approval.Filter) ([]approval.Request, error) {
	return nil, nil
}
func (q *orderedQueue) Redeem(context.Context, string, string, string, json.RawMessage) (approval.Request, bool, error) {
	return approval.Request{}, false, nil
}
func (q *orderedQueue) Wait(context.Context, string) (approval.Request, error) {
	return approval.Request{}, errors.New("not waiting")
}

// TestEscalationRecordedBeforeSubmitted: an escalation's decision is
// recorded first; the approval request is submitted after, naming it.
func TestEscalationRecordedBeforeSubmitted(t *testing.T) {
	log := openLog(t)
	// Something in the log first, so that event 0 is not the decision.
	if _, err := log.Append(context.Background(), audit.Event{Type: "server.start"}); err != nil {
		t.Fatal(err)
	}
	q := &orderedQueue{t: t, log: log}
	p, err := enforce.New(enforce.Config{Audit: log, Approvals: q, Policies: policies(t, `
@escalate("1 of group:dba")
permit (principal, action, resource);`)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Check(context.Background(), caller("s1"), call("up.drop"))
	if err != nil || !v.Escalate || len(v.Approvals) != 1 || q.n != 1 {
		t.Fatalf("verdict %+v, %v; %d submitted", v, err, q.n)
	}
}

// TestSink: a tool is a sink unless declared otherwise or its definition
// says it only reads a closed world.
func TestSink(t *testing.T) {
	no, yes := false, true
	for _, tc := range []struct {
		decl     enforce.ToolDeclaration
		declared bool
		def      string
		want     bool
		why      string
	}{
		{def: ``, want: true, why: enforce.SinkDefault},
		{def: `{"annotations":{"readOnlyHint":true}}`, want: true, why: enforce.SinkDefault},
		{def: `{"annotations":{"readOnlyHint":true,"openWorldHint":true}}`, want: true, why: enforce.SinkDefault},
		{def: `{"annotations":{"readOnlyHint":true,"openWorldHint":false}}`, want: false, why: enforce.SinkAnnotated},
		{def: `{"annotations":{"readOnlyHint":"true","openWorldHint":false}}`, want: true, why: enforce.SinkDefault},
		{def: `{"annotations":{"readOnlyHint":true,"openWorldHint":false,"openWorldHint":false}}`, want: true, why: enforce.SinkDefault}, // not strict JSON
		{def: `{"annotations":{"ReadOnlyHint":true,"OpenWorldHint":false}}`, want: true, why: enforce.SinkDefault},                       // names are case-sensitive
		{def: `{"annotations":{"readOnlyHint":true,"openWorldHint":false}}`, decl: enforce.ToolDeclaration{Sink: &yes}, declared: true, want: true, why: enforce.SinkDeclared},
		{def: ``, decl: enforce.ToolDeclaration{Sink: &no}, declared: true, want: false, why: enforce.SinkDeclared},
		{def: `{"annotations":{"readOnlyHint":true,"openWorldHint":false}}`, decl: enforce.ToolDeclaration{Verb: "read"}, declared: true, want: false, why: enforce.SinkAnnotated},
		{def: ``, decl: enforce.ToolDeclaration{Sink: &no}, declared: false, want: true, why: enforce.SinkDefault}, // a declaration not in force
	} {
		if got := enforce.Sink(tc.decl, tc.declared, json.RawMessage(tc.def)); got != tc.want {
			t.Errorf("Sink(%+v, %s) = %v, want %v", tc.decl, tc.def, got, tc.want)
		}
		if got, why := enforce.SinkWhy(tc.decl, tc.declared, json.RawMessage(tc.def)); got != tc.want || why != tc.why {
			t.Errorf("SinkWhy(%+v, %s) = %v, %q; want %v, %q", tc.decl, tc.def, got, why, tc.want, tc.why)
		}
	}
}

// TestFirstToolSetSurvivesRestart: the first set is in the store, so a new
// pipeline (a restarted node) withholds a tool that was not in it.
func TestFirstToolSetSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, store.Config{Path: filepath.Join(t.TempDir(), "ward.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := openLog(t)
	newPipeline := func() *enforce.Pipeline {
		p, err := enforce.New(enforce.Config{Policies: policies(t, `permit (principal, action, resource);`), Audit: log, Pins: st})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	def := func(name string) json.RawMessage {
		return json.RawMessage(`{"name":"` + name + `","inputSchema":{"type":"object"}}`)
	}
	items := []enforce.Item{{Name: "up.a", Upstream: "a", Definition: def("a")}}
	if keep, err := newPipeline().Filter(ctx, caller("s"), enforce.KindTool, "up", items); err != nil || !keep[0] {
		t.Fatal(keep, err)
	}
	p := newPipeline()
	items = append(items, enforce.Item{Name: "up.b", Upstream: "b", Definition: def("b")})
	keep, err := p.Filter(ctx, caller("s"), enforce.KindTool, "up", items)
	if err != nil || !keep[0] || keep[1] {
		t.Fatalf("after a restart, keep = %v, %v; want a and not b", keep, err)
	}
	op := call("up.b")
	op.Definition = def("b")
	if v, _ := p.Check(ctx, caller("s"), op); v.Allow || !strings.Contains(v.Reason, "appeared after") {
		t.Fatalf("b: %+v", v)
	}
}

// TestResolvePath covers how a file argument is read.
func TestResolvePath(t *testing.T) {
	root := t.TempDir()
	root, _ = filepath.EvalSymlinks(root)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a", "f"), nil, 0o644))
	must(os.Symlink("b", filepath.Join(root, "a", "inner")))
	must(os.Symlink("../../..", filepath.Join(root, "a", "b", "out")))
	must(os.Symlink("loop", filepath.Join(root, "a", "loop")))
	must(os.Mkdir(filepath.Join(root, "caf\u00e9"), 0o755))        // NFC
	must(os.Symlink("/etc", filepath.Join(root, "a", "pr\u00e9"))) // NFC, a link out
	must(os.Mkdir(filepath.Join(root, "dup\u00e9"), 0o755))        // NFC
	must(os.Mkdir(filepath.Join(root, "dupe\u0301"), 0o755))       // NFD: two spellings
	roots := []string{root}
	for _, tc := range []struct{ in, want, err string }{
		{in: root + "/cafe\u0301/x", want: root + "/caf\u00e9/x"}, // NFD finds the NFC directory
		{in: root + "/\u212a", want: root + "/\u212a"},            // nothing equivalent: as written
		{in: root + "/a/pre\u0301/passwd", err: "outside"},        // NFD reaches the link out
		{in: root + "/dupe\u0301x", want: root + "/dupe\u0301x"},
		{in: root + "/dup\u00e9/x", want: root + "/dup\u00e9/x"}, // the exact match wins
		{in: root + "/DUP\u00e9", want: root + "/DUP\u00e9"},
		{in: root + "/a/f", want: root + "/a/f"},
		{in: "a/f", want: root + "/a/f"},
		{in: root + "/a/./b/../f", want: root + "/a/f"},
		{in: root + "/a/inner/new.txt", want: root + "/a/b/new.txt"},
		{in: root + "/a/new/deeper.txt", want: root + "/a/new/deeper.txt"},
		{in: root + "/a/b/out", err: "outside"},
		{in: root + "/a/b/out/etc", err: "outside"},
		{in: "../x", err: "outside"},
		{in: "/etc/passwd", err: "outside"},
		{in: root + "/a/loop", err: "cannot resolve"},
		{in: "", err: "empty"},
		{in: " " + root, err: "spaces or quotes"},
		{in: root + "\n", err: "spaces or quotes"},
		{in: "'" + root + "'", err: "spaces or quotes"},
		{in: "~/x", err: "~"},
		{in: root + `\..\x`, err: "backslash"},
		{in: root + "/a\x00b", err: "control"},
	} {
		got, err := enforce.ResolvePath(tc.in, roots)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ResolvePath(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ResolvePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzResolvePath: whatever ResolvePath accepts is absolute, clean, under
// a root, and a fixed point (resolving it again gives itself: the server's
// own resolution leaves it unchanged).
func FuzzResolvePath(f *testing.F) {
	root := f.TempDir()
	root, _ = filepath.EvalSymlinks(root)
	os.MkdirAll(filepath.Join(root, "a", "b"), 0o755)
	os.Symlink("../../..", filepath.Join(root, "a", "b", "out"))
	os.Symlink("b", filepath.Join(root, "a", "in"))
	for _, s := range []string{"a", "a/b/out/x", "../a", "a/in/x", "/etc", "a//b/./../in", " a", "a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := enforce.ResolvePath(p, []string{root})
		if err != nil {
			return
		}
		if !filepath.IsAbs(got) || filepath.Clean(got) != got || !(got == root || strings.HasPrefix(got, root+"/")) {
			t.Fatalf("ResolvePath(%q) = %q: not absolute, clean and under the root", p, got)
		}
		if again, err := enforce.ResolvePath(got, []string{root}); err != nil || again != got {
			t.Fatalf("ResolvePath(%q) = %q, but resolving that gives %q, %v", p, got, again, err)
		}
	})
}

// TestNoPinBeforeToolSet: a call decided before its server's tool list was
// recorded (a race with the listing that found the tool) must not leave a
// pin behind: one made then would be judged against no set and stay
// pending for ever.
func TestNoPinBeforeToolSet(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, store.Config{Path: filepath.Join(t.TempDir(), "ward.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := enforce.New(enforce.Config{Policies: policies(t, `permit (principal, action, resource);`), Audit: openLog(t), Pins: st})
	if err != nil {
		t.Fatal(err)
	}
	def := json.RawMessage(`{"name":"echo","inputSchema":{"type":"object"}}`)
	op := call("up.echo")
	op.Definition = def
	if v, _ := p.Check(ctx, caller("s"), op); v.Allow || !strings.Contains(v.Reason, "has not been recorded") {
		t.Fatalf("before the listing: %+v", v)
	}
	if _, err := st.GetPin(ctx, "up", "echo"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a pin was made before the tool set: %v", err)
	}
	if keep, err := p.Filter(ctx, caller("s"), enforce.KindTool, "up", []enforce.Item{{Name: "up.echo", Upstream: "echo", Definition: def}}); err != nil || !keep[0] {
		t.Fatal(keep, err)
	}
	if v, err := p.Check(ctx, caller("s"), op); err != nil || !v.Allow {
		t.Fatalf("after the listing: %+v %v", v, err)
	}
}

// TestCurrentAskedBeforeAllowing: a call is allowed only if the caller is
// still current when its decision is recorded, after everything Check
// waited on (here the monitor, during which the session is revoked, as a
// node's change feed does while a call waits on a database cut off): the
// call is then denied with Current's reason, recorded as denied, and its
// budget refunded. A call whose caller stays current is allowed.
func TestCurrentAskedBeforeAllowing(t *testing.T) {
	log := &capturingLog{Log: openLog(t)}
	q := limiter(t, 5)
	var mu sync.Mutex
	revoked := map[string]bool{}
	p, err := enforce.New(enforce.Config{Policies: policies(t, `permit (principal, action, resource);`), Audit: log, Quotas: q,
		Watch: enforce.WatcherFunc(func(ctx context.Context, c *enforce.Caller, op *enforce.Operation, outcome string) string {
			if op.Name == "up.revoked-meanwhile" {
				mu.Lock()
				revoked[c.Session] = true
				mu.Unlock()
			}
			return ""
		}),
		Current: func(c *enforce.Caller) error {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range append([]string{c.Session}, c.Lineage...) {
				if revoked[s] {
					return fmt.Errorf("session %s has ended", s)
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := p.Check(ctx, caller("s1"), call("up.x")); err != nil || !v.Allow {
		t.Fatalf("a current caller: %+v, %v", v, err)
	}
	v, err := p.Check(ctx, caller("s2"), call("up.revoked-meanwhile"))
	if err != nil || v.Allow || !strings.Contains(v.Reason, "session s2 has ended") {
		t.Fatalf("a caller revoked while its call waited: %+v, %v", v, err)
	}
	if used := q.Usage(quota.ScopeGroup, "g", "budget"); used != 1 {
		t.Fatalf("budget used %v, want 1 (the denied call refunded)", used)
	}
	// A sub-agent of the revoked session: its lineage is checked too.
	child := caller("s3")
	child.Lineage = []string{"s2"}
	if v, _ := p.Check(ctx, child, call("up.x")); v.Allow {
		t.Fatal("a sub-agent of a revoked session was allowed")
	}
	// What the log says of the revoked call: denied, with the reason.
	var got []string
	for _, e := range log.events {
		var d struct{ Decision, Reason string }
		json.Unmarshal(e.Data, &d)
		got = append(got, e.Session+" "+d.Decision+" "+d.Reason)
	}
	want := []string{"s1 allow ", "s2 deny session s2 has ended", "s3 deny session s2 has ended"}
	if len(got) != len(want) {
		t.Fatalf("recorded %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) || (i == 0 && strings.Contains(got[i], "ended")) {
			t.Fatalf("event %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// capturingLog appends to a real log and keeps what it appended.
type capturingLog struct {
	*audit.Log
	events []audit.Event
}

func (l *capturingLog) Append(ctx context.Context, e audit.Event) (uint64, error) {
	l.events = append(l.events, e)
	return l.Log.Append(ctx, e)
}

// TestForwardingDecisionDurableByObserve: for an operation its caller
// forwards at once (ward's proxy), an allowing Check returns once the
// decision is written, not yet durable; Observe returns only once the
// decision and the result are both durable. Without Forwarding, and for a
// denial, the decision is durable when Check returns.
func TestForwardingDecisionDurableByObserve(t *testing.T) {
	skey, vkey, err := audit.NewNoteKey("test/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	// An unsynced decision is synced only by the next durable append.
	log, err := audit.Open(audit.Config{Dir: filepath.Join(t.TempDir(), "audit"), Origin: "test/audit", Signer: signer, Verifier: verifier,
		UnsyncedDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	p, err := enforce.New(enforce.Config{Policies: policies(t, `permit (principal, action, resource == Tool::"up.x");`), Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	durableAtCheck := func(op *enforce.Operation, allow bool) {
		t.Helper()
		v, err := p.Check(ctx, caller("s1"), op)
		if err != nil || v.Allow != allow {
			t.Fatalf("%s: %+v, %v", op.Name, v, err)
		}
		if log.Size() != v.Event+1 {
			t.Fatalf("%s (forwarding %v): decision %d not durable when Check returned (size %d)", op.Name, op.Forwarding, v.Event, log.Size())
		}
	}
	durableAtCheck(call("up.x"), true)
	no := call("up.no")
	no.Forwarding = true
	durableAtCheck(no, false)

	op := call("up.x")
	op.Forwarding = true
	v, err := p.Check(ctx, caller("s1"), op)
	if err != nil || !v.Allow {
		t.Fatalf("%+v, %v", v, err)
	}
	if log.Size() > v.Event {
		t.Fatalf("a forwarded call's decision was synced before Check returned (size %d, decision %d): nothing shares its sync", log.Size(), v.Event)
	}
	if err := p.Observe(ctx, caller("s1"), op, enforce.Outcome{Decision: v.Event, Forwarded: true, Answered: true}); err != nil {
		t.Fatal(err)
	}
	if log.Size() != v.Event+2 {
		t.Fatalf("after Observe: size %d, want decision %d and its result durable", log.Size(), v.Event)
	}
	evs, err := log.Read(v.Event, v.Event+2)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Type != "decision" || evs[1].Type != "result" {
		t.Fatalf("events %d, %d: %s, %s", v.Event, v.Event+1, evs[0].Type, evs[1].Type)
	}
}
