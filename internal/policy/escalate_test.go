package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEscalation(t *testing.T) {
	src := `
@id("db-read") permit (principal, action == Action::"call_tool", resource == Tool::"db.query");
@id("db-delete") permit (principal, action == Action::"call_tool", resource == Tool::"db.delete");
@id("big-deletes") @escalate("1 of group:dba") @escalate_timeout("15m")
forbid (principal, action == Action::"call_tool", resource == Tool::"db.delete")
when { context.arguments has rows && context.arguments.rows > 10 };
@id("payments") @escalate("2 of group:finance, group:cfo")
permit (principal, action == Action::"call_tool", resource == Tool::"pay.send");
@id("no-payments-by-sub-agents") forbid (principal, action == Action::"call_tool", resource == Tool::"pay.send") when { principal.depth > 0 };
@id("drop-needs-approval") @escalate("1 of group:dba")
forbid (principal, action == Action::"call_tool", resource == Tool::"db.drop");
`
	set, err := Parse(map[string][]byte{"e.cedar": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	req := func(tool string, depth int, args string) Request {
		return Request{Session: "s", Agent: "a", Sponsor: "sp", Depth: depth, Action: ActionCallTool, Server: strings.Split(tool, ".")[0], Name: tool, Arguments: json.RawMessage(args)}
	}
	cases := []struct {
		name    string
		req     Request
		outcome string
		quorum  int
	}{
		{"plain permit", req("db.query", 0, `{}`), "allow", 0},
		{"small delete", req("db.delete", 0, `{"rows": 3}`), "allow", 0},
		{"big delete escalates", req("db.delete", 0, `{"rows": 500}`), "escalate", 1},
		{"escalated permit", req("pay.send", 0, `{"amount": 5}`), "escalate", 2},
		{"plain forbid beats escalation", req("pay.send", 1, `{}`), "deny", 0},
		{"escalation forbid without a permit is a deny", req("db.drop", 0, `{}`), "deny", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := set.Decide(tc.req)
			if d.Outcome() != tc.outcome {
				t.Fatalf("outcome %s, want %s (%s)", d.Outcome(), tc.outcome, d.Explain(tc.req))
			}
			if d.Allow && d.Escalate {
				t.Fatal("allow and escalate together")
			}
			if tc.outcome == "escalate" {
				if len(d.Approvals) != 1 || d.Approvals[0].Quorum != tc.quorum {
					t.Fatalf("approvals %+v", d.Approvals)
				}
				if !strings.HasPrefix(d.Explain(tc.req), "needs approval by") {
					t.Fatalf("explain: %s", d.Explain(tc.req))
				}
			}
		})
	}
	d := set.Decide(req("db.delete", 0, `{"rows": 500}`))
	if a := d.Approvals[0]; a.Timeout != 15*time.Minute || a.Groups[0] != "dba" || a.PolicyID != "big-deletes" {
		t.Fatalf("approval %+v", a)
	}
	if a := set.Decide(req("pay.send", 0, `{}`)).Approvals[0]; len(a.Groups) != 2 || a.String() != "2 of group:finance, group:cfo" {
		t.Fatalf("approval %+v", a)
	}
}

func TestEscalationAnnotationErrors(t *testing.T) {
	for _, bad := range []string{
		`@escalate("dba") permit (principal, action, resource);`,
		`@escalate("0 of group:dba") permit (principal, action, resource);`,
		`@escalate("1 of dba") permit (principal, action, resource);`,
		`@escalate("1 of group:DBA") permit (principal, action, resource);`,
		`@escalate("1 of group:dba") @escalate_timeout("soon") permit (principal, action, resource);`,
		`@escalate_timeout("5m") permit (principal, action, resource);`,
	} {
		_, err := Parse(map[string][]byte{"bad.cedar": []byte("\n" + bad)})
		if err == nil || !strings.HasPrefix(err.Error(), "bad.cedar:2:1: parse error") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestFailedForbidDenies: a forbid whose condition cannot be evaluated (here
// a decimal amount, which becomes a String) is treated as applying, so a
// badly typed argument cannot switch a forbid off.
func TestFailedForbidDenies(t *testing.T) {
	set, err := Parse(map[string][]byte{"f.cedar": []byte(`
@id("pay") permit (principal, action == Action::"call_tool", resource == Tool::"pay.send");
@id("big-payments") forbid (principal, action == Action::"call_tool", resource == Tool::"pay.send")
when { context.arguments has amount && context.arguments.amount > 100 };
`)})
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Session: "s", Agent: "a", Action: ActionCallTool, Server: "pay", Name: "pay.send"}
	for args, want := range map[string]string{`{"amount": 5}`: "allow", `{"amount": 500}`: "deny", `{"amount": 100000.5}`: "deny", `{}`: "allow"} {
		req.Arguments = json.RawMessage(args)
		d := set.Decide(req)
		if d.Outcome() != want {
			t.Errorf("%s: %s, want %s (%s)", args, d.Outcome(), want, d.Explain(req))
		}
		if args == `{"amount": 100000.5}` && (!d.FailedForbid || !strings.Contains(d.Explain(req), "could not be evaluated")) {
			t.Errorf("failed forbid not explained: %s", d.Explain(req))
		}
	}
}
