package provenance

import (
	"html"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// normalize returns s as the index compares it (see the package
// documentation): HTML character references decoded, invisible characters
// dropped, fullwidth ASCII and ideographic full stops mapped to ASCII,
// control characters and whitespace runs collapsed to one space (or one
// newline if the run holds one), lowercased and trimmed.
func normalize(s string) string {
	if plain(s) {
		return s
	}
	if strings.IndexByte(s, '&') >= 0 && strings.IndexByte(s, ';') >= 0 {
		// Drop invisible characters first, so that none can break a
		// reference: "&am\u200bp;" is "&amp;", which is "&".
		s = html.UnescapeString(strings.Map(func(r rune) rune {
			if invisible(r) {
				return -1
			}
			return r
		}, s))
	}
	b := make([]byte, 0, len(s)+8)
	space, newline := false, false // a whitespace run is pending
	for i := 0; i < len(s); {
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		i += n
		switch {
		case r < utf8.RuneSelf && r > ' ' && r != 0x7F:
			// printable ASCII: below
		case r == utf8.RuneError || r == '\n' || unicode.IsSpace(r) || unicode.IsControl(r):
			space = true
			newline = newline || r == '\n'
			continue
		case invisible(r):
			continue
		case r >= 0xFF01 && r <= 0xFF5E: // fullwidth ASCII
			r -= 0xFEE0
		case r == 0x3002 || r == 0xFF61: // ideographic and halfwidth full stops
			r = '.'
		}
		if space && len(b) > 0 {
			if newline {
				b = append(b, '\n')
			} else {
				b = append(b, ' ')
			}
		}
		space, newline = false, false
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b = append(b, byte(r))
		} else {
			b = utf8.AppendRune(b, unicode.ToLower(r))
		}
	}
	return string(b)
}

// plain reports whether normalize(s) == s without work: printable ASCII
// without upper case, '&', or runs of whitespace, and no leading or
// trailing whitespace.
func plain(s string) bool {
	prevSpace := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\n':
			if prevSpace {
				return false
			}
			prevSpace = true
			continue
		case c < 0x20 || c >= 0x7F || 'A' <= c && c <= 'Z' || c == '&':
			return false
		}
		prevSpace = false
	}
	return !prevSpace || s == ""
}

// invisible reports whether r is a character that renders as nothing:
// format characters (zero-width spaces and joiners, bidirectional
// controls, the byte order mark, tag characters), variation selectors and
// the other default-ignorable code points (fillers, soft hyphen).
func invisible(r rune) bool {
	if r < 0xAD {
		return false
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// cand is a candidate value found in a string.
type cand struct {
	key    string
	parent int  // index of the candidate it was derived from, -1 for none
	host   bool // a host or domain name
}

// extractor finds the candidate values of normalized strings. Its slices
// are reused from one string to the next.
type extractor struct {
	cands  []cand
	spans  [][2]int // URL and e-mail spans of the current string, by start
	maxEnd []int    // maxEnd[k]: the largest end of spans[:k+1]
	buf    []byte
}

const (
	// minKeyLen is the length of the shortest value tracked: shorter ones
	// (small numbers, two-letter words) are in every page.
	minKeyLen = 3
	// maxWholeLen is the length of the longest string tracked whole.
	maxWholeLen = 256
	// maxKeyLen is the length of the longest value extracted from a string.
	maxKeyLen = 2048
)

func (x *extractor) add(key string, parent int, host bool) int {
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return parent
	}
	x.cands = append(x.cands, cand{key, parent, host})
	return len(x.cands) - 1
}

// extract appends the candidates of the normalized string s to x.cands:
// s itself if it is short enough, the numbers it spells, and what
// [extractor.values] finds in it.
func (x *extractor) extract(s string) {
	whole := -1
	if len(s) <= maxWholeLen {
		whole = x.add(s, -1, false)
		x.numbers(s, whole, true)
	} else if blob(s) {
		return
	}
	x.values(s, whole)
}

// values appends what s holds: URLs, their hosts and their forms without
// query; e-mail addresses and their domains; other domain names; file
// paths; IBANs; runs of six digits or more (account and card numbers);
// amounts of money; and code spans and the lines of fenced code blocks.
func (x *extractor) values(s string, parent int) {
	x.spans = x.spans[:0]
	x.urls(s, parent)
	x.indexSpans()
	x.emails(s, parent)
	x.indexSpans()
	x.words(s, parent)
	x.digits(s, parent)
	x.amounts(s, parent)
	x.code(s, parent)
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

// urls finds scheme://… URLs.
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
		u := trimURL(s[start:fwd(s, i+3, urlRune, maxKeyLen)])
		if len(u) <= i-start+3 {
			continue
		}
		x.spans = append(x.spans, [2]int{start, start + len(u)})
		off = start + len(u)
		id := x.add(u, parent, false)
		if q := strings.IndexAny(u, "?#"); q > 0 {
			x.add(u[:q], id, false)
		}
		auth := u[i-start+3:]
		if j := strings.IndexAny(auth, "/?#"); j >= 0 {
			auth = auth[:j]
		}
		if j := strings.LastIndexByte(auth, '@'); j >= 0 {
			auth = auth[j+1:]
		}
		x.add(hostOf(auth), id, true)
	}
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

// hostOf returns the host of an authority without user information: the
// port and a trailing dot dropped, brackets kept around an IPv6 address.
func hostOf(auth string) string {
	if strings.HasPrefix(auth, "[") {
		if j := strings.IndexByte(auth, ']'); j > 0 {
			return auth[:j+1]
		}
		return ""
	}
	if j := strings.LastIndexByte(auth, ':'); j >= 0 {
		auth = auth[:j]
	}
	return strings.TrimSuffix(auth, ".")
}

// emails finds local@domain addresses.
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
		for start < i && s[start] == '.' {
			start++
		}
		domain := trim(s[i+1:fwd(s, i+1, domainRune, 255)], &dotDash, &dotDash)
		if start == i || !strings.Contains(domain, ".") {
			continue
		}
		end := i + 1 + len(domain)
		x.spans = append(x.spans, [2]int{start, end})
		id := x.add(s[start:end], parent, false)
		x.add(domain, id, true)
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

// words finds bare domain names and file paths in the space-separated
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
		if k, l := start, i; dot && (k == 0 || s[k-1] != '@') && (l == len(s) || s[l] != '@') {
			if d := trim(s[k:l], &dotDash, &dotDash); domainName(d) && !x.inSpan(k, l) {
				x.add(d, parent, true)
			}
		}
		start, dot = -1, false
		i += n
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
// and hyphens, the last of two or more letters.
func domainName(d string) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 || strings.Contains(d, "..") {
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
	return true
}

// path adds w if it is a file path: absolute (/…, ~/…, C:\…, \\host\…) or
// relative to the current or parent directory (./…, ../…).
func (x *extractor) path(w string, parent int) {
	if w = trim(w, &pathLead, &pathTrail); pathStart(w) {
		x.add(w, parent, false)
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

// digits finds runs of digits, possibly grouped by single spaces or
// hyphens, of six digits or more; and IBANs (two letters, two check
// digits, alphanumerics, grouped by four or not) whose check digits are
// right.
func (x *extractor) digits(s string, parent int) {
	for i := 0; i < len(s); i++ {
		if i > 0 && isAlnum(s[i-1]) {
			continue
		}
		if i+4 <= len(s) && isLower(s[i]) && isLower(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			x.iban(s[i:], parent)
			continue
		}
		if !isDigit(s[i]) {
			continue
		}
		x.buf = x.buf[:0]
		groups, long := 0, 0
		j := i
		for {
			k := j
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			if k-j >= 6 {
				long++
			}
			x.buf = append(x.buf, s[j:k]...)
			groups++
			j = k
			if len(x.buf) > 34 || j+1 >= len(s) || (s[j] != ' ' && s[j] != '-') || !isDigit(s[j+1]) {
				break
			}
			j++
		}
		if len(x.buf) >= 6 && len(x.buf) <= 34 {
			x.add(string(x.buf), parent, false)
			if groups > 1 && long > 0 { // each long group alone too
				for _, g := range strings.FieldsFunc(s[i:j], func(r rune) bool { return r == ' ' || r == '-' }) {
					if len(g) >= 6 {
						x.add(g, parent, false)
					}
				}
			}
		}
		i = j
	}
}

// iban adds the IBANs s starts with: every prefix, ending at a group
// boundary, of 15 to 34 alphanumerics whose check digits are right.
func (x *extractor) iban(s string, parent int) {
	x.buf = x.buf[:0]
	for j := 0; j < len(s) && len(x.buf) <= 34; {
		k := j
		for k < len(s) && isAlnum(s[k]) {
			k++
		}
		if k == j || len(x.buf)+k-j > 34 {
			return
		}
		x.buf = append(x.buf, s[j:k]...)
		if len(x.buf) >= 15 && ibanValid(x.buf) {
			x.add(string(x.buf), parent, false)
		}
		if k-j != 4 || k >= len(s) || s[k] != ' ' {
			return // only a group of four may be followed by another
		}
		j = k + 1
	}
}

// ibanValid checks the ISO 13616 check digits of a lowercase IBAN.
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
		x.add(canonical(n, ""), parent, false)
	case n[last] == '\'' || len(kinds) == 1 && seps > 1:
		x.add(canonical(digits(n), ""), parent, false) // grouping only
	case len(kinds) == 1 && len(n)-last-1 == 3 && n[last] != '\'':
		x.add(canonical(digits(n), ""), parent, false)
		x.add(canonical(n[:last], n[last+1:]), parent, false)
	default: // the last separator starts the fraction
		x.add(canonical(digits(n[:last]), n[last+1:]), parent, false)
	}
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
	x.add(canonical(in, frac), -1, false)
}

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
				x.add(line, parent, false)
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
				x.add(span, parent, false)
			}
			line = line[i+j+2:]
		}
	}
}
