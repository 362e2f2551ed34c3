// Package scan finds content aimed at the model in what an agent reads:
// prompt injection in tool results, and tool poisoning in tool
// definitions.
//
// [Result] scans text from a result (take it out of an MCP result with
// [Texts]); [ToolDefinition] scans a tool's name, description and input
// schema when the gateway first pins it. Both return [Hit]s, sorted by
// field and offset, each of one of these kinds:
//
//	instruction     imperatives addressed to the model: "ignore all previous
//	                instructions", "you must now …", "do not tell the user",
//	                "if you are an AI …", requests for the system prompt or
//	                to send credentials somewhere, HTML comments that address
//	                the model
//	fake-system     text posing as the system or as the agent's own
//	                framework: chat-template tokens (<|im_start|>, [INST]),
//	                role tags (<system>, <IMPORTANT>, </tool_result>),
//	                "[SYSTEM]", "### System", "system override:",
//	                "IMPORTANT message for the assistant"
//	hidden-unicode  characters that render as nothing: tag characters (with
//	                the ASCII they spell), bidirectional overrides and
//	                isolates, zero-width characters, runs of variation
//	                selectors
//	exfil-link      markdown images and links (and <img>) whose URL carries a
//	                placeholder for data ("?q={summary}", "[DATA]") or a
//	                query parameter named for data ("data", "secret",
//	                "conversation", …): rendering the image sends the data
//	sensitive-file  (tool definitions) ~/.ssh, id_rsa, .env, cloud and MCP
//	                client credentials and configuration
//	cross-tool      (tool definitions) "before using this tool, read …",
//	                "pass the contents of …", instructions about when the
//	                user calls other tools, overriding other tools, always
//	                copying mail to someone
//
// Each hit has a Weight: 1 is a weak signal that benign text gives now and
// then, 2 suspicious, 3 strong, 4 all but certain; an instruction or fake
// system block inside an HTML comment weighs one more. A hit that repeats
// (same kind and detail) is reported once, at its first offset, so that
// repeating one phrase cannot crowd out others. [Score] adds up the
// weights of distinct hits. A hit raises the session's risk and is
// recorded; whether it blocks is for policy to say (a reasonable start: a
// score of 3 or more raises risk, 6 or more escalates).
//
// The detectors are deliberately narrow so that ordinary prose does not
// trip them: an instruction must target instructions, prompts or rules
// ("ignore the previous email, I sent the wrong file" is not a hit;
// "ignore the previous instructions" is, whoever wrote it), "IMPORTANT:"
// counts only when addressed to the assistant, and a markdown image with
// an ordinary query ("?branch=main", "?w=800") is not a hit.
//
// Before matching, text is folded: ASCII lowercased, invisible characters
// dropped, fullwidth ASCII and curly quotes mapped to ASCII, whitespace
// collapsed, so that "Ig\u200bnore ALL previous   instructions" still
// matches. Offsets are byte offsets in the text as given.
//
// What it does not catch: paraphrases, other languages, look-alike
// letters from other scripts, instructions split across results or
// encoded. A scan is one signal among the session's others.
//
// Scanning takes time linear in the text (the regular expressions are RE2,
// run from anchor words over bounded windows) and reads at most [MaxScan]
// bytes of any one text; at most [MaxHits] hits are returned. The package
// is pure: no I/O, no state, no model.
package scan

import (
	"cmp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The kinds of hit.
const (
	KindInstruction   = "instruction"
	KindFakeSystem    = "fake-system"
	KindHiddenUnicode = "hidden-unicode"
	KindExfilLink     = "exfil-link"
	KindSensitiveFile = "sensitive-file"
	KindCrossTool     = "cross-tool"
)

const (
	// MaxScan is how many bytes of a text are scanned; the rest is not.
	MaxScan = 1 << 20
	// MaxHits bounds the hits returned for one text.
	MaxHits = 64
	// MaxScore bounds Score.
	MaxScore = 100
	// maxDetail bounds Hit.Detail.
	maxDetail = 80
)

// Hit is one finding.
type Hit struct {
	Kind   string // one of the Kind constants
	Detail string // what matched, folded and printable, at most 80 bytes
	Offset int    // byte offset of the match in the text (see Field)
	// Field says which text Offset is in: "" for the text given to
	// Result; for ToolDefinition "name", "description", or "inputSchema"
	// and the JSON Pointer of a string in the schema (with " (member
	// name)" when the string is a member name).
	Field  string
	Weight int // 1 weak, 2 suspicious, 3 strong, 4 all but certain
}

// Score sums the weights of distinct hits (same Kind, Detail and Field
// count once; negative weights count as none), at most MaxScore. Adding
// hits never lowers it.
func Score(hits []Hit) int {
	type key struct{ kind, detail, field string }
	seen := make(map[key]bool, len(hits))
	total := 0
	for _, h := range hits {
		k := key{h.Kind, h.Detail, h.Field}
		if seen[k] || h.Weight <= 0 {
			continue
		}
		seen[k] = true
		total = min(total+h.Weight, MaxScore)
	}
	return total
}

// Result scans text from a tool or resource result, or an HTTP response.
func Result(text string) []Hit { return scanText(text, "", false) }

// scanText runs the detectors over text; tool adds those for tool
// definitions.
func scanText(text, field string, tool bool) []Hit {
	text = cut(text, MaxScan)
	s := scanner{text: text, field: field}
	s.fold()
	s.hidden()
	s.comments()
	s.detect(tool)
	s.links()
	return s.finish()
}

// cut returns the longest prefix of s of at most n bytes that does not
// split a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// scanner holds the state of one scan.
type scanner struct {
	text, field string
	f           string   // folded text
	marks       []mark   // folded offset → text offset
	spans       [][2]int // HTML comments in f
	hits        []Hit
	seen        map[string]bool // kind and detail of the hits so far
	perDet      []int           // hits per detector
}

// mark says that from folded offset at on, the text offset is at+delta.
type mark struct{ at, delta int }

// asciiFold maps an ASCII byte to its folded form: lowercase, 0 for
// whitespace and control characters.
var asciiFold = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		switch {
		case c <= ' ' || c == 0x7F:
		case 'A' <= c && c <= 'Z':
			t[c] = byte(c) + 'a' - 'A'
		default:
			t[c] = byte(c)
		}
	}
	return t
}()

// fold builds s.f: see the package documentation.
func (s *scanner) fold() {
	t := s.text
	b := make([]byte, len(t)) // folding never makes text longer
	n, delta := 0, 0
	note := func(d int) { // from b[n] on, the text is d bytes further ahead
		delta += d
		if k := len(s.marks); k > 0 && s.marks[k-1].at == n {
			s.marks[k-1].delta = delta
		} else {
			s.marks = append(s.marks, mark{n, delta})
		}
	}
	space := true // drop leading whitespace
	for i := 0; i < len(t); {
		if c := t[i]; c < utf8.RuneSelf {
			if l := asciiFold[c]; l != 0 {
				b[n] = l
				n++
				space = false
			} else if space {
				note(1)
			} else {
				b[n] = ' '
				n++
				space = true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(t[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b[n] = '?'
			n++
			space = false
		case invisible(r):
			note(size)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			if space {
				note(size)
			} else {
				b[n] = ' '
				n++
				note(size - 1)
				space = true
			}
		default:
			switch {
			case r >= 0xFF01 && r <= 0xFF5E: // fullwidth ASCII
				r -= 0xFEE0
				if 'A' <= r && r <= 'Z' {
					r += 'a' - 'A'
				}
			case r == '\u2018' || r == '\u2019' || r == '\u02BC':
				r = '\''
			case r == '\u201C' || r == '\u201D':
				r = '"'
			}
			w := utf8.EncodeRune(b[n:], r)
			n += w
			if w != size {
				note(size - w)
			}
			space = false
		}
	}
	s.f = string(b[:n])
}

// orig maps an offset in s.f to one in s.text.
func (s *scanner) orig(i int) int {
	j, _ := slices.BinarySearchFunc(s.marks, i, func(m mark, i int) int { return cmp.Compare(m.at, i+1) })
	if j == 0 {
		return i
	}
	return i + s.marks[j-1].delta
}

// invisible reports whether r renders as nothing (see the package
// documentation of provenance for the same set).
func invisible(r rune) bool {
	if r < 0xAD {
		return false
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// isWord reports whether c is part of a word: an ASCII letter, digit or
// '_', or a byte of a non-ASCII character.
func isWord(c byte) bool { return wordByte[c] }

var wordByte = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf
	}
	return t
}()

// add records a hit found at folded offsets [i, j) (detail: what it
// found there).
func (s *scanner) add(kind string, weight, i, j int, detail string) bool {
	if detail == "" {
		detail = s.f[i:j]
	}
	return s.record(Hit{Kind: kind, Detail: printable(detail), Offset: s.orig(i), Field: s.field, Weight: weight})
}

// record keeps h unless a hit of its kind and detail came before it (so
// that repeating one phrase cannot crowd out others) or there are too many
// already, and reports whether it kept it.
func (s *scanner) record(h Hit) bool {
	k := h.Kind + "\x00" + h.Detail
	if s.seen[k] || len(s.hits) >= 8*MaxHits {
		return false
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[k] = true
	s.hits = append(s.hits, h)
	return true
}

// printable makes d safe to show: no invisible or non-printing
// characters, at most maxDetail bytes.
func printable(d string) string {
	d = strings.Map(func(r rune) rune {
		if r == ' ' || unicode.IsPrint(r) && !invisible(r) {
			return r
		}
		return '?'
	}, d)
	if len(d) > maxDetail {
		d = cut(d, maxDetail-len("…")) + "…"
	}
	return d
}

// finish sorts the hits, drops repeats and keeps the first MaxHits.
func (s *scanner) finish() []Hit {
	slices.SortFunc(s.hits, func(a, b Hit) int {
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), strings.Compare(a.Kind, b.Kind), cmp.Compare(b.Weight, a.Weight), strings.Compare(a.Detail, b.Detail))
	})
	// Of the hits of one kind at one offset, keep the heaviest.
	s.hits = slices.CompactFunc(s.hits, func(a, b Hit) bool { return a.Offset == b.Offset && a.Kind == b.Kind })
	if len(s.hits) > MaxHits {
		s.hits = s.hits[:MaxHits]
	}
	return slices.Clip(s.hits)
}

// comments finds the HTML comments of s.f.
func (s *scanner) comments() {
	for off := 0; ; {
		i := strings.Index(s.f[off:], "<!--")
		if i < 0 {
			return
		}
		i += off
		j := strings.Index(s.f[i+4:], "-->")
		if j < 0 {
			s.spans = append(s.spans, [2]int{i, len(s.f)})
			return
		}
		off = i + 4 + j + 3
		s.spans = append(s.spans, [2]int{i, off})
	}
}

func (s *scanner) inComment(i int) bool {
	k, _ := slices.BinarySearchFunc(s.spans, i, func(sp [2]int, i int) int { return cmp.Compare(sp[0], i+1) })
	return k > 0 && i < s.spans[k-1][1]
}

// hidden reports the invisible characters of s.text, one hit for each run
// of one class.
func (s *scanner) hidden() {
	t := s.text
	type run struct {
		class      string
		start, end int
		n          int
		first      rune
	}
	var cur run
	flush := func() {
		if cur.n == 0 {
			return
		}
		c := cur
		cur = run{}
		switch c.class {
		case "tag":
			if c.first >= 0xE0061 && c.start >= 4 && strings.HasSuffix(t[:c.start], "\U0001F3F4") && strings.HasSuffix(t[:c.end], "\U000E007F") {
				return // an emoji subdivision flag
			}
			var spelled []byte
			for _, r := range t[c.start:c.end] {
				if r >= 0xE0020 && r <= 0xE007E && len(spelled) < maxDetail {
					spelled = append(spelled, byte(r-0xE0000))
				}
			}
			d := "tag characters"
			if len(spelled) > 0 {
				d += " spelling \"" + string(spelled) + "\""
			}
			s.record(Hit{KindHiddenUnicode, printable(d), c.start, s.field, 4})
		case "bidi":
			w := 2
			if c.first == '\u202D' || c.first == '\u202E' {
				w = 3
			}
			s.record(Hit{KindHiddenUnicode, "bidirectional control " + codepoint(c.first), c.start, s.field, w})
		case "zero-width":
			d, w := "zero-width character "+codepoint(c.first), 1
			if c.start > 0 && c.end < len(t) && isLetter(t[c.start-1]) && isLetter(t[c.end]) {
				d, w = d+" inside a word", 2
			}
			s.record(Hit{KindHiddenUnicode, d, c.start, s.field, w})
		case "joiner":
			if c.start > 0 && c.end < len(t) && isLetter(t[c.start-1]) && isLetter(t[c.end]) {
				s.record(Hit{KindHiddenUnicode, "zero-width joiner " + codepoint(c.first) + " inside a word", c.start, s.field, 2})
			}
		case "selector":
			if c.n >= 2 {
				s.record(Hit{KindHiddenUnicode, "variation selectors in a row", c.start, s.field, 3})
			}
		}
	}
	for i := 0; i < len(t); {
		if t[i] < 0xC2 { // ASCII, or not a start of the code points below
			if cur.n > 0 {
				flush()
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(t[i:])
		class := hiddenClass(r, i)
		if class != cur.class {
			flush()
		}
		if class != "" {
			if cur.n == 0 {
				cur = run{class: class, start: i, first: r}
			}
			cur.n++
			cur.end = i + n
		}
		if len(s.hits) >= 2*MaxHits {
			return
		}
		i += n
	}
	flush()
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func codepoint(r rune) string {
	const hex = "0123456789ABCDEF"
	b := []byte("U+")
	for sh := 20; sh >= 0; sh -= 4 {
		if d := (r >> sh) & 0xF; d != 0 || sh < 16 || len(b) > 2 {
			b = append(b, hex[d])
		}
	}
	return string(b)
}

// hiddenClass classifies an invisible character at offset i; "" for a
// visible one, or an invisible one that ordinary text uses (soft hyphen,
// left-to-right and right-to-left marks, a byte order mark at the start,
// a single variation selector).
func hiddenClass(r rune, i int) string {
	switch {
	case r >= 0xE0000 && r <= 0xE007F:
		return "tag"
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return "bidi"
	case r == 0x200C || r == 0x200D:
		return "joiner"
	case r == 0x200B, r >= 0x2060 && r <= 0x2064, r >= 0x206A && r <= 0x206F, r == 0x180E,
		r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0, r == 0x034F, r == 0x17B4, r == 0x17B5,
		r >= 0xFFF9 && r <= 0xFFFB, r >= 0x1D173 && r <= 0x1D17A, r == 0xFEFF && i > 0:
		return "zero-width"
	case r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF:
		return "selector"
	}
	return ""
}

// detect runs the detectors from their anchors.
func (s *scanner) detect(tool bool) {
	set := &resultTriggers
	if tool {
		set = &toolTriggers
	}
	f := s.f
	until := make([]int, len(detectors)) // no new match of a detector starts before
	s.perDet = make([]int, len(detectors))
	for i := 0; i < len(f); {
		if !wordByte[f[i]] {
			s.try(set, until, i, i == 0 || !wordByte[f[i-1]])
			i++
			continue
		}
		s.try(set, until, i, true) // a word starts
		for i++; i < len(f) && wordByte[f[i]]; i++ {
			if set.inWord {
				s.try(set, until, i, false)
			}
		}
	}
}

// try runs the detectors whose anchors start at folded offset i.
func (s *scanner) try(set *triggerSet, until []int, i int, wordStart bool) {
	f := s.f
	c := f[i]
	l1, l2 := set.one[c], uint8(0)
	if set.first[c] && i+1 < len(f) {
		if k := int(c)<<8 | int(f[i+1]); set.twoBits[k>>6]&(1<<(k&63)) != 0 {
			l2 = set.two[k]
		}
	}
	if l1 == 0 && l2 == 0 {
		return
	}
	for _, l := range [2]uint8{l1, l2} {
		for _, t := range set.lists[l] {
			if t.word && !wordStart || i < until[t.det] || s.perDet[t.det] >= MaxHits || !strings.HasPrefix(f[i:], t.anchor) {
				continue
			}
			until[t.det] = i + 1
			if m, ok := s.match(&detectors[t.det], i); ok {
				until[t.det] = max(m[1], i+1)
				s.perDet[t.det]++
			}
		}
	}
}

// match tries d where one of its anchors starts at folded offset i,
// records the hit and returns where it is and whether it was kept.
func (s *scanner) match(d *detector, i int) ([2]int, bool) {
	f := s.f
	if d.comment && !s.inComment(i) {
		return [2]int{}, false
	}
	lo, hi := i, min(len(f), i+d.span+4) // room for the \b after the longest match
	if d.back > 0 {
		lo = max(0, i-d.back)
		for lo < i && lo > 0 && isWord(f[lo-1]) { // start at a word
			lo++
		}
	}
	loc := d.re.FindStringIndex(f[lo:hi])
	if loc == nil || lo+loc[0] > i || lo+loc[1] <= i {
		return [2]int{}, false
	}
	m := [2]int{lo + loc[0], lo + loc[1]}
	if d.line > 0 && !s.ownLine(m[0], m[1], d.line == lineEnd) {
		return [2]int{}, false
	}
	w, detail := d.weight, f[m[0]:m[1]]
	if d.tag { // "</system>" is "<system>"
		detail = "<" + strings.TrimPrefix(strings.TrimPrefix(detail[1:], " "), "/")
	}
	if (d.kind == KindInstruction || d.kind == KindFakeSystem) && !d.comment && s.inComment(m[0]) {
		w, detail = w+1, detail+" (in an HTML comment)"
	}
	return m, s.add(d.kind, w, m[0], m[1], detail)
}

// ownLine reports whether folded [i, j) starts a line of the text (but for
// spaces) and, with end, ends it (but for spaces and a ':').
func (s *scanner) ownLine(i, j int, end bool) bool {
	a, b := s.orig(i), s.orig(j)
	before := strings.TrimRight(s.text[:a], " \t")
	after := s.text[b:]
	if k := strings.IndexByte(after, '\n'); k >= 0 {
		after = after[:k]
	}
	return (before == "" || strings.HasSuffix(before, "\n")) && (!end || strings.Trim(after, " \t\r:") == "")
}

// links reports markdown images and links, reference definitions and
// <img> elements whose URL carries data.
func (s *scanner) links() {
	f := s.f
	n := 0
	report := func(at int, image bool, url string, origURL string) {
		reason := exfilReason(url, origURL)
		if reason == "" || n >= MaxHits {
			return
		}
		host := url[strings.Index(url, "//")+2:]
		if k := strings.IndexAny(host, "/?#"); k >= 0 {
			host = host[:k]
		}
		what, w := "markdown link", 2
		if image {
			what, w = "image", 4
		}
		if s.add(KindExfilLink, w, at, at, what+" to "+host+" with "+reason) {
			n++
		}
	}
	for off := 0; ; { // [text](url) and ![alt](url)
		i := strings.Index(f[off:], "](")
		if i < 0 {
			break
		}
		i += off
		off = i + 2
		at, image := i, false
		if k := strings.LastIndexByte(f[max(0, i-512):i], '['); k >= 0 {
			at = max(0, i-512) + k
			image = at > 0 && f[at-1] == '!'
			if image {
				at--
			}
		}
		if u, j := linkURL(f, i+2); u != "" {
			report(at, image, u, s.text[s.orig(j-len(u)):s.orig(j)])
		}
	}
	for off := 0; ; { // [ref]: url
		i := strings.Index(f[off:], "]:")
		if i < 0 {
			break
		}
		i += off
		off = i + 2
		if u, j := linkURL(f, i+2); u != "" {
			report(i, false, u, s.text[s.orig(j-len(u)):s.orig(j)])
		}
	}
	for off := 0; ; { // <img … src=url …>
		i := strings.Index(f[off:], "<img")
		if i < 0 {
			break
		}
		i += off
		off = i + 4
		tag := f[i:min(len(f), i+1024)]
		if k := strings.IndexByte(tag, '>'); k >= 0 {
			tag = tag[:k]
		}
		k := strings.Index(tag, "src=")
		if k < 0 {
			continue
		}
		k += i + 4
		if k < len(f) && (f[k] == '"' || f[k] == '\'') {
			k++
		}
		j := k
		for j < len(f) && j < i+len(tag) && !strings.ContainsRune("\"' >", rune(f[j])) {
			j++
		}
		if u := f[k:j]; strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "//") {
			report(i, true, u, s.text[s.orig(k):s.orig(j)])
		}
	}
}

// linkURL returns the absolute URL at f[i:] (after a space or '<'), and
// where it ends.
func linkURL(f string, i int) (string, int) {
	for i < len(f) && (f[i] == ' ' || f[i] == '<') {
		i++
	}
	rest := f[i:]
	if !strings.HasPrefix(rest, "http://") && !strings.HasPrefix(rest, "https://") && !strings.HasPrefix(rest, "//") {
		return "", 0
	}
	depth, j := 0, 0
	for ; j < len(rest) && j < 4096; j++ {
		c := rest[j]
		if c == ' ' || c == '>' || c == '"' || c == ')' && depth == 0 {
			break
		}
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		}
	}
	return rest[:j], i + j
}

// dataParams are query parameter names that say they carry data.
var dataParams = map[string]bool{
	"data": true, "d": true, "exfil": true, "leak": true, "secret": true, "secrets": true,
	"password": true, "passwd": true, "pwd": true, "creds": true, "credentials": true,
	"apikey": true, "api_key": true, "conversation": true, "convo": true, "chat": true,
	"history": true, "memory": true, "prompt": true, "summary": true, "msg": true,
	"message": true, "content": true, "payload": true, "info": true, "pii": true, "ssn": true,
}

// exfilReason says why a URL (folded, and as written) carries data, or
// returns "".
func exfilReason(url, orig string) string {
	rest := url[strings.Index(url, "//")+2:]
	k := strings.IndexAny(rest, "/?#")
	if k < 0 {
		return ""
	}
	rest = rest[k:]
	for _, p := range []string{"{", "}", "[", "]", "<", ">", "%7b", "%7d", "%5b", "%5d", "%3c", "%3e", "%s", "$", "insert", "placeholder", "your_", "_here", "...", "…"} {
		if strings.Contains(rest, p) {
			return "a placeholder for data"
		}
	}
	q, ok := "", false
	if _, q, ok = strings.Cut(rest, "?"); !ok {
		return ""
	}
	q, _, _ = strings.Cut(q, "#")
	oq := orig
	if _, after, ok := strings.Cut(orig, "?"); ok {
		oq = after
	}
	for _, p := range strings.Split(q, "&") {
		name, _, _ := strings.Cut(p, "=")
		if dataParams[name] {
			return "query parameter \"" + name + "\""
		}
	}
	for _, p := range strings.Split(oq, "&") {
		if _, v, _ := strings.Cut(p, "="); capsWord(v) {
			return "a placeholder for data"
		}
	}
	return ""
}

// capsWord reports whether v is a placeholder in capitals ("SUMMARY",
// "USER_EMAIL"): four or more capitals, no lower case.
func capsWord(v string) bool {
	caps := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'a' <= c && c <= 'z':
			return false
		case 'A' <= c && c <= 'Z':
			caps++
		}
	}
	return caps >= 4
}
