// Command ward is the zero-trust control plane and enforcement gateway for AI
// agents. `ward up` runs a node; every other command is a client of one, or
// works offline on a data directory.
//
// Client commands find the node through the environment:
//
//	WARD_SERVER   base URL (default https://127.0.0.1:8443)
//	WARD_CA       CA bundle to trust (default ./ward-data/bundle.pem if present)
//	WARD_TOKEN    operator or sponsor credential (ward_…)
//	WARD_HOME     where session credentials are kept (default ~/.ward)
//
// # The command line's contract
//
// Every command is a row of the table in commands(): the top-level usage,
// each command's and subcommand's --help and the README's Commands section
// are all written from it, so none of them can leave a command out.
// `ward CMD --help` lists CMD's subcommands; `ward CMD SUB --help` (or
// `ward help CMD SUB`) prints that subcommand's usage and its own flags
// only. Help asked for goes to standard output and exits 0.
//
// Every command that prints data takes -o json and then prints one JSON
// document on standard output (ward audit tail and search: one JSON object
// a line). ward receipts prints JSON (DSSE envelopes) by default too, since
// that is what ward claim verify reads; -o text summarizes them. The
// exceptions print no data of their own: ward run (standard output is the
// program's) and ward mcp wrap (standard output is the MCP stream).
//
// Exit status: 0 success; 2 bad input, with one line on standard error
// naming the error and the --help to read: a flag or argument the command
// refuses, or a request the node refused as bad input — HTTP 400 (malformed),
// 404 (names nothing that exists), 409 (conflicts with what exists), 413
// (too large) and 422 (unprocessable); 1 any other failure, the node's other
// refusals included (401 and 403: the credential does not entitle you; 429
// and 5xx: try again later). ward run exits with its program's status.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/ward-dev/ward/internal/sandbox"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is bad command-line input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// helpRequested is returned by parse when -h or --help was given: the
// dispatcher prints the command's help from its flag set.
type helpRequested struct{ fs *flag.FlagSet }

func (helpRequested) Error() string { return "help requested" }

// command is one row of the command table: a command with subcommands
// (subs), or a leaf that runs.
type command struct {
	name string
	// args is the synopsis after the command's path: its arguments and
	// flags as the user writes them (-o json is implied where the leaf
	// takes it).
	args    string
	summary string
	subs    []command
	run     func(args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{name: "up", args: "[--config FILE] [--data DIR] [--addr HOST:PORT] [--join FILE] [--allow-unverified-audit] [--reinit-store] [--log-format text|json] [--log-level LEVEL] [-v]",
			summary: "run a node with embedded defaults", run: cmdUp},
		{name: "admin", summary: "offline administration of a stopped node", subs: []command{
			{name: "credential", args: "--data DIR", summary: "mint an admin credential offline (node stopped)", run: adminCredential},
		}},
		{name: "sponsor", summary: "sponsors and their credentials", subs: []command{
			{name: "create", args: "NAME [--kind human|platform] [--allow PATTERN]...", summary: "create a sponsor and show its first credential", run: sponsorCreate},
			{name: "list", summary: "list sponsors", run: sponsorList},
			{name: "credential", args: "NAME", summary: "mint another credential for a sponsor", run: sponsorCredential},
		}},
		{name: "agent", summary: "registered agents", subs: []command{
			{name: "register", args: "NAME [--sponsor S] [--group G]... --allow PATTERN... [--code-digest D]", summary: "register an agent under its sponsor's ceiling", run: agentRegister},
			{name: "list", summary: "list agents", run: agentList},
			{name: "show", args: "NAME", summary: "show an agent", run: agentShow},
			{name: "quarantine", args: "NAME", summary: "quarantine an agent and end its sessions", run: agentStatus("quarantine")},
			{name: "release", args: "NAME", summary: "release an agent from quarantine", run: agentStatus("release")},
			{name: "trust", args: "NAME SCORE", summary: "set an agent's trust score (0-100)", run: agentTrust},
		}},
		{name: "session", summary: "sessions (start prints where credentials went)", subs: []command{
			{name: "start", args: "--agent NAME --objective TEXT [--tag T]... [--model M] [--agent-version V] [--allow PATTERN]... [--ttl D] [--out DIR] [--jwt-audience AUD]",
				summary: "start a session: the key is made here, the node issues its SVIDs and grant", run: sessionStart},
			{name: "end", args: "ID [--reason TEXT]", summary: "end a session and every session delegated from it", run: sessionEnd},
			{name: "show", args: "ID", summary: "show a session", run: sessionShow},
			{name: "list", args: "[--agent NAME]", summary: "list sessions", run: sessionList},
		}},
		{name: "token", summary: "delegation to sub-agents", subs: []command{
			{name: "exchange", args: "--session PARENT [--agent NAME] [--allow PATTERN]... [--ttl D] [--out DIR]", summary: "delegate a narrower grant to a sub-agent", run: tokenExchange},
		}},
		{name: "run", args: "--agent NAME --objective TEXT [--tag T]... [--allow PATTERN]... [--workspace DIR] [--allow-host HOST]... [--keep|--rollback] [--protect PAT]... [--ro PATH]... [--memory 2G] [--disk 1G] [--pids 512] [--cpus N] [--timeout 10m] [--require-landlock] [--record-diff=false] -- CMD ARGS...",
			summary: "run a program in ward's runtime", run: cmdRun},
		{name: "changes", summary: "a run's kept workspace changes", subs: []command{
			{name: "show", args: "SESSION", summary: "show what a run changed: a unified diff of text files, sizes of others", run: changesCmd("show")},
			{name: "apply", args: "SESSION [--workspace DIR]", summary: "apply a run's kept changes (recorded first)", run: changesCmd("apply")},
			{name: "discard", args: "SESSION", summary: "discard a run's kept changes (recorded first)", run: changesCmd("discard")},
		}},
		{name: "mcp", summary: "MCP clients through ward", subs: []command{
			{name: "wrap", args: "--server NAME --session ID -- CMD ARGS...", summary: "stdio MCP proxy for MCP client configs", run: cmdMCPWrap},
			{name: "serve", args: "--session ID [--listen 127.0.0.1:PORT | --listen unix:PATH] [--token-file FILE] [--log-format text|json] [--log-level LEVEL] | --session ID --stdio", summary: "session-bound local MCP endpoint (sidecar), or the session on stdio", run: cmdMCPServe},
			{name: "config", args: "--client claude-code|cursor|vscode|codex|inspector [--session ID] [--transport http|stdio] [--listen ADDR] [--token-env VAR | --token-file FILE] [--name NAME]", summary: "print the exact client configuration for the session's sidecar", run: cmdMCPConfig},
		}},
		{name: "tools", summary: "tool definition pins (rug-pull defence)", subs: []command{
			{name: "list", args: "[--server S]", summary: "list pinned tool definitions", run: toolsList},
			{name: "approve", args: "SERVER.TOOL --hash sha256:…", summary: "approve the tool definition you reviewed", run: toolsApprove},
		}},
		{name: "approvals", summary: "escalated calls waiting for a quorum", subs: []command{
			{name: "list", args: "[--state S]", summary: "list approval requests", run: approvalsList},
			{name: "show", args: "ID", summary: "show an approval request", run: approvalsOne("show")},
			{name: "approve", args: "ID [--reason TEXT]", summary: "vote for a request", run: approvalsOne("approve")},
			{name: "deny", args: "ID [--reason TEXT]", summary: "vote against a request", run: approvalsOne("deny")},
		}},
		{name: "policy", summary: "validate, show and test policies; print the schema", subs: []command{
			{name: "check", args: "FILE|DIR...", summary: "validate policies (Cedar syntax and ward's schema)", run: policyCheck},
			{name: "explain", args: "FILE|DIR...", summary: "show the Cedar ward enforces, rules compiled, in evaluation order", run: policyExplain},
			{name: "test", args: "CASES.yaml [FILE|DIR...]", summary: "run declared decision cases (for CI)", run: policyTestCmd},
			{name: "schema", summary: "print ward's Cedar schema (-o json: in Cedar's JSON schema format)", run: policySchema},
		}},
		{name: "audit", summary: "check, read, prove and export the audit log offline", subs: []command{
			{name: "verify", args: "[--data DIR] [--key FILE|KEY] [--checkpoint FILE]... | --system --config FILE", summary: "check the log against a pinned key and checkpoints you hold; --system: every node's log, cosignatures and published heads of a system", run: auditCmd("verify")},
			{name: "tail", args: "[--data DIR] [--key FILE|KEY] [-n N]", summary: "the last events of the verified log", run: auditCmd("tail")},
			{name: "search", args: "[--data DIR] [--key FILE|KEY] [--system --config FILE] [--session ID] [--agent A] [--sponsor S] [--type T] [--tool N] [--decision D] [-n N]",
				summary: "events of the verified log that match (online: GET /v1/audit/events); --system: every node's, through the query index", run: auditCmd("search")},
			{name: "reindex", args: "--config FILE", summary: "rebuild the query index of every node of a system from their verified logs", run: auditReindex},
			{name: "prove", args: "[--data DIR] [--key FILE|KEY] INDEX", summary: "an RFC 6962 inclusion proof for event INDEX", run: auditCmd("prove")},
			{name: "export", args: "--session ID --out FILE [--data DIR] [--key FILE|KEY] [--witnessed] [--format bundle|ocsf]",
				summary: "forensic bundle: every event of the session (and its sub-agents') + C2SP tlog-proofs + checkpoint + keys; --format ocsf: verified events as OCSF JSON lines for SIEMs", run: auditCmd("export")},
			{name: "verify-bundle", args: "--key FILE|KEY [--session ID] [--allow-unsealed] [--witness-policy FILE] FILE", summary: "check a bundle offline against a pinned log key", run: auditVerifyBundle},
			{name: "nodes", args: "--config FILE", summary: "the audit logs of a system's nodes, as their heads in the shared store say", run: auditNodes},
		}},
		{name: "replay", args: "TRACE.jsonl|DIR [--policies FILE|DIR]... [--config ward.yaml] [--figures]", summary: "decide recorded sessions in shadow mode", run: cmdReplay},
		{name: "receipts", args: "--session ID", summary: "signed receipts (DSSE, in-toto) of a session's tool calls, as JSON", run: cmdReceipts},
		{name: "claim", summary: "agents' claims against receipts and the log", subs: []command{
			{name: "verify", args: "--session ID --tool SERVER.TOOL [--outcome success] [--arguments-sha256 HEX] --receipt FILE [--data DIR]", summary: "check a claim against a receipt (or a file of them) and the log", run: claimVerify},
		}},
		{name: "console", summary: "operator console accounts (the console is at /console/)", subs: []command{
			{name: "user", args: "add NAME --role viewer|approver|admin [--data DIR]", summary: "create a console account and print its password once", run: consoleUserAdd},
		}},
		{name: "keys", summary: "the trust domain's signing keys and their rotation (admins)", subs: []command{
			{name: "list", summary: "every key: kind, kid, state (active, retiring, retired), created, not after", run: keysList},
			{name: "rotate", args: "--kind ca|jwt|grant|receipt|log", summary: "a new signing key at once; the old one is trusted until what it signed has expired", run: keysRotate},
			{name: "retire", args: "--kid KID", summary: "stop trusting a retiring key at once (its material leaked): what it signed is refused", run: keysRetire},
		}},
		{name: "version", summary: "print ward's version", run: cmdVersion},
		{name: "doctor", args: "[--config FILE] [--data DIR] [--key FILE|KEY] [--no-runtime]",
			summary: "check a deployment (key modes, store, audit log, upstreams, kernel features, clock) and say what to fix", run: cmdDoctor},
		{name: "health", args: "[--timeout D]", summary: "ask the node at WARD_SERVER whether it is ready (GET /healthz): exit 0 ready or degraded, 1 not (a container's health check)", run: cmdHealth},
		{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script", run: cmdCompletion},
	}
}

// leaf is a runnable command and its path ("audit verify").
type leaf struct {
	path string
	cmd  command
}

// leaves lists every runnable command, in table order.
func leaves() []leaf {
	var out []leaf
	for _, c := range commands() {
		if c.subs == nil {
			out = append(out, leaf{c.name, c})
			continue
		}
		for _, s := range c.subs {
			out = append(out, leaf{c.name + " " + s.name, s})
		}
	}
	return out
}

// find returns the command at path, or false.
func find(path string) (command, bool) {
	name, sub, hasSub := strings.Cut(path, " ")
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		if !hasSub {
			return c, true
		}
		for _, s := range c.subs {
			if s.name == sub {
				return s, true
			}
		}
	}
	return command{}, false
}

func names(cs []command) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// usage is the top-level usage: one line per command, naming all of its
// subcommands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ward COMMAND [SUBCOMMAND] [ARGS]")
	fmt.Fprintln(w)
	type row struct{ left, right string }
	var rows []row
	width := 0
	for _, c := range commands() {
		left := "ward " + c.name
		if c.subs != nil {
			left += " " + strings.Join(names(c.subs), "|")
		}
		rows = append(rows, row{left, c.summary})
		width = max(width, len(left))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, r.right)
	}
	fmt.Fprint(w, `
ward COMMAND --help lists a command's subcommands; ward COMMAND SUBCOMMAND --help
shows its usage and flags. Commands that print data take -o json.
Client commands read WARD_SERVER, WARD_CA, WARD_TOKEN and WARD_HOME.
Exit status: 0 success, 1 failure, 2 bad input (including requests the node
refuses as bad input: HTTP 400, 404, 409, 413, 422).
`)
}

// groupHelp is `ward CMD --help` for a command with subcommands.
func groupHelp(w io.Writer, c command) {
	fmt.Fprintf(w, "usage: ward %s SUBCOMMAND [ARGS]\n\n%s\n\nsubcommands:\n", c.name, c.summary)
	for _, s := range c.subs {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace("ward "+c.name+" "+s.name+" "+s.args), s.summary)
	}
	fmt.Fprintf(w, "\nward %s SUBCOMMAND --help shows a subcommand's flags.\n", c.name)
}

// leafHelp is `ward PATH --help`: the usage line, what it does and its own
// flags.
func leafHelp(w io.Writer, path string, fs *flag.FlagSet) {
	c, _ := find(path)
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace("ward "+path+" "+c.args), c.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

func main() {
	// A re-executed ward that is part of a runtime (`ward run`) does that
	// and exits here.
	sandbox.Child()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if isHelp(args[0]) {
		return help(args[1:], stdout, stderr)
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	top, ok := find(args[0])
	if !ok {
		fmt.Fprintf(stderr, "ward: unknown command %q%s (see ward --help)\n", args[0], didYouMean(args[0], names(commands())))
		return 2
	}
	path, rest := top.name, args[1:]
	c := top
	if top.subs != nil {
		if len(rest) == 0 {
			fmt.Fprintf(stderr, "ward %s: needs a subcommand: %s (see ward %s --help)\n", top.name, strings.Join(names(top.subs), ", "), top.name)
			return 2
		}
		if isHelp(rest[0]) {
			groupHelp(stdout, top)
			return 0
		}
		sub, ok := find(top.name + " " + rest[0])
		if !ok {
			fmt.Fprintf(stderr, "ward %s: unknown subcommand %q%s (want %s; see ward %s --help)\n", top.name, rest[0],
				didYouMean(rest[0], names(top.subs)), strings.Join(names(top.subs), ", "), top.name)
			return 2
		}
		c, path, rest = sub, top.name+" "+sub.name, rest[1:]
	}
	return finish(c.run(rest, stdout), path, stdout, stderr)
}

// finish turns a command's error into its exit status and one line on
// stderr.
func finish(err error, path string, stdout, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var hr helpRequested
	if errors.As(err, &hr) {
		leafHelp(stdout, path, hr.fs)
		return 0
	}
	var es exitStatus
	if errors.As(err, &es) {
		return int(es) // ward run: the program's own status
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "ward %s: %s (see ward %s --help)\n", path, oneLine(err.Error()), path)
		return 2
	}
	fmt.Fprintln(stderr, "ward "+path+": "+oneLine(err.Error()))
	var ae *apiError
	if errors.As(err, &ae) && badInput(ae.status) {
		return 2
	}
	return 1
}

// badInput reports whether an HTTP status from the node means the request
// was bad input: malformed (400), naming nothing that exists (404),
// conflicting with what exists (409), too large (413) or unprocessable
// (422).
func badInput(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// help is `ward help [CMD [SUB]]`.
func help(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		usage(stdout)
		return 0
	case 1, 2:
		c, ok := find(strings.Join(args, " "))
		if !ok {
			fmt.Fprintf(stderr, "ward help: no command %q (see ward --help)\n", strings.Join(args, " "))
			return 2
		}
		if c.subs != nil {
			groupHelp(stdout, c)
			return 0
		}
		return finish(c.run([]string{"--help"}, stdout), strings.Join(args, " "), stdout, stderr)
	}
	fmt.Fprintln(stderr, "ward help: usage: ward help [COMMAND [SUBCOMMAND]]")
	return 2
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// flags returns the flag set of the command at path ("audit verify"). It
// prints nothing itself: parse reports errors and help requests to the
// dispatcher.
func flags(path string) *flag.FlagSet {
	fs := flag.NewFlagSet("ward "+path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args, allowing flags after positional arguments
// ("ward agent register NAME --allow …"), and turns flag errors into usage
// errors and -h/--help into helpRequested. Everything after "--" is
// positional.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return helpRequested{fs}
			}
			return usageError{err.Error() + flagHint(fs, err)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// flagHint is " (did you mean -x?)" for an undefined flag close to one of
// fs's, else "".
func flagHint(fs *flag.FlagSet, err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return ""
	}
	var known []string
	fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
	if c := closest(strings.TrimPrefix(name, "-"), known); c != "" {
		return " (did you mean --" + c + "?)"
	}
	return ""
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// outputFlag adds -o text|json.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("o", "text", "output `format`: text or json")
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return usagef("-o %q: want text or json", o)
	}
	return nil
}

// parseOut parses a command's flags and checks -o.
func parseOut(fs *flag.FlagSet, args []string, out *string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	return checkOutput(*out)
}

// parseOperator parses a command's flags and its positional arguments,
// named by want, and only then reads the operator credential (so that bad
// input is reported first): it returns a client authenticated with it.
func parseOperator(fs *flag.FlagSet, args []string, out *string, want ...string) (*client, error) {
	if err := parseArgs(fs, args, out, want...); err != nil {
		return nil, err
	}
	return operatorClient()
}

// parseArgs parses a command's flags, checks -o and takes exactly the
// positional arguments named by want.
func parseArgs(fs *flag.FlagSet, args []string, out *string, want ...string) error {
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	return wantArgs(fs, want...)
}

// wantArgs refuses positional arguments other than those named by want.
func wantArgs(fs *flag.FlagSet, want ...string) error {
	switch n := fs.NArg(); {
	case n == len(want):
		return nil
	case n < len(want):
		return usagef("needs %s", strings.Join(want[n:], " and "))
	case len(want) == 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return usagef("takes %s; unexpected argument %q", strings.Join(want, " and "), fs.Arg(len(want)))
}

// oneArg returns the one positional argument, named what in the error.
func oneArg(fs *flag.FlagSet, what string) (string, error) {
	if err := wantArgs(fs, what); err != nil {
		return "", err
	}
	return fs.Arg(0), nil
}

// noArgs refuses positional arguments.
func noArgs(fs *flag.FlagSet) error { return wantArgs(fs) }

func cmdVersion(args []string, stdout io.Writer) error {
	fs := flags("version")
	out := outputFlag(fs)
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(stdout, map[string]string{"version": version})
	}
	fmt.Fprintln(stdout, "ward", version)
	return nil
}

// didYouMean is ` (did you mean "x"?)` for the candidate closest to s, if
// one is close enough to be a likely typo, else "".
func didYouMean(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// closest returns the candidate within a small edit distance of s (at
// most a third of its length, and at most 3), or "".
func closest(s string, candidates []string) string {
	best, bestD := "", min(3, max(1, len(s)/3))+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return max(len(a), len(b))
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
