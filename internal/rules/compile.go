package rules

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	wardpolicy "github.com/ward-dev/ward/internal/policy"
)

// policy is one sentence's meaning, ready to print as Cedar.
type policy struct {
	effect    string // "permit" or "forbid"
	principal string // principal scope
	action    string // action scope
	resource  string // resource scope
	conds     []string
	escalate  string // @escalate value, "" if none
	timeout   string // @escalate_timeout value, "" if none
}

// parseError aborts the parse of one sentence; compileSentence recovers it.
type parseError struct {
	col int
	msg string
}

type parser struct {
	toks sentence
	pos  int
	pol  policy
	kind target // what the sentence's access is about, set by access
}

// target is the kind of request a sentence is about; it decides which
// context attributes its conditions may read.
type target int

const (
	targetMCP  target = iota // call, read, get and verb phrases: MCP calls
	targetHTTP               // request: outgoing HTTP
	targetExec               // run: programs
)

// compileSentence parses and compiles one sentence of line lineNo. multi
// says whether the line holds more than one sentence.
func compileSentence(file string, lineNo int, line string, s sentence, multi bool) (r Rule, perr *lexError) {
	p := &parser{toks: s}
	func() {
		defer func() {
			if x := recover(); x != nil {
				pe, ok := x.(parseError)
				if !ok {
					panic(x)
				}
				perr = &lexError{col: pe.col, msg: pe.msg}
			}
		}()
		p.sentence()
	}()
	if perr != nil {
		return Rule{}, perr
	}
	last := s[len(s)-1]
	end := last.end
	if last.text == "" { // end of line: the text ends with the last word
		end = s[len(s)-2].end
	}
	r = Rule{Line: lineNo, Column: s[0].col, Text: line[s[0].off:end]}
	id := fmt.Sprintf("%s:%d", file, lineNo)
	if multi {
		id += ":" + strconv.Itoa(r.Column)
	}
	r.Cedar = p.pol.cedar(id, r.Text)
	return r, nil
}

// cedar prints the policy.
func (pol *policy) cedar(id, text string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "@id(%s)\n@rule(%s)\n", quote(id), quote(text))
	if pol.escalate != "" {
		fmt.Fprintf(&b, "@escalate(%s)\n", quote(pol.escalate))
	}
	if pol.timeout != "" {
		fmt.Fprintf(&b, "@escalate_timeout(%s)\n", quote(pol.timeout))
	}
	fmt.Fprintf(&b, "%s (\n    %s,\n    %s,\n    %s\n)", pol.effect, pol.principal, pol.action, pol.resource)
	if len(pol.conds) > 0 {
		b.WriteString(" when {\n    ")
		b.WriteString(strings.Join(pol.conds, " &&\n    "))
		b.WriteString("\n}")
	}
	b.WriteString(";\n")
	return b.String()
}

// Parsing helpers. Each failure panics with a parseError.

func (p *parser) peek() token { return p.toks[p.pos] }

// peekWord returns the text of the word k tokens ahead, or "" if that is not
// a word.
func (p *parser) peekWord(k int) string {
	if i := p.pos + k; i < len(p.toks) && p.toks[i].kind == kWord {
		return p.toks[i].text
	}
	return ""
}

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != kEnd {
		p.pos++
	}
	return t
}

func (p *parser) failAt(t token, format string, args ...any) {
	panic(parseError{col: t.col, msg: fmt.Sprintf(format, args...)})
}

// expected fails at the next token with "expected WHAT after PREV, found X".
func (p *parser) expected(what string) {
	t := p.peek()
	if p.pos == 0 {
		p.failAt(t, "expected %s at the start of a sentence, found %s", what, describe(t))
	}
	p.failAt(t, "expected %s after %s, found %s", what, describe(p.toks[p.pos-1]), describe(t))
}

// word consumes the next token if it is one of the keywords alts, and
// returns it.
func (p *parser) word(alts ...string) string {
	if w := p.peekWord(0); w != "" {
		for _, a := range alts {
			if w == a {
				p.pos++
				return w
			}
		}
	}
	p.expected(oneOf(alts...))
	return ""
}

// end expects the end of the sentence; others are the words that could
// also have come next.
func (p *parser) end(others ...string) {
	if p.peek().kind != kEnd {
		p.expected(oneOf(append(others, "<end of sentence")...))
	}
}

// The grammar, one method per production.

func (p *parser) sentence() {
	switch p.peekWord(0) {
	case "never":
		p.pos++
		p.pol.principal = "principal"
		p.forbid()
		return
	case "any", "agent", "agents", "sub-agents":
		p.subject()
	default:
		if t := p.peek(); t.kind == kEnd {
			p.failAt(t, `expected a sentence before "."`)
		}
		p.expected(oneOf("any", "agent", "agents", "sub-agents", "never"))
	}
	switch p.peekWord(0) {
	case "may":
		p.pos++
		p.permit()
	case "never":
		p.pos++
		p.forbid()
	default:
		if w := p.toks[p.pos-1].text; p.pos == 1 && (w == "agents" || w == "sub-agents") {
			p.expected(oneOf("in", "of", "may", "never"))
		}
		p.expected(oneOf("may", "never"))
	}
}

func (p *parser) subject() {
	switch p.next().text {
	case "any":
		p.word("agent")
		p.pol.principal = "principal"
	case "agent":
		p.pol.principal = "principal in " + uid("Agent", p.name("an agent name"))
	case "agents", "sub-agents":
		sub := p.toks[p.pos-1].text == "sub-agents"
		p.pol.principal = "principal"
		if sub {
			p.pol.conds = append(p.pol.conds, "principal.depth > 0")
		}
		switch p.peekWord(0) {
		case "in":
			p.pos++
			p.word("group")
			p.pol.principal = "principal in " + uid("Group", p.name("a group name"))
		case "of":
			p.pos++
			switch p.word("agent", "sponsor") {
			case "agent":
				p.pol.principal = "principal in " + uid("Agent", p.name("an agent name"))
			case "sponsor":
				p.pol.conds = append(p.pol.conds,
					"principal has sponsor && principal.sponsor == "+uid("Sponsor", p.name("a sponsor name")))
			}
		}
	}
}

func (p *parser) permit() {
	p.pol.effect = "permit"
	switch p.peekWord(0) {
	case "call", "read", "get", "request", "run":
		p.access()
	default:
		p.expected(oneOf("call", "read", "get", "request", "run"))
	}
	others := []string{"only", "when", "with"}
	switch {
	case p.peekWord(0) == "only" && p.peekWord(1) == "to":
		if p.kind != targetMCP {
			p.failAt(p.peek(), `"only to" a verb applies to call, read and get`)
		}
		p.pos += 2
		p.verb(true)
	case p.peekWord(0) == "only" && p.peekWord(1) == "with" && (p.peekWord(2) == "method" || p.peekWord(2) == "methods"):
		if p.kind != targetHTTP {
			p.failAt(p.peek(), `"only with method" applies to request`)
		}
		p.pos += 3
		p.methods()
	}
	if w := p.peekWord(0); w == "when" || w == "with" {
		p.conditions()
		others = []string{"and", "only"}
	}
	if p.peekWord(0) == "only" {
		p.pos++
		p.word("with")
		p.approval()
		others = nil
	}
	p.end(others...)
}

func (p *parser) forbid() {
	p.pol.effect = "forbid"
	switch w := p.peekWord(0); {
	case w == "call" || w == "get" || w == "request" || w == "run" ||
		w == "read" && (p.peekWord(1) == "resource" || p.peekWord(1) == "resources" || p.peekWord(1) == "any"):
		p.access()
	case isVerb(w):
		p.pol.action = `action == Action::"call_tool"`
		p.pol.resource = "resource is Tool"
		p.verb(false)
	default:
		p.expected(`"call", "read", "get", "request", "run" or a verb (` + verbNames + ")")
	}
	others := []string{"when", "with", "without"}
	if w := p.peekWord(0); w == "when" || w == "with" {
		p.conditions()
		others = []string{"and", "without"}
	}
	if p.peekWord(0) == "without" {
		p.pos++
		p.approval()
		others = nil
	}
	p.end(others...)
}

// access parses "call ...", "read ...", "get ...", "request ..." or
// "run ...".
func (p *parser) access() {
	switch p.next().text {
	case "request":
		p.kind = targetHTTP
		p.pol.action = `action == Action::"http_request"`
		p.pol.resource = "resource is Host"
		switch p.word("host", "hosts", "any") {
		case "host":
			p.pol.resource = "resource == " + uid("Host", p.host())
		case "any":
			p.word("host")
		case "hosts":
			if p.peekWord(0) == "matching" {
				p.pos++
				t := p.peek()
				pat := p.str("a host pattern in double quotes")
				if strings.ContainsFunc(pat, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
					p.failAt(t, "host pattern %s has capitals: hosts are lowercase in policies", quote(pat))
				}
				p.pol.conds = append(p.pol.conds, "context.host like "+wildcardPattern(pat))
			}
		}
	case "run":
		p.kind = targetExec
		p.pol.action = `action == Action::"exec"`
		p.pol.resource = "resource is Path"
		switch p.peekWord(0) {
		case "any":
			p.pos++
			p.word("command")
		case "commands":
			p.pos++
			if p.peekWord(0) == "matching" {
				p.pos++
				p.pol.conds = append(p.pol.conds, "context.command like "+wildcardPattern(p.str("a path pattern in double quotes")))
			}
		default:
			p.pol.resource = "resource == " + uid("Path", p.command())
		}
	case "call":
		p.pol.action = `action == Action::"call_tool"`
		if p.peekWord(0) == "any" {
			p.pos++
			p.word("tool")
			p.pol.resource = "resource is Tool" + p.onServer()
			return
		}
		p.pol.resource = "resource == " + uid("Tool", p.tool(`a tool name of the form server.tool or "any"`))
	case "read":
		p.pol.action = `action == Action::"read_resource"`
		switch p.word("resource", "resources", "any") {
		case "resource":
			p.pol.resource = "resource == " + uid("Resource", p.str("a resource URI in double quotes"))
		case "any":
			p.word("resource")
			p.pol.resource = "resource is Resource" + p.onServer()
		case "resources":
			p.word("matching")
			pat := p.str("a URI pattern in double quotes")
			p.pol.resource = "resource is Resource" + p.onServer()
			p.pol.conds = append(p.pol.conds, "context.name like "+wildcardPattern(pat))
		}
	case "get":
		p.pol.action = `action == Action::"get_prompt"`
		if p.word("prompt", "any") == "any" {
			p.word("prompt")
			p.pol.resource = "resource is Prompt" + p.onServer()
			return
		}
		p.pol.resource = "resource == " + uid("Prompt", p.tool("a prompt name of the form server.prompt"))
	}
}

// onServer parses an optional "on server NAME" and returns the scope suffix.
func (p *parser) onServer() string {
	if p.peekWord(0) != "on" {
		return ""
	}
	p.pos++
	p.word("server")
	return " in " + uid("Server", p.name("a server name"))
}

// verb parses verb [ quantity ] and, in a verb phrase (not a purpose), an
// optional "on server NAME".
func (p *parser) verb(purpose bool) {
	w := p.peekWord(0)
	if !isVerb(w) {
		p.expected("a verb (" + verbNames + ")")
	}
	p.pos++
	p.pol.conds = append(p.pol.conds, "context has verb && context.verb == "+quote(w))
	if op := p.numcmp(false); op != "" {
		n := p.number()
		t := p.peek()
		if t.kind != kWord || !isUnit(t.text) {
			p.expected("a unit of impact such as rows")
		}
		p.pos++
		p.pol.conds = append(p.pol.conds, fmt.Sprintf("context has impact && %s && %s %s %d",
			has("context.impact", t.text), attr("context.impact", t.text), op, n))
	}
	if !purpose {
		p.pol.resource += p.onServer()
	}
}

// numcmp parses an optional numeric comparison and returns its Cedar
// operator, or "" if none is next and !required.
func (p *parser) numcmp(required bool) string {
	switch p.peekWord(0) {
	case "over":
		p.pos++
		return ">"
	case "under":
		p.pos++
		return "<"
	case "more":
		p.pos++
		p.word("than")
		return ">"
	case "less":
		p.pos++
		p.word("than")
		return "<"
	case "at":
		p.pos++
		if p.word("most", "least") == "most" {
			return "<="
		}
		return ">="
	}
	if required {
		p.expected(oneOf("over", "more", "under", "less", "at"))
	}
	return ""
}

func (p *parser) conditions() {
	p.pos++ // "when" or "with"
	p.predicate()
	for p.peekWord(0) == "and" {
		p.pos++
		p.predicate()
	}
}

// predicate parses one condition, checking that the sentence's requests
// carry what it reads.
func (p *parser) predicate() {
	t := p.peek()
	switch p.peekWord(0) {
	case "argument":
		if p.kind != targetMCP {
			p.failAt(t, `"argument" applies to call, read, get and verbs`)
		}
		p.argument()
	case "method":
		if p.kind != targetHTTP {
			p.failAt(t, `"method" applies to request`)
		}
		p.pos++
		p.methods()
	case "the":
		p.pos++
		switch p.word("session", "command", "path") {
		case "session":
			p.word("holds")
			p.labels()
		case "command":
			if p.kind != targetExec {
				p.failAt(t, `"the command line" applies to run`)
			}
			p.word("line")
			p.pol.conds = append(p.pol.conds, p.stringTest("context.cmdline", false))
		case "path":
			switch p.kind {
			case targetExec:
				p.failAt(t, `"the path" applies to call, read, get, verbs and request`)
			case targetHTTP:
				p.pol.conds = append(p.pol.conds, p.stringTest("context.path", false))
			default:
				p.pol.conds = append(p.pol.conds, "context has path && "+p.stringTest("context.path", false))
			}
		}
	default:
		p.expected(oneOf("argument", "method", "the"))
	}
}

// argument parses the rest of "argument NAME TEST".
func (p *parser) argument() {
	p.pos++ // "argument"
	path := p.argName()
	// Guards: every attribute on the way must exist.
	var guards []string
	base := "context.arguments"
	for _, seg := range path {
		guards = append(guards, has(base, seg))
		base = attr(base, seg)
	}
	var test string
	if op := p.numcmp(false); op != "" {
		test = fmt.Sprintf("%s %s %d", base, op, p.number())
	} else {
		test = p.stringTest(base, true)
	}
	p.pol.conds = append(p.pol.conds, strings.Join(append(guards, test), " && "))
}

// stringTest parses a test of the String base: "equals", "starts with",
// "ends with", "contains" or "matches" and a string, and returns it in
// Cedar. numbers says whether a numeric comparison or an equals with a
// number or boolean (an argument's) could have come instead.
func (p *parser) stringTest(base string, numbers bool) string {
	switch p.peekWord(0) {
	case "equals":
		p.pos++
		if numbers {
			return base + " == " + p.value()
		}
		return base + " == " + quote(p.str("a string in double quotes"))
	case "starts":
		p.pos++
		p.word("with")
		return base + ` like "` + escape(p.str("a string in double quotes"), true) + `*"`
	case "ends":
		p.pos++
		p.word("with")
		return base + ` like "*` + escape(p.str("a string in double quotes"), true) + `"`
	case "contains":
		p.pos++
		return base + ` like "*` + escape(p.str("a string in double quotes"), true) + `*"`
	case "matches":
		p.pos++
		return base + " like " + wildcardPattern(p.str("a pattern in double quotes"))
	}
	if numbers {
		p.expected(oneOf("over", "more", "under", "less", "at", "equals", "starts", "ends", "contains", "matches"))
	}
	p.expected(oneOf("equals", "starts", "ends", "contains", "matches"))
	return ""
}

// methods parses method { "," method } and adds the condition that the
// request's method is one of them.
func (p *parser) methods() {
	ms := []string{p.method()}
	for p.peek().kind == kComma {
		p.pos++
		ms = append(ms, p.method())
	}
	if len(ms) == 1 {
		p.pol.conds = append(p.pol.conds, "context.method == "+quote(ms[0]))
		return
	}
	for i, m := range ms {
		ms[i] = quote(m)
	}
	p.pol.conds = append(p.pol.conds, "["+strings.Join(ms, ", ")+"].contains(context.method)")
}

// method parses an HTTP method: a word of capitals, digits, '.', '_' and
// '-', at most 32 characters (policy refuses lowercase methods).
func (p *parser) method() string {
	t := p.peek()
	if t.kind == kWord && len(t.text) <= 32 && strings.Trim(t.text, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == "" {
		p.pos++
		return t.text
	}
	p.expected("an HTTP method in capitals such as GET")
	return ""
}

// labels parses label { "and" label } and adds the condition that the
// session holds every one. An "and" followed by "argument", "method" or
// "the" starts the next predicate instead.
func (p *parser) labels() {
	ls := []string{quote(p.label())}
	for p.peekWord(0) == "and" {
		if w := p.peekWord(1); w == "argument" || w == "method" || w == "the" {
			break
		}
		p.pos++
		ls = append(ls, quote(p.label()))
	}
	if len(ls) == 1 {
		p.pol.conds = append(p.pol.conds, "context.taint.contains("+ls[0]+")")
		return
	}
	p.pol.conds = append(p.pol.conds, "context.taint.containsAll(["+strings.Join(ls, ", ")+"])")
}

// label parses a taint label, a name or string of 1-64 characters of a-z,
// 0-9, '.', '_' and '-' starting with a letter or digit, as package policy
// requires.
func (p *parser) label() string {
	t := p.peek()
	if (t.kind == kWord || t.kind == kString) && isName(t.text) && len(t.text) <= 64 {
		p.pos++
		return t.text
	}
	p.expected("a taint label such as private or untrusted")
	return ""
}

// host parses a host name or address, a word or string in the form
// package policy requires (lowercase, canonical, no port).
func (p *parser) host() string {
	t := p.peek()
	if t.kind != kWord && t.kind != kString || t.text == "" {
		p.expected("a host such as api.example.com")
	}
	h, err := wardpolicy.CanonicalHost(t.text)
	if err != nil {
		p.failAt(t, "%v", err)
	}
	if h != t.text {
		p.failAt(t, "host %s is written %s in policies", quote(t.text), quote(h))
	}
	p.pos++
	return h
}

// command parses a program's path: a word or string holding an absolute,
// clean path.
func (p *parser) command() string {
	t := p.peek()
	if t.kind != kWord && t.kind != kString || !strings.HasPrefix(t.text, "/") {
		p.expected(`an absolute program path such as /usr/bin/git, "any" or "commands"`)
	}
	if c := path.Clean(t.text); c != t.text {
		p.failAt(t, "program path %s is not clean: write %s", quote(t.text), quote(c))
	}
	p.pos++
	return t.text
}

// argName parses an argument path: dotted segments or one quoted name.
func (p *parser) argName() []string {
	t := p.peek()
	switch t.kind {
	case kString:
		if t.text == "" {
			p.failAt(t, "argument name must not be empty")
		}
		p.pos++
		return []string{t.text}
	case kWord:
		segs := strings.Split(t.text, ".")
		ok := true
		for _, s := range segs {
			ok = ok && s != "" && strings.IndexFunc(s, func(r rune) bool {
				return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
			}) < 0
		}
		if ok {
			p.pos++
			return segs
		}
	}
	p.expected("an argument name")
	return nil
}

// value parses an "equals" operand.
func (p *parser) value() string {
	t := p.peek()
	switch {
	case t.kind == kString:
		p.pos++
		return quote(t.text)
	case t.kind == kWord && (t.text == "true" || t.text == "false"):
		p.pos++
		return t.text
	case t.kind == kWord && isNumber(t.text):
		return strconv.FormatInt(p.number(), 10)
	}
	p.expected("a number, a string, true or false")
	return ""
}

func isNumber(w string) bool {
	d := strings.TrimPrefix(w, "-")
	return d != "" && strings.Trim(d, "0123456789") == ""
}

func (p *parser) number() int64 {
	t := p.peek()
	if t.kind != kWord || !isNumber(t.text) {
		p.expected("a number")
	}
	n, err := strconv.ParseInt(t.text, 10, 64)
	if err != nil {
		p.failAt(t, "number %s is out of range (-9223372036854775808 to 9223372036854775807)", t.text)
	}
	p.pos++
	return n
}

// Limits package policy puts on @escalate: what compiles here loads there.
const (
	maxQuorum    = 100
	maxTimeout   = 7 * 24 * time.Hour
	maxGroupName = 64
)

func (p *parser) approval() {
	p.word("approval")
	p.word("from")
	t := p.peek()
	n := p.number()
	if n < 1 {
		p.failAt(t, "approval count must be at least 1, found %d", n)
	}
	if n > maxQuorum {
		p.failAt(t, "approval count must be at most %d, found %d", maxQuorum, n)
	}
	p.word("of")
	groups := []string{p.groupRef()}
	for p.peek().kind == kComma {
		p.pos++
		groups = append(groups, p.groupRef())
	}
	p.pol.escalate = fmt.Sprintf("%d of %s", n, strings.Join(groups, ", "))
	if p.peekWord(0) == "within" {
		p.pos++
		t := p.peek()
		w := t.text
		if t.kind != kWord || len(w) < 2 || !strings.ContainsAny(w[len(w)-1:], "smh") ||
			strings.Trim(w[:len(w)-1], "0123456789") != "" {
			p.expected("a duration such as 30s, 15m or 2h")
		}
		d, err := time.ParseDuration(w)
		if err != nil {
			p.failAt(t, "duration %s is out of range", w)
		}
		if d < time.Second {
			p.failAt(t, "duration must be at least 1s, found %s", w)
		}
		if d > maxTimeout {
			p.failAt(t, "duration must be at most %s, found %s", maxTimeout, w)
		}
		p.pos++
		p.pol.timeout = w
	}
}

func (p *parser) groupRef() string {
	t := p.peek()
	if g, ok := strings.CutPrefix(t.text, "group:"); ok && t.kind == kWord && isName(g) && len(g) <= maxGroupName {
		p.pos++
		return t.text
	}
	p.expected("a group such as group:dba")
	return ""
}

// name parses a ward name or a non-empty quoted string.
func (p *parser) name(what string) string {
	t := p.peek()
	if t.kind == kWord && isName(t.text) || t.kind == kString && t.text != "" {
		p.pos++
		return t.text
	}
	p.expected(what)
	return ""
}

// tool parses a server.tool name or a non-empty quoted string.
func (p *parser) tool(what string) string {
	t := p.peek()
	if t.kind == kWord && isName(t.text) && strings.Contains(t.text, ".") || t.kind == kString && t.text != "" {
		p.pos++
		return t.text
	}
	p.expected(what)
	return ""
}

func (p *parser) str(what string) string {
	t := p.peek()
	if t.kind != kString {
		p.expected(what)
	}
	p.pos++
	return t.text
}

// isName reports whether w is a ward name: a-z 0-9 . _ -, starting with a
// letter or digit, not ending with a period.
func isName(w string) bool {
	if w == "" || w[len(w)-1] == '.' || w[0] == '.' || w[0] == '_' || w[0] == '-' {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isUnit(w string) bool {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Cedar output helpers.

// quote returns s as a Cedar string literal.
func quote(s string) string { return `"` + escape(s, false) + `"` }

// wildcardPattern returns s as a Cedar like pattern in which "*" matches
// any run of characters.
func wildcardPattern(s string) string {
	parts := strings.Split(s, "*")
	for i, part := range parts {
		parts[i] = escape(part, true)
	}
	return `"` + strings.Join(parts, "*") + `"`
}

// escape escapes s for the inside of a Cedar string literal, and also "*"
// if star (for like patterns).
func escape(s string, star bool) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return r == '\\' || r == '"' || r == '*' && star || r < 0x20 || r == 0x7f
	}) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '*' && star:
			b.WriteString(`\*`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u{%x}`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func uid(typ, id string) string { return typ + "::" + quote(id) }

// isCedarWord reports whether s may not follow a "." in Cedar (or is best
// not to).
func isCedarWord(s string) bool {
	switch s {
	case "true", "false", "if", "then", "else", "in", "like", "has", "is", "__cedar",
		"principal", "action", "resource", "context", "permit", "forbid", "when", "unless":
		return true
	}
	return false
}

func isIdent(s string) bool {
	if s == "" || isCedarWord(s) || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// attr returns base's attribute name.
func attr(base, name string) string {
	if isIdent(name) {
		return base + "." + name
	}
	return base + "[" + quote(name) + "]"
}

// has returns the Cedar test that base has attribute name.
func has(base, name string) string {
	if isIdent(name) {
		return base + " has " + name
	}
	return base + " has " + quote(name)
}
