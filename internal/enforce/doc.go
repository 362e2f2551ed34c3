// Package enforce is ward's enforcement pipeline: the one place where an
// operation an agent attempts is decided and the decision's effects are
// applied. The MCP gateway, the egress proxy, the runtime of `ward run` and
// `ward replay` all decide through it, so that what a replay reports, what
// a test asserts and what a live node does come from the same code.
//
// # Gather, decide, apply
//
// [Pipeline.Evaluate] gathers what a decision needs and asks the pure
// policy.Set.Decide, changing nothing:
//
//  1. a refusal the proxy already made (an unroutable name, a request it
//     could not read) stands;
//  2. the session's grant must be unexpired and cover the tool, prompt,
//     resource or host (programs are decided by policy alone);
//  3. a tool's definition must be approved (see [PinMode]);
//  4. the policy request is built: who is calling, the session's taint
//     labels ([State]), the usage of the limits the call falls under; for a
//     tool, what its [ToolDeclaration] derives (verb, impact, path,
//     dataset), its file arguments resolved under the server's roots
//     ([ResolvePath]), whether it is a sink ([Sink]) and which of its
//     consequential arguments came from text the session read; for an
//     HTTP request, whether text the session read chose its destination;
//  5. policy decides.
//
// [Pipeline.Check] then applies the effects, in a fixed order: reserve the
// collective limits (quota) a call that would go ahead falls under; for an
// escalation, redeem approvals already granted for this exact call; show
// the behaviour monitor; ask once more whether the caller is still
// current ([Config].Current: its session not ended, the node sure it
// knows every revocation, after whatever the steps before waited on);
// record the decision durably — if that fails the
// reservation is refunded and the call denied — and only then submit the
// approval requests an escalation still needs. A reservation is kept by
// session and decision until [Pipeline.Observe] records the call's
// outcome: a call that did not happen is refunded, unless the outcome was
// reported by the agent's side ([Outcome].Reported), which can never make
// ward refund anything. Observe then lets the session's [State] take in
// what the agent received: labels, provenance, content scanning.
//
// A worked example: an agent whose session has read an untrusted web page
// calls bank.transfer {"iban": "GB33BUKB20201555555555", "amount": 4999}.
// Evaluate finds the tool pinned and declared a sink with consequential
// arguments iban and amount, finds the IBAN in the web page and not in the
// objective, and decides with context.tainted_arguments = ["iban"]; the
// starter policy escalates. Check reserves the budget, finds no approval
// yet, records {"decision":"escalate","requirements":[{"quorum":1,
// "groups":["security"],…}],…} as event 812, then submits approval request
// "a7…" with decision_event 812, and answers Verdict{Escalate: true,
// Approvals: ["a7…"], Event: 812}.
//
// # What is forwarded
//
// Evaluate may rewrite an operation's arguments into the form it decided
// on: file arguments of a server with roots become resolved absolute
// paths. Whoever forwards the operation forwards op.Arguments as they are
// after Check, never the agent's original bytes.
package enforce
