package policy

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/google/go-cmp/cmp"
)

// FuzzParse feeds arbitrary policy text to Parse. Parse never panics; an
// error always names the file with a line and column; a set it accepts
// decides fixed requests (a tool call, an HTTP request, an exec) without
// panicking, deterministically, and as cedar.Authorize over the whole set
// would; Validate never panics and names the file, line and column.
func FuzzParse(f *testing.F) {
	base, err := os.ReadFile("testdata/policies/base.cedar")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(base))
	f.Add(`permit (principal, action, resource);`)
	f.Add(`@id("x") forbid (principal in Group::"g", action in [Action::"call_tool"], resource is Tool in Server::"fs") unless { context.arguments.a.b == 1 };`)
	f.Add(`permit (principal, action, resource) when { context.arguments.n + 9223372036854775807 > 0 };`)
	f.Add(`permit (principal, action, resource) when { context.a == 99999999999999999999 };`)
	f.Add("permit (principal, action, resource) when { \"\\q\" };")
	f.Add(`@id("") permit (principal, action, resource);`)
	f.Add(`permit(principal,action,resource);permit(principal,action,resource);`)
	f.Add(`forbid (principal, action in [Action::"http_request", Action::"exec"], resource is Host in Host::"a.example") when { context.taint.contains("untrusted") && context.port > 80 };`)
	f.Add(`permit (principal, action == Action::"exec", resource == Path::"/usr/bin/git") unless { context.args.contains("--force") || context.cmdline like "push*" };`)
	f.Add(`permit (principal, action, resource) when { context has dataset && context.dataset == Dataset::"d" && context.path like "/srv/*" };`)
	tool := toolReq("fs", "read_file", `{"path":"/tmp/a","n":3,"tags":["x"]}`)
	tool.Taint, tool.Dataset, tool.Path = []string{"private"}, "d", "/srv/a"
	web := httpReq("a.example", "/v1")
	web.Taint = []string{"untrusted"}
	reqs := []Request{tool, web, execReq("/usr/bin/git", "push", "--force")}
	f.Fuzz(func(t *testing.T, src string) {
		set, err := Parse(map[string][]byte{"f.cedar": []byte(src)})
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "f.cedar" || pe.Line < 1 || pe.Column < 1 || !strings.HasPrefix(err.Error(), "f.cedar:") {
				t.Fatalf("error without file:line:col: %v", err)
			}
			return
		}
		for _, req := range reqs {
			d1 := set.Decide(req)
			d2 := set.Decide(req)
			if diff := cmp.Diff(d1, d2); diff != "" {
				t.Fatalf("Decide not deterministic:\n%s", diff)
			}
			if diff := cmp.Diff(referenceDecision(t, fullPolicySet(set), req), comparable(d1)); diff != "" {
				t.Fatalf("%s: Decide differs from cedar.Authorize (-want +got):\n%s", req.Action, diff)
			}
			_ = set.MayAllow(req)
			_ = d1.Explain(req)
		}
		for _, p := range set.Policies() {
			if p.Text == "" || p.ID == "" {
				t.Fatalf("policy without text or id: %+v", p)
			}
		}
		if err := set.Validate(); err != nil && !strings.HasPrefix(err.Error(), "f.cedar:") {
			t.Fatalf("validation error without file:line:col: %v", err)
		}
	})
}

// FuzzArguments feeds arbitrary bytes as call arguments. Decide never
// panics and is deterministic; it allows only arguments that are a single
// valid JSON object (or null) and then agrees with cedar.Authorize.
func FuzzArguments(f *testing.F) {
	for _, a := range randomArguments {
		f.Add(a)
	}
	f.Add(`{"path":"/tmp/x","path":"/etc"}`)
	f.Add(`{"a":[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]}`)
	f.Add(`{"n":-9223372036854775808,"m":1e999,"s":"\ud800"}`)
	f.Add(`[]`)
	f.Add(`{} x`)
	set := mustParse(f, `
permit (principal, action, resource) when { context.arguments.path like "/tmp/*" };
permit (principal, action, resource) when { context.arguments.n > 3 };
forbid (principal, action, resource) when { context.arguments.tags.contains("x") };
permit (principal, action, resource) when { context.arguments == {} };
`)
	full := fullPolicySet(set)
	f.Fuzz(func(t *testing.T, args string) {
		req := toolReq("fs", "read_file", "")
		req.Arguments = json.RawMessage(args)
		d1 := set.Decide(req)
		d2 := set.Decide(req)
		if diff := cmp.Diff(d1, d2); diff != "" {
			t.Fatalf("Decide not deterministic:\n%s", diff)
		}
		_ = d1.Explain(req)
		valid := json.Valid([]byte(args))
		var obj map[string]json.RawMessage
		isObject := valid && json.Unmarshal([]byte(args), &obj) == nil
		if _, err := argumentsValue(req.Arguments); err != nil {
			if d1.Allow || len(d1.Errors) != 1 || !strings.HasPrefix(d1.Errors[0], invalidPrefix) {
				t.Fatalf("invalid arguments not denied with a diagnostic: %+v", d1)
			}
			return
		}
		if len(args) > 0 && !isObject {
			t.Fatalf("accepted arguments that are not a JSON object: %q", args)
		}
		dec, diag := reference(t, full, req)
		if failed := referenceFailedForbids(full, diag); dec == cedar.Allow && len(failed) > 0 {
			// ward treats a forbid that failed to evaluate as applying.
			dec, diag.Reasons = cedar.Deny, failed
		}
		if d1.Allow != (dec == cedar.Allow) || len(d1.Reasons) != len(diag.Reasons) || len(d1.Errors) != len(diag.Errors) {
			t.Fatalf("Decide %+v differs from cedar.Authorize %v %+v", d1, dec, diag)
		}
	})
}
