package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Action is what a session asks to do with a resource.
type Action string

// The actions ward decides on.
const (
	ActionCallTool     Action = "call_tool"     // tools/call; resource Tool::"<server>.<tool>"
	ActionReadResource Action = "read_resource" // resources/read; resource Resource::"<uri>"
	ActionGetPrompt    Action = "get_prompt"    // prompts/get; resource Prompt::"<server>.<prompt>"
	ActionHTTPRequest  Action = "http_request"  // an outgoing HTTP request; resource Host::"<host>"
	ActionExec         Action = "exec"          // running a program; resource Path::"<command>"
)

// MaxArgumentDepth is the deepest nesting of objects and arrays accepted in
// [Request.Arguments]; deeper arguments are denied.
const MaxArgumentDepth = 64

// Request is one decision to make: may this session do this action on this
// resource with these arguments?
//
// The MCP actions (call_tool, read_resource, get_prompt) need Server and
// Name and may carry Arguments, Verb, Impact, Dataset and Path. http_request
// needs HTTP, exec needs Exec; both take none of the MCP fields (Server
// empty, Name empty or the resource's id) and are denied if given any. Every
// action may carry ObjectiveTags, Counters and Taint. Zero values mean
// absent or empty, so a request built before a field existed decides as it
// did. [Request.Validate] says what Decide would refuse.
type Request struct {
	Session string   // session id; required
	Agent   string   // agent name; required
	Sponsor string   // sponsor name; "" leaves the sponsor attributes absent
	Groups  []string // the agent's groups
	Depth   int      // delegation depth: 0 for a root session

	Action Action
	Server string // upstream server name; required for the MCP actions, "" otherwise
	// Name is the full resource id: "fs.read_file" for tools and prompts
	// (it must start with Server and a dot), the URI for resources. For
	// http_request and exec it may be left empty; if set it must be the host
	// or the command.
	Name string
	// Arguments are the call's JSON arguments. Nil (or JSON null) means
	// none; otherwise they must be a JSON object, else the request is denied.
	Arguments json.RawMessage
	// HTTP is the request of an http_request: required for that action and
	// nil for every other.
	HTTP *HTTPRequest
	// Exec is the program of an exec: required for that action and nil for
	// every other.
	Exec *ExecRequest

	// Verb is what the call does, from the tool's declaration ("read",
	// "delete", …); context.verb, absent when "".
	Verb string
	// Impact is the call's quantitative impact read from its arguments per
	// the tool's declaration ({"rows": 500}); context.impact, absent when nil.
	Impact map[string]int64
	// Trust is the agent's trust score, 0-100 (principal.trust). The zero
	// value is the lowest trust, so policies that require trust fail closed.
	Trust int
	// ObjectiveTags are the tags the session declared with its objective
	// (context.objective_tags, a set; empty when none).
	ObjectiveTags []string
	// Counters is the usage, so far in their windows, of the collective
	// limits this call falls under, by limit id (context.counters; {} when
	// none). Fractions are rounded down.
	Counters map[string]float64
	// Taint are the session's taint labels ("private", "untrusted"; see the
	// package documentation): context.taint, a set, empty when none. Each is
	// 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter
	// or digit.
	Taint []string
	// Dataset names the dataset a tool call touches, read from its
	// arguments per the tool's declaration: context.dataset, the entity
	// Dataset::"<name>"; absent when "". MCP actions only.
	Dataset string
	// Sink says data can leave, or state change, through this MCP call:
	// context.sink (always present for the MCP actions).
	Sink bool
	// TaintedArguments name the consequential arguments of the call whose
	// values appeared in untrusted results of the session and not in its
	// objective (argument provenance; for http_request "host" and "url"):
	// context.tainted_arguments, a set, present on every action.
	TaintedArguments []string
	// Path is the file a tool call touches, read from its arguments per the
	// tool's declaration: context.path; absent when "". It must be absolute
	// and clean (path.Clean leaves it unchanged). MCP actions only.
	Path string
}

// HTTPRequest is an outgoing HTTP request (action http_request), in the
// normal form Decide requires so that no spelling of a URL escapes a policy
// written for another: use [CanonicalHost] and [CleanHTTPPath] to get there.
//
// A CONNECT tunnel is a request with Method [MethodConnect] and an empty
// Scheme and Path: a proxy does not see what goes through it. Policies that
// look at paths therefore do not apply to tunnels (context.path is ""); to
// keep a path rule for a host, deny CONNECT to it.
type HTTPRequest struct {
	// Method is an RFC 9110 method token of at most 32 characters without
	// lowercase letters ("GET", "POST", "CONNECT"): context.method.
	Method string `json:"method"`
	// Scheme is "http" or "https", "" for a tunnel: context.scheme.
	Scheme string `json:"scheme"`
	// Host is the destination as [CanonicalHost] returns it: a lowercase
	// DNS name without a trailing dot, or an IP address in canonical form
	// (IPv6 without brackets or zone); never with a port. It is the
	// resource, Host::"<host>", and context.host.
	Host string `json:"host"`
	// Port is the destination port, 1-65535, the scheme's default included:
	// context.port.
	Port int `json:"port"`
	// Path is the URL path as [CleanHTTPPath] returns it: the escaped path
	// in RFC 3986 normal form, starting with "/", without query or fragment;
	// "" for a tunnel: context.path.
	Path string `json:"path"`
}

// MethodConnect is the method of a tunnel: [HTTPRequest] explains.
const MethodConnect = "CONNECT"

// ExecRequest is a program a session asks to run (action exec).
type ExecRequest struct {
	// Command is the program's absolute, clean path (path.Clean leaves it
	// unchanged), valid UTF-8 without NUL: the resource, Path::"<command>",
	// and context.command.
	Command string `json:"command"`
	// Args are its arguments after the program (argv[1:]), valid UTF-8
	// without NUL: context.args, a set, and context.cmdline, the arguments
	// joined with single spaces.
	Args []string `json:"args,omitempty"`
	// Dir is the working directory, absolute and clean, or "" when unknown:
	// context.cwd.
	Dir string `json:"cwd,omitempty"`
}

// Reason is a policy that determined a decision.
type Reason struct {
	PolicyID string
	Effect   string // "permit" or "forbid"
	Position string // "file.cedar:12:1"
}

// Decision is the outcome of [Set.Decide]: Allow, or Escalate (the call may
// go ahead only with the approvals listed), or neither (deny). Allow and
// Escalate are never both true, so code that checks only Allow fails closed.
type Decision struct {
	Allow    bool
	Escalate bool
	// Approvals are what an escalated call needs: one entry per @escalate
	// policy that applied; all of them must be satisfied.
	Approvals []Approval
	// Reasons are the permits that applied when allowed, the forbids that
	// applied when denied (empty for a default deny), in policy order.
	Reasons []Reason
	// FailedForbid is set when the call was denied because a forbid failed
	// to evaluate (Reasons are those forbids).
	FailedForbid bool
	// Errors are the policies that failed to evaluate, as
	// "file.cedar:3:1: policy "id": message", in policy order; or one
	// "invalid request: ..." diagnostic when the request itself was refused.
	Errors []string
}

// Outcome is "allow", "escalate" or "deny".
func (d Decision) Outcome() string {
	switch {
	case d.Allow:
		return "allow"
	case d.Escalate:
		return "escalate"
	}
	return "deny"
}

// invalidPrefix starts the diagnostic of a request refused before any
// policy was evaluated.
const invalidPrefix = "invalid request: "

// PolicyInfo describes one loaded policy.
type PolicyInfo struct {
	ID          string
	Effect      string            // "permit" or "forbid"
	Position    string            // "file.cedar:12:1"
	Text        string            // the policy's source text, annotations included
	Annotations map[string]string // all annotations, @id included
}

// ParseError is an error in a policy file, located by file, line and column
// (both 1-based).
type ParseError struct {
	File   string
	Line   int
	Column int
	Msg    string // "parse error: ..." or "duplicate policy id ..."
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// entry is one compiled policy.
type entry struct {
	id     cedar.PolicyID
	policy *cedar.Policy
	forbid bool
	// escalate is set for a policy with an @escalate annotation.
	escalate *Approval
	order    int // position in parse order: files sorted by name, then offset
	// principal is the policy's principal scope, set by buildIndex.
	principal principalScope
	info      PolicyInfo
}

// Set is an immutable snapshot of policies. The zero value and a nil *Set
// hold no policies and deny everything. It is safe for concurrent use.
type Set struct {
	entries []*entry // parse order
	byID    map[cedar.PolicyID]*entry
	index   index
	// hasEscalation is set when some policy carries @escalate.
	hasEscalation bool

	// Per-Set memos: they speed Decide up and never change its answers.
	cache    *preparedCache
	decoders *decoders
}

// Len returns the number of policies in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// Policies returns every policy in parse order (files sorted by name, then
// position in the file). The result is a copy.
func (s *Set) Policies() []PolicyInfo {
	if s == nil {
		return nil
	}
	out := make([]PolicyInfo, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.info
		out[i].Annotations = maps.Clone(e.info.Annotations)
	}
	return out
}

// LoadDir loads every *.cedar file directly in dir (not in subdirectories),
// in name order. A directory without policy files gives an empty set, which
// denies everything.
func LoadDir(dir string) (*Set, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read policy dir: %w", err)
	}
	var paths []string
	for _, de := range des {
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".cedar") {
			continue
		}
		paths = append(paths, filepath.Join(dir, de.Name()))
	}
	return LoadFiles(paths...)
}

// LoadFiles loads the named policy files. Positions and ids name each file
// as given. All unreadable files and all files' parse errors are reported.
func LoadFiles(paths ...string) (*Set, error) {
	files := make(map[string][]byte, len(paths))
	var errs []error
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read policy file: %w", err))
			continue
		}
		files[p] = b
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return Parse(files)
}

// Parse compiles policy files, given as file name → Cedar source. It reports
// the first parse error of every file and every duplicate @id, joined, each
// as a [*ParseError]. No files, or files without policies, give an empty set.
func Parse(files map[string][]byte) (*Set, error) {
	names := slices.Sorted(maps.Keys(files))
	var errs []error
	var entries []*entry
	for _, name := range names {
		src := files[name]
		list, err := cedar.NewPolicyListFromBytes(name, src)
		if err != nil {
			errs = append(errs, parseError(name, src, err))
			continue
		}
		fileEntries, ferrs := compileFile(name, src, list, len(entries))
		errs = append(errs, ferrs...)
		entries = append(entries, fileEntries...)
	}

	byID := make(map[cedar.PolicyID]*entry, len(entries))
	for _, e := range entries {
		if first, dup := byID[e.id]; dup {
			errs = append(errs, positionedError(e.policy.Position(),
				fmt.Sprintf("duplicate policy id %q (also at %s)", e.id, first.info.Position)))
			continue
		}
		byID[e.id] = e
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Set{entries: entries, byID: byID, cache: &preparedCache{}, decoders: &decoders{}}
	for _, e := range entries {
		s.hasEscalation = s.hasEscalation || e.escalate != nil
	}
	s.index = buildIndex(entries)
	return s, nil
}

// compileFile turns one file's parsed policies into entries, numbering them
// from order.
func compileFile(name string, src []byte, list cedar.PolicyList, order int) ([]*entry, []error) {
	var errs []error
	lineCount := map[int]int{}
	for _, p := range list {
		lineCount[p.Position().Line]++
	}
	entries := make([]*entry, 0, len(list))
	for i, p := range list {
		pos := p.Position()
		ann := make(map[string]string, len(p.AST().Annotations))
		for k, v := range p.Annotations() {
			ann[string(k)] = string(v)
		}
		var id string
		if v, ok := ann["id"]; ok {
			if v == "" {
				errs = append(errs, positionedError(pos, "parse error: empty @id annotation"))
				continue
			}
			id = v
		} else if lineCount[pos.Line] > 1 {
			id = fmt.Sprintf("%s:%d:%d", name, pos.Line, pos.Column)
		} else {
			id = fmt.Sprintf("%s:%d", name, pos.Line)
		}
		end := len(src)
		if i+1 < len(list) {
			end = list[i+1].Position().Offset
		}
		effect := "permit"
		if p.Effect() == cedar.Forbid {
			effect = "forbid"
		}
		esc, err := parseEscalation(ann)
		if err != nil {
			errs = append(errs, positionedError(pos, "parse error: policy "+strconv.Quote(id)+": "+err.Error()))
			continue
		}
		if esc != nil {
			esc.PolicyID = id
		}
		entries = append(entries, &entry{
			id:       cedar.PolicyID(id),
			policy:   p,
			forbid:   p.Effect() == cedar.Forbid,
			escalate: esc,
			order:    order + len(entries),
			info: PolicyInfo{
				ID:          id,
				Effect:      effect,
				Position:    formatPosition(pos),
				Text:        policyText(src, pos.Offset, end, p),
				Annotations: ann,
			},
		})
	}
	return entries, errs
}

func formatPosition(p types.Position) string {
	return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column)
}

func positionedError(p types.Position, msg string) *ParseError {
	return &ParseError{File: p.Filename, Line: p.Line, Column: p.Column, Msg: msg}
}

// policyText returns the source of the policy starting at offset start and
// ending before limit: up to and including the first ';' at which the text
// parses as exactly one policy. (A ';' inside a string or comment cannot end
// a parsable prefix: the string would be unterminated, the policy unfinished.)
// It falls back to the canonical form if the source cannot be sliced.
func policyText(src []byte, start, limit int, p *cedar.Policy) string {
	if start >= 0 && start <= limit && limit <= len(src) {
		for k := start; k < limit; k++ {
			if src[k] != ';' {
				continue
			}
			if l, err := cedar.NewPolicyListFromBytes("", src[start:k+1]); err == nil && len(l) == 1 {
				return string(src[start : k+1])
			}
		}
	}
	return string(p.MarshalCedar())
}

var (
	// parserErrRE matches cedar-go's parser errors:
	// `parse error at <input>:3:14 "tok": message`.
	parserErrRE = regexp.MustCompile(`(?s)^parse error at <input>:(\d+):(\d+) ("(?:[^"\\]|\\.)*"): (.*)$`)
	// exactErrRE matches the parser's "wrong token" message.
	exactErrRE = regexp.MustCompile(`(?s)^exact got (.*) want (.*)$`)
	// scannerErrRE matches cedar-go's scanner errors: `<input>:3:14: message`.
	scannerErrRE = regexp.MustCompile(`(?s)^<input>:(\d+):(\d+): (.*)$`)
)

// parseError converts a cedar-go parse error of file name into a
// *ParseError naming file, line and column.
func parseError(name string, src []byte, err error) *ParseError {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	if m := parserErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		detail := m[4]
		atEOF := m[3] == `""`
		if e := exactErrRE.FindStringSubmatch(detail); e != nil {
			got := strconv.Quote(e[1])
			if atEOF && e[1] == "" {
				got, atEOF = "end of file", false
			}
			detail = fmt.Sprintf("expected %q, got %s", e[2], got)
		}
		if atEOF {
			detail += " at end of file"
		}
		return &ParseError{File: name, Line: line, Column: col, Msg: "parse error: " + detail}
	}
	if m := scannerErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		if line < 1 || col < 1 {
			// The scanner reports invalid UTF-8 at 0:0: find it.
			off := firstInvalidUTF8(src)
			if off < 0 {
				off = failingPolicyStart(src)
			}
			line, col = lineColumn(src, off)
		}
		return &ParseError{File: name, Line: line, Column: col, Msg: "parse error: " + m[3]}
	}
	// Some errors (bad string escapes, for one) carry no position: point
	// at the start of the policy that failed.
	line, col := lineColumn(src, failingPolicyStart(src))
	return &ParseError{File: name, Line: line, Column: col, Msg: "parse error: in this policy: " + msg}
}

// failingPolicyStart returns the offset where the first policy that does not
// parse starts.
func failingPolicyStart(src []byte) int {
	dec := cedar.NewDecoder(bytes.NewReader(src))
	start := skipSpaceAndComments(src, 0)
	for {
		var p cedar.Policy
		if err := dec.Decode(&p); err != nil {
			return start
		}
		off := p.Position().Offset
		end := -1
		for k := off; k < len(src); k++ {
			if src[k] != ';' {
				continue
			}
			if l, err := cedar.NewPolicyListFromBytes("", src[off:k+1]); err == nil && len(l) == 1 {
				end = k + 1
				break
			}
		}
		if end < 0 {
			return start
		}
		start = skipSpaceAndComments(src, end)
	}
}

// firstInvalidUTF8 returns the offset of the first byte of src that is not
// valid UTF-8, or -1.
func firstInvalidUTF8(src []byte) int {
	for off := 0; off < len(src); {
		r, n := utf8.DecodeRune(src[off:])
		if r == utf8.RuneError && n <= 1 {
			return off
		}
		off += n
	}
	return -1
}

// skipSpaceAndComments returns the offset of the first byte at or after off
// that is neither white space nor inside a // comment.
func skipSpaceAndComments(src []byte, off int) int {
	for off < len(src) {
		r, n := utf8.DecodeRune(src[off:])
		switch {
		case unicode.IsSpace(r):
			off += n
		case bytes.HasPrefix(src[off:], []byte("//")):
			nl := bytes.IndexByte(src[off:], '\n')
			if nl < 0 {
				return len(src)
			}
			off += nl + 1
		default:
			return off
		}
	}
	return off
}

// lineColumn converts a byte offset into a 1-based line and column (in
// characters), as cedar-go counts them.
func lineColumn(src []byte, off int) (line, col int) {
	off = min(max(off, 0), len(src))
	line = 1 + bytes.Count(src[:off], []byte("\n"))
	lineStart := bytes.LastIndexByte(src[:off], '\n') + 1
	return line, 1 + utf8.RuneCount(src[lineStart:off])
}
