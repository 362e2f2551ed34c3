// Package replay decides recorded agent sessions against a policy set in
// shadow mode: for every recorded call it reports what ward would have done
// (allow, deny or escalate) and why, and sums the outcomes up. Nothing is
// contacted and nothing is enforced. Operators record sessions, replay them
// against new policies, read the report, and only then enforce.
//
// # Trace format
//
// A trace is JSON Lines: one JSON object per line, lines separated by "\n"
// (a "\r" before it is ignored). Blank lines (spaces and tabs only) are
// skipped; there are no comments. A trace holds one or more sessions: a
// "session" record opens a session, and the "call" records that follow it,
// up to the next "session" record, are that session's calls.
// testdata/example.jsonl is a complete example:
//
//	{"type":"session","session":"s1","agent":"reporter","sponsor":"alice","groups":["analytics"],"depth":0,"objective":"summarize Q3 revenue"}
//	{"type":"call","method":"tools/call","server":"fs","name":"fs.read_text_file","arguments":{"path":"/srv/share/q3.csv"},"time":"2026-11-20T10:00:00Z"}
//	{"type":"call","method":"tools/call","server":"db","name":"db.delete_rows","arguments":{"table":"orders"},"verb":"delete","impact":{"rows":500}}
//	{"type":"call","method":"resources/read","server":"docs","name":"docs://handbook/expenses","result":{"contents":[]},"error":null}
//
// A session record has these fields:
//
//	type       "session"; required
//	session    string, the session id; required, unique in the trace
//	agent      string, the agent name; required
//	sponsor    string, the sponsoring human; optional
//	groups     array of strings, the agent's groups; optional
//	depth      integer ≥ 0, the delegation depth; optional, default 0
//	trust      integer 0-100, the agent's trust score; optional, default 50
//	           (a new agent's score)
//	objective  string, what the session was for; optional, not decided on
//
// A call record has these fields:
//
//	type       "call"; required
//	method     the MCP method; required, one of
//	               tools/call           decided as action call_tool
//	               prompts/get          decided as action get_prompt
//	               resources/read       decided as action read_resource
//	               resources/subscribe  decided as action read_resource
//	name       string; required: "SERVER.TOOL" or "SERVER.PROMPT" for tools
//	           and prompts, the URI for resources
//	server     string, the upstream server; required for resources; for
//	           tools and prompts it may be omitted and then is the part of
//	           name before the first ".", and if given name must start with
//	           it and a "."
//	arguments  any JSON value, the call's arguments; optional. ward decides
//	           on them as it would live: anything but an object (or null,
//	           meaning none) is denied as an invalid request
//	verb       string, what the tool does as its declaration says ("read",
//	           "delete", …); optional, context.verb
//	impact     object of integers, the call's size as its declaration reads
//	           it from the arguments ({"rows": 500}); optional, context.impact
//	result     any JSON value, what the server answered; not decided on
//	error      any JSON value, the error the call got; not decided on
//	time       string, when the call was made, RFC 3339; optional
//
// A field set to null is treated as absent. Parsing is strict and fails
// closed: a line that is not a single JSON object, has a duplicate key at any
// depth, invalid UTF-8, an unknown field (including a call field in a session
// record and the reverse) or a field of the wrong type makes [Run] fail, as
// do a call before any session record, a method ward does not decide, a line
// longer than [Options].MaxLineBytes (default [DefaultMaxLineBytes], 1 MiB,
// without the line ending), more than [Options].MaxLines lines (default
// [DefaultMaxLines], 100,000, blank lines included) and a trace without any
// session record. Errors name the 1-based line:
//
//	trace line 7: call before any session record
//	trace line 3: unknown field "foo"
//	trace line 9: method "tools/delete" is not one ward decides
//
// # Decisions and reports
//
// Each call becomes one [policy.Request] (the session's agent, sponsor,
// groups, depth and trust with the call's action, server, name, arguments,
// verb and impact) decided by [policy.Set.Decide]. A [Call] reports the
// outcome ([policy.Decision.Outcome]), the one-line reason
// ([policy.Decision.Explain]), the ids of the policies that determined it
// (the Decision's Reasons) and, for an escalation, the approvals needed
// ("1 of group:dba"). The [Summary] counts sessions, calls and outcomes, and
// for every policy id the calls it determined.
//
// [Report.WriteText] writes one line per call and a summary block, for
// people:
//
//	L12 s1 deny  tools/call db.drop_table — denied by policy "no-drops" (p.cedar:3:1)
//
// Strings that come from the trace are written as Go-quoted strings when they
// hold spaces, quotes or non-printable characters, so a trace cannot forge
// report lines or send terminal escapes. [Report.WriteJSON] writes one JSON
// object per call, then {"summary": …}, for programs.
package replay
