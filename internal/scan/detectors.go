package scan

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// detector is one regular expression, tried where one of its anchors
// starts in the folded text.
type detector struct {
	kind    string
	weight  int
	anchors []string
	pattern string
	re      *regexp.Regexp // anchored at the start, unless back > 0
	span    int            // the longest match, in bytes
	back    int            // > 0: the anchors are inside a match, at most this many bytes in
	tool    bool           // tool definitions only
	comment bool           // only inside HTML comments
	line    int            // lineStart: the match must start a line; lineEnd: and end it
	tag     bool           // an opening and a closing tag are the same hit: no '/' in Detail
	inWord  bool           // anchors starting with a letter may start inside a word
}

const (
	lineStart = 1 + iota
	lineEnd
)

type trigger struct {
	anchor string
	det    int
	word   bool // the anchor must start a word
}

// triggerSet indexes anchors by their first byte (anchors of one byte)
// or first two bytes, so that the scan looks up each position once.
type triggerSet struct {
	lists   [][]trigger // lists[0] is empty
	one     [256]uint8  // index in lists of the one-byte anchors starting with a byte
	first   [256]bool   // some longer anchor starts with the byte
	twoBits [1 << 10]uint64
	two     [1 << 16]uint8 // index in lists of the anchors starting with two bytes, if in twoBits
	inWord  bool           // some anchor may start inside a word
}

// The triggers of the detectors for results, and of all of them for tool
// definitions.
var resultTriggers, toolTriggers = newTriggers(false), newTriggers(true)

func newTriggers(tool bool) triggerSet {
	ts := triggerSet{lists: [][]trigger{nil}}
	for i := range detectors {
		d := &detectors[i]
		if d.re == nil {
			d.compile()
		}
		if d.tool && !tool {
			continue
		}
		ts.inWord = ts.inWord || d.inWord
		for _, a := range d.anchors {
			t := trigger{a, i, isWord(a[0]) && !d.inWord || a[0] == '.'} // ".env", not "process.env"
			slot := &ts.one[a[0]]
			if len(a) > 1 {
				k := int(a[0])<<8 | int(a[1])
				slot = &ts.two[k]
				ts.first[a[0]] = true
				ts.twoBits[k>>6] |= 1 << (k & 63)
			}
			if *slot == 0 {
				ts.lists = append(ts.lists, nil)
				*slot = uint8(len(ts.lists) - 1)
				if len(ts.lists) > 255 {
					panic("scan: too many anchor prefixes")
				}
			}
			ts.lists[*slot] = append(ts.lists[*slot], t)
		}
	}
	return ts
}

// compile compiles d.pattern and measures its longest match.
func (d *detector) compile() {
	p := d.pattern
	if d.back == 0 {
		p = `^(?:` + p + `)`
	}
	d.re = regexp.MustCompile(p)
	re, err := syntax.Parse(d.pattern, syntax.Perl)
	if err != nil {
		panic(err)
	}
	if d.span = maxLen(re); d.span < 0 {
		panic(fmt.Sprintf("scan: pattern %q has no longest match", d.pattern))
	}
	for _, a := range d.anchors {
		if a != strings.ToLower(a) || a == "" {
			panic(fmt.Sprintf("scan: anchor %q is not folded", a))
		}
	}
}

// maxLen returns the length in bytes of the longest text re matches, or
// -1 if there is none.
func maxLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
		}
		return n
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 0
		}
		return utf8.RuneLen(min(re.Rune[len(re.Rune)-1], utf8.MaxRune))
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return utf8.UTFMax
	case syntax.OpCapture, syntax.OpQuest:
		return maxLen(re.Sub[0])
	case syntax.OpRepeat:
		if n := maxLen(re.Sub[0]); re.Max >= 0 && n >= 0 {
			return re.Max * n
		}
		return -1
	case syntax.OpStar, syntax.OpPlus:
		return -1
	case syntax.OpConcat, syntax.OpAlternate:
		total, most := 0, 0
		for _, sub := range re.Sub {
			n := maxLen(sub)
			if n < 0 {
				return -1
			}
			total, most = total+n, max(most, n)
		}
		if re.Op == syntax.OpAlternate {
			return most
		}
		return total
	}
	return 0 // empty-width assertions
}

// Patterns match folded text: lowercase ASCII, one space for any run of
// whitespace, straight quotes. Each starts with one of its anchors.
const (
	// targets of an instruction to the model
	aiNoun = `(?:ai (?:assistant|agent|model|system|bot)s?|ai|llm|large language model|language model|chatbot|automated (?:system|agent|assistant|tool))`
	// what an injection asks the model to do next
	doVerb = `(?:do|send|reply|respond|output|print|say|tell|write|forward|call|run|execute|email|transfer|pay|delete|remove|open|visit|fetch|read|return|repeat|reveal|include|answer|follow|act|pretend|translate|summari[sz]e|list|add|create|update|post|upload)\b`
)

var overrideVerbs = []string{"ignore", "disregard", "forget", "override", "bypass", "neglect", "skip"}

// detectors are the regular-expression detectors, in no particular order.
var detectors = []detector{
	// "ignore (all) previous instructions" and its variants: the object
	// must be instructions, prompts, rules and the like, qualified as
	// earlier, the system's or the reader's.
	det(KindInstruction, 3, overrideVerbs,
		`(?:ignore|disregard|forget|override|bypass|neglect|skip) (?:(?:all|any|each|every|of|the|everything|anything) ){0,3}(?:about )?`+
			`(?:previous|prior|above|earlier|preceding|former|foregoing|original|initial|old|existing|system|developer|safety|your|all|any) `+
			`(?:(?:previous|prior|above|earlier|preceding|system|safety|other|security|initial|original|current|given) )?`+
			`(?:instructions?|prompts?|directives?|directions|commands|guidelines|guardrails|rules|restrictions|constraints|programming|system prompt|training|policies)\b`),
	// "disregard the above and send …": an earlier text set aside, then
	// something to do.
	det(KindInstruction, 2, overrideVerbs[:3],
		`(?:ignore|disregard|forget) (?:(?:all|everything|anything|of|the|that) ){0,3}(?:above|foregoing|preceding|previous|prior|earlier|before)`+
			`(?: (?:text|content|message|messages|context|conversation|information|request|instructions?|lines?|sentences?|paragraphs?))?(?: (?:this|that))?`+
			`(?:[,;.:!-]{1,2} ?(?:and )?| and )(?:(?:instead|now|then|rather|just|only|simply)[ ,]{1,2}){0,2}(?:you (?:must|should|will|need to|have to) )?`+doVerb),
	det(KindInstruction, 3, overrideVerbs[:3],
		`(?:forget|ignore|disregard) (?:about )?(?:everything|all|anything) you(?: were|'ve been| have been) (?:told|given|instructed|taught|asked)\b`),
	// a new role or mode for the reader
	det(KindInstruction, 3, []string{"you must now", "you should now", "you will now", "you need to now", "you have to now", "you are to now", "you are required to now", "you are now", "you are no longer"},
		`you (?:must|should|will|need to|have to|are to|are required to) now (?:ignore|disregard|forget|follow|obey|comply|act|pretend|reveal|send|forward|output|print|execute|run|call|email|transfer|stop|respond|reply|answer|switch|become|behave|role-?play)\b`+
			`|you are (?:now|no longer) (?:dan\b|jailbroken|unrestricted|unfiltered|uncensored|free (?:from|of)|in (?:developer|god|admin|debug|jailbreak|dan|unrestricted|maintenance) mode|an? (?:unrestricted|unfiltered|uncensored|evil|rogue|different|new) (?:ai|assistant|model|agent|chatbot)|bound by|restricted|required to follow|an ai\b|a language model|an assistant|chatgpt|claude)`),
	det(KindInstruction, 3, []string{"from now on"},
		`from now on,? (?:you (?:are|will|must|shall) (?:act as|respond|reply only|answer only|ignore|obey|follow (?:only|my|these)|pretend|disregard)|ignore|act as|respond only|obey|disregard)\b`),
	// addressed to the model
	det(KindInstruction, 3, []string{"dear", "hey", "hello", "hi ", "greetings", "attention", "note to", "note for", "message to", "message for", "instruction", "notice to", "memo to", "to the ", "to all ", "to any ", "to every "},
		`(?:dear|hey|hello|hi|greetings|attention|note to|note for|message to|message for|instructions? for|notice to|memo to|to) (?:the |all |any |every )?(?:`+aiNoun+`|assistant|agent reading this|model reading this)s? ?[:,!-]`),
	det(KindInstruction, 3, []string{"if you are", "if you're"},
		`if you(?: are|'re) (?:an? )?(?:`+aiNoun+`|(?:an? )?assistant reading this)\b`),
	det(KindInstruction, 3, []string{"as an ai"},
		`as an ai(?: language model| assistant| model| agent)?,? you (?:must|should|will|are (?:required|obligated|instructed)|need|have to|cannot|can't)\b`),
	{kind: KindInstruction, weight: 3, back: 40,
		anchors: []string{"reading this", "processing this", "parsing this", "summarizing this", "summarising this", "browsing this", "visiting this", "crawling this", "scraping this"},
		pattern: `\b(?:ai|llm|language model|large language model|ai assistant|ai agent|assistant|agent|model|chatbot)s? (?:reading|processing|parsing|summari[sz]ing|browsing|visiting|crawling|scraping) this (?:page|document|text|email|e-mail|message|file|site|website|content)\b`},
	// keeping the user in the dark
	det(KindInstruction, 3, []string{"do not", "don't", "dont", "never", "must not", "should not", "shouldn't", "mustn't"},
		`(?:do not|don't|dont|never|must not|should not|shouldn't|mustn't) (?:ever )?(?:tell|inform|alert|notify|warn|mention (?:this|it|anything) to|reveal (?:this|it|anything) to|disclose (?:this|it|anything) to) (?:the )?(?:user|human|operator)s?\b`),
	det(KindInstruction, 3, []string{"keep this", "keep it", "hide this", "hide it", "conceal"},
		`(?:keep (?:this|it) (?:a )?(?:secret|hidden|confidential) from|hide (?:this|it) from|conceal (?:this|it) from) (?:the )?(?:user|human)s?\b`),
	// asking for the system prompt
	det(KindInstruction, 2, []string{"reveal", "print", "output", "show", "repeat", "display", "leak", "share", "dump", "tell me", "write out", "copy"},
		`(?:reveal|print|output|show|repeat|display|leak|share|dump|tell me|write out|copy) (?:me )?(?:all |back )?(?:of )?(?:your|the) (?:full |entire |complete |original |initial |hidden |secret |exact )?`+
			`(?:system (?:prompt|message|instructions)|initial (?:prompt|instructions)|hidden (?:prompt|instructions)|(?:instructions|prompt|text) above|developer (?:message|instructions)|pre-?prompt)`),
	// sending secrets somewhere
	det(KindInstruction, 3, []string{"send", "forward", "email", "e-mail", "mail", "post", "upload", "transmit", "exfiltrate", "leak", "submit", "deliver"},
		`(?:send|forward|email|e-mail|mail|post|upload|transmit|exfiltrate|leak|submit|deliver) (?:(?:all|the|your|any|every|of|user's|their|this|these|entire|full|complete|whole) ){0,3}(?:(?:previous|current|private|stored|saved|recent|above) )?`+
			`(?:conversation|chat (?:history|log|transcript)|message history|conversation history|api[ _-]?keys?|credentials?|passwords?|secrets?|private keys?|ssh keys?|access tokens?|auth tokens?|environment variables|env vars|\.env|system prompt|session (?:cookies?|tokens?)|cookies|credit card(?: numbers?)?|personal (?:data|information)|contents? of|files? (?:in|from|under))\b`+
			`.{0,80}? (?:to|at|via) (?:me\b|us\b|the (?:following|address|url|endpoint|link|server below)|https?:|//|[a-z0-9._%+-]{1,64}@|[a-z0-9-]{1,63}\.[a-z]{2}|<)`),

	// chat-template tokens
	det(KindFakeSystem, 4, []string{"<|", "[inst]", "[/inst]", "<<sys>>", "<</sys>>", "<start_of_turn>", "<end_of_turn>"},
		`<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text|eom_id|python_tag|tool|tool_call|end|start)\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>`),
	// tags of the agent's framework and of fake system blocks
	tag(KindFakeSystem, 3,
		`</? ?(?:system[_-]?(?:prompt|message|instructions?|override|reminder|note)|sys|admin[_-]?(?:override|instructions?|message)|developer[_-]?(?:message|instructions?)|tool[_-]?(?:results?|response|output|call|use)|function[_-]?(?:results?|calls?|response)|untrusted[_-]?(?:content|data|input|text)|user[_-]?(?:query|message|instructions?|request)|(?:antml|anthropic):[a-z_]{1,32}|search_results?|document_content)(?: [^<>]{0,80})?>`),
	tag(KindFakeSystem, 2,
		`</? ?(?:system|important|instructions?|assistant|thinking)(?: [^<>]{0,80})?>`),
	det(KindFakeSystem, 3, []string{"[system", "[sys", "[admin", "[developer", "[assistant", "(system", "(sys", "(admin", "(developer", "(assistant"},
		`[\[(](?:system|sys|admin|developer|assistant|system (?:message|prompt|note|override|instructions?)|admin (?:message|override|instructions?))[\])]`),
	det(KindFakeSystem, 2, []string{"[important", "(important"},
		`[\[(]important(?: (?:message|note|notice|instructions?))?[\])]`),
	det(KindFakeSystem, 3, []string{"system", "admin", "administrator", "developer"},
		`(?:system|admin|administrator|developer) (?:message|prompt|note|override|instructions?|directive|command)s? ?:`),
	{kind: KindFakeSystem, weight: 3, anchors: headingAnchors, line: lineEnd, pattern: `#{1,6} ?(?:system|system (?:prompt|message|instructions?|override)|new instructions|new system prompt|developer (?:message|instructions?)|admin (?:instructions?|override)|instructions for (?:the )?` + aiNoun + `)`},
	{kind: KindFakeSystem, weight: 1, anchors: []string{"assistant:", "human:", "user:", "system:"}, line: lineStart, pattern: `(?:assistant|human|user|system):`},
	// "IMPORTANT" addressed to the model
	det(KindFakeSystem, 3, []string{"important", "urgent", "critical"},
		`(?:important|urgent|critical)(?: (?:message|note|notice|instructions?|update|information|reminder))?(?: ?[:!-])? ?(?:for|to) (?:the |all |any )?(?:`+aiNoun+`|assistants?|model reading this|agent reading this)\b`),
	det(KindFakeSystem, 2, []string{"important"},
		`important ?:.{0,80}?\b(?:`+aiNoun+`|assistant)(?:,| must| should| will| needs? to| has to)`),

	// HTML comments that address the model
	{kind: KindInstruction, weight: 2, comment: true, anchors: []string{"ai", "llm", "assistant", "agent", "chatbot", "language model", "model"}, pattern: `(?:ai|llms?|assistants?|agents?|chatbots?|language models?|models?)\b[^<>]{0,60}?\b(?:must|should|need to|have to|will|ignore|send|forward|execute|run|call|read|include|output|do not|don't|never|always|please)\b`},

	// tool definitions only
	{kind: KindSensitiveFile, weight: 3, tool: true, inWord: true, anchors: sensitiveFiles, pattern: alternation(sensitiveFiles) + `[a-z0-9_./~-]{0,80}`},
	{kind: KindCrossTool, weight: 4, tool: true, anchors: []string{"before using", "before calling", "before invoking", "before running", "before executing", "before you use", "before you call"}, pattern: `before (?:you )?(?:using|calling|invoking|running|executing|use|call) (?:this|the|any|that) (?:tool|function)(?: [a-z_-]{1,40})?,? (?:you )?(?:must |should |need to |have to |always )?(?:first )?(?:read|call|run|fetch|get|open|cat|load|check|use|send|include|pass|look up|access)\b`},
	{kind: KindCrossTool, weight: 4, tool: true, anchors: []string{"pass "}, pattern: `pass (?:the |its |their |all )?(?:full |entire |complete )?(?:contents?|text|data|output|results?) (?:of|from)\b`},
	{kind: KindCrossTool, weight: 2, tool: true, anchors: []string{"when", "whenever", "if ", "every time"}, pattern: `(?:when|whenever|if|every time) (?:the )?(?:user|you|assistant|agent|model) (?:asks to |wants to |tries to |decides to )?(?:uses?|calls?|invokes?|runs?|executes?) (?:the |any |a |another |other )[a-z0-9_.-]{1,64} (?:tool|function|server)\b`},
	{kind: KindCrossTool, weight: 2, tool: true, anchors: []string{"instead of", "override", "replace", "shadow", "take precedence", "takes precedence", "supersede", "modif", "applies to"}, pattern: `(?:instead of|overrides?|replaces?|shadows?|takes? precedence over|supersedes?|modif(?:y|ies) the behaviou?r of|applies to) (?:the |all |any )?(?:other |every )?(?:[a-z0-9_.-]{1,64} )?(?:tools?|functions?|servers?)\b`},
	{kind: KindCrossTool, weight: 3, tool: true, anchors: []string{"always", "must", "should"}, pattern: `(?:always|must|should) (?:also )?(?:bcc|cc|forward|redirect|route|copy|send (?:all|every|each|a copy of))\b(?: [a-z0-9_'-]{1,30}){0,4} to\b`},
	{kind: KindInstruction, weight: 3, tool: true, anchors: []string{"do not", "don't", "dont", "never"}, pattern: `(?:do not|don't|dont|never) (?:mention|reveal|disclose|tell|show|inform|notify|alert)(?: (?:the user|anyone|them))?(?: about)? (?:this|that|these|it)\b`},
}

// headingAnchors start the markdown headings detected: up to six '#', a
// space or not, and the first letter of the heading.
var headingAnchors = func() (as []string) {
	for n := 1; n <= 6; n++ {
		for _, sp := range []string{"", " "} {
			for _, c := range "sndai" {
				as = append(as, strings.Repeat("#", n)+sp+string(c))
			}
		}
	}
	return as
}()

// sensitiveFiles are names of files (and kinds of secret) that a tool
// description has no business pointing the model at.
var sensitiveFiles = []string{
	"~/.ssh", ".ssh/", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "authorized_keys", "known_hosts",
	".env", ".aws/", "aws/credentials", ".netrc", ".npmrc", ".pypirc", ".docker/config", ".kube/config",
	".git-credentials", "/etc/passwd", "/etc/shadow", "mcp.json", "claude_desktop_config", ".cursor/",
	".gnupg", "wallet.dat", ".bash_history", ".zsh_history", "credentials.json", "private key",
	"private_key", "seed phrase", "mnemonic phrase",
}

func det(kind string, weight int, anchors []string, pattern string) detector {
	return detector{kind: kind, weight: weight, anchors: anchors, pattern: pattern}
}

// tag is a detector of tags starting with '<'.
func tag(kind string, weight int, pattern string) detector {
	d := det(kind, weight, []string{"<"}, pattern)
	d.tag = true
	return d
}

func alternation(lits []string) string {
	q := make([]string, len(lits))
	for i, l := range lits {
		q[i] = regexp.QuoteMeta(l)
	}
	return `(?:` + strings.Join(q, "|") + `)`
}
