// Package policy is ward's policy decision point: it loads Cedar policies
// (github.com/cedar-policy/cedar-go) and decides whether an agent session may
// call a tool, read a resource, get a prompt, make an outgoing HTTP request
// or run a program.
//
// # Decisions
//
// [Set.Decide] is pure and total: it does no I/O, returns no error and never
// panics on any input. Its rules are Cedar's:
//
//   - default deny: a request that no permit policy matches is denied;
//   - forbid wins: one matching forbid policy denies, whatever permits match;
//   - a policy whose evaluation fails (for example it reads an attribute the
//     request does not have) neither permits nor forbids; it is reported in
//     [Decision.Errors] so the author can fix it;
//   - a request that cannot be put into ward's model (no session, unknown
//     action, arguments that are not a JSON object, a host with a port, ...)
//     is denied with a diagnostic in [Decision.Errors] that starts with
//     "invalid request: "; [Request.Validate] returns the same diagnostic.
//
// Decisions are identical to cedar-go's Authorize over the whole set; ward
// only avoids evaluating policies whose scope cannot match (see Indexing).
//
// # Cedar model
//
// The schema, [Schema] (ward.cedarschema, printed by `ward policy schema`),
// is the published model; policies are validated against it in Cedar's
// strict mode when ward loads them ([Set.Validate]). Every request is put
// into the following entities, built per request from [Request] (no entity
// store is consulted):
//
//	Session::"<session-id>"     principal; parent Agent::"<agent>"
//	    agent:   Agent::"<agent>"
//	    sponsor: Sponsor::"<sponsor>"     (absent if the request has no sponsor)
//	    depth:   Long, 0 for a root session, >0 for delegated sub-agents
//	    trust:   Long, the agent's trust score 0-100 (new agents: 50)
//	Agent::"<agent>"            parents Group::"<g>" for each group
//	    sponsor: Sponsor::"<sponsor>"     (absent if the request has no sponsor)
//	Group::"<g>", Sponsor::"<sponsor>", Server::"<server>"   no attributes
//
// Groups are flat: an agent lists its groups directly and groups have no
// parents, so group membership can never be cyclic.
//
// The actions and their resources ([Action]; there are no action groups):
//
//	call_tool      Tool::"<server>.<tool>"      parent Server::"<server>"
//	read_resource  Resource::"<uri>"            parent Server::"<server>"
//	get_prompt     Prompt::"<server>.<prompt>"  parent Server::"<server>"
//	http_request   Host::"<host>"               no parent
//	exec           Path::"<command>"            no parent
//
// A host is a lowercase DNS name or an IP address in canonical form, never
// with a port ("api.example.com", "10.0.0.7", "::1"; see [CanonicalHost]);
// a command is the program's absolute, clean path ("/usr/bin/git"). Hosts
// and paths have no hierarchy: `resource in Host::"example.com"` matches
// that host only; match subdomains or directories in a condition
// (`context.host like "*.example.com"`, `context.command like
// "/usr/bin/*"`). Finer verbs (read, write, delete, …) are not actions: a
// tool declares its verb and the call carries it as context.verb.
//
// Every action's context has:
//
//	objective_tags  Set of String, the tags the session declared with its
//	           objective (empty if none)
//	counters   record of Long: usage so far, in its window, of each
//	           collective limit the call falls under, by limit id; read
//	           with has and brackets: context.counters has "schema-changes"
//	           && context.counters["schema-changes"] >= 15
//	taint      Set of String, the session's taint labels (empty if none):
//	           "private", the session received private data; "untrusted",
//	           it ingested content a third party can write
//
// The MCP actions' context (CallContext) adds:
//
//	arguments  the call's JSON arguments converted to Cedar (below); {} if none
//	server     String, the upstream server name
//	name       String, the tool or prompt name without the "<server>." prefix,
//	           or the resource URI
//	verb       String, what the tool does, from its declaration ("read",
//	           "delete", …); absent for undeclared tools
//	impact     record of Long, the call's size read from its arguments per
//	           the tool's declaration ({rows: 500}); absent if undeclared
//	dataset    Dataset::"<name>", the dataset the call touches per the
//	           tool's declaration; absent if none
//	path       String, the file the call touches per the tool's
//	           declaration, absolute and clean; absent if none
//
// http_request's context (HTTPContext) adds method ("GET"; never
// lowercase), scheme ("http" or "https"), host (the resource's id), port
// (Long, the scheme's default included) and path (String, the URL path in
// RFC 3986 normal form without query or fragment; see [CleanHTTPPath]). A
// CONNECT tunnel has method "CONNECT" and scheme and path "": what goes
// through it is not seen, so path rules do not apply to it; deny CONNECT
// to a host whose paths matter.
//
// exec's context (ExecContext) adds command (the resource's id), args (Set
// of String, the arguments after the program), cmdline (String, the same
// arguments joined with single spaces, for like: `context.cmdline like
// "push *"`; prefer args.contains for an exact argument, since an argument
// may itself hold spaces) and cwd (String, the working directory, "" if
// unknown).
//
// Policies that read what only some requests carry should guard with has,
// as the rules compiler does: `context has impact && context.impact has rows
// && …`; so must a policy for several actions that reads what only some of
// them have (`context has method && context.method == "GET"`). The schema
// refuses the unguarded forms at load.
//
// Whether a call is a sink is a property of the call (its verb, or its
// action: http_request sends data out), not of the session; taint is the
// session's. The lethal trifecta, private data plus untrusted content plus
// a way out, is then one policy:
//
//	@id("lethal-trifecta")
//	forbid (principal, action == Action::"http_request", resource)
//	when { context.taint.containsAll(["private", "untrusted"]) };
//
// JSON arguments convert as follows: object → record, array → set (order and
// duplicates are lost, as Cedar sets have neither), string → String, true and
// false → Boolean, a number written as an integer that fits in 64 bits → Long,
// any other number → String holding its JSON text (so 1.5 becomes "1.5" and
// 1e3 becomes "1e3"), null → omitted (a record attribute set to null is
// absent; a null array element is dropped). Arguments must be a single JSON
// object (or null, meaning none) with unique member names, valid UTF-8 and at
// most [MaxArgumentDepth] levels of nesting; anything else is denied.
//
// # Policy files
//
// A worked example, policies/base.cedar:
//
//	// Analysts may call any tool of the fs server, but only inside /tmp.
//	@id("analytics-fs-tmp")
//	permit (
//	    principal in Group::"analytics",
//	    action == Action::"call_tool",
//	    resource in Server::"fs"
//	) when { context.arguments has path && context.arguments.path like "/tmp/*" };
//
//	// Everyone may read the docs server's resources.
//	@id("read-docs")
//	permit (principal, action == Action::"read_resource", resource in Server::"docs");
//
//	// Nobody writes files, whatever else permits it.
//	@id("no-writes")
//	forbid (principal, action, resource == Tool::"fs.write_file");
//
//	// Delegated sub-agents may not use the shell at all.
//	forbid (principal, action == Action::"call_tool", resource in Server::"shell")
//	when { principal.depth > 0 };
//
// With it, a session of an agent in group analytics calling fs.read_file with
// {"path": "/tmp/report.csv"} is allowed by "analytics-fs-tmp"; the same call
// with {"path": "/etc/passwd"} is denied by default ("no policy permits
// call_tool on Tool::"fs.read_file" (default deny)"); fs.write_file is denied
// by "no-writes" even for /tmp paths. The last policy has no @id annotation,
// so its id is "policies/base.cedar:18", the file name and line where it
// starts.
//
// Policy ids come from an @id("...") annotation when present and must then be
// unique across all files; otherwise a policy's id is "<file>:<line>" (or
// "<file>:<line>:<column>" when several policies start on the same line).
// Parse errors name the file, line and column: "policies/base.cedar:3:14:
// parse error: ...". Parsing reports the first error of every file, joined.
//
// # Listing tools
//
// [Set.MayAllow] answers "could some arguments make Decide allow this?", for
// filtering tools/list. It uses cedar-go's partial evaluation
// (x/exp/batch) with context.arguments unknown: a permit condition that
// reads context.arguments is treated as satisfiable, and a forbid condition
// that reads it as avoidable. This over-approximates: a tool may be listed
// and still denied for every argument value (for example a permit that
// requires both context.arguments.x == 1 and context.server == "other"),
// but a tool that some arguments allow is never hidden, and a tool that an
// argument-independent forbid denies is hidden. Listing is not authorization;
// every call still goes through Decide.
//
// # Indexing
//
// Parse partitions policies by their action and resource scope constraints.
// Decide evaluates only the policies filed under the request's action (or no
// action constraint) and, within those, under no resource constraint, the
// request's resource (== or in), its server (in Server::"s"; hosts and
// paths have none), or its resource type (is). Because ward builds the
// entity hierarchy itself (resource → server, no action groups), this is
// exact: the skipped policies cannot match, so they can neither apply nor
// fail. Policies that only a condition narrows (resource is Host when {
// context.host like "*.example.com" }) are evaluated for every request of
// their action and resource type, so prefer exact scopes where they fit. A differential test
// checks decisions, determining policies and errors against
// cedar.Authorize over the whole set.
//
// # Escalation
//
// Three outcomes, not two: a policy annotated
//
//	@escalate("2 of group:finance, group:cfo")   // quorum of distinct approvers from these groups
//	@escalate_timeout("15m")                     // optional
//
// asks for approval instead of deciding alone. On a forbid it means "deny
// unless approved"; on a permit, "allowed only with approval". The rules, in
// order: a plain forbid that applies denies; otherwise, if @escalate forbids
// apply, the call escalates when some permit applies (and is denied by
// default when none does); otherwise, if only @escalate permits apply, it
// escalates; otherwise cedar's answer stands. An escalated [Decision] has
// Escalate set and Allow false, so callers that look only at Allow fail
// closed, and lists every [Approval] needed. The differential test checks
// these rules against cedar-go over the whole set.
//
// # A forbid that fails to evaluate applies
//
// Cedar skips a policy whose condition raises an error (comparing a String
// with a Long, reading an attribute without a has guard). For a permit that
// is safe; for a forbid it would let the call through, and an agent chooses
// its arguments' types. ward therefore denies a call that would otherwise be
// allowed or escalated when any forbid among the candidates failed to
// evaluate ([Decision].FailedForbid); Explain names the forbid and the
// error. This is the one place ward's answer differs from cedar-go's, and
// the differential test applies the same rule to its reference.
//
// A [Set] is an immutable snapshot: safe for concurrent use, replaced as a
// whole when policies change.
package policy
