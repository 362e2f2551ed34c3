package policy

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := []string{
		`permit (principal in Group::"a", action == Action::"call_tool", resource in Server::"fs") when { context.arguments has path && context.arguments.path like "/x/*" };`,
		`forbid (principal, action, resource) when { principal.trust < 50 || principal.depth > 0 };`,
		`permit (principal, action, resource) when { context has verb && context.verb == "read" };`,
		`permit (principal, action, resource) when { context has impact && context.impact has rows && context.impact.rows > 10 };`,
		`permit (principal, action in [Action::"read_resource", Action::"get_prompt"], resource in Server::"demo");`,
		`permit (principal, action == Action::"call_tool", resource) when { resource in [Tool::"demo.echo", Tool::"demo.add"] };`,
		`permit (principal, action, resource) when { context.counters has "x" && context.counters["x"] < 15 };`,
		`forbid (principal, action, resource) when { context.taint.containsAll(["private", "untrusted"]) };`,
		`permit (principal in Group::"a", action == Action::"http_request", resource == Host::"api.example.com")
		 when { ["GET", "HEAD"].contains(context.method) && context.scheme == "https" && context.port == 443 && context.path like "/v1/*" && context.host like "api.*" };`,
		`permit (principal, action, resource in Host::"::1");`,
		`permit (principal, action == Action::"exec", resource is Path)
		 when { context.command like "/usr/bin/*" && !context.args.contains("--force") && context.cmdline like "status*" && context.cwd == "/work" };`,
		`permit (principal, action in [Action::"http_request", Action::"exec"], resource) when { context.taint.isEmpty() };`,
		`permit (principal, action, resource) when { context has method && context.method == "GET" };`,
		`permit (principal, action == Action::"call_tool", resource) when { context has dataset && context.dataset == Dataset::"sales" && context has path && context.path like "/srv/*" };`,
		`forbid (principal, action, resource is Host) when { principal.trust < 50 };`,
	}
	for _, src := range good {
		set, err := Parse(map[string][]byte{"g.cedar": []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		if err := set.Validate(); err != nil {
			t.Errorf("%s\n  refused: %v", src, err)
		}
	}
	for _, tc := range []struct{ src, want string }{
		{`permit (principal, action, resource) when { principal.turst > 3 };`, "attribute `turst`"},
		{`permit (principal, action == Action::"call_tool", resource == Tol::"x");`, "unrecognized entity type `Tol`"},
		{`permit (principal, action == Action::"cal_tool", resource);`, "unrecognized action"},
		{`permit (principal, action, resource) when { context.verb == "read" };`, "optional attribute `verb`"},
		{`permit (principal, action, resource) when { context.arguments.path == "x" };`, "path"},
		// The new model, used wrongly.
		{`permit (principal, action, resource) when { context.taint == "x" };`, "the types String and Set<String> are not compatible"},
		{`permit (principal, action, resource) when { context.taint.contains(1) };`, "the types Long and String are not compatible"},
		{`permit (principal, action == Action::"http_request", resource) when { context.nope == 1 };`, "attribute `nope` in context for Action::\"http_request\" not found"},
		{`permit (principal, action == Action::"http_request", resource) when { context.port == "443" };`, "the types Long and String are not compatible"},
		{`permit (principal, action == Action::"http_request", resource) when { context.arguments has x };`, "attribute `arguments` in context for Action::\"http_request\" not found"},
		{`permit (principal, action, resource) when { context.method == "GET" };`, "attribute `method` in context for Action::\"call_tool\" not found"},
		{`permit (principal, action == Action::"exec", resource) when { context.args like "x" };`, "expected String but saw Set<String>"},
		{`permit (principal, action == Action::"exec", resource) when { context.path == "/x" };`, "attribute `path` in context for Action::\"exec\" not found"},
		{`permit (principal, action == Action::"call_tool", resource) when { context.path like "/srv/*" };`, "optional attribute `path`"},
		{`permit (principal, action == Action::"call_tool", resource) when { context has dataset && context.dataset == "sales" };`, "the types String and Dataset are not compatible"},
		{`permit (principal, action == Action::"call_tool", resource == Host::"api.example.com");`, "unable to find an applicable action"},
		{`permit (principal, action == Action::"http_request", resource == Path::"/bin/sh");`, "unable to find an applicable action"},
		{`permit (principal, action == Action::"exec", resource is Dataset);`, "unable to find an applicable action"},
		{`permit (principal, action in [Action::"http_request", Action::"exec"], resource) when { context.taint == [] };`, "empty set literals are forbidden"},
	} {
		set, err := Parse(map[string][]byte{"b.cedar": []byte("\n\n" + tc.src)})
		if err != nil {
			t.Fatal(err)
		}
		err = set.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "b.cedar:3:1: policy") {
			t.Errorf("%s\n  error %v, want b.cedar:3:1 and %q", tc.src, err, tc.want)
		}
	}
}

// TestShippedPoliciesValidate: the policies under testdata, the worked
// example of the package documentation, match the schema.
func TestShippedPoliciesValidate(t *testing.T) {
	set, err := LoadDir("testdata/policies")
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() == 0 {
		t.Fatal("no policies")
	}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestSchemaDocumentsLabels: the schema names the taint vocabulary and
// every action the package decides.
func TestSchemaDocumentsLabels(t *testing.T) {
	sch := string(Schema())
	for _, want := range []string{`"private"`, `"untrusted"`, "action call_tool", "action read_resource", "action get_prompt",
		"action http_request", "action exec", "entity Host", "entity Path", "entity Dataset", "taint: Set<String>"} {
		if !strings.Contains(sch, want) {
			t.Errorf("schema lacks %q", want)
		}
	}
}
