package approval_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ward-dev/ward/internal/approval"
)

// A call escalated for two approvers from sre or security: the agent's
// retry with the same arguments, in any key order, redeems the approval
// once.
func Example() {
	ctx := context.Background()
	q, err := approval.New(approval.Config{})
	if err != nil {
		panic(err)
	}
	r, err := q.Submit(ctx, approval.Request{
		Session: "s1", Agent: "report", Sponsor: "dana@example.org",
		Method: "tools/call", Name: "db.export",
		Arguments:   json.RawMessage(`{"to":"x@example.org","rows":10}`),
		Requirement: approval.Requirement{Quorum: 2, Groups: []string{"sre", "security"}, SingleUse: true},
	})
	if err != nil {
		panic(err)
	}
	alice := approval.Voter{Name: "alice", Groups: []string{"sre"}}
	bob := approval.Voter{Name: "bob", Groups: []string{"security"}}
	r, _ = q.Vote(ctx, r.ID, alice, true, "destination is the customer")
	fmt.Println(r.State)
	r, _ = q.Vote(ctx, r.ID, bob, true, "")
	fmt.Println(r.State)

	retry := json.RawMessage(`{"rows":10,"to":"x@example.org"}`)
	r, ok, _ := q.Redeem(ctx, "s1", "tools/call", "db.export", retry)
	fmt.Println(ok, r.State)
	_, ok, _ = q.Redeem(ctx, "s1", "tools/call", "db.export", retry)
	fmt.Println(ok)
	// Output:
	// pending
	// approved
	// true used
	// false
}
