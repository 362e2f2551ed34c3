package provenance

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Class is the kind of identifier a candidate value is. The grammar of
// each class is in the package documentation; extract_test.go has a table
// of cases per class and fuzz_test.go a fuzz target per class.
type Class uint8

// The classes of candidate values.
const (
	ClassText    Class = iota // a whole string
	ClassURL                  // scheme://…, normalized
	ClassHost                 // a host or domain name
	ClassEmail                // local@domain
	ClassPath                 // a file path
	ClassAccount              // an account or card number: IBAN-shaped, or six digits or more
	ClassPhone                // a phone number, as its digits
	ClassAmount               // a number: an amount of money, a JSON number
	ClassDate                 // a calendar date, yyyy-mm-dd or --mm-dd
	ClassName                 // text in quotes
	ClassCode                 // a code span or a line of a code block
	ClassFile                 // a file name: a name and a common file extension
)

var classNames = [...]string{"text", "URL", "host", "e-mail address", "path", "account number", "phone number", "amount", "date", "quoted name", "command", "file name"}

// String names the class for people ("e-mail address").
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "class " + strconv.Itoa(int(c))
}

// cand is a candidate value found in a string.
type cand struct {
	key     string
	parent  int // index of the candidate it was derived from, -1 for none
	class   Class
	at, end int // where in the string it was found (a derived one: where its parent was)
}

// extractor finds the candidate values of normalized strings. Its slices
// are reused from one string to the next.
type extractor struct {
	cands  []cand
	spans  [][2]int // URL and e-mail spans of the current string, by start
	maxEnd []int    // maxEnd[k]: the largest end of spans[:k+1]
	ibanAt [][2]int // IBAN spans of the current string, in order
	buf    []byte
	// arg says the strings are argument values: an e-mail address then
	// gives no domain (a domain names no mailbox, so it neither clears
	// nor taints an address), and hosts give their parent domains.
	arg bool
	// short keeps numbers shorter than minKeyLen (trusted input and
	// arguments: a small amount is justified by a small amount).
	short bool
	// at and end are where in the string the next candidates were found.
	at, end int
}

// span sets where the next candidates were found.
func (x *extractor) span(at, end int) { x.at, x.end = at, end }

const (
	// minKeyLen is the length of the shortest value tracked in untrusted
	// results: shorter ones (small numbers, two-letter words) are in every
	// page.
	minKeyLen = 3
	// maxWholeLen is the length of the longest string tracked whole.
	maxWholeLen = 256
	// maxKeyLen is the length of the longest value extracted from a string.
	maxKeyLen = 2048
	// maxQuoted is the longest quoted name.
	maxQuoted = 128
)

// add appends a candidate derived from parent and returns its index. A key
// equal to its parent's is not added twice: the parent takes its class if
// it had none.
func (x *extractor) add(key string, parent int, class Class) int {
	if len(key) > maxKeyLen || len(key) < minKeyLen && !(x.short && class == ClassAmount && key != "") {
		return parent
	}
	if parent >= 0 && x.cands[parent].key == key {
		if x.cands[parent].class == ClassText {
			x.cands[parent].class = class
		}
		return parent
	}
	x.cands = append(x.cands, cand{key, parent, class, x.at, x.end})
	return len(x.cands) - 1
}

// extract appends the candidates of the normalized string s to x.cands:
// s itself without the quotes around it if it is short enough, the number
// it spells, and what [extractor.values] finds in it.
func (x *extractor) extract(s string) {
	whole := -1
	if len(s) <= maxWholeLen {
		w := unquote(s)
		x.span(0, len(s))
		whole = x.add(w, -1, ClassText)
		x.numbers(w, whole, true)
	} else if blob(s) {
		return
	}
	x.values(s, whole)
}

// values appends what s holds, class by class.
func (x *extractor) values(s string, parent int) {
	x.spans = x.spans[:0]
	x.urls(s, parent)
	x.indexSpans()
	x.emails(s, parent)
	x.indexSpans()
	x.words(s, parent)
	x.ibans(s, parent)
	x.digits(s, parent)
	x.dates(s, parent)
	x.amounts(s, parent)
	if !x.arg { // an argument is its own name: the whole value
		x.quoted(s, parent)
	}
	x.code(s, parent)
}

// quotePairs are the quotes (after normalize) dropped around a whole
// value: a quote is not part of what it quotes.
var quotePairs = [][2]byte{{'"', '"'}, {'\'', '\''}, {'`', '`'}, {'<', '>'}, {'(', ')'}, {'[', ']'}}

// unquote drops matching quotes and brackets around s, and the spaces
// inside them, as many times as they nest.
func unquote(s string) string {
	for len(s) >= 2 {
		a, b := s[0], s[len(s)-1]
		i := slices.IndexFunc(quotePairs, func(p [2]byte) bool { return p[0] == a && p[1] == b })
		if i < 0 {
			return s
		}
		inner := s[1 : len(s)-1]
		if a != b && (strings.IndexByte(inner, a) >= 0 || strings.IndexByte(inner, b) >= 0) {
			return s // "(a) or (b)": the brackets are not around it all
		}
		if a == b && strings.IndexByte(inner, a) >= 0 {
			return s
		}
		s = strings.TrimSpace(inner)
	}
	return s
}

// blob reports whether s is a long run of base64 (or hex) characters: an
// encoded file, which holds no text worth indexing.
func blob(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlnum(c) || c == '+' || c == '/' || c == '=' || c == '-' || c == '_' || c == '\n') {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isLower(c) || 'A' <= c && c <= 'Z' }

// urlEnd holds the ASCII bytes that end a URL in text.
const urlEnd = " \n\"'<>`|\\^{}"

// wordRune reports whether r may be part of a word in a URL, a domain name
// or an e-mail address: for non-ASCII, letters, digits and combining
// marks, so that quotes and dashes around them end them.
func wordRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r))
}

func urlRune(r rune) bool {
	if r < utf8.RuneSelf {
		return strings.IndexByte(urlEnd, byte(r)) < 0
	}
	return wordRune(r)
}

func localRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isAlnum(byte(r)) || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", byte(r)) >= 0
	}
	return wordRune(r)
}

func domainRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isAlnum(byte(r)) || r == '-' || r == '.'
	}
	return wordRune(r)
}

// fwd returns the end of the run of runes from s[i:] that ok accepts,
// stopping once it is max bytes long.
func fwd(s string, i int, ok func(rune) bool, max int) int {
	j := i
	for j < len(s) && j-i < max {
		r, n := utf8.DecodeRuneInString(s[j:])
		if !ok(r) {
			break
		}
		j += n
	}
	return j
}

// back returns the start of the run of runes ending at s[i] that ok
// accepts, stopping once it is max bytes long.
func back(s string, i int, ok func(rune) bool, max int) int {
	j := i
	for j > 0 && i-j < max {
		r, n := utf8.DecodeLastRuneInString(s[:j])
		if !ok(r) {
			break
		}
		j -= n
	}
	return j
}

// urls finds scheme://… URLs and adds each in normal form, without its
// query and fragment, and its host.
func (x *extractor) urls(s string, parent int) {
	for off := 0; ; {
		i := strings.Index(s[off:], "://")
		if i < 0 {
			return
		}
		i += off
		off = i + 3
		start := i
		for start > 0 && (isAlnum(s[start-1]) || s[start-1] == '+' || s[start-1] == '.' || s[start-1] == '-') {
			start--
		}
		if start == i || !isLower(s[start]) || i-start > 32 {
			continue
		}
		raw := trimURL(s[start:fwd(s, i+3, urlRune, maxKeyLen)])
		if len(raw) <= i-start+3 {
			continue
		}
		x.spans = append(x.spans, [2]int{start, start + len(raw)})
		off = start + len(raw)
		u, host := normalURL(raw, i-start)
		x.span(start, start+len(raw))
		id := x.add(u, parent, ClassURL)
		if q := strings.IndexAny(u, "?#"); q > 0 {
			x.add(strings.TrimSuffix(u[:q], "/"), id, ClassURL)
		}
		x.add(host, id, ClassHost)
	}
}

// normalURL returns the normal form of the URL u, whose scheme ends at
// u[colon], and its host: the default port of http and https dropped,
// percent-encoded unreserved characters decoded, dot segments removed,
// and a path of "/" alone dropped. (Scheme and host are already
// lowercase: the whole string is.)
func normalURL(u string, colon int) (string, string) {
	scheme, rest := u[:colon], u[colon+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth, tail := rest[:end], rest[end:]
	user := ""
	if j := strings.LastIndexByte(auth, '@'); j >= 0 {
		user, auth = auth[:j+1], auth[j+1:]
	}
	host, port := auth, ""
	if !strings.HasPrefix(auth, "[") {
		if j := strings.LastIndexByte(auth, ':'); j >= 0 {
			host, port = auth[:j], auth[j:]
		}
	} else if j := strings.IndexByte(auth, ']'); j > 0 {
		host, port = auth[:j+1], auth[j+1:]
	}
	host = strings.TrimSuffix(host, ".")
	if port == ":" || scheme == "https" && port == ":443" || scheme == "http" && port == ":80" {
		port = ""
	}
	path, query := tail, ""
	if j := strings.IndexAny(tail, "?#"); j >= 0 {
		path, query = tail[:j], tail[j:]
	}
	path = removeDots(decodeUnreserved(path))
	if path == "/" {
		path = ""
	}
	return scheme + "://" + user + host + port + path + decodeUnreserved(query), host
}

// decodeUnreserved decodes percent-encoded unreserved characters (letters,
// digits, '-', '.', '_', '~') and lowercases the hex digits of the others.
func decodeUnreserved(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if isAlnum(v) || v == '-' || v == '.' || v == '_' || v == '~' {
				if 'A' <= v && v <= 'Z' {
					v += 'a' - 'A'
				}
				b = append(b, v)
			} else {
				b = append(b, '%', s[i+1]|0x20, s[i+2]|0x20)
			}
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }
func unhex(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// removeDots removes the "." and ".." segments of a URL path (RFC 3986
// section 5.2.4).
func removeDots(p string) string {
	if !strings.Contains(p, "/.") {
		return p
	}
	var out []string
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		switch seg {
		case ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	return strings.Join(out, "/")
}

// trimURL drops the punctuation that ends a sentence, and closing brackets
// without an opening one in the URL.
func trimURL(u string) string {
	for len(u) > 0 {
		switch c := u[len(u)-1]; {
		case strings.IndexByte(".,;:!?*_~", c) >= 0:
		case c == ')' && strings.Count(u, "(") < strings.Count(u, ")"):
		case c == ']' && strings.Count(u, "[") < strings.Count(u, "]"):
		default:
			return u
		}
		u = u[:len(u)-1]
	}
	return u
}

// emails finds local@domain addresses. Quotes and other punctuation
// before the local part are not part of it.
func (x *extractor) emails(s string, parent int) {
	for off := 0; ; {
		i := strings.IndexByte(s[off:], '@')
		if i < 0 {
			return
		}
		i += off
		off = i + 1
		if x.inSpan(i, i+1) {
			continue // user information in a URL
		}
		start := back(s, i, localRune, 64)
		for start < i && !isAlnum(s[start]) && s[start] < utf8.RuneSelf {
			start++ // quotes, dots and other punctuation before it
		}
		domain := trim(s[i+1:fwd(s, i+1, domainRune, 255)], &dotDash, &dotDash)
		if start == i || !strings.Contains(domain, ".") || !domainName(domain, false) {
			continue
		}
		end := i + 1 + len(domain)
		x.spans = append(x.spans, [2]int{start, end})
		x.span(start, end)
		id := x.add(s[start:end], parent, ClassEmail)
		if !x.arg {
			x.add(domain, id, ClassHost)
		}
	}
}

// indexSpans sorts x.spans and computes x.maxEnd.
func (x *extractor) indexSpans() {
	slices.SortFunc(x.spans, func(a, b [2]int) int { return a[0] - b[0] })
	x.maxEnd = x.maxEnd[:0]
	end := 0
	for _, sp := range x.spans {
		end = max(end, sp[1])
		x.maxEnd = append(x.maxEnd, end)
	}
}

// inSpan reports whether [i, j) overlaps a span indexed by indexSpans.
func (x *extractor) inSpan(i, j int) bool {
	k, _ := slices.BinarySearchFunc(x.spans[:len(x.maxEnd)], j, func(sp [2]int, j int) int { return sp[0] - j })
	return k > 0 && x.maxEnd[k-1] > i
}

// words finds file paths and bare domain names in the space-separated
// words of s, outside URLs and e-mail addresses.
func (x *extractor) words(s string, parent int) {
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\n') {
			i++
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\n' {
			j++
		}
		if j > i && pathStart(trim(s[i:j], &pathLead, &noBytes)) && !x.inSpan(i, j) {
			x.span(i, j)
			x.path(s[i:j], parent)
		} else if w := trim(s[i:j], &pathLead, &pathTrail); fileName(w) && !x.inSpan(i, j) {
			x.span(i, j)
			x.add(w, parent, ClassFile)
		}
		i = j
	}
	start, dot := -1, false // the current run of domain characters
	for i := 0; i <= len(s); {
		ok, n := false, 1
		if i < len(s) {
			if c := s[i]; c < utf8.RuneSelf {
				ok, dot = domainByte[c], dot || c == '.'
			} else {
				var r rune
				r, n = utf8.DecodeRuneInString(s[i:])
				ok = wordRune(r)
			}
		}
		if ok {
			if start < 0 {
				start, dot = i, s[i] == '.'
			}
			i += n
			continue
		}
		if dot {
			x.bareDomain(s, start, i, parent)
		}
		start, dot = -1, false
		i += n
	}
}

// bareDomain adds the run s[k:l] of domain characters if it is a domain
// name standing alone: not part of an e-mail address, a path, a file name
// or an identifier (a run next to '@', '/', '\' or '_').
func (x *extractor) bareDomain(s string, k, l, parent int) {
	d := s[k:l]
	t := trim(d, &dotDash, &dotDash)
	k += strings.Index(d, t)
	l = k + len(t)
	if k > 0 && strings.IndexByte(`@/\_`, s[k-1]) >= 0 || l < len(s) && strings.IndexByte(`@\_`, s[l]) >= 0 {
		return
	}
	if domainName(t, true) && !x.inSpan(k, l) {
		x.span(k, l)
		x.add(t, parent, ClassHost)
	}
}

// domainByte holds the ASCII bytes of domain names.
var domainByte = func() (set [256]bool) {
	for c := range utf8.RuneSelf {
		set[c] = isAlnum(byte(c)) || c == '-' || c == '.'
	}
	return set
}()

// Byte sets for trim.
var (
	dotDash   = byteSet(".-")
	pathLead  = byteSet("([{<\"'*_`")
	pathTrail = byteSet(")]}>\"'.,;:!?*_`")
	noBytes   [256]bool
)

func byteSet(chars string) (set [256]bool) {
	for i := range len(chars) {
		set[chars[i]] = true
	}
	return set
}

// trim drops the leading bytes of s in lead and the trailing ones in
// trail.
func trim(s string, lead, trail *[256]bool) string {
	for len(s) > 0 && lead[s[0]] {
		s = s[1:]
	}
	for len(s) > 0 && trail[s[len(s)-1]] {
		s = s[:len(s)-1]
	}
	return s
}

// domainName reports whether d is two or more labels of letters, digits
// and hyphens, none empty or starting or ending with a hyphen, the last of
// two or more letters. With bare (a word in text, not the host of a URL
// or an address), a last label that is a common file extension makes it
// a file name instead ("report.pdf", "main.go", "notes.md").
func domainName(d string, bare bool) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 {
		return false
	}
	tld := d[dot+1:]
	if len(tld) < 2 {
		return false
	}
	for _, r := range tld {
		if !unicode.IsLetter(r) {
			return false
		}
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	return !bare || !fileExtensions[tld]
}

// fileExtensions are the last labels that make a bare word a file name.
// Some are also top-level domains (.md, .sh, .py, .zip, .mov): a bare word
// ending in one is read as a file, while the host of a URL or an address
// is a host whatever its last label.
var fileExtensions = func() map[string]bool {
	m := map[string]bool{}
	for e := range strings.FieldsSeq(`pdf doc docx dot dotx xls xlsx xlsm ppt pptx odt ods odp rtf txt text csv tsv json jsonl ndjson
		xml yaml yml toml ini cfg conf md markdown rst tex html htm xhtml css scss png jpg jpeg gif svg webp bmp ico tif tiff heic
		mp3 mp4 m4a wav flac ogg mov avi mkv webm zip tar gz tgz bz2 xz zst 7z rar exe dll so dylib bin iso dmg apk msi deb rpm
		py pyc ipynb js mjs cjs ts tsx jsx go rs java class jar kt swift c h cc cpp hpp cs rb php pl sh bash zsh ps1 bat cmd sql
		db sqlite log lock key pem crt cer csr p12 pfx pub eml msg ics vcf epub pages numbers bak tmp swp env`) {
		m[e] = true
	}
	return m
}()

// path adds w if it is a file path: absolute (/…, ~/…, C:\…, \\host\…) or
// relative to the current or parent directory (./…, ../…).
func (x *extractor) path(w string, parent int) {
	if w = trim(w, &pathLead, &pathTrail); pathStart(w) {
		x.add(w, parent, ClassPath)
	}
}

// pathStart reports whether w starts like a file path.
func pathStart(w string) bool {
	switch {
	case len(w) > 1 && w[0] == '/' && w[1] != '/',
		strings.HasPrefix(w, "~/"), strings.HasPrefix(w, "./"), strings.HasPrefix(w, "../"),
		strings.HasPrefix(w, `\\`),
		len(w) > 2 && isLower(w[0]) && w[1] == ':' && (w[2] == '\\' || w[2] == '/'):
		return true
	}
	return false
}

// quoted finds text in double or single quotes (typographic quotes are
// ASCII after normalize) on one line: "Riverside View Hotel", 'Q3 plan'.
// A single quote opens only after a non-letter and closes only before
// one, so apostrophes ("don't", "the user's") quote nothing.
func (x *extractor) quoted(s string, parent int) {
	if strings.IndexByte(s, '"') < 0 && strings.IndexByte(s, '\'') < 0 {
		return
	}
	for i := 0; i < len(s); i++ {
		q := s[i]
		if q != '"' && q != '\'' || i > 0 && isAlnum(s[i-1]) {
			continue
		}
		end := -1
		for j := i + 1; j < len(s) && j-i <= maxQuoted+1; j++ {
			if s[j] == '\n' {
				break
			}
			if s[j] == q && (j+1 == len(s) || !isAlnum(s[j+1])) {
				end = j
				break
			}
		}
		if end < 0 {
			continue
		}
		inner := s[i+1 : end]
		if t := strings.TrimSpace(inner); t == inner && t != "" {
			x.add(trim(t, &nameTrail, &nameTrail), parent, ClassName)
			i = end
		}
	}
}

var nameTrail = byteSet(".,;:!?")

// code adds the contents of `code spans` and each line of fenced code
// blocks (``` or ~~~).
func (x *extractor) code(s string, parent int) {
	if !strings.ContainsAny(s, "`~") {
		return
	}
	fenced := false
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "```") || strings.HasPrefix(line, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			if len(line) <= maxWholeLen {
				x.add(line, parent, ClassCode)
			}
			continue
		}
		for {
			i := strings.IndexByte(line, '`')
			if i < 0 {
				break
			}
			j := strings.IndexByte(line[i+1:], '`')
			if j < 0 {
				break
			}
			if span := strings.TrimSpace(line[i+1 : i+1+j]); len(span) <= maxWholeLen {
				x.add(span, parent, ClassCode)
			}
			line = line[i+j+2:]
		}
	}
}
