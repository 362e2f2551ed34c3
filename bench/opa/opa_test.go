// Package opa compares ward's decision core with raw cedar-go and with Open
// Policy Agent on equivalent policy sets. It is a separate module so that
// OPA's large dependency tree stays out of ward's build:
//
//	cd bench/opa && go test -run '^$' -bench . -benchmem
//
// The same generated rules are written as Cedar (for ward and raw cedar-go)
// and as Rego (for OPA): a permit per (group, tool) pair and a forbid per
// tool when an argument exceeds a threshold. Before timing, every engine
// must agree on a sample of requests, or the benchmark fails.
package opa

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/ward-dev/ward/internal/policy"
)

type rule struct {
	forbid    bool
	group     string
	tool      string
	threshold int
}

func generate(n int) []rule {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	rules := make([]rule, n)
	for i := range rules {
		tool := fmt.Sprintf("s%d.t%d", r.IntN(20), r.IntN(50))
		if i%10 == 9 {
			rules[i] = rule{forbid: true, tool: tool, threshold: r.IntN(100)}
		} else {
			rules[i] = rule{group: fmt.Sprintf("g%d", r.IntN(30)), tool: tool}
		}
	}
	return rules
}

func cedarText(rules []rule) string {
	var b strings.Builder
	for i, r := range rules {
		if r.forbid {
			fmt.Fprintf(&b, "@id(\"r%d\") forbid (principal, action == Action::\"call_tool\", resource == Tool::%q) when { context.arguments has n && context.arguments.n > %d };\n", i, r.tool, r.threshold)
		} else {
			fmt.Fprintf(&b, "@id(\"r%d\") permit (principal in Group::%q, action == Action::\"call_tool\", resource == Tool::%q);\n", i, r.group, r.tool)
		}
	}
	return b.String()
}

func regoText(rules []rule) string {
	var b strings.Builder
	b.WriteString("package ward\n\nimport rego.v1\n\ndefault allow := false\n\nallow if {\n\tcount(deny) == 0\n\tcount(permit) > 0\n}\n\n")
	for i, r := range rules {
		if r.forbid {
			fmt.Fprintf(&b, "deny contains \"r%d\" if {\n\tinput.action == \"call_tool\"\n\tinput.resource == %q\n\tinput.arguments.n > %d\n}\n\n", i, r.tool, r.threshold)
		} else {
			fmt.Fprintf(&b, "permit contains \"r%d\" if {\n\tinput.action == \"call_tool\"\n\tinput.resource == %q\n\t%q in input.groups\n}\n\n", i, r.tool, r.group)
		}
	}
	return b.String()
}

type request struct {
	groups []string
	tool   string
	n      int
}

func requests(k int) []request {
	r := rand.New(rand.NewPCG(99, 1))
	out := make([]request, k)
	for i := range out {
		out[i] = request{groups: []string{fmt.Sprintf("g%d", r.IntN(30)), fmt.Sprintf("g%d", r.IntN(30))},
			tool: fmt.Sprintf("s%d.t%d", r.IntN(20), r.IntN(50)), n: r.IntN(120)}
	}
	return out
}

func (q request) ward() policy.Request {
	server, _, _ := strings.Cut(q.tool, ".")
	return policy.Request{Session: "s1", Agent: "a1", Groups: q.groups, Action: policy.ActionCallTool, Server: server, Name: q.tool,
		Arguments: json.RawMessage(fmt.Sprintf(`{"n": %d}`, q.n))}
}

func (q request) cedar() (types.EntityMap, cedar.Request) {
	session := types.NewEntityUID("Session", "s1")
	agent := types.NewEntityUID("Agent", "a1")
	server, _, _ := strings.Cut(q.tool, ".")
	tool := types.NewEntityUID("Tool", types.String(q.tool))
	var groups []types.EntityUID
	for _, g := range q.groups {
		groups = append(groups, types.NewEntityUID("Group", types.String(g)))
	}
	ents := types.EntityMap{
		session: {UID: session, Parents: types.NewEntityUIDSet(agent), Attributes: types.NewRecord(types.RecordMap{"agent": agent, "depth": types.Long(0)})},
		agent:   {UID: agent, Parents: types.NewEntityUIDSet(groups...)},
		tool:    {UID: tool, Parents: types.NewEntityUIDSet(types.NewEntityUID("Server", types.String(server)))},
	}
	return ents, cedar.Request{Principal: session, Action: types.NewEntityUID("Action", "call_tool"), Resource: tool,
		Context: types.NewRecord(types.RecordMap{
			"arguments": types.NewRecord(types.RecordMap{"n": types.Long(q.n)}),
			"server":    types.String(server), "name": types.String(strings.TrimPrefix(q.tool, server+".")),
		})}
}

func (q request) input() map[string]any {
	return map[string]any{"action": "call_tool", "resource": q.tool, "groups": q.groups, "arguments": map[string]any{"n": q.n}}
}

type engines struct {
	ward  *policy.Set
	cedar *cedar.PolicySet
	opa   rego.PreparedEvalQuery
}

func setup(tb testing.TB, n int) engines {
	rules := generate(n)
	src := cedarText(rules)
	set, err := policy.Parse(map[string][]byte{"gen.cedar": []byte(src)})
	if err != nil {
		tb.Fatal(err)
	}
	ps, err := cedar.NewPolicySetFromBytes("gen.cedar", []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	pq, err := rego.New(rego.Query("data.ward.allow"), rego.Module("ward.rego", regoText(rules))).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	e := engines{ward: set, cedar: ps, opa: pq}
	// The three must agree before their speed means anything.
	allowed := 0
	for _, q := range requests(500) {
		w := e.ward.Decide(q.ward()).Allow
		ents, creq := q.cedar()
		dec, _ := cedar.Authorize(e.cedar, ents, creq)
		rs, err := e.opa.Eval(context.Background(), rego.EvalInput(q.input()))
		if err != nil || len(rs) != 1 {
			tb.Fatalf("opa: %v %v", rs, err)
		}
		o := rs[0].Expressions[0].Value.(bool)
		if w != (dec == cedar.Allow) || w != o {
			tb.Fatalf("engines disagree on %+v: ward %v, cedar %v, opa %v", q, w, dec, o)
		}
		if w {
			allowed++
		}
	}
	if n >= 100 && allowed == 0 {
		tb.Fatal("no sample request is allowed: the comparison would prove little")
	}
	return e
}

func TestEnginesAgree(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		setup(t, n)
	}
}

func BenchmarkDecide(b *testing.B) {
	qs := requests(256)
	for _, n := range []int{10, 100, 1000} {
		e := setup(b, n)
		b.Run(fmt.Sprintf("ward/policies=%d", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				e.ward.Decide(qs[i%len(qs)].ward())
				i++
			}
		})
		b.Run(fmt.Sprintf("cedar-go/policies=%d", n), func(b *testing.B) {
			type prepared struct {
				ents types.EntityMap
				req  cedar.Request
			}
			ps := make([]prepared, len(qs))
			for i, q := range qs {
				ps[i].ents, ps[i].req = q.cedar()
			}
			i := 0
			for b.Loop() {
				p := ps[i%len(ps)]
				cedar.Authorize(e.cedar, p.ents, p.req)
				i++
			}
		})
		b.Run(fmt.Sprintf("opa/policies=%d", n), func(b *testing.B) {
			inputs := make([]map[string]any, len(qs))
			for i, q := range qs {
				inputs[i] = q.input()
			}
			ctx := context.Background()
			i := 0
			for b.Loop() {
				if _, err := e.opa.Eval(ctx, rego.EvalInput(inputs[i%len(inputs)])); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
