package enforce

import (
	"encoding/json"
	"time"

	"github.com/ward-dev/ward/internal/grant"
	"github.com/ward-dev/ward/internal/policy"
)

// Caller is the authenticated ward session an operation is made for.
type Caller struct {
	Session  string
	SPIFFEID string
	Agent    string
	Sponsor  string
	Groups   []string
	Depth    int
	GrantID  string
	Scope    grant.Scope
	Expiry   time.Time
	// Trust is the agent's trust score, 0-100.
	Trust int
	// Objective is the session's declared objective (shown to approvers,
	// trusted input for argument provenance).
	Objective string
	// Tags are the objective tags the session declared.
	Tags []string
	// Delegators are, for a sub-agent's session, the agents of the
	// sessions it was delegated from whose agent, groups or trust differ
	// from its own: a call is decided as each of them too, so that a
	// sub-agent may do nothing its delegators may not.
	Delegators []Delegator
	// Lineage are the ids of the sessions it was delegated from, nearest
	// first: its calls count against their budgets too.
	Lineage []string
}

// Delegator is an agent a session was delegated from, as policies see it.
type Delegator struct {
	Agent  string
	Groups []string
	Trust  int
}

// ClientAnswer describes the client's answer to a server-initiated request
// (sampling, elicitation): what the agent's side sends a server.
type ClientAnswer struct {
	Digest  string `json:"sha256"`   // hex SHA-256 of the result or error object as the client sent it
	Bytes   int    `json:"bytes"`    // its length
	IsError bool   `json:"is_error"` // the client answered with a JSON-RPC error
}

// Kind names what a list item or an operation targets.
type Kind string

// Kinds of things an upstream offers.
const (
	KindTool             Kind = "tool"
	KindPrompt           Kind = "prompt"
	KindResource         Kind = "resource"
	KindResourceTemplate Kind = "resource_template"
)

// Item is one entry of a list an upstream returned.
type Item struct {
	// Name is what the client sees: "SERVER.NAME" for tools and prompts, the
	// URI (or URI template) for resources.
	Name string `json:"name"`
	// Upstream is the upstream's own name for it.
	Upstream string `json:"upstream"`
	// Definition is the item exactly as the upstream described it.
	Definition json.RawMessage `json:"definition,omitempty"`
}

// Operation is one thing an agent attempts: an MCP operation (Method set),
// an HTTP request through the egress proxy (HTTP set) or a program start
// (Exec set). The pipeline may rewrite Arguments into the form it decided
// on (local paths resolved, see [Config.Roots]); whoever forwards the
// operation forwards Arguments as they are after Check.
type Operation struct {
	Action    policy.Action   `json:"action"`
	Method    string          `json:"method"` // the MCP method, e.g. "tools/call"
	Server    string          `json:"server"`
	Name      string          `json:"name"`     // as the client sees it ("fs.read_file", a URI)
	Upstream  string          `json:"upstream"` // the upstream's own name
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Definition is the tool's definition as last listed by this session's
	// upstream connection; the pipeline checks it against its pin.
	Definition json.RawMessage `json:"definition,omitempty"`
	// Refused, if set, is why the proxy could not even route the request;
	// the pipeline records it as a denial without deciding anything.
	Refused string `json:"refused,omitempty"`
	// HTTP and Exec are set for the egress and runtime actions. They never
	// travel over the guard API: an agent-side proxy decides MCP only.
	HTTP *policy.HTTPRequest `json:"-"`
	Exec *policy.ExecRequest `json:"-"`
	// Reported says the operation and the definition it names come from
	// the agent's side (the guard API of `ward mcp wrap`): the definition
	// is pinned under the reporting agent alone.
	Reported bool `json:"-"`
	// Recorded, set only by replay, is what a trace recorded of the call:
	// attributes a node derives from tool declarations, which take the
	// place of the declaration's where set.
	Recorded *Recorded `json:"-"`
	// Forwarding says the caller forwards the operation as soon as Check
	// allows it, and calls Observe, and answers the agent only after
	// Observe returned nil (ward's own proxy does). Check then returns
	// an allowing verdict once its decision is written to the audit log
	// (audit.Log.AppendUnsynced: a crash of the process keeps it) rather
	// than durable, and Observe returns only once the decision and the
	// result are both durable, so that the decision shares the result's
	// sync. Callers that answer without Observe (the guard API, whose
	// agent-side proxy forwards) leave it false: the decision is then
	// durable before Check returns.
	Forwarding bool `json:"-"`
}

// Recorded is what a trace recorded of a call: the session's labels when
// it was made (added to those the replay gave it) and the attributes a
// node derives from declarations.
type Recorded struct {
	Taint   []string
	Verb    string
	Impact  map[string]int64
	Dataset string
	Path    string
}

// Verdict is the pipeline's answer for one operation.
type Verdict struct {
	Allow bool `json:"allow"`
	// Escalate: the call needs approval; Approvals are the ids of the
	// approval requests it waits for.
	Escalate  bool     `json:"escalate,omitempty"`
	Approvals []string `json:"approvals,omitempty"`
	Reason    string   `json:"reason"`
	Policies  []string `json:"policies,omitempty"`
	// Event is the audit index of the recorded decision.
	Event uint64 `json:"event"`

	// approvals carries what an exceeded quota asks for, inside Check.
	approvals []policy.Approval
}

// Outcome names a verdict: allow, escalate or deny.
func (v Verdict) Outcome() string {
	switch {
	case v.Allow:
		return "allow"
	case v.Escalate:
		return "escalate"
	}
	return "deny"
}

// Outcome is what came back for an allowed operation.
type Outcome struct {
	Error        string        `json:"error,omitempty"`    // JSON-RPC error message, if the upstream failed the request
	IsError      bool          `json:"is_error,omitempty"` // a tool result flagged isError
	ResultDigest string        `json:"result_sha256,omitempty"`
	ResultBytes  int           `json:"result_bytes"`
	Duration     time.Duration `json:"duration_ns"`
	Decision     uint64        `json:"decision_event"` // audit index of the decision
	// Result is the upstream's result (or its JSON-RPC error object), for
	// recording and for what the session takes in; it is not serialised.
	// Answered says the upstream answered at all.
	Result   json.RawMessage `json:"-"`
	Answered bool            `json:"answered,omitempty"`
	// Forwarded says the request left ward for the upstream: it may have
	// done its work whatever came back, so its reservation is kept. Only a
	// call that was never forwarded is refunded.
	Forwarded bool `json:"-"`
	// Reported marks an outcome the agent's side reported (the guard API
	// of `ward mcp wrap`) rather than one ward observed: it is recorded,
	// but never refunds a reservation.
	Reported bool `json:"-"`
}
