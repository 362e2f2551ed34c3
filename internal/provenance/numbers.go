package provenance

// The grammar of numbers: account numbers (IBAN-shaped or runs of
// digits), phone numbers, dates and amounts. See the package
// documentation for each class.

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

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
