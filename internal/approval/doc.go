// Package approval is ward's escalation queue: the calls a policy decided
// to escalate wait here until N of M approvers, humans or reviewer agents,
// approve them, any one of them denies them, or they time out.
//
// # Life of a request
//
// The gateway Submits a Request naming the session, agent, sponsor, the
// call (server, method, name, arguments), why it was escalated, and a
// Requirement: a Quorum of distinct approvers drawn from any of Groups,
// within Timeout. Submit binds the request to the exact call with CallHash
// and returns it pending; an identical pending request (same session, call
// hash and requirement) is returned instead of a second one. The gateway
// then either holds the call with Wait, or answers the agent "pending" and
// later, when the agent retries, asks Redeem.
//
//	pending ──Quorum approvals──► approved ──Redeem (SingleUse)──► used
//	   │ ╲                            │
//	   │  ╲──any eligible deny──► denied
//	   │                              │
//	   └──Timeout passes──► expired ◄─┘ Timeout passes after approval
//
// Votes come from Vote (CLI, API) and AskReviewers (agents). A vote counts
// when the voter is in at least one required group; each voter votes once;
// a deny is a veto; the sponsor of the requesting agent may deny but not
// approve unless AllowSponsorSelfApproval is set, and the agent itself
// never approves. Only approved means allow: denied, expired and used all
// mean deny, and every failure (store error, queue full, malformed input)
// is an error, never an approval. Once approved, a request stays
// redeemable for another Timeout, so an agent that retries later finds it.
//
// # Binding to the call
//
// An approval is for one call, not one tool: CallHash is the hex SHA-256 of
// the canonical JSON of [method, name, arguments] (members sorted, no
// whitespace, numbers as written), so the same arguments in a different key
// order redeem the approval and any other arguments do not:
//
//	CallHash("tools/call", "db.export", `{"to":"x@example.org","rows":10}`)
//	  == CallHash("tools/call", "db.export", `{ "rows": 10, "to": "x@example.org" }`)
//	  != CallHash("tools/call", "db.export", `{"rows":10,"to":"y@example.org"}`)
//
// # Time, storage and audit
//
// The clock is Config.Now. Timed-out requests are resolved by Expire and
// lazily by every method that reads them. State lives in a Store (a
// MemoryStore by default) owned by one Queue, which serialises all access
// with one lock; Config.OnChange sees every change, in order, for the audit
// log. MaxPending bounds the pending requests: beyond it Submit fails
// closed with ErrFull.
//
// # Reviewer agents
//
// A Reviewer returns a verdict on a request; AskReviewers asks several
// concurrently, each within Config.ReviewTimeout, and votes for them. A
// reviewer error or timeout is no vote. WebhookReviewer is a Reviewer over
// HTTP with strict, bounded decoding of its answer.
package approval
