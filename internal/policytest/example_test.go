package policytest_test

import (
	"fmt"
	"os"

	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/policytest"
)

// A CI step: load a test file, load the policies it names, run the cases
// and fail the build on any failure.
func Example() {
	f, err := policytest.Load("testdata/failing.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	// The file names one directory; the CLI loads files, directories and
	// compiled rules alike.
	set, err := policy.LoadDir(f.ResolvedPolicyPaths()[0])
	if err != nil {
		fmt.Println(err)
		return
	}
	rs := policytest.Run(f, set)
	if err := policytest.WriteText(os.Stdout, rs); err != nil {
		fmt.Println(err)
	}
	if _, failed := policytest.Summary(rs); failed > 0 {
		fmt.Println("policy tests failed") // a CLI exits 1 here
	}
	// Output:
	// FAIL  expects a write to pass (testdata/failing.yaml:5): expected allow, got deny (denied by policy "no-writes" (testdata/policies/base.cedar:7:1))
	// FAIL  expects a read to be denied (testdata/failing.yaml:9): expected deny, got allow (allowed by policy "fs-read-shared" (testdata/policies/base.cedar:2:1))
	// FAIL  right outcome, wrong policy (testdata/failing.yaml:13): expected policies ["someone-else"], got ["fs-read-shared"] (allowed by policy "fs-read-shared" (testdata/policies/base.cedar:2:1))
	// FAIL  right outcome, wrong approvals (testdata/failing.yaml:18): expected approvals ["2 of group:dba"], got ["1 of group:dba"] (needs approval by 1 of group:dba (policy "big-deletes"))
	// FAIL  expects a default deny to escalate (testdata/failing.yaml:23): expected escalate, got deny (no policy permits call_tool on Tool::"db.drop_table" (default deny))
	// PASS  still passes
	// 1 passed, 5 failed
	// policy tests failed
}
