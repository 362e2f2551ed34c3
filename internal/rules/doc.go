// Package rules compiles ward's rule language, a small deterministic
// English-like language for operators, into Cedar policies for ward's
// policy package. No language model is involved: every sentence either
// matches the grammar below exactly and compiles to one Cedar policy, or is
// an error that says what was expected where.
//
// # Worked example
//
// The file rules.txt
//
//	# Analysts query the warehouse, read-only.
//	agents in group analytics may call postgres.query only to read.
//	never delete more than 10 rows without approval from 1 of group:dba within 15m.
//
// compiles (with [CompileToCedar]) to
//
//	// rules.txt:2: agents in group analytics may call postgres.query only to read.
//	@id("rules.txt:2")
//	@rule("agents in group analytics may call postgres.query only to read.")
//	permit (
//	    principal in Group::"analytics",
//	    action == Action::"call_tool",
//	    resource == Tool::"postgres.query"
//	) when {
//	    context has verb && context.verb == "read"
//	};
//
//	// rules.txt:3: never delete more than 10 rows without approval from 1 of group:dba within 15m.
//	@id("rules.txt:3")
//	@rule("never delete more than 10 rows without approval from 1 of group:dba within 15m.")
//	@escalate("1 of group:dba")
//	@escalate_timeout("15m")
//	forbid (
//	    principal,
//	    action == Action::"call_tool",
//	    resource is Tool
//	) when {
//	    context has verb && context.verb == "delete" &&
//	    context has impact && context.impact has rows && context.impact.rows > 10
//	};
//
// More sentences and what they mean:
//
//	agents in group analytics may call postgres.query.
//	agent reporter may call any tool on server fs.
//	any agent may read resources matching "file:///srv/share/*".
//	agents of sponsor alice may get prompt demo.summarize.
//	agent x may call fs.read_text_file when argument path starts with "/srv/share/".
//	never call fs.write_file.
//	sub-agents never call demo.delete_note.
//	never call payments.send with argument amount over 100 without approval from 2 of group:finance.
//	agents in group ops may call deploy.run only with approval from 2 of group:sre, group:leads.
//	agents in group analytics may request host api.example.com only with method GET.
//	agents in group analytics may request hosts matching "*.example.com" only with methods GET, HEAD.
//	agents in group dev may run /usr/bin/git.
//	never run any command when the command line contains "--force".
//	never request hosts when the session holds private and untrusted.
//	never send when the session holds private and untrusted without approval from 1 of group:security.
//
// # Grammar
//
// A rule file is UTF-8 text. A sentence ends at a period followed by a
// space, a tab, a comment or the end of the line, or at the end of the line:
// a sentence never spans lines, and a line may hold several sentences. "#"
// starts a comment that runs to the end of the line. Keywords are lowercase.
// Words are runs of the characters A-Z a-z 0-9 . _ : - /; a period inside a
// word (as in postgres.query) is part of it.
//
//	file       = { sentence } .
//	sentence   = ( permit | forbid ) ( "." | end of line ) .
//	permit     = subject "may" access [ purpose | methods ] [ conditions ]
//	             [ "only" "with" approval ] .
//	forbid     = [ subject ] "never" ( access | verbphrase ) [ conditions ]
//	             [ "without" approval ] .
//	subject    = "any" "agent" | "agent" name
//	           | ( "agents" | "sub-agents" ) [ qualifier ] .
//	qualifier  = "in" "group" name | "of" "agent" name | "of" "sponsor" name .
//	access     = "call" ( tool | "any" "tool" [ onserver ] )
//	           | "read" ( "resource" string
//	                    | "any" "resource" [ onserver ]
//	                    | "resources" "matching" string [ onserver ] )
//	           | "get" ( "prompt" tool | "any" "prompt" [ onserver ] )
//	           | "request" ( "host" host | "any" "host"
//	                       | "hosts" [ "matching" string ] )
//	           | "run" ( command | "any" "command"
//	                   | "commands" [ "matching" string ] ) .
//	onserver   = "on" "server" name .
//	purpose    = "only" "to" verb [ quantity ] .       (call, read, get)
//	methods    = "only" "with" ( "method" | "methods" ) methodlist .  (request)
//	verbphrase = verb [ quantity ] [ onserver ] .
//	quantity   = numcmp number unit .
//	conditions = ( "when" | "with" ) predicate { "and" predicate } .
//	predicate  = "argument" argname test                (call, read, get, verbs)
//	           | "method" methodlist                    (request)
//	           | "the" "path" strtest                   (all but run)
//	           | "the" "command" "line" strtest         (run)
//	           | "the" "session" "holds" label { "and" label } .
//	methodlist = method { "," method } .
//	test       = numcmp number | "equals" ( number | string | "true" | "false" )
//	           | strtest .
//	strtest    = "equals" string | "starts" "with" string | "ends" "with" string
//	           | "contains" string | "matches" string .
//	numcmp     = "over" | "more" "than" | "under" | "less" "than"
//	           | "at" "most" | "at" "least" .
//	approval   = "approval" "from" number "of" groupref { "," groupref }
//	             [ "within" duration ] .
//	groupref   = "group:" name .         (one word, as in group:dba)
//	verb       = "read" | "list" | "create" | "update" | "write" | "delete"
//	           | "send" | "execute" .
//	name       = word of a-z 0-9 . _ - that starts with a-z or 0-9 and does
//	             not end with "." | string .
//	tool       = name containing a "." (server.tool) | string .
//	host       = word or string: a lowercase host name or an IP address in
//	             the canonical form of package policy, without a port
//	             (api.example.com, 10.0.0.7, "::1") .
//	command    = word or string holding an absolute, clean path (/usr/bin/git) .
//	method     = word of A-Z 0-9 . _ - of at most 32 characters (GET) .
//	label      = name or string of at most 64 characters (private) .
//	argname    = segment { "." segment } | string .
//	segment    = word of A-Z a-z 0-9 _ - .
//	unit       = word of a-z 0-9 _ that starts with a-z .
//	number     = [ "-" ] digit { digit } .   (a 64-bit signed integer)
//	duration   = digit { digit } ( "s" | "m" | "h" ) .   (at least 1s)
//	string     = '"' { character | '\"' | '\\' } '"' .
//
// Strings hold any characters but line breaks and control characters other
// than tab; \" and \\ are the only escapes. After "never", "read" followed
// by "resource", "resources" or "any" is the read_resource action; otherwise
// it is the verb read. In "the session holds a and b", an "and" followed by
// "argument", "method" or "the" starts the next predicate; quote a label
// spelled like one of those. Column numbers in errors count characters,
// from 1.
//
// # Meaning
//
// A may-sentence is a Cedar permit, a never-sentence a forbid; a
// never-sentence without a subject applies to every agent. The subject sets
// the principal (a session, see package policy): "any agent" and "agents"
// match every session, "agent x" and "of agent x" sessions of agent x
// (principal in Agent::"x"), "in group g" sessions of agents in group g
// (principal in Group::"g"), "of sponsor s" sessions whose sponsor is s
// (principal has sponsor && principal.sponsor == Sponsor::"s"), and
// "sub-agents" adds principal.depth > 0.
//
// "call", "read" and "get" select the actions call_tool, read_resource and
// get_prompt and the resource: one tool or prompt (resource ==
// Tool::"server.tool"), any of a server's (resource is Tool in
// Server::"fs"), any at all (resource is Tool). "resources matching P"
// compares the resource URI (context.name) with P, where "*" matches any run
// of characters and every other character stands for itself.
//
// "request" selects http_request: one host (resource ==
// Host::"api.example.com"), or any ("any host", "hosts"), optionally those
// whose name matches a pattern (context.host like "*.example.com"; a host
// pattern is lowercase). "run" selects exec: one program (resource ==
// Path::"/usr/bin/git"), or any ("any command", "commands"), optionally
// those whose path matches a pattern (context.command like "/usr/bin/*").
// A host is written as policies see it, lowercase and without a port; the
// compiler refuses other spellings rather than compile a rule that can
// never match. "only with method GET, HEAD" on a request permit, and the
// predicate "method DELETE" in conditions, test context.method (== for one
// method, a set's contains for several).
//
// Verbs and impact are filled in by the gateway from each tool's
// declaration (a later step): context.verb is the String verb the tool
// declares, and context.impact a record of Longs, the quantitative impact
// the gateway reads from the call's arguments as the declaration says (for
// example impact.rows from a "limit" argument). "only to read" adds
// context.verb == "read"; a verb phrase after "never" forbids tool calls
// with that verb; "more than 10 rows" adds context.impact.rows > 10. Until
// the gateway provides them, rules that mention a verb or an impact never
// apply.
//
// Conditions read the call's JSON arguments (context.arguments): "argument
// path starts with P" is context.arguments.path like "P*" with any "*" in P
// escaped, so it matches literally; "ends with", "contains" and "matches"
// work alike, "matches" with "*" as wildcard. Numeric comparisons are
// ">", "<", "<=", ">=", and "equals" is "==". Every attribute that may be
// absent is guarded with has, so a missing argument makes the condition
// false rather than an error. An argument of another type than the test
// expects (a string where a number is compared) makes the policy fail to
// evaluate; package policy reports it in Decision.Errors, and a forbid that
// fails to evaluate denies the call.
//
// "the path" tests context.path: the URL path of a request, or the file a
// tool call touches as its declaration says (guarded with has: calls
// without one do not match). "the command line" tests context.cmdline, a
// program's arguments joined with single spaces. "the session holds
// private and untrusted" is context.taint.containsAll(["private",
// "untrusted"]) (contains for one label): true when the session carries
// every label named. A predicate that reads what the sentence's requests do
// not carry ("argument" in a request rule, "method" in a call rule) is an
// error, so every compiled policy matches ward's schema.
//
// # Escalation
//
// "without approval from N of group:a, group:b" on a forbid, or "only with
// approval from ..." on a permit, adds @escalate("N of group:a, group:b")
// and, with "within 15m", @escalate_timeout("15m"): on a forbid the call is
// denied unless approved, on a permit it is allowed only with approval. N
// is 1 to 100, a group name at most 64 characters and the duration 1s to
// 168h, the limits package policy puts on @escalate.
//
// # Output
//
// Every policy carries @id("<file>:<line>") (or "<file>:<line>:<column>" if
// its line holds more than one sentence) and @rule("<the sentence>"), the
// sentence's text from its first word to its period. Compilation is
// deterministic: the same input gives the same bytes. [Compile] reports every
// bad sentence of a file, each as an [*Error] naming file, line and column,
// joined with errors.Join; it returns no rules when any sentence is bad.
package rules
