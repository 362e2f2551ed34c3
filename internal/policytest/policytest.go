// Package policytest runs declared decision cases against a policy set, so
// that operators can keep test cases next to their policies and run them in
// CI: a policy change that flips a decision fails the build.
//
// # Test files
//
// A test file is YAML, at most [MaxFileSize] bytes, one document:
//
//	# policies the cases run against (files or directories of *.cedar),
//	# relative to this file; optional: the caller may pass a policy set instead
//	policies: [../policies]
//	defaults:                      # optional, merged into every case's principal
//	  agent: reporter
//	  sponsor: alice
//	  groups: [analytics]
//	cases:
//	  - name: analysts may read the share
//	    call: fs.read_text_file    # a tool "server.tool"
//	    arguments: {path: /srv/share/q3.csv}
//	    expect: allow              # allow | deny | escalate
//	    policies: [fs-read-shared] # optional: the determining policy ids are exactly these
//	  - name: nobody else
//	    groups: [sales]            # overrides defaults.groups
//	    call: fs.read_text_file
//	    arguments: {path: /srv/share/q3.csv}
//	    expect: deny
//	    policies: []               # a default deny: no policy determined it
//	  - name: big deletes need a DBA
//	    call: db.delete_rows
//	    verb: delete               # as the tool's declaration would set it
//	    impact: {rows: 500}
//	    expect: escalate
//	    approvals: ["1 of group:dba"]  # optional: exactly these approvals are asked for
//	  - name: docs are public
//	    resource: docs://handbook  # a resource URI; server names its upstream
//	    server: docs
//	    expect: allow
//	  - name: the summary prompt
//	    prompt: docs.summarize     # a prompt "server.prompt"
//	    expect: deny
//	  - name: no uploads from a tainted session
//	    http: {method: PUT, host: files.example.com, path: /q3.csv}  # an outgoing HTTP request
//	    taint: [private, untrusted]  # the session's taint labels
//	    expect: deny
//	  - name: developers may run git
//	    groups: [dev]
//	    exec: {command: /usr/bin/git, args: [status], cwd: /work/repo}  # a program
//	    expect: allow
//
// The principal keys, allowed in defaults and in a case (a case's value
// replaces the default, groups included):
//
//	session  the session id (default [DefaultSession])
//	agent    the agent name; required, in the case or in defaults
//	sponsor  the sponsor; absent or "" means none
//	groups   the agent's groups
//	depth    delegation depth, 0 (the default) for a root session
//	trust    the agent's trust score 0-100 (default [DefaultTrust])
//
// A case has a name (unique in the file, one line of printable text) and
// exactly one of call, prompt, resource, http and exec. A call or prompt names
// "server.name": the server is 1-32 characters of a-z, 0-9, '_' and '-', the
// name is 1-128 characters without white space or control characters. A
// resource is a URI with a scheme (at most 2048 characters, without white
// space or control characters) and needs server, the upstream that serves
// it (ward routes resources to servers, it does not read the server from the
// URI); server is refused for calls and prompts. arguments is a mapping,
// converted to the JSON the call would carry: numbers keep their text when
// it is a JSON number (1e3 stays 1e3), other YAML numbers (0x1f, +1) become
// their decimal value; infinities, NaN, aliases, custom tags and non-string
// keys are refused, and so is nesting deeper than [policy.MaxArgumentDepth].
// verb and impact (a mapping of integers), dataset (a name) and path (an
// absolute, clean file path) stand for what a tool declaration would add to
// the call's context.
//
// http is an outgoing HTTP request, a mapping: method (required; capitals,
// as policies see it), host (required; a lowercase name or an IP address in
// canonical form, without a port: see [policy.CanonicalHost]), scheme
// (http or https, default https), port (default the scheme's, 80 or 443)
// and path (the escaped URL path without query, in the normal form of
// [policy.CleanHTTPPath]; default "/"). A CONNECT tunnel has no scheme or
// path (the proxy does not see them). exec is a program run, a mapping:
// command (required; an absolute, clean path), args (a list of strings,
// the arguments after the program) and cwd (an absolute, clean path).
// server, arguments, verb, impact, dataset and path are refused for both.
// taint, in any case, lists the session's taint labels ("private",
// "untrusted"; see package policy). A request Decide would refuse as
// invalid is an error in the file, so every case is decided on its merits.
//
// expect is the outcome, as [policy.Decision.Outcome] reports it. policies,
// when present, must equal the determining policy ids
// ([policy.Decision].Reasons) as a set; an empty list asserts that none did
// (a default deny). approvals, only with expect: escalate, must equal the
// approvals the decision asks for, as a multiset, each written as in
// @escalate and compared in its canonical form ([policy.Approval.String]).
//
// Parsing is strict: unknown or repeated keys, values of the wrong type,
// a second document, aliases and a file without cases are errors. Every
// error is an [*Error] naming the file, line and column; [Load] reports all
// of them (up to 20), joined.
//
// # Running
//
// Loading the policies is the caller's job ([File.ResolvedPolicyPaths] gives
// the paths named in the file, relative to its directory). [Run] is pure: it
// decides every case with [policy.Set.Decide] and compares. [WriteText]
// prints one line per case and a count:
//
//	PASS  analysts may read the share
//	FAIL  nobody else (policies_test.yaml:14): expected deny, got allow (allowed by policy "sales-read" (policies/sales.cedar:2:1))
//	PASS  big deletes need a DBA
//	...
//	4 passed, 1 failed
package policytest

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/ward-dev/ward/internal/policy"
)

// MaxFileSize is the largest test file Load accepts, in bytes.
const MaxFileSize = 1 << 20

// DefaultSession is the session id of a case that sets none.
const DefaultSession = "policytest"

// DefaultTrust is the trust score of a case that sets none: the score a new
// agent starts with.
const DefaultTrust = 50

// Expected outcomes, as [policy.Decision.Outcome] reports them.
const (
	ExpectAllow    = "allow"
	ExpectDeny     = "deny"
	ExpectEscalate = "escalate"
)

// Case is one declared decision.
type Case struct {
	Name string
	// File is the test file the case comes from and Line the line where
	// it starts, for messages.
	File string
	Line int
	// Request is a well-formed request: Decide never refuses it as invalid.
	Request policy.Request
	// Expect is "allow", "deny" or "escalate".
	Expect string
	// Policies, when not nil, are the determining policy ids expected, as
	// a set; empty means none (a default deny).
	Policies []string
	// Approvals, when not nil, are the approvals an escalation must ask
	// for, as a multiset, in [policy.Approval.String] form. Only set when
	// Expect is "escalate".
	Approvals []string
}

// File is a loaded test file.
type File struct {
	Path string
	// PolicyPaths are the policy files and directories named in the file,
	// as written; see [File.ResolvedPolicyPaths].
	PolicyPaths []string
	Cases       []Case
}

// ResolvedPolicyPaths returns PolicyPaths with relative paths resolved
// against the directory of the test file.
func (f *File) ResolvedPolicyPaths() []string {
	if f == nil || f.PolicyPaths == nil {
		return nil
	}
	dir := filepath.Dir(f.Path)
	out := make([]string, len(f.PolicyPaths))
	for i, p := range f.PolicyPaths {
		if filepath.IsAbs(p) {
			out[i] = filepath.Clean(p)
		} else {
			out[i] = filepath.Join(dir, p)
		}
	}
	return out
}

// Result is the outcome of one case.
type Result struct {
	Case Case
	Got  policy.Decision
	Pass bool
	// Why says, for a failure, what differed and why the decision came out
	// as it did: `expected deny, got allow (allowed by policy "x" (p.cedar:3:1))`.
	Why string
}

// Run decides every case of f against set and compares. It is pure: no I/O,
// and a nil set denies everything, as [policy.Set.Decide] does.
func Run(f *File, set *policy.Set) []Result {
	if f == nil {
		return nil
	}
	out := make([]Result, len(f.Cases))
	for i, c := range f.Cases {
		d := set.Decide(c.Request)
		out[i] = Result{Case: c, Got: d, Pass: true}
		if why := check(c, d); why != "" {
			out[i].Pass, out[i].Why = false, why
		}
	}
	return out
}

// check returns why d does not meet c, or "".
func check(c Case, d policy.Decision) string {
	explain := d.Explain(c.Request)
	if got := d.Outcome(); got != c.Expect {
		return fmt.Sprintf("expected %s, got %s (%s)", c.Expect, got, explain)
	}
	if c.Policies != nil {
		got := make([]string, len(d.Reasons))
		for i, r := range d.Reasons {
			got[i] = r.PolicyID
		}
		if !sameSet(got, c.Policies) {
			return fmt.Sprintf("expected policies %s, got %s (%s)", list(c.Policies), list(got), explain)
		}
	}
	if c.Approvals != nil {
		got := make([]string, len(d.Approvals))
		for i, a := range d.Approvals {
			got[i] = a.String()
		}
		if !sameMultiset(got, c.Approvals) {
			return fmt.Sprintf("expected approvals %s, got %s (%s)", list(c.Approvals), list(got), explain)
		}
	}
	return ""
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b))))
}

func sameMultiset(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// list formats ids as ["a", "b"], or "none".
func list(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	b := []byte{'['}
	for i, id := range ids {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, "%q", id)
	}
	return string(append(b, ']'))
}

// Summary counts passed and failed results.
func Summary(rs []Result) (passed, failed int) {
	for _, r := range rs {
		if r.Pass {
			passed++
		} else {
			failed++
		}
	}
	return passed, failed
}

// WriteText writes one line per result, "PASS  name" or
// "FAIL  name (file:line): why", then "N passed, M failed". It returns the
// first write error.
func WriteText(w io.Writer, rs []Result) error {
	ew := &errWriter{w: w}
	for _, r := range rs {
		if r.Pass {
			ew.printf("PASS  %s\n", r.Case.Name)
		} else {
			ew.printf("FAIL  %s (%s:%d): %s\n", r.Case.Name, r.Case.File, r.Case.Line, r.Why)
		}
	}
	p, f := Summary(rs)
	ew.printf("%d passed, %d failed\n", p, f)
	return ew.err
}

// errWriter keeps the first write error and writes nothing after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
