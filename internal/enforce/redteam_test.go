package enforce_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/approval"
	"github.com/ward-dev/ward/internal/enforce"
)

// TestRedteamOneSessionFillsTheApprovalQueue (red team, wedging the node
// for everyone).
//
// Attack: the approval queue holds at most MaxPending pending requests
// for the whole node (internal/approval/approval.go, Submit:
// `q.pending >= q.maxPending` → ErrFull; default 10,000), with no share
// per session, agent or sponsor. One agent session makes escalated calls
// that differ only in an argument ({"n": 1}, {"n": 2}, …): each is a new
// call, so each submits a new request (Submit reuses a pending request
// only for the same call hash), and they stay pending for the approval
// timeout (15 minutes by default). Once the queue is full, every other
// session's escalated call, of any agent and sponsor, is denied ("needs
// approval, but the request could not be queued"); the flood also buries
// the approvers' list.
//
// Shown with MaxPending 20 (the node's default is 10,000; the shape is
// the same): session "mallory" fills the queue, and session "victim"'s
// single escalated call is denied without reaching an approver.
//
// What ward did: let one session take the whole queue. What it should do:
// bound pending requests per session (and agent/sponsor), refusing the
// flooding session rather than everyone.
func TestRedteamOneSessionFillsTheApprovalQueue(t *testing.T) {
	q, err := approval.New(approval.Config{MaxPending: 20})
	if err != nil {
		t.Fatal(err)
	}
	p, err := enforce.New(enforce.Config{Audit: openLog(t), Approvals: q, Policies: policies(t, `
@id("wire") @escalate("1 of group:finance")
permit (principal, action == Action::"call_tool", resource == Tool::"up.wire");`)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 25 {
		op := call("up.wire")
		op.Arguments = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
		if _, err := p.Check(ctx, caller("mallory"), op); err != nil {
			t.Fatal(err)
		}
	}
	op := call("up.wire")
	op.Arguments = json.RawMessage(`{"to":"supplier","amount":120}`)
	v, err := p.Check(ctx, caller("victim"), op)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Escalate || len(v.Approvals) == 0 {
		t.Fatalf("another session's escalated call was not queued for approval because one session filled the queue: %s", v.Reason)
	}
	if strings.Contains(v.Reason, "full") {
		t.Fatalf("victim: %s", v.Reason)
	}
}
