package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/enforce"
	"github.com/ward-dev/ward/internal/policy"
	"github.com/ward-dev/ward/internal/strictjson"
	"github.com/ward-dev/ward/internal/taint"
)

// Defaults for [Options].
const (
	// DefaultMaxLines bounds the lines of a trace, blank lines included.
	DefaultMaxLines = 100_000
	// DefaultMaxLineBytes bounds one line, without its line ending.
	DefaultMaxLineBytes = 1 << 20
	// DefaultTrust is the trust score of a session record without "trust":
	// the score ward gives a newly registered agent.
	DefaultTrust = 50
)

// Options bounds a replay and configures what it simulates besides
// policy. Zero fields take their defaults.
type Options struct {
	MaxLines     int // lines in the trace; 0 means DefaultMaxLines
	MaxLineBytes int // bytes in one line; 0 means DefaultMaxLineBytes
	// Labels labels results as the node's taint configuration does; nil
	// labels every result untrusted, as a node without one.
	Labels *taint.Labeler
	// Tools are the node's tool declarations, used as the node uses them;
	// a verb, impact, dataset or path recorded in the trace takes the
	// place of what a declaration would derive.
	Tools map[string]enforce.ToolDeclaration
	// ScanResults scans results as a node with scan_results does
	// (enforce.SessionsConfig.ScanResults).
	ScanResults bool
	// Roots are the node's servers' roots (enforce.Config.Roots): file
	// arguments of their tools are resolved as the node resolves them, on
	// this machine's filesystem, and refused outside them.
	Roots map[string][]string
}

// Call is one recorded call, HTTP request or program run, and what ward
// decides on it.
type Call struct {
	Trace   string `json:"trace,omitempty"` // the trace file, in directory mode
	Line    int    `json:"line"`            // 1-based line of the record
	Session string `json:"session"`         // id of the session it belongs to
	// Method is the MCP method of a call record, as recorded, or "http" or
	// "exec" for those records.
	Method string `json:"method"`
	// Server is a call's upstream server, derived from Name if not
	// recorded; "" for http and exec.
	Server string `json:"server"`
	// Name is "server.tool", "server.prompt" or the URI of a call, the host
	// of an HTTP request, the program of an exec.
	Name      string              `json:"name"`
	Arguments json.RawMessage     `json:"arguments,omitempty"`
	Dataset   string              `json:"dataset,omitempty"` // a call's dataset, as recorded
	Path      string              `json:"path,omitempty"`    // a call's file path, as recorded
	HTTP      *policy.HTTPRequest `json:"http,omitempty"`    // an http record's request, defaults applied
	Exec      *policy.ExecRequest `json:"exec,omitempty"`    // an exec record's program
	// Taint are the labels decided on: those recorded with the call and
	// those the replay gave the session, sorted.
	Taint []string `json:"taint,omitempty"`
	// Sink is context.sink: a tools/call that is declared a sink, or not
	// declared and not recorded read-only.
	Sink bool `json:"sink,omitempty"`
	// TaintedArguments are the consequential arguments of a sink whose
	// values came from an untrusted result and not from the objective
	// (context.tainted_arguments).
	TaintedArguments []string `json:"tainted_arguments,omitempty"`
	// Harmful and Approved are as recorded: the call an attack wants, and
	// an escalation a human approved.
	Harmful  bool   `json:"harmful,omitempty"`
	Approved bool   `json:"approved,omitempty"`
	Outcome  string `json:"outcome"` // "allow", "deny" or "escalate"
	Reason   string `json:"reason"`  // policy.Decision.Explain, and why arguments are tainted
	// Policies are the ids of the policies that determined the outcome;
	// empty for a default deny.
	Policies []string `json:"policies,omitempty"`
	// Approvals are what an escalated call needs, as "1 of group:dba".
	Approvals []string `json:"approvals,omitempty"`
}

// Counts are calls by outcome.
type Counts struct {
	Calls     int `json:"calls"`
	Allowed   int `json:"allowed"`
	Denied    int `json:"denied"`
	Escalated int `json:"escalated"`
}

// count adds one call decided as outcome ("allow", "escalate", else deny).
func (n *Counts) count(outcome string) {
	n.Calls++
	switch outcome {
	case "allow":
		n.Allowed++
	case "escalate":
		n.Escalated++
	default:
		n.Denied++
	}
}

// merge adds o.
func (n *Counts) merge(o Counts) {
	n.Calls += o.Calls
	n.Allowed += o.Allowed
	n.Denied += o.Denied
	n.Escalated += o.Escalated
}

// Summary counts a replay's outcomes. Allowed+Denied+Escalated == Calls.
type Summary struct {
	Sessions int `json:"sessions"`
	Counts
	// ByPolicy maps a policy id to the number of calls it determined (the
	// calls whose Policies list it). Never nil in a Report from Run.
	ByPolicy map[string]int `json:"by_policy"`

	// Sessions by verdict: Completed+NeedsHuman+Interrupted == Sessions.
	Completed   int `json:"completed"`
	NeedsHuman  int `json:"needs_human"` // a call escalated, none denied
	Interrupted int `json:"interrupted"` // a call denied
	// Figures are the labelled sessions' figures, all domains together;
	// ByDomain has them per domain (sessions without one under "").
	Figures
	ByDomain map[string]*Figures `json:"by_domain,omitempty"`
}

// Figures are what a labelled set of sessions says about detection:
//
//   - attacks stopped before or at the harmful call, of the attacks whose
//     agent made it;
//   - benign sessions interrupted (a call denied or escalated);
//   - attacked sessions whose user task still succeeded in the recording,
//     interrupted before the harmful call (or at all, where the agent
//     never made it): the work an attack costs the user when ward is in
//     the way.
type Figures struct {
	// Attacks are the attack sessions whose agent made the harmful call;
	// AttacksStopped, those stopped before or at it.
	Attacks        int `json:"attacks"`
	AttacksStopped int `json:"attacks_stopped"`
	// AttacksIgnored are the attack sessions whose agent did not act on
	// the injection ("followed": false): no harmful call to stop.
	AttacksIgnored int `json:"attacks_ignored,omitempty"`
	// Benign sessions and how many had a call denied or escalated.
	Benign            int `json:"benign"`
	BenignInterrupted int `json:"benign_interrupted"`
	// Utility are the attack sessions whose user task succeeded in the
	// recording ("task_succeeded"); UtilityInterrupted, those with a call
	// denied or escalated before the harmful call, or at all when there
	// is none.
	Utility            int `json:"utility,omitempty"`
	UtilityInterrupted int `json:"utility_interrupted,omitempty"`
}

func (f *Figures) merge(o Figures) {
	f.Attacks += o.Attacks
	f.AttacksStopped += o.AttacksStopped
	f.AttacksIgnored += o.AttacksIgnored
	f.Benign += o.Benign
	f.BenignInterrupted += o.BenignInterrupted
	f.Utility += o.Utility
	f.UtilityInterrupted += o.UtilityInterrupted
}

// Report is the result of a replay: every call and every session in trace
// order, and the summary.
type Report struct {
	Calls    []Call
	Sessions []Session
	Summary  Summary
}

// methods maps the MCP methods ward decides to their actions.
var methods = map[string]policy.Action{
	"tools/call":          policy.ActionCallTool,
	"prompts/get":         policy.ActionGetPrompt,
	"resources/read":      policy.ActionReadResource,
	"resources/subscribe": policy.ActionReadResource,
}

// Run reads a trace from r (see the package documentation for its format)
// and decides every call against set. It reads r to the end unless the trace
// is malformed; then it returns an error naming the line and no report.
func Run(set *policy.Set, r io.Reader, opt Options) (*Report, error) {
	switch {
	case opt.MaxLines < 0:
		return nil, fmt.Errorf("replay options: negative MaxLines %d", opt.MaxLines)
	case opt.MaxLineBytes < 0:
		return nil, fmt.Errorf("replay options: negative MaxLineBytes %d", opt.MaxLineBytes)
	}
	if opt.MaxLines == 0 {
		opt.MaxLines = DefaultMaxLines
	}
	if opt.MaxLineBytes == 0 {
		opt.MaxLineBytes = DefaultMaxLineBytes
	}

	sc := bufio.NewScanner(r)
	// Room for the longest line plus "\r\n": longer lines are refused by
	// splitLines before the scanner's own limit is reached.
	sc.Buffer(make([]byte, 0, min(64<<10, opt.MaxLineBytes+2)), opt.MaxLineBytes+2)
	sc.Split(splitLines(opt.MaxLineBytes))

	p := newParser()
	rep := &Report{Summary: Summary{ByPolicy: map[string]int{}, ByDomain: map[string]*Figures{}}}
	sessions := map[string]int{} // session id → line of its record
	sim, err := newSimulator(set, opt)
	if err != nil {
		return nil, err
	}
	var cur *state
	line := 0
	for sc.Scan() {
		line++
		if line > opt.MaxLines {
			return nil, fmt.Errorf("trace line %d: trace has more than %d lines", line, opt.MaxLines)
		}
		b := bytes.Trim(sc.Bytes(), " \t")
		if len(b) == 0 {
			continue
		}
		rec, err := p.parse(b)
		if err != nil {
			return nil, fmt.Errorf("trace line %d: %w", line, err)
		}
		switch rec.typ {
		case "session":
			if first, dup := sessions[rec.session]; dup {
				return nil, fmt.Errorf("trace line %d: session %q already started at line %d", line, rec.session, first)
			}
			if err := rep.endSession(cur); err != nil {
				return nil, err
			}
			sessions[rec.session] = line
			if cur, err = sim.start(rec, line); err != nil {
				return nil, fmt.Errorf("trace line %d: %v", line, err)
			}
			rep.Summary.Sessions++
		default:
			if cur == nil {
				return nil, fmt.Errorf("trace line %d: %s before any session record", line, rec.typ)
			}
			if rec.typ == "notice" {
				// What a server sent the client: taken in, as live
				// (enforce.Noticed); nothing to decide.
				sim.notice(cur, rec, line)
				continue
			}
			if rec.harmful && cur.sum.Label != LabelAttack {
				return nil, fmt.Errorf("trace line %d: a harmful call in session %q, which is not labelled %q", line, cur.sum.ID, LabelAttack)
			}
			if rec.harmful && !cur.sum.Followed {
				return nil, fmt.Errorf("trace line %d: a harmful call in session %q, whose agent did not follow the injection (\"followed\": false)", line, cur.sum.ID)
			}
			c := sim.decide(cur, rec, line)
			rep.add(c)
			cur.sum.add(c)
			if cur.firstStop == 0 && c.Outcome != "allow" {
				cur.firstStop = c.Line
			}
		}
	}
	if err := sc.Err(); err != nil {
		var tl *lineTooLongError
		if errors.As(err, &tl) || errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("trace line %d: line longer than %d bytes", line+1, opt.MaxLineBytes)
		}
		return nil, fmt.Errorf("read trace after line %d: %w", line, err)
	}
	if len(sessions) == 0 {
		return nil, errors.New("trace has no session record")
	}
	if err := rep.endSession(cur); err != nil {
		return nil, err
	}
	if len(rep.Summary.ByDomain) == 0 {
		rep.Summary.ByDomain = nil // no labelled session
	}
	return rep, nil
}

func (r *Report) add(c Call) {
	r.Calls = append(r.Calls, c)
	s := &r.Summary
	s.count(c.Outcome)
	for _, id := range c.Policies {
		s.ByPolicy[id]++
	}
}

// lineTooLongError stops the scanner at a line over the limit.
type lineTooLongError struct{}

func (*lineTooLongError) Error() string { return "line too long" }

// splitLines is bufio.ScanLines refusing lines longer than max bytes
// (without "\n" or "\r\n").
func splitLines(max int) bufio.SplitFunc {
	return func(data []byte, atEOF bool) (int, []byte, error) {
		adv, tok, err := bufio.ScanLines(data, atEOF)
		if err != nil {
			return adv, tok, err
		}
		if tok != nil && len(tok) > max {
			return 0, nil, &lineTooLongError{}
		}
		if tok == nil && len(data) > max+1 { // no line end yet, already too long
			return 0, nil, &lineTooLongError{}
		}
		return adv, tok, nil
	}
}

// record is one parsed trace line: session, call, http or exec.
type record struct {
	typ string

	// session
	session, agent, sponsor string
	objective               string
	groups                  []string
	depth, trust            int
	delegators              []enforce.Delegator
	parent                  string

	label         string // session
	domain        string
	followed      *bool
	taskSucceeded bool

	// call, http and exec
	taint             []string
	result            json.RawMessage // nil if absent or null
	params            json.RawMessage // a notice's; nil if absent
	failed            bool            // a non-null error
	errValue          json.RawMessage // the error, if failed
	harmful, approved bool
	readOnly          bool            // call
	definition        json.RawMessage // call: the tool's definition, as listed

	// call (method and path also http)
	method, server, name string
	arguments            json.RawMessage
	verb                 string
	impact               map[string]int64
	dataset, path        string

	// http
	scheme, host string
	port         int

	// exec
	command, cwd string
	args         []string
}

// fields lists the fields of each record type.
var fields = map[string]map[string]bool{
	"session": {"type": true, "session": true, "agent": true, "sponsor": true, "groups": true, "depth": true, "trust": true, "objective": true, "label": true,
		"domain": true, "followed": true, "task_succeeded": true, "delegators": true, "parent": true},
	"call": {"type": true, "method": true, "server": true, "name": true, "arguments": true, "verb": true, "impact": true,
		"dataset": true, "path": true, "taint": true, "result": true, "error": true, "time": true, "read_only": true, "definition": true,
		"harmful": true, "approved": true},
	"http": {"type": true, "method": true, "scheme": true, "host": true, "port": true, "path": true, "taint": true,
		"result": true, "error": true, "time": true, "harmful": true, "approved": true},
	"notice": {"type": true, "server": true, "method": true, "params": true, "time": true},
	"exec": {"type": true, "command": true, "args": true, "cwd": true, "taint": true, "result": true, "error": true, "time": true,
		"harmful": true, "approved": true},
}

// anyField lists the fields of all record types.
var anyField = func() map[string]bool {
	m := map[string]bool{}
	for _, fs := range fields {
		maps.Copy(m, fs)
	}
	return m
}()

// member is one top-level member of a record line.
type member struct {
	name  string
	value jsontext.Value // aliases the line being parsed
}

// parser parses record lines, reusing its decoder.
type parser struct {
	rd      bytes.Reader
	dec     *jsontext.Decoder
	members []member
}

func newParser() *parser {
	p := &parser{}
	p.dec = jsontext.NewDecoder(&p.rd)
	return p
}

// parse parses one non-blank line strictly into a record and validates it.
func (p *parser) parse(line []byte) (*record, error) {
	p.rd.Reset(line)
	p.dec.Reset(&p.rd)
	p.members = p.members[:0]
	if p.dec.PeekKind() != '{' {
		if _, err := p.dec.ReadValue(); err != nil {
			return nil, jsonError(err)
		}
		return nil, errors.New("a record must be a JSON object")
	}
	if _, err := p.dec.ReadToken(); err != nil {
		return nil, jsonError(err)
	}
	for p.dec.PeekKind() != '}' {
		tok, err := p.dec.ReadToken()
		if err != nil {
			return nil, jsonError(err)
		}
		name := tok.String()
		v, err := p.dec.ReadValue()
		if err != nil {
			return nil, jsonError(err)
		}
		if !anyField[name] {
			return nil, fmt.Errorf("unknown field %q", name)
		}
		// v aliases the decoder's buffer only until the next read: point
		// into line instead, which holds the same bytes.
		end := int(p.dec.InputOffset())
		if start := end - len(v); start >= 0 && end <= len(line) && bytes.Equal(line[start:end], v) {
			v = line[start:end:end]
		} else {
			v = bytes.Clone(v)
		}
		p.members = append(p.members, member{name, v})
	}
	if _, err := p.dec.ReadToken(); err != nil { // '}'
		return nil, jsonError(err)
	}
	if _, err := p.dec.ReadToken(); err != io.EOF {
		if err != nil {
			return nil, jsonError(err)
		}
		return nil, errors.New("more than one JSON value on the line")
	}

	rec := &record{trust: DefaultTrust}
	for _, m := range p.members {
		if m.name == "type" && m.value.Kind() != 'n' {
			s, err := str(m)
			if err != nil {
				return nil, err
			}
			rec.typ = s
		}
	}
	known, ok := fields[rec.typ]
	switch {
	case rec.typ == "":
		return nil, errors.New(`record has no "type"`)
	case !ok:
		return nil, fmt.Errorf(`unknown record type %q (want "session", "call", "notice", "http" or "exec")`, rec.typ)
	}
	for _, m := range p.members {
		if !known[m.name] {
			return nil, fmt.Errorf("unknown field %q", m.name)
		}
		if m.value.Kind() == 'n' {
			continue // null is absent
		}
		if err := rec.set(m); err != nil {
			return nil, err
		}
	}
	if err := rec.validate(); err != nil {
		return nil, err
	}
	return rec, nil
}

// set stores one non-null member into rec.
func (rec *record) set(m member) error {
	var err error
	switch m.name {
	case "type":
	case "session":
		rec.session, err = str(m)
	case "agent":
		rec.agent, err = str(m)
	case "sponsor":
		rec.sponsor, err = str(m)
	case "groups":
		rec.groups, err = strs(m)
	case "taint":
		rec.taint, err = strs(m)
	case "args":
		rec.args, err = strs(m)
	case "dataset":
		rec.dataset, err = str(m)
	case "path":
		rec.path, err = str(m)
	case "scheme":
		rec.scheme, err = str(m)
	case "host":
		rec.host, err = str(m)
	case "port":
		rec.port, err = integer(m, 1, 65535)
	case "command":
		rec.command, err = str(m)
	case "cwd":
		rec.cwd, err = str(m)
	case "parent":
		rec.parent, err = str(m)
	case "delegators":
		var ds []struct {
			Agent  string   `json:"agent"`
			Groups []string `json:"groups"`
			Trust  *int     `json:"trust"`
		}
		if m.value.Kind() != '[' || strictjson.Unmarshal(m.value, &ds) != nil {
			return fmt.Errorf("field %q must be an array of objects {agent, groups, trust}", m.name)
		}
		for _, d := range ds {
			trust := DefaultTrust
			if d.Trust != nil {
				trust = *d.Trust
			}
			if d.Agent == "" || trust < 0 || trust > 100 {
				return fmt.Errorf("field %q: each delegator needs an agent and a trust within 0-100", m.name)
			}
			rec.delegators = append(rec.delegators, enforce.Delegator{Agent: d.Agent, Groups: d.Groups, Trust: trust})
		}
	case "depth":
		rec.depth, err = integer(m, 0, 1<<31-1)
	case "trust":
		rec.trust, err = integer(m, 0, 100)
	case "objective":
		rec.objective, err = str(m)
	case "label":
		if rec.label, err = str(m); err == nil && rec.label != LabelAttack && rec.label != LabelBenign {
			err = fmt.Errorf("field %q must be %q or %q, got %q", m.name, LabelAttack, LabelBenign, rec.label)
		}
	case "domain":
		rec.domain, err = str(m)
	case "followed":
		var b bool
		if b, err = boolean(m); err == nil {
			rec.followed = &b
		}
	case "task_succeeded":
		rec.taskSucceeded, err = boolean(m)
	case "read_only":
		rec.readOnly, err = boolean(m)
	case "definition":
		if m.value.Kind() != '{' {
			return fmt.Errorf("field %q must be an object (the tool's definition as listed)", m.name)
		}
		rec.definition = json.RawMessage(bytes.Clone(m.value))
	case "harmful":
		rec.harmful, err = boolean(m)
	case "approved":
		rec.approved, err = boolean(m)
	case "method":
		rec.method, err = str(m)
	case "server":
		rec.server, err = str(m)
	case "name":
		rec.name, err = str(m)
	case "arguments":
		rec.arguments = json.RawMessage(bytes.Clone(m.value))
	case "verb":
		rec.verb, err = str(m)
	case "impact":
		if m.value.Kind() != '{' || jsonv2.Unmarshal(m.value, &rec.impact) != nil {
			return fmt.Errorf("field %q must be an object of integers", m.name)
		}
	case "result":
		rec.result = json.RawMessage(bytes.Clone(m.value))
	case "params":
		if m.value.Kind() != '{' {
			return fmt.Errorf("field %q must be an object (the message's params as the server sent them)", m.name)
		}
		rec.params = json.RawMessage(bytes.Clone(m.value))
	case "error":
		rec.failed, rec.errValue = true, json.RawMessage(bytes.Clone(m.value))
	case "time":
		var s string
		if s, err = str(m); err == nil {
			if _, perr := time.Parse(time.RFC3339, s); perr != nil {
				err = fmt.Errorf("field %q must be an RFC 3339 time, got %q", m.name, s)
			}
		}
	}
	return err
}

// validate checks the required fields and the call's method and names,
// and fills in an http record's defaults.
func (rec *record) validate() error {
	switch rec.typ {
	case "session":
		switch {
		case rec.session == "":
			return errors.New(`a session record needs "session"`)
		case rec.agent == "":
			return errors.New(`a session record needs "agent"`)
		case rec.followed != nil && rec.label != LabelAttack:
			return fmt.Errorf(`"followed" is for sessions labelled %q`, LabelAttack)
		}
		return nil
	case "http":
		switch {
		case rec.method == "":
			return errors.New(`an http record needs "method"`)
		case rec.host == "":
			return errors.New(`an http record needs "host"`)
		}
		if rec.port == 0 {
			rec.port = 443
			if rec.scheme == "http" {
				rec.port = 80
			}
		}
		if rec.method == policy.MethodConnect {
			return nil // a tunnel: no scheme or path
		}
		if rec.scheme == "" {
			rec.scheme = "https"
		}
		if rec.path == "" {
			rec.path = "/"
		}
		return nil
	case "exec":
		if rec.command == "" {
			return errors.New(`an exec record needs "command"`)
		}
		return nil
	case "notice":
		switch {
		case rec.server == "":
			return errors.New(`a notice record needs "server" (the server that sent the message)`)
		case rec.method == "":
			return errors.New(`a notice record needs "method" (for example notifications/message or sampling/createMessage)`)
		}
		return nil
	}
	if rec.method == "" {
		return errors.New(`a call record needs "method"`)
	}
	action, ok := methods[rec.method]
	if !ok {
		return fmt.Errorf("method %q is not one ward decides (tools/call, prompts/get, resources/read, resources/subscribe)", rec.method)
	}
	if rec.name == "" {
		return errors.New(`a call record needs "name"`)
	}
	if action == policy.ActionReadResource {
		if rec.server == "" {
			return fmt.Errorf(`a %s call needs "server"`, rec.method)
		}
		return nil
	}
	if rec.server == "" {
		rec.server, _, _ = strings.Cut(rec.name, ".")
	}
	rest, ok := strings.CutPrefix(rec.name, rec.server+".")
	switch {
	case rec.server == "" || !strings.Contains(rec.name, "."):
		return fmt.Errorf("name %q: a %s name is SERVER.NAME", rec.name, rec.method)
	case !ok:
		return fmt.Errorf("server %q does not match name %q", rec.server, rec.name)
	case rest == "":
		return fmt.Errorf("name %q: a %s name is SERVER.NAME", rec.name, rec.method)
	}
	return nil
}

// strs decodes a JSON array of strings.
func strs(m member) ([]string, error) {
	var ss []string
	if m.value.Kind() != '[' || jsonv2.Unmarshal(m.value, &ss) != nil {
		return nil, fmt.Errorf("field %q must be an array of strings", m.name)
	}
	return ss, nil
}

// boolean decodes a JSON true or false member.
func boolean(m member) (bool, error) {
	switch string(m.value) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("field %q must be true or false", m.name)
}

// str decodes a JSON string member.
func str(m member) (string, error) {
	if m.value.Kind() != '"' {
		return "", fmt.Errorf("field %q must be a string", m.name)
	}
	b, err := jsontext.AppendUnquote(nil, m.value)
	if err != nil {
		return "", fmt.Errorf("field %q: %w", m.name, err)
	}
	return string(b), nil
}

// integer decodes a JSON integer member in [lo, hi].
func integer(m member, lo, hi int) (int, error) {
	n, err := strconv.ParseInt(string(m.value), 10, 64)
	if m.value.Kind() != '0' || err != nil || n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("field %q must be an integer from %d to %d", m.name, lo, hi)
	}
	return int(n), nil
}

// jsonError turns a jsontext error into a short message.
func jsonError(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && errors.Is(se.Err, jsontext.ErrDuplicateName) {
		if parent := se.JSONPointer.Parent(); parent != "" {
			return fmt.Errorf("duplicate key %q in %q", se.JSONPointer.LastToken(), string(parent))
		}
		return fmt.Errorf("duplicate key %q", se.JSONPointer.LastToken())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return errors.New("invalid JSON: unexpected end of line")
	}
	return fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(err.Error(), "jsontext: "))
}
