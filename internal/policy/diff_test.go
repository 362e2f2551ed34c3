package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/batch"
	"github.com/google/go-cmp/cmp"
)

// reference decides req with cedar.Authorize over a cedar.PolicySet holding
// the whole set, with the same entities and request Decide builds.
func reference(t *testing.T, full *cedar.PolicySet, req Request) (types.Decision, types.Diagnostic) {
	t.Helper()
	args, err := argumentsValue(req.Arguments)
	if err != nil {
		t.Fatalf("arguments: %v", err)
	}
	ents, creq, msg := buildRequest(req, args)
	if msg != "" {
		t.Fatalf("request: %s", msg)
	}
	return cedar.Authorize(full, ents, creq)
}

func fullPolicySet(s *Set) *cedar.PolicySet {
	ps := cedar.NewPolicySet()
	for _, e := range s.entries {
		ps.Add(e.id, e.policy)
	}
	return ps
}

func sortedIDs[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	slices.Sort(out)
	return out
}

// TestDifferential checks that the indexed Decide gives cedar.Authorize's
// decision, determining policies and evaluation errors on random policy
// sets and requests, and that MayAllow equals batch evaluation over the
// whole set and never hides a tool some arguments allow.
func TestDifferential(t *testing.T) {
	const sets, requests = 150, 200
	w := world{servers: 4, tools: 3, groups: 4, agents: 4}
	var allows, denies, forbids, errs, escalations int
	byAction := map[Action]map[string]int{} // action → outcome → count
	for seed := range uint64(sets) {
		r := rand.New(rand.NewPCG(seed, 0x3a7d))
		n := pick(r, 1, 5, 20, 80)
		src := randomPolicies(r, w, n)
		set, err := Parse(map[string][]byte{"gen.cedar": []byte(src)})
		if err != nil {
			t.Fatalf("seed %d: Parse: %v\n%s", seed, err, src)
		}
		full := fullPolicySet(set)
		for range requests {
			req := randomRequest(r, w)
			got := set.Decide(req)
			want := referenceDecision(t, full, req)
			if diff := cmp.Diff(want, comparable(got)); diff != "" {
				t.Fatalf("seed %d: request %+v (args %s): Decide differs from cedar.Authorize (-want +got):\n%s\npolicies:\n%s",
					seed, req, req.Arguments, diff, src)
			}
			if byAction[req.Action] == nil {
				byAction[req.Action] = map[string]int{}
			}
			byAction[req.Action][got.Outcome()]++
			switch {
			case got.Escalate:
				escalations++
			case got.Allow:
				allows++
			case len(got.Reasons) > 0:
				forbids++
			default:
				denies++
			}
			if len(got.Errors) > 0 {
				errs++
			}

			may := set.MayAllow(req)
			if wantMay := batchMayAllow(t, full, req); may != wantMay {
				t.Fatalf("seed %d: request %+v: MayAllow = %v, batch over the whole set = %v\npolicies:\n%s", seed, req, may, wantMay, src)
			}
			if got.Allow && !may {
				t.Fatalf("seed %d: request %+v (args %s) is allowed but MayAllow hides it\npolicies:\n%s", seed, req, req.Arguments, src)
			}
		}
	}
	// The generator must exercise every outcome, or the test proves little.
	t.Logf("allow %d, escalate %d, forbid %d, default deny %d, with errors %d", allows, escalations, forbids, denies, errs)
	if allows == 0 || forbids == 0 || denies == 0 || errs == 0 || escalations == 0 {
		t.Fatalf("generator does not cover all outcomes: allow %d, forbid %d, default deny %d, errors %d", allows, forbids, denies, errs)
	}
	for _, a := range []Action{ActionCallTool, ActionReadResource, ActionGetPrompt, ActionHTTPRequest, ActionExec} {
		t.Logf("%s: %v", a, byAction[a])
		if o := byAction[a]; o["allow"] == 0 || o["deny"] == 0 || o["escalate"] == 0 {
			t.Errorf("generator does not cover every outcome of %s: %v", a, o)
		}
	}
}

// decisionSummary is what the differential tests compare: outcome,
// determining policies and errors, in a canonical order.
type decisionSummary struct {
	Allow    bool
	Escalate bool
	Reasons  []string
	Errors   []string
}

func comparable(d Decision) decisionSummary {
	return decisionSummary{
		Allow:    d.Allow,
		Escalate: d.Escalate,
		Reasons:  sortedIDs(d.Reasons, func(r Reason) string { return r.PolicyID }),
		Errors:   sortedIDs(d.Errors, func(s string) string { return s }),
	}
}

// referenceDecision is what Decide must answer for req, computed with
// cedar.Authorize over the whole set and ward's two rules on top: @escalate
// and forbids that fail to evaluate.
func referenceDecision(t *testing.T, full *cedar.PolicySet, req Request) decisionSummary {
	t.Helper()
	dec, diag := reference(t, full, req)
	allow, escalate := referenceEscalation(t, full, req, dec, diag)
	failed := referenceFailedForbids(full, diag)
	if (allow || escalate) && len(failed) > 0 {
		// ward denies when a forbid failed to evaluate.
		allow, escalate = false, false
		diag.Reasons = failed
	}
	return decisionSummary{
		Allow:    allow,
		Escalate: escalate,
		Reasons:  sortedIDs(diag.Reasons, func(r types.DiagnosticReason) string { return string(r.PolicyID) }),
		Errors: sortedIDs(diag.Errors, func(e types.DiagnosticError) string {
			return fmt.Sprintf("%s: policy %q: %s", formatPosition(e.Position), e.PolicyID, e.Message)
		}),
	}
}

func batchMayAllow(t *testing.T, full *cedar.PolicySet, req Request) bool {
	t.Helper()
	ents, creq, msg := buildRequest(req, batch.Ignore())
	if msg != "" {
		t.Fatalf("request: %s", msg)
	}
	allow := false
	err := batch.Authorize(context.Background(), full, ents, batch.Request{
		Principal: creq.Principal, Action: creq.Action, Resource: creq.Resource, Context: creq.Context,
	}, func(r batch.Result) error {
		allow = allow || r.Decision == cedar.Allow
		return nil
	})
	if err != nil {
		t.Fatalf("batch.Authorize: %v", err)
	}
	return allow
}

// referenceEscalation applies the @escalate rules to cedar's decision over the
// whole, unindexed set: a plain forbid denies; @escalate forbids escalate if
// some permit applies; only @escalate permits applying escalates.
func referenceEscalation(t *testing.T, full *cedar.PolicySet, req Request, dec types.Decision, diag types.Diagnostic) (allow, escalate bool) {
	t.Helper()
	annotated := func(id cedar.PolicyID) bool {
		p := full.Get(id)
		_, ok := p.Annotations()["escalate"]
		return ok
	}
	if len(diag.Reasons) == 0 {
		return dec == cedar.Allow, false
	}
	for _, r := range diag.Reasons {
		if !annotated(r.PolicyID) {
			return dec == cedar.Allow, false
		}
	}
	if dec == cedar.Allow {
		return false, true
	}
	permits := cedar.NewPolicySet()
	for id, p := range full.All() {
		if p.Effect() == cedar.Permit {
			permits.Add(id, p)
		}
	}
	pdec, _ := reference(t, permits, req)
	return false, pdec == cedar.Allow
}

// referenceFailedForbids lists the forbids among the policies that failed to
// evaluate.
func referenceFailedForbids(full *cedar.PolicySet, diag types.Diagnostic) []types.DiagnosticReason {
	var out []types.DiagnosticReason
	for _, e := range diag.Errors {
		if p := full.Get(e.PolicyID); p != nil && p.Effect() == cedar.Forbid {
			out = append(out, types.DiagnosticReason{PolicyID: e.PolicyID, Position: e.Position})
		}
	}
	return out
}
