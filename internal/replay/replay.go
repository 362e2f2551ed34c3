// Package replay decides recorded sessions against a policy set in shadow
// mode: for every call it says what ward would have done and why, without
// contacting anything. Operators record, replay against new policies, read
// the differences, and only then enforce.
//
// A trace is JSON Lines, one record per line (blank lines are skipped;
// unknown fields, duplicate keys and lines over 1 MiB are errors). A
// "session" record opens a session; "call" records that follow belong to it:
//
//	{"type":"session","session":"s1","agent":"reporter","sponsor":"alice","groups":["analytics"],"depth":0,"trust":50,"objective":"summarize Q3"}
//	{"type":"call","method":"tools/call","name":"db.query","arguments":{"sql":"select 1"}}
//	{"type":"call","method":"tools/call","name":"db.delete_rows","verb":"delete","impact":{"rows":500}}
//	{"type":"call","method":"resources/read","server":"fs","name":"file:///srv/share/q3.csv"}
//
// Methods are tools/call, prompts/get, resources/read and
// resources/subscribe. Tool and prompt names are SERVER.NAME (server may be
// omitted); resources name their server explicitly. A call may carry verb
// and impact as a tool declaration would set them, and may carry "result"
// and "time" fields, which are kept for the reader but not decided on.
// testdata/example.jsonl is a complete example.
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/policy"
)

// Defaults for [Options].
const (
	DefaultMaxLines     = 100_000
	DefaultMaxLineBytes = 1 << 20
)

// Options bounds a replay.
type Options struct {
	MaxLines     int // default DefaultMaxLines
	MaxLineBytes int // default DefaultMaxLineBytes
}

// Call is one decided call.
type Call struct {
	Line      int             `json:"line"`
	Session   string          `json:"session"`
	Method    string          `json:"method"`
	Server    string          `json:"server"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Outcome   string          `json:"outcome"` // allow, deny or escalate
	Reason    string          `json:"reason"`
	Policies  []string        `json:"policies,omitempty"`
	Approvals []string        `json:"approvals,omitempty"`
}

// Summary counts the outcomes.
type Summary struct {
	Sessions  int            `json:"sessions"`
	Calls     int            `json:"calls"`
	Allowed   int            `json:"allowed"`
	Denied    int            `json:"denied"`
	Escalated int            `json:"escalated"`
	ByPolicy  map[string]int `json:"by_policy"` // policy id → calls it determined
}

// Report is a replay's result.
type Report struct {
	Calls   []Call
	Summary Summary
}

type record struct {
	Type      string           `json:"type"`
	Session   string           `json:"session"`
	Agent     string           `json:"agent"`
	Sponsor   string           `json:"sponsor"`
	Groups    []string         `json:"groups"`
	Depth     int              `json:"depth"`
	Trust     *int             `json:"trust"`
	Objective string           `json:"objective"`
	Method    string           `json:"method"`
	Server    string           `json:"server"`
	Name      string           `json:"name"`
	Arguments json.RawMessage  `json:"arguments"`
	Verb      string           `json:"verb"`
	Impact    map[string]int64 `json:"impact"`
	Result    json.RawMessage  `json:"result"`
	Error     json.RawMessage  `json:"error"`
	Time      *time.Time       `json:"time"`
}

var actions = map[string]policy.Action{
	"tools/call":          policy.ActionCallTool,
	"prompts/get":         policy.ActionGetPrompt,
	"resources/read":      policy.ActionReadResource,
	"resources/subscribe": policy.ActionReadResource,
}

// Run decides every call of the trace read from r against set.
func Run(set *policy.Set, r io.Reader, opt Options) (*Report, error) {
	if opt.MaxLines <= 0 {
		opt.MaxLines = DefaultMaxLines
	}
	if opt.MaxLineBytes <= 0 {
		opt.MaxLineBytes = DefaultMaxLineBytes
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(64<<10, opt.MaxLineBytes)), opt.MaxLineBytes)
	rep := &Report{Summary: Summary{ByPolicy: map[string]int{}}}
	var cur *record
	line := 0
	for sc.Scan() {
		line++
		if line > opt.MaxLines {
			return nil, fmt.Errorf("trace: more than %d lines", opt.MaxLines)
		}
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec, err := decode(b)
		if err != nil {
			return nil, fmt.Errorf("trace line %d: %v", line, err)
		}
		switch rec.Type {
		case "session":
			if rec.Session == "" || rec.Agent == "" {
				return nil, fmt.Errorf("trace line %d: a session record needs session and agent", line)
			}
			cur = rec
			rep.Summary.Sessions++
		case "call":
			if cur == nil {
				return nil, fmt.Errorf("trace line %d: call before any session record", line)
			}
			c, err := decide(set, cur, rec, line)
			if err != nil {
				return nil, fmt.Errorf("trace line %d: %v", line, err)
			}
			rep.add(c)
		default:
			return nil, fmt.Errorf("trace line %d: unknown record type %q (want session or call)", line, rec.Type)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("trace line %d: longer than %d bytes", line+1, opt.MaxLineBytes)
		}
		return nil, fmt.Errorf("trace: %w", err)
	}
	return rep, nil
}

// decode parses one record strictly: one JSON object, no duplicate keys, no
// unknown fields.
func decode(b []byte) (*record, error) {
	if _, err := jsontext.NewDecoder(bytes.NewReader(b)).ReadValue(); err != nil {
		return nil, fmt.Errorf("malformed JSON: %v", err)
	}
	var rec record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	return &rec, nil
}

func decide(set *policy.Set, s, c *record, line int) (Call, error) {
	action, ok := actions[c.Method]
	if !ok {
		return Call{}, fmt.Errorf("method %q is not one ward decides (tools/call, prompts/get, resources/read, resources/subscribe)", c.Method)
	}
	if c.Name == "" {
		return Call{}, errors.New("a call record needs a name")
	}
	server := c.Server
	if action != policy.ActionReadResource {
		prefix, _, ok := strings.Cut(c.Name, ".")
		if !ok {
			return Call{}, fmt.Errorf("name %q: tools and prompts are SERVER.NAME", c.Name)
		}
		if server != "" && server != prefix {
			return Call{}, fmt.Errorf("server %q does not match name %q", server, c.Name)
		}
		server = prefix
	} else if server == "" {
		return Call{}, errors.New("a resource call needs its server")
	}
	req := policy.Request{Session: s.Session, Agent: s.Agent, Sponsor: s.Sponsor, Groups: s.Groups, Depth: s.Depth, Trust: 50,
		Action: action, Server: server, Name: c.Name, Arguments: c.Arguments, Verb: c.Verb, Impact: c.Impact}
	if s.Trust != nil {
		req.Trust = *s.Trust
	}
	d := set.Decide(req)
	out := Call{Line: line, Session: s.Session, Method: c.Method, Server: server, Name: c.Name, Arguments: c.Arguments,
		Outcome: d.Outcome(), Reason: d.Explain(req)}
	for _, r := range d.Reasons {
		out.Policies = append(out.Policies, r.PolicyID)
	}
	for _, a := range d.Approvals {
		out.Approvals = append(out.Approvals, a.String())
	}
	return out, nil
}

func (r *Report) add(c Call) {
	r.Calls = append(r.Calls, c)
	r.Summary.Calls++
	switch c.Outcome {
	case "allow":
		r.Summary.Allowed++
	case "escalate":
		r.Summary.Escalated++
	default:
		r.Summary.Denied++
	}
	for _, p := range c.Policies {
		r.Summary.ByPolicy[p]++
	}
}

// WriteText writes one line per call and a summary.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, c := range r.Calls {
		fmt.Fprintf(bw, "L%-4d %-10s %-8s %s %s — %s\n", c.Line, c.Session, c.Outcome, c.Method, c.Name, c.Reason)
	}
	s := r.Summary
	fmt.Fprintf(bw, "\n%d sessions, %d calls: %d allowed, %d denied, %d escalated\n", s.Sessions, s.Calls, s.Allowed, s.Denied, s.Escalated)
	ids := make([]string, 0, len(s.ByPolicy))
	for id := range s.ByPolicy {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(bw, "  %-40s decided %d\n", id, s.ByPolicy[id])
	}
	return bw.Flush()
}

// WriteJSON writes one JSON line per call, then {"summary": …}.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, c := range r.Calls {
		if err := enc.Encode(c); err != nil {
			return err
		}
	}
	return enc.Encode(map[string]any{"summary": r.Summary})
}
