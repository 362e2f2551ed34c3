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
)

var classNames = [...]string{"text", "URL", "host", "e-mail address", "path", "account number", "phone number", "amount", "date", "quoted name", "command"}

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

// ibans finds account numbers shaped like IBANs, whatever their check
// digits: two letters, two digits, then alphanumerics, 15 to 34 in all,
// written together or in groups of four separated by single spaces or
// hyphens. Where a group of four is followed by another word, every
// length ending at a group boundary is added.
func (x *extractor) ibans(s string, parent int) {
	x.ibanAt = x.ibanAt[:0]
	for i := 0; i+4 <= len(s); i++ {
		if i > 0 && isAlnum(s[i-1]) || !(isLower(s[i]) && isLower(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3])) {
			continue
		}
		x.buf = x.buf[:0]
		for j := i; j < len(s); {
			k := j
			for k < len(s) && isAlnum(s[k]) {
				k++
			}
			if k == j || len(x.buf)+k-j > 34 {
				break
			}
			x.buf = append(x.buf, s[j:k]...)
			if len(x.buf) >= 15 && ibanShaped(x.buf) {
				x.span(i, k)
				x.add(string(x.buf), parent, ClassAccount)
				if n := len(x.ibanAt); n > 0 && x.ibanAt[n-1][0] == i {
					x.ibanAt[n-1][1] = k
				} else {
					x.ibanAt = append(x.ibanAt, [2]int{i, k})
				}
			}
			if k-j != 4 || k+1 >= len(s) || (s[k] != ' ' && s[k] != '-') || !isAlnum(s[k+1]) {
				break // only a group of four may be followed by another
			}
			j = k + 1
		}
	}
}

// ibanShaped reports whether b, lowercase alphanumerics, looks like an
// IBAN: its basic account number part has at least as many digits as
// letters (which keeps words and identifiers out).
func ibanShaped(b []byte) bool {
	digits := 0
	for _, c := range b[4:] {
		if isDigit(c) {
			digits++
		}
	}
	return 2*digits >= len(b)-4
}

// ibanValid checks the ISO 13616 check digits of a lowercase IBAN. The
// extractor does not require them (an account number with wrong check
// digits still names an account to an agent); tests use it.
func ibanValid(b []byte) bool {
	rem := 0
	for i := range b {
		c := b[(i+4)%len(b)]
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isLower(c):
			rem = (rem*100 + int(c-'a'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// digitGroup is one group of digits in a number token and the separator
// before it (0 for the first).
type digitGroup struct {
	start, end int
	sep        byte
}

// digits reads the numbers written as groups of digits: dates
// (2024-05-20, 20.05.2024, 05/20/2024), phone numbers (+1 (555) 123-4567,
// 555.123.4567) and account or card numbers (six digits or more, grouped
// by single spaces or hyphens or not, after letters or not: "acct12345678").
// A date is never also an account number, and groups separated by '.' or
// '/' that are not a date (versions, addresses, fractions) are neither.
func (x *extractor) digits(s string, parent int) {
	var groups []digitGroup
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && !((c == '+' || c == '(') && i+1 < len(s) && (isDigit(s[i+1]) || s[i+1] == '(')) {
			continue
		}
		if i > 0 && (isDigit(s[i-1]) || s[i-1] == '.' || s[i-1] == ',') {
			continue // inside a number
		}
		if inIBAN(x.ibanAt, i) {
			continue // the IBAN is the value
		}
		plus, phone := c == '+', c != '+' && !isDigit(c)
		j := i
		for j < len(s) && (s[j] == '+' || s[j] == '(') && j-i < 2 {
			phone = phone || s[j] == '('
			j++
		}
		if j >= len(s) || !isDigit(s[j]) {
			continue
		}
		groups = groups[:0]
		var sep byte
		for {
			k := j
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			groups = append(groups, digitGroup{j, k, sep})
			j = k
			// A separator: one of " -./", or a parenthesis with a space
			// or hyphen before or after it.
			n, sp, paren := separator(s[j:])
			if n == 0 || len(groups) > 12 || j+n >= len(s) || !isDigit(s[j+n]) {
				if j < len(s) && s[j] == ')' && phone {
					j++
				}
				break
			}
			phone = phone || paren
			sep = sp
			j += n
		}
		x.span(i, groups[len(groups)-1].end)
		x.number(s, groups, plus, phone, parent)
		i = j - 1
	}
}

// inIBAN reports whether i is inside one of the spans.
func inIBAN(spans [][2]int, i int) bool {
	for _, sp := range spans {
		if sp[0] <= i && i < sp[1] {
			return true
		}
	}
	return false
}

// separator returns the length of the separator between digit groups at
// the start of s, the separator it stands for and whether it has a
// parenthesis.
func separator(s string) (int, byte, bool) {
	if s == "" {
		return 0, 0, false
	}
	switch s[0] {
	case ' ', '-', '.', '/':
		if len(s) > 1 && s[0] != '.' && s[0] != '/' && s[1] == '(' {
			return 2, ' ', true
		}
		return 1, s[0], false
	case '(':
		return 1, ' ', true
	case ')':
		if len(s) > 1 && (s[1] == ' ' || s[1] == '-') {
			return 2, ' ', true
		}
		return 1, ' ', true
	}
	return 0, 0, false
}

// number classifies one token of digit groups and adds its candidates;
// plus says a '+' came before it, phone that it had parentheses or a '+'.
func (x *extractor) number(s string, groups []digitGroup, plus, phone bool, parent int) {
	phone = phone || plus
	seps := ""
	for _, g := range groups[1:] {
		if strings.IndexByte(seps, g.sep) < 0 {
			seps += string(g.sep)
		}
	}
	lens := make([]int, len(groups))
	total := 0
	for k, g := range groups {
		lens[k] = g.end - g.start
		total += lens[k]
	}
	if !phone && len(groups) == 3 && len(seps) == 1 && seps != " " {
		if x.numericDate(s, groups, parent) {
			return
		}
	}
	if strings.ContainsAny(seps, "./") {
		if seps == "." && slices.Equal(lens, []int{3, 3, 4}) {
			phone = true // 555.123.4567
		} else {
			return // versions, addresses, fractions, decimals (amounts reads those)
		}
	}
	if total < 6 || total > 34 {
		return
	}
	x.buf = x.buf[:0]
	for _, g := range groups {
		x.buf = append(x.buf, s[g.start:g.end]...)
	}
	digits := string(x.buf)
	// Phone shapes without '+' or parentheses: 555-123-4567, 123-4567,
	// and national numbers with a trunk prefix (020 7946 0958) or an
	// international one (0044 20 7946 0958) written in groups.
	phone = phone || len(groups) >= 2 && (slices.Equal(lens, []int{3, 3, 4}) || slices.Equal(lens, []int{3, 4}) ||
		s[groups[0].start] == '0' && lens[0] <= 5)
	if phone && (total < 7 || total > 15) {
		phone = false
	}
	if !phone {
		x.add(digits, parent, ClassAccount)
		if len(groups) > 1 { // each long group alone too: "12-34-56 87654321"
			for _, g := range groups {
				if g.end-g.start >= 6 {
					x.add(s[g.start:g.end], parent, ClassAccount)
				}
			}
		}
		return
	}
	id := x.add(digits, parent, ClassPhone)
	international := plus || strings.HasPrefix(digits, "00")
	switch {
	case international:
		// The national number after a country code of one to three
		// digits (after "00" in place of "+").
		d := strings.TrimPrefix(digits, "00")
		for cc := 1; cc <= 3 && len(d)-cc >= 7; cc++ {
			x.add(d[cc:], id, ClassPhone)
		}
	case digits[0] == '0':
		x.add(digits[1:], id, ClassPhone) // without the trunk prefix
	}
}

// numericDate adds the dates three digit groups spell, y-m-d or d-m-y or
// m-d-y (both when both are valid), and reports whether they spell one.
func (x *extractor) numericDate(s string, g []digitGroup, parent int) bool {
	num := func(k int) int { n, _ := strconv.Atoi(s[g[k].start:g[k].end]); return n }
	l0, l1, l2 := g[0].end-g[0].start, g[1].end-g[1].start, g[2].end-g[2].start
	found := false
	switch {
	case l0 == 4 && l1 <= 2 && l2 <= 2:
		found = x.date(num(0), num(1), num(2), parent)
	case l0 <= 2 && l1 <= 2 && l2 == 4:
		dmy := x.date(num(2), num(1), num(0), parent)
		mdy := num(0) != num(1) && x.date(num(2), num(0), num(1), parent)
		found = dmy || mdy
	}
	return found
}

// date adds yyyy-mm-dd (if y > 0) and --mm-dd for a valid date and reports
// whether it was one.
func (x *extractor) date(y, m, d, parent int) bool {
	if m < 1 || m > 12 || d < 1 || d > monthDays[m-1] || y < 0 || y > 9999 || y > 0 && y < 1000 {
		return false
	}
	md := "--" + twoDigits(m) + "-" + twoDigits(d)
	if y > 0 {
		parent = x.add(strconv.Itoa(y)+md[1:], parent, ClassDate)
	}
	x.add(md, parent, ClassDate)
	return true
}

var monthDays = [12]int{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// months maps month names and their abbreviations to their numbers.
var months = map[string]int{"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
	"september": 9, "october": 10, "november": 11, "december": 12, "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7,
	"aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12}

// dates finds dates written with a month name: "may 20, 2024", "20 may
// 2024", "20th of may", "may 20th" (without a year, only --mm-dd).
func (x *extractor) dates(s string, parent int) {
	for i := 0; i < len(s); i++ {
		if !isLower(s[i]) || i > 0 && isAlnum(s[i-1]) {
			continue
		}
		j := i
		for j < len(s) && isLower(s[j]) {
			j++
		}
		m, ok := months[s[i:j]]
		if !ok {
			i = j
			continue
		}
		after := j
		if after < len(s) && s[after] == '.' {
			after++
		}
		if d, y, n, ok := dayYear(s[after:]); ok { // month day[, year]
			x.span(i, after+n)
			x.date(y, m, d, parent)
		} else if d, n, ok := dayBefore(s[:i]); ok { // day [of] month [year]
			n2, y, _ := yearAfter(s[after:])
			x.span(i-n, after+n2)
			x.date(y, m, d, parent)
		}
		i = j
	}
}

// dayYear reads " 20", " 20th", " 20, 2024" or " 20 2024" at the start of
// s, and says how many bytes it read.
func dayYear(s string) (day, year, n int, ok bool) {
	if len(s) < 2 || s[0] != ' ' || !isDigit(s[1]) {
		return 0, 0, 0, false
	}
	j := 1
	for j < len(s) && isDigit(s[j]) && j < 3 {
		j++
	}
	if j < len(s) && isDigit(s[j]) {
		return 0, 0, 0, false // more than two digits: a year, not a day
	}
	day, _ = strconv.Atoi(s[1:j])
	j += ordinal(s[j:])
	if j < len(s) && isAlnum(s[j]) {
		return 0, 0, 0, false
	}
	comma := 0
	if strings.HasPrefix(s[j:], ",") {
		comma = 1
	}
	if k, y, ok := yearAfter(s[j+comma:]); ok {
		return day, y, j + comma + k, true
	}
	return day, 0, j, true
}

// dayBefore reads "20 ", "20th ", "20th of " at the end of s, and says how
// many bytes it read.
func dayBefore(s string) (int, int, bool) {
	n := len(s)
	if t, ok := strings.CutSuffix(s, " of "); ok {
		s = t
	} else if t, ok := strings.CutSuffix(s, " "); ok {
		s = t
	} else {
		return 0, 0, false
	}
	for _, o := range []string{"st", "nd", "rd", "th"} {
		if t, ok := strings.CutSuffix(s, o); ok && t != "" && isDigit(t[len(t)-1]) {
			s = t
			break
		}
	}
	j := len(s)
	for j > 0 && isDigit(s[j-1]) && len(s)-j < 3 {
		j--
	}
	if k := len(s) - j; k == 0 || k > 2 || j > 0 && isAlnum(s[j-1]) {
		return 0, 0, false
	}
	d, _ := strconv.Atoi(s[j:])
	return d, n - j, true
}

// yearAfter reads " 2024" at the start of s.
func yearAfter(s string) (int, int, bool) {
	if len(s) >= 5 && s[0] == ' ' && isDigit(s[1]) && isDigit(s[2]) && isDigit(s[3]) && isDigit(s[4]) && (len(s) == 5 || !isAlnum(s[5])) {
		y, _ := strconv.Atoi(s[1:5])
		return 5, y, true
	}
	return 0, 0, false
}

// ordinal returns the length of an ordinal suffix at the start of s.
func ordinal(s string) int {
	for _, o := range []string{"st", "nd", "rd", "th"} {
		if strings.HasPrefix(s, o) {
			return 2
		}
	}
	return 0
}

// currencies are the signs and codes that make a number an amount of
// money in text.
var currencies = []string{"$", "€", "£", "¥", "₹", "₩", "₽", "₺", "₿", "usd", "eur", "gbp", "chf", "jpy", "cad", "aud", "cny", "inr", "sek", "nok", "dkk", "pln", "btc", "eth", "usdc", "usdt"}

// amounts finds numbers written next to a currency sign or code ("$4,999",
// "4999.00 eur") and adds their canonical forms.
func (x *extractor) amounts(s string, parent int) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) || i > 0 && (isAlnum(s[i-1]) || s[i-1] == '.' || s[i-1] == ',') {
			continue
		}
		j := i
		for j < len(s) && (isDigit(s[j]) || (s[j] == '.' || s[j] == ',' || s[j] == '\'') && j+1 < len(s) && isDigit(s[j+1])) {
			j++
		}
		if currencyAt(s, i, j) {
			x.span(i, j)
			x.numbers(s[i:j], parent, false)
		}
		i = j
	}
}

// currencyAt reports whether a currency sign or code is right before s[i:]
// or right after s[:j], one space allowed between.
func currencyAt(s string, i, j int) bool {
	before, after := strings.TrimSuffix(s[:i], " "), strings.TrimPrefix(s[j:], " ")
	if !(before != "" && currencyEnd(before[len(before)-1]) || after != "" && currencyEnd(after[0])) {
		return false
	}
	for _, c := range currencies {
		if strings.HasSuffix(before, c) && (!isLower(c[0]) || len(before) == len(c) || !isAlnum(before[len(before)-len(c)-1])) ||
			strings.HasPrefix(after, c) && (!isLower(c[0]) || len(after) == len(c) || !isAlnum(after[len(c)])) {
			return true
		}
	}
	return false
}

// currencyEnd reports whether a currency sign or code can start or end
// with c.
func currencyEnd(c byte) bool { return isLower(c) || c == '$' || c >= utf8.RuneSelf }

// numbers adds the canonical forms of n, a number whose digits may be
// grouped by '.', ',' or '\”: the integer without leading zeros, a '.' and
// the fraction without trailing zeros if it has one ("4,999.00" → "4999",
// "1.234,5" → "1234.5"). A single '.' or ',' followed by exactly three
// digits may group thousands or start a fraction, so "1.234" gives both
// "1234" and "1.234". With whole, n may also have a sign, a currency sign
// or code and surrounding spaces, and must be nothing else.
func (x *extractor) numbers(n string, parent int, whole bool) {
	if whole {
		if strings.IndexAny(n, "0123456789") < 0 {
			return
		}
		n = strings.TrimLeft(n, "+-")
		for _, c := range currencies {
			n = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(n, c), c))
		}
		if n == "" || !isDigit(n[0]) || !isDigit(n[len(n)-1]) {
			return
		}
	}
	seps, last := 0, -1
	kinds := ""
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case isDigit(c):
		case (c == '.' || c == ',' || c == '\'') && i > 0 && isDigit(n[i-1]):
			seps++
			last = i
			if !strings.ContainsRune(kinds, rune(c)) {
				kinds += string(c)
			}
		default:
			return
		}
	}
	digits := func(s string) string { return strings.Map(keepDigit, s) }
	switch {
	case seps == 0:
		x.add(canonical(n, ""), parent, ClassAmount)
	case n[last] == '\'' || len(kinds) == 1 && seps > 1:
		if !thousands(n) {
			return // 20.05.2024 is a date, 1.2.3 a version
		}
		x.add(canonical(digits(n), ""), parent, ClassAmount) // grouping only
	case len(kinds) == 1 && len(n)-last-1 == 3 && n[last] != '\'':
		x.add(canonical(digits(n), ""), parent, ClassAmount)
		x.add(canonical(n[:last], n[last+1:]), parent, ClassAmount)
	default: // the last separator starts the fraction
		x.add(canonical(digits(n[:last]), n[last+1:]), parent, ClassAmount)
	}
}

// thousands reports whether the digits of n are grouped by thousands:
// one to three digits, then groups of three.
func thousands(n string) bool {
	groups := strings.FieldsFunc(n, func(r rune) bool { return r < '0' || r > '9' })
	for i, g := range groups {
		if i == 0 && (len(g) == 0 || len(g) > 3) || i > 0 && len(g) != 3 {
			return false
		}
	}
	return true
}

func keepDigit(r rune) rune {
	if '0' <= r && r <= '9' {
		return r
	}
	return -1
}

// canonical returns the number with integer digits in and fraction digits
// frac: no leading zeros, no trailing zeros in the fraction.
func canonical(in, frac string) string {
	in = strings.TrimLeft(in, "0")
	if in == "" {
		in = "0"
	}
	if frac = strings.TrimRight(frac, "0"); frac == "" {
		return in
	}
	return in + "." + frac
}

// jsonNumber adds the canonical form of a JSON number, sign dropped.
func (x *extractor) jsonNumber(raw string) {
	raw = strings.TrimPrefix(raw, "-")
	if strings.ContainsAny(raw, "eE") {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || f > 1e21 || f < 1e-6 {
			return
		}
		raw = strconv.FormatFloat(f, 'f', -1, 64)
	}
	in, frac, _ := strings.Cut(raw, ".")
	x.add(canonical(in, frac), -1, ClassAmount)
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
