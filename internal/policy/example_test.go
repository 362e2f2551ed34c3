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
