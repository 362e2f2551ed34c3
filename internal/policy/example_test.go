package policy_test

import (
	"encoding/json"
	"fmt"

	"github.com/ward-dev/ward/internal/policy"
)

func ExampleSet_Decide() {
	set, err := policy.LoadDir("testdata/policies")
	if err != nil {
		fmt.Println(err)
		return
	}
	req := policy.Request{
		Session: "7f3a", Agent: "reporter", Sponsor: "alice", Groups: []string{"analytics"},
		Action: policy.ActionCallTool, Server: "fs", Name: "fs.read_file",
	}
	for _, args := range []string{`{"path": "/tmp/report.csv"}`, `{"path": "/etc/passwd"}`} {
		req.Arguments = json.RawMessage(args)
		d := set.Decide(req)
		fmt.Println(d.Allow, d.Explain(req))
	}
	req.Name, req.Arguments = "fs.write_file", nil
	fmt.Println(set.MayAllow(req))
	// Output:
	// true allowed by policy "analytics-fs-tmp" (testdata/policies/base.cedar:2:1)
	// false no policy permits call_tool on Tool::"fs.read_file" (default deny)
	// false
}

func ExampleParse_error() {
	_, err := policy.Parse(map[string][]byte{
		"policies/base.cedar": []byte("permit (principal, action, resource)\nwhen { context.arguments.path like \"/tmp/*\" }"),
	})
	fmt.Println(err)
	// Output:
	// policies/base.cedar:2:46: parse error: expected ";", got end of file
}

// Outgoing HTTP and taint: a session that holds private data and has read
// untrusted content may not send anything out, whatever else permits it.
func ExampleSet_Decide_http() {
	set, err := policy.Parse(map[string][]byte{"egress.cedar": []byte(`
@id("api") permit (principal in Group::"analytics", action == Action::"http_request", resource == Host::"api.example.com")
when { context.method == "GET" && context.path like "/v1/*" };

@id("lethal-trifecta") forbid (principal, action == Action::"http_request", resource)
when { context.taint.containsAll(["private", "untrusted"]) };
`)})
	if err == nil {
		err = set.Validate()
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	path, err := policy.CleanHTTPPath("/v1/reports/../q3") // as the proxy saw it
	if err != nil {
		fmt.Println(err)
		return
	}
	req := policy.Request{
		Session: "7f3a", Agent: "reporter", Groups: []string{"analytics"},
		Action: policy.ActionHTTPRequest,
		HTTP:   &policy.HTTPRequest{Method: "GET", Scheme: "https", Host: "api.example.com", Port: 443, Path: path},
	}
	for _, taint := range [][]string{nil, {"private"}, {"private", "untrusted"}} {
		req.Taint = taint
		fmt.Printf("%v: %s\n", taint, set.Decide(req).Explain(req))
	}
	// Output:
	// []: allowed by policy "api" (egress.cedar:2:1)
	// [private]: allowed by policy "api" (egress.cedar:2:1)
	// [private untrusted]: denied by policy "lethal-trifecta" (egress.cedar:5:1)
}
