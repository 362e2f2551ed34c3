// Package policytest runs declared decision cases against a policy set, so
// that operators can keep tests next to their policies and run them in CI:
// a change that flips a decision fails the build.
//
// A test file is YAML (unknown keys are errors):
//
//	policies: [../policies]          # *.cedar / *.rules files or directories, relative to this file
//	defaults:                        # merged into every case
//	  agent: reporter
//	  sponsor: alice
//	  groups: [analytics]
//	cases:
//	  - name: analysts read the share
//	    call: fs.read_text_file      # a tool; or prompt: SERVER.NAME; or resource: URI
//	    arguments: {path: /srv/share/q3.csv}
//	    expect: allow                # allow | deny | escalate
//	    policies: [fs-read-shared]   # optional: exactly these policies decided it
//	  - name: big deletes need a DBA
//	    call: db.delete_rows
//	    verb: delete                 # optional: as a tool declaration would set it
//	    impact: {rows: 500}
//	    expect: escalate
//
// A case may override session, agent, sponsor, groups, depth and trust.
// Run is pure; loading the policies is the caller's job
// ([File.PolicyPaths] resolves them).
package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ward-dev/ward/internal/policy"
)

// maxFileSize bounds a test file.
const maxFileSize = 1 << 20

// Case is one declared decision.
type Case struct {
	Name     string
	Line     int
	Request  policy.Request
	Expect   string
	Policies []string // if set, the determining policies must be exactly these
}

// File is a loaded test file.
type File struct {
	Path        string
	PolicyPaths []string // resolved against the file's directory
	Cases       []Case
}

type principal struct {
	Session string   `yaml:"session"`
	Agent   string   `yaml:"agent"`
	Sponsor string   `yaml:"sponsor"`
	Groups  []string `yaml:"groups"`
	Depth   *int     `yaml:"depth"`
	Trust   *int     `yaml:"trust"`
}

type rawCase struct {
	principal `yaml:",inline"`
	Name      string           `yaml:"name"`
	Call      string           `yaml:"call"`
	Prompt    string           `yaml:"prompt"`
	Resource  string           `yaml:"resource"`
	Arguments map[string]any   `yaml:"arguments"`
	Verb      string           `yaml:"verb"`
	Impact    map[string]int64 `yaml:"impact"`
	Expect    string           `yaml:"expect"`
	Policies  []string         `yaml:"policies"`
}

type rawFile struct {
	Policies []string    `yaml:"policies"`
	Defaults principal   `yaml:"defaults"`
	Cases    []yaml.Node `yaml:"cases"`
}

// Load reads and checks a test file. Errors say file:line: what is wrong.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy tests: %w", err)
	}
	return Parse(path, b)
}

// Parse is Load for a file already read.
func Parse(path string, b []byte) (*File, error) {
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	var raw rawFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no cases", path)
		}
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	f := &File{Path: path}
	for _, p := range raw.Policies {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		f.PolicyPaths = append(f.PolicyPaths, p)
	}
	if len(raw.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	var errs []error
	names := map[string]int{}
	for i := range raw.Cases {
		node := &raw.Cases[i]
		var rc rawCase
		if err := node.Decode(&rc); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %v", path, node.Line, err))
			continue
		}
		if err := strictKeys(node); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %v", path, node.Line, err))
			continue
		}
		c, err := buildCase(raw.Defaults, rc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: case %q: %v", path, node.Line, rc.Name, err))
			continue
		}
		c.Line = node.Line
		if prev, dup := names[c.Name]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: case name %q also used at line %d", path, node.Line, c.Name, prev))
			continue
		}
		names[c.Name] = node.Line
		f.Cases = append(f.Cases, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

var caseKeys = []string{"session", "agent", "sponsor", "groups", "depth", "trust", "name", "call", "prompt", "resource", "arguments", "verb", "impact", "expect", "policies"}

// strictKeys refuses unknown keys in a case (Node.Decode does not).
func strictKeys(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("a case must be a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !slices.Contains(caseKeys, k) {
			return fmt.Errorf("unknown key %q in case (line %d)", k, n.Content[i].Line)
		}
	}
	return nil
}

func buildCase(d principal, rc rawCase) (Case, error) {
	c := Case{Name: rc.Name, Expect: rc.Expect, Policies: rc.Policies}
	if c.Name == "" {
		return c, errors.New("a case needs a name")
	}
	switch c.Expect {
	case "allow", "deny", "escalate":
	default:
		return c, fmt.Errorf("expect %q: want allow, deny or escalate", c.Expect)
	}
	pick := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	r := policy.Request{
		Session: pick(rc.Session, pick(d.Session, "test-session")),
		Agent:   pick(rc.Agent, d.Agent),
		Sponsor: pick(rc.Sponsor, d.Sponsor),
		Groups:  d.Groups,
		Trust:   50,
		Verb:    rc.Verb,
		Impact:  rc.Impact,
	}
	if rc.Groups != nil {
		r.Groups = rc.Groups
	}
	for _, v := range []*int{d.Depth, rc.Depth} {
		if v != nil {
			r.Depth = *v
		}
	}
	for _, v := range []*int{d.Trust, rc.Trust} {
		if v != nil {
			r.Trust = *v
		}
	}
	if r.Agent == "" {
		return c, errors.New("no agent (set it in the case or in defaults)")
	}
	set := 0
	for _, s := range []string{rc.Call, rc.Prompt, rc.Resource} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return c, errors.New("give exactly one of call, prompt and resource")
	}
	switch {
	case rc.Call != "" || rc.Prompt != "":
		name := rc.Call + rc.Prompt
		server, tool, ok := strings.Cut(name, ".")
		if !ok || server == "" || tool == "" {
			return c, fmt.Errorf("%q: names are SERVER.NAME", name)
		}
		r.Action, r.Server, r.Name = policy.ActionCallTool, server, name
		if rc.Prompt != "" {
			r.Action = policy.ActionGetPrompt
		}
	default:
		server, _, ok := strings.Cut(rc.Resource, "://")
		if !ok || server == "" {
			return c, fmt.Errorf("resource %q: want a URI", rc.Resource)
		}
		r.Action, r.Name = policy.ActionReadResource, rc.Resource
		r.Server = server
	}
	if rc.Arguments != nil {
		b, err := json.Marshal(rc.Arguments)
		if err != nil {
			return c, fmt.Errorf("arguments: %v", err)
		}
		r.Arguments = b
	}
	c.Request = r
	return c, nil
}

// Result is the outcome of one case.
type Result struct {
	Case Case
	Got  policy.Decision
	Pass bool
	Why  string // for a failure: what differed
}

// Run decides every case against set. It is pure.
func Run(f *File, set *policy.Set) []Result {
	out := make([]Result, len(f.Cases))
	for i, c := range f.Cases {
		d := set.Decide(c.Request)
		r := Result{Case: c, Got: d, Pass: true}
		switch {
		case d.Outcome() != c.Expect:
			r.Pass, r.Why = false, fmt.Sprintf("expected %s, got %s: %s", c.Expect, d.Outcome(), d.Explain(c.Request))
		case c.Policies != nil:
			var got []string
			for _, reason := range d.Reasons {
				got = append(got, reason.PolicyID)
			}
			want := slices.Sorted(slices.Values(c.Policies))
			if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
				r.Pass, r.Why = false, fmt.Sprintf("decided by %v, expected %v", got, want)
			}
		}
		out[i] = r
	}
	return out
}

// Summary counts passes and failures.
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

// WriteText writes one line per case and a closing count.
func WriteText(w io.Writer, path string, rs []Result) error {
	for _, r := range rs {
		if r.Pass {
			fmt.Fprintf(w, "PASS  %s\n", r.Case.Name)
		} else {
			fmt.Fprintf(w, "FAIL  %s (%s:%d): %s\n", r.Case.Name, path, r.Case.Line, r.Why)
		}
	}
	p, f := Summary(rs)
	_, err := fmt.Fprintf(w, "%d passed, %d failed\n", p, f)
	return err
}
