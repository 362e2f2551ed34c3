package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/ward-dev/ward/internal/policy"
)

// maxErrors bounds the errors Load reports for one file.
const maxErrors = 20

// maxToolName bounds the name part of "server.name", in characters.
const maxToolName = 128

// maxURI bounds a resource URI, in characters.
const maxURI = 2048

// Error is a problem in a test file. Line and Column are 1-based; Column is
// 0 when the YAML parser reported only a line, Line is 0 for problems with
// the file as a whole.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Column == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Load reads and checks the test file at path. Every problem is reported as
// an [*Error] with the file, line and column; several are joined.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load policy tests: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load policy tests: %w", err)
	}
	return parse(path, b)
}

// Key sets.
var (
	fileKeys      = []string{"policies", "defaults", "cases"}
	principalKeys = []string{"session", "agent", "sponsor", "groups", "depth", "trust"}
	caseKeys      = append(slices.Clone(principalKeys),
		"name", "call", "prompt", "resource", "http", "exec", "server", "arguments", "verb", "impact",
		"dataset", "path", "taint", "expect", "policies", "approvals")
	httpKeys = []string{"method", "scheme", "host", "port", "path"}
	execKeys = []string{"command", "args", "cwd"}
	// mcpKeys are the case keys only calls, prompts and resources take.
	mcpKeys = []string{"server", "arguments", "verb", "impact", "dataset", "path"}
)

// yamlLineRE matches yaml.v3 errors that carry a line.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse is Load for a file already read.
func parse(path string, b []byte) (*File, error) {
	if len(b) > MaxFileSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	l := &loader{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: path, Line: 1, Column: 1, Msg: "empty file: want a mapping with cases"}
		}
		return nil, l.yamlError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{File: path, Line: next.Line, Column: next.Column, Msg: "a second YAML document: want one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, l.yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{File: path, Line: 1, Column: 1, Msg: "empty file: want a mapping with cases"}
	}
	f := l.file(path, doc.Content[0])
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return f, nil
}

// loader collects errors while walking a file's nodes.
type loader struct {
	path string
	errs []error
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	switch {
	case len(l.errs) < maxErrors:
		l.errs = append(l.errs, &Error{File: l.path, Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)})
	case len(l.errs) == maxErrors:
		l.errs = append(l.errs, &Error{File: l.path, Msg: fmt.Sprintf("more than %d errors; stopped reporting", maxErrors)})
	}
}

func (l *loader) yamlError(err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: l.path, Line: line, Msg: "yaml: " + m[2]}
	}
	return &Error{File: l.path, Msg: msg}
}

// field is one key and its value in a mapping.
type field struct{ key, val *yaml.Node }

// mapping checks that n is a mapping whose keys are among allowed, each
// once, and returns its fields by key. what names n in messages.
func (l *loader) mapping(n *yaml.Node, what string, allowed []string) (map[string]field, bool) {
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "%s: want a mapping, got %s", what, kindName(n))
		return nil, false
	}
	fields := make(map[string]field, len(n.Content)/2)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			l.errorf(k, "%s: keys must be strings", what)
			ok = false
			continue
		}
		if !slices.Contains(allowed, k.Value) {
			l.errorf(k, "unknown key %q in %s (want one of %s)", k.Value, what, strings.Join(allowed, ", "))
			ok = false
			continue
		}
		if prev, dup := fields[k.Value]; dup {
			l.errorf(k, "%s: key %q repeated (first at line %d)", what, k.Value, prev.key.Line)
			ok = false
			continue
		}
		if v.Kind == yaml.AliasNode {
			l.errorf(v, "%s: aliases are not supported", k.Value)
			ok = false
			continue
		}
		fields[k.Value] = field{k, v}
	}
	return fields, ok
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a " + n.ShortTag() + " value"
	}
	return "nothing"
}

// str reads a string scalar.
func (l *loader) str(f field) (string, bool) {
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!str" {
		l.errorf(f.val, "%s: want a string, got %s", f.key.Value, kindName(f.val))
		return "", false
	}
	return f.val.Value, true
}

// strs reads a list of non-empty strings.
func (l *loader) strs(f field) ([]string, bool) {
	if f.val.Kind != yaml.SequenceNode {
		l.errorf(f.val, "%s: want a list of strings, got %s", f.key.Value, kindName(f.val))
		return nil, false
	}
	out := make([]string, 0, len(f.val.Content))
	ok := true
	for _, n := range f.val.Content {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			l.errorf(n, "%s: want a string, got %s", f.key.Value, kindName(n))
			ok = false
			continue
		}
		if n.Value == "" {
			l.errorf(n, "%s: empty string", f.key.Value)
			ok = false
			continue
		}
		out = append(out, n.Value)
	}
	return out, ok
}

// integer reads an integer scalar in [lo, hi].
func (l *loader) integer(f field, lo, hi int) (int, bool) {
	var v int
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!int" || f.val.Decode(&v) != nil {
		l.errorf(f.val, "%s: want an integer, got %s", f.key.Value, kindName(f.val))
		return 0, false
	}
	if v < lo || v > hi {
		l.errorf(f.val, "%s: %d is not in %d-%d", f.key.Value, v, lo, hi)
		return 0, false
	}
	return v, true
}

// principal is the principal part of defaults or a case; nil fields are
// not set.
type principal struct {
	session, agent, sponsor *string
	groups                  *[]string
	depth, trust            *int
}

// maxDepth bounds a case's delegation depth.
const maxDepth = 1000

func (l *loader) principal(fields map[string]field) principal {
	var p principal
	for _, k := range []string{"session", "agent", "sponsor"} {
		f, ok := fields[k]
		if !ok {
			continue
		}
		s, ok := l.str(f)
		if !ok {
			continue
		}
		if k != "sponsor" && s == "" {
			l.errorf(f.val, "%s: empty string", k)
			continue
		}
		switch k {
		case "session":
			p.session = &s
		case "agent":
			p.agent = &s
		case "sponsor":
			p.sponsor = &s
		}
	}
	if f, ok := fields["groups"]; ok {
		if gs, ok := l.strs(f); ok {
			p.groups = &gs
		}
	}
	if f, ok := fields["depth"]; ok {
		if v, ok := l.integer(f, 0, maxDepth); ok {
			p.depth = &v
		}
	}
	if f, ok := fields["trust"]; ok {
		if v, ok := l.integer(f, 0, 100); ok {
			p.trust = &v
		}
	}
	return p
}

// over returns p with the fields set in q replaced.
func (p principal) over(q principal) principal {
	if q.session != nil {
		p.session = q.session
	}
	if q.agent != nil {
		p.agent = q.agent
	}
	if q.sponsor != nil {
		p.sponsor = q.sponsor
	}
	if q.groups != nil {
		p.groups = q.groups
	}
	if q.depth != nil {
		p.depth = q.depth
	}
	if q.trust != nil {
		p.trust = q.trust
	}
	return p
}

func (l *loader) file(path string, root *yaml.Node) *File {
	fields, _ := l.mapping(root, "test file", fileKeys)
	if fields == nil {
		return nil
	}
	f := &File{Path: path}
	if pf, ok := fields["policies"]; ok {
		if ps, ok := l.strs(pf); ok {
			f.PolicyPaths = ps
		}
	}
	var defaults principal
	if df, ok := fields["defaults"]; ok {
		if dfields, _ := l.mapping(df.val, "defaults", principalKeys); dfields != nil {
			defaults = l.principal(dfields)
		}
	}
	cf, ok := fields["cases"]
	switch {
	case !ok:
		l.errorf(root, "missing cases")
		return f
	case cf.val.Kind != yaml.SequenceNode:
		l.errorf(cf.val, "cases: want a list, got %s", kindName(cf.val))
		return f
	case len(cf.val.Content) == 0:
		l.errorf(cf.val, "cases: empty list: a file must test something")
		return f
	}
	names := map[string]int{}
	for _, n := range cf.val.Content {
		c, ok := l.testCase(n, defaults)
		if !ok {
			continue
		}
		if prev, dup := names[c.Name]; dup {
			l.errorf(n, "duplicate case name %q (first at line %d)", c.Name, prev)
			continue
		}
		names[c.Name] = c.Line
		f.Cases = append(f.Cases, c)
	}
	return f
}

// testCase reads one case; ok is false if it has errors (reported).
func (l *loader) testCase(n *yaml.Node, defaults principal) (Case, bool) {
	before := len(l.errs)
	c := Case{File: l.path, Line: n.Line}
	fields, _ := l.mapping(n, "case", caseKeys)
	if fields == nil {
		return c, false
	}

	if f, ok := fields["name"]; !ok {
		l.errorf(n, "case: missing name")
	} else if s, ok := l.str(f); ok {
		if s == "" || len(s) > 200 || !printable(s) {
			l.errorf(f.val, "name: want 1-200 characters of printable text on one line")
		}
		c.Name = s
	}

	p := defaults.over(l.principal(fields))
	r := policy.Request{Session: DefaultSession, Trust: DefaultTrust}
	if p.session != nil {
		r.Session = *p.session
	}
	if p.agent != nil {
		r.Agent = *p.agent
	} else {
		l.errorf(n, "case: no agent (set agent in the case or in defaults)")
	}
	if p.sponsor != nil {
		r.Sponsor = *p.sponsor
	}
	if p.groups != nil {
		r.Groups = slices.Clone(*p.groups)
	}
	if p.depth != nil {
		r.Depth = *p.depth
	}
	if p.trust != nil {
		r.Trust = *p.trust
	}

	kind := l.target(n, fields, &r)

	if f, ok := fields["arguments"]; ok {
		if args, ok := l.arguments(f.val); ok {
			r.Arguments = args
		}
	}
	if f, ok := fields["verb"]; ok {
		if s, ok := l.str(f); ok {
			r.Verb = s
		}
	}
	if f, ok := fields["impact"]; ok {
		r.Impact = l.impact(f)
	}
	if f, ok := fields["dataset"]; ok {
		if s, ok := l.str(f); ok {
			r.Dataset = s
		}
	}
	if f, ok := fields["path"]; ok {
		if s, ok := l.str(f); ok && l.check(f.val, policy.Request{Path: s}) {
			r.Path = s
		}
	}
	if f, ok := fields["taint"]; ok {
		if ls, ok := l.strs(f); ok {
			for i, label := range ls {
				l.check(f.val.Content[i], policy.Request{Taint: []string{label}})
			}
			r.Taint = ls
		}
	}
	if kind != "" && len(l.errs) == before {
		// Whatever else Decide would refuse (a host not in canonical form,
		// a lowercase method, an unclean command): report it at the target.
		if err := r.Validate(); err != nil {
			l.errorf(fields[kind].val, "%s: %s", kind, strings.TrimPrefix(err.Error(), "invalid request: "))
		}
	}
	c.Request = r

	if f, ok := fields["expect"]; !ok {
		l.errorf(n, "case: missing expect (allow, deny or escalate)")
	} else if s, ok := l.str(f); ok {
		switch s {
		case ExpectAllow, ExpectDeny, ExpectEscalate:
			c.Expect = s
		default:
			l.errorf(f.val, "expect: %q is not allow, deny or escalate", s)
		}
	}

	if f, ok := fields["policies"]; ok {
		if ids, ok := l.strs(f); ok {
			if i := firstDup(ids); i >= 0 {
				l.errorf(f.val.Content[i], "policies: %q listed twice", ids[i])
			}
			c.Policies = ids
		}
	}
	if f, ok := fields["approvals"]; ok {
		c.Approvals = l.approvals(f, c.Expect)
	}
	return c, len(l.errs) == before
}

// check reports at n the first thing Decide would refuse in probe, a valid
// tool call with one field of a case set; it returns whether there was
// none.
func (l *loader) check(n *yaml.Node, probe policy.Request) bool {
	probe.Session, probe.Agent, probe.Action, probe.Server, probe.Name = DefaultSession, "a", policy.ActionCallTool, "s", "s.t"
	if err := probe.Validate(); err != nil {
		l.errorf(n, "%s", strings.TrimPrefix(err.Error(), "invalid request: "))
		return false
	}
	return true
}

// target reads call, prompt, resource (and server), http or exec into r
// and returns which it was, or "".
func (l *loader) target(n *yaml.Node, fields map[string]field, r *policy.Request) string {
	var kind string
	var tf field
	for _, k := range []string{"call", "prompt", "resource", "http", "exec"} {
		f, ok := fields[k]
		if !ok {
			continue
		}
		if kind != "" {
			// Report at whichever of the two keys comes second.
			at := f.key
			if tf.key.Line > at.Line || tf.key.Line == at.Line && tf.key.Column > at.Column {
				at = tf.key
			}
			l.errorf(at, "both %s and %s: give exactly one of call, prompt, resource, http and exec", kind, k)
			return ""
		}
		kind, tf = k, f
	}
	sf, hasServer := fields["server"]
	switch kind {
	case "":
		l.errorf(n, "case: missing call, prompt, resource, http or exec")
		return ""
	case "http", "exec":
		for _, k := range mcpKeys {
			if f, ok := fields[k]; ok {
				l.errorf(f.key, "%s: not for an %s case", k, kind)
			}
		}
		if kind == "http" {
			r.Action, r.HTTP = policy.ActionHTTPRequest, l.http(tf)
		} else {
			r.Action, r.Exec = policy.ActionExec, l.exec(tf)
		}
	case "call", "prompt":
		if hasServer {
			l.errorf(sf.key, "server: only for a resource (a %s names its server before the dot)", kind)
		}
		s, ok := l.str(tf)
		if !ok {
			return kind
		}
		server, name, found := strings.Cut(s, ".")
		switch {
		case !found:
			l.errorf(tf.val, "%s %q: want \"server.name\"", kind, s)
		case validServer(server) != "":
			l.errorf(tf.val, "%s %q: %s", kind, s, validServer(server))
		case !validName(name, maxToolName):
			l.errorf(tf.val, "%s %q: name %q must be 1-%d characters without white space or control characters", kind, s, name, maxToolName)
		default:
			r.Action, r.Server, r.Name = policy.ActionCallTool, server, s
			if kind == "prompt" {
				r.Action = policy.ActionGetPrompt
			}
		}
	case "resource":
		s, ok := l.str(tf)
		if ok {
			if u, err := url.Parse(s); err != nil || u.Scheme == "" || !validName(s, maxURI) {
				l.errorf(tf.val, "resource %q: want a URI with a scheme, without white space or control characters", s)
			} else {
				r.Action, r.Name = policy.ActionReadResource, s
			}
		}
		if !hasServer {
			l.errorf(tf.key, "resource: needs server, the upstream that serves it")
			return kind
		}
		if srv, ok := l.str(sf); ok {
			if msg := validServer(srv); msg != "" {
				l.errorf(sf.val, "server: %s", msg)
			} else {
				r.Server = srv
			}
		}
	}
	return kind
}

// http reads an http mapping: method and host required, scheme "https",
// port the scheme's and path "/" by default; a CONNECT tunnel has no scheme
// or path, and port 443 by default.
func (l *loader) http(f field) *policy.HTTPRequest {
	fields, _ := l.mapping(f.val, "http", httpKeys)
	if fields == nil {
		return nil
	}
	h := &policy.HTTPRequest{Scheme: "https", Path: "/"}
	if mf, ok := fields["method"]; ok && mf.val.Value == policy.MethodConnect {
		h.Scheme, h.Path = "", ""
	}
	for _, k := range []string{"method", "host"} {
		if _, ok := fields[k]; !ok {
			l.errorf(f.val, "http: missing %s", k)
		}
	}
	for _, kv := range []struct {
		key string
		dst *string
	}{{"method", &h.Method}, {"scheme", &h.Scheme}, {"host", &h.Host}, {"path", &h.Path}} {
		if kf, ok := fields[kv.key]; ok {
			if s, ok := l.str(kf); ok {
				*kv.dst = s
			}
		}
	}
	if kf, ok := fields["port"]; ok {
		h.Port, _ = l.integer(kf, 1, 65535)
	} else if h.Scheme == "http" {
		h.Port = 80
	} else {
		h.Port = 443
	}
	return h
}

// exec reads an exec mapping: command required, args and cwd optional.
func (l *loader) exec(f field) *policy.ExecRequest {
	fields, _ := l.mapping(f.val, "exec", execKeys)
	if fields == nil {
		return nil
	}
	e := &policy.ExecRequest{}
	if kf, ok := fields["command"]; !ok {
		l.errorf(f.val, "exec: missing command")
	} else if s, ok := l.str(kf); ok {
		e.Command = s
	}
	if kf, ok := fields["cwd"]; ok {
		if s, ok := l.str(kf); ok {
			e.Dir = s
		}
	}
	if kf, ok := fields["args"]; ok {
		if kf.val.Kind != yaml.SequenceNode {
			l.errorf(kf.val, "args: want a list of strings, got %s", kindName(kf.val))
		}
		for _, n := range kf.val.Content {
			if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
				l.errorf(n, "args: want a string, got %s", kindName(n))
				continue
			}
			e.Args = append(e.Args, n.Value)
		}
	}
	return e
}

// validServer returns what is wrong with an upstream server name, or "".
// The rule is the gateway's (gateway.ValidServerName).
func validServer(s string) string {
	if len(s) == 0 || len(s) > 32 {
		return fmt.Sprintf("server %q must be 1-32 characters", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Sprintf("server %q: only a-z, 0-9, '_' and '-' are allowed", s)
		}
	}
	return ""
}

// validName reports whether s is 1-max characters of valid UTF-8 without
// white space or control characters.
func validName(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// printable reports whether s is one line of printable text.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func firstDup(ss []string) int {
	seen := make(map[string]bool, len(ss))
	for i, s := range ss {
		if seen[s] {
			return i
		}
		seen[s] = true
	}
	return -1
}

func (l *loader) impact(f field) map[string]int64 {
	fields, ok := l.mappingAny(f.val, "impact")
	if !ok {
		return nil
	}
	m := make(map[string]int64, len(fields))
	for _, kv := range fields {
		var v int64
		if kv.val.Kind != yaml.ScalarNode || kv.val.ShortTag() != "!!int" || kv.val.Decode(&v) != nil {
			l.errorf(kv.val, "impact.%s: want a 64-bit integer, got %s", kv.key.Value, kindName(kv.val))
			ok = false
			continue
		}
		m[kv.key.Value] = v
	}
	if !ok {
		return nil
	}
	return m
}

// mappingAny checks that n is a mapping with string keys, each once, and
// values that are not aliases; it returns the fields in order.
func (l *loader) mappingAny(n *yaml.Node, what string) ([]field, bool) {
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "%s: want a mapping, got %s", what, kindName(n))
		return nil, false
	}
	var out []field
	seen := map[string]int{}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			l.errorf(k, "%s: keys must be strings, got %s", what, kindName(k))
			ok = false
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			l.errorf(k, "%s: key %q repeated (first at line %d)", what, k.Value, prev)
			ok = false
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, field{k, v})
	}
	return out, ok
}

// approvals reads approval requirements, in canonical form.
func (l *loader) approvals(f field, expect string) []string {
	specs, ok := l.strs(f)
	if !ok {
		return nil
	}
	if expect != "" && expect != ExpectEscalate {
		l.errorf(f.key, "approvals: only for expect: escalate")
		return nil
	}
	if len(specs) == 0 {
		l.errorf(f.val, "approvals: empty list: an escalation always asks for at least one")
		return nil
	}
	out := make([]string, 0, len(specs))
	for i, s := range specs {
		a, err := policy.ParseApproval(s)
		if err != nil {
			l.errorf(f.val.Content[i], "approvals: %v", err)
			continue
		}
		out = append(out, a.String())
	}
	return out
}

// jsonNumberRE matches a JSON number.
var jsonNumberRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// arguments converts a mapping (or null) to a JSON object.
func (l *loader) arguments(n *yaml.Node) (json.RawMessage, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "arguments: want a mapping, got %s", kindName(n))
		return nil, false
	}
	v, ok := l.jsonValue(n, "arguments", 1)
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		l.errorf(n, "arguments: %v", err)
		return nil, false
	}
	return b, true
}

// jsonValue converts n to a value json.Marshal encodes as the JSON the
// node stands for. depth counts objects and arrays, as policy does.
func (l *loader) jsonValue(n *yaml.Node, path string, depth int) (any, bool) {
	switch n.Kind {
	case yaml.AliasNode:
		l.errorf(n, "%s: aliases are not supported", path)
		return nil, false
	case yaml.MappingNode, yaml.SequenceNode:
		if depth > policy.MaxArgumentDepth {
			l.errorf(n, "%s: nested deeper than %d levels", path, policy.MaxArgumentDepth)
			return nil, false
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		fields, ok := l.mappingAny(n, path)
		m := make(map[string]any, len(fields))
		for _, f := range fields {
			v, vok := l.jsonValue(f.val, path+"."+f.key.Value, depth+1)
			ok = ok && vok
			m[f.key.Value] = v
		}
		return m, ok
	case yaml.SequenceNode:
		a := make([]any, len(n.Content))
		ok := true
		for i, e := range n.Content {
			v, vok := l.jsonValue(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			ok = ok && vok
			a[i] = v
		}
		return a, ok
	case yaml.ScalarNode:
		return l.jsonScalar(n, path)
	}
	l.errorf(n, "%s: unexpected YAML node", path)
	return nil, false
}

func (l *loader) jsonScalar(n *yaml.Node, path string) (any, bool) {
	switch n.ShortTag() {
	case "!!null":
		return nil, true
	case "!!str", "!!timestamp", "!!binary":
		return n.Value, true
	case "!!bool":
		var b bool
		if n.Decode(&b) != nil {
			break
		}
		return b, true
	case "!!int":
		if jsonNumberRE.MatchString(n.Value) {
			return json.Number(n.Value), true
		}
		var i int64
		if n.Decode(&i) == nil {
			return json.Number(strconv.FormatInt(i, 10)), true
		}
		var u uint64
		if n.Decode(&u) == nil {
			return json.Number(strconv.FormatUint(u, 10)), true
		}
	case "!!float":
		if jsonNumberRE.MatchString(n.Value) {
			return json.Number(n.Value), true
		}
		var f float64
		if n.Decode(&f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true
		}
		l.errorf(n, "%s: %s is not a JSON number", path, n.Value)
		return nil, false
	default:
		l.errorf(n, "%s: unsupported tag %s", path, n.ShortTag())
		return nil, false
	}
	l.errorf(n, "%s: cannot read %q as %s", path, n.Value, kindName(n))
	return nil, false
}
