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
