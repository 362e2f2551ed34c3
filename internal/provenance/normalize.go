package provenance

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// normalize returns s as the index compares it (see the package
// documentation): HTML character references decoded, invisible characters
// dropped, fullwidth ASCII and ideographic full stops mapped to ASCII,
// typographic quotes to ASCII quotes, dashes and the minus sign to '-',
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
		case r >= 0x2018 && r <= 0x201B: // typographic single quotes
			r = '\''
		case r >= 0x201C && r <= 0x201F, r == 0xAB, r == 0xBB: // typographic double quotes, guillemets
			r = '"'
		case r >= 0x2010 && r <= 0x2015, r == 0x2212: // hyphens, dashes, minus sign
			r = '-'
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
