package rules

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxSourceSize is the largest rule file Compile accepts, in bytes.
const MaxSourceSize = 1 << 20

// Rule is one compiled sentence.
type Rule struct {
	Line, Column int    // where the sentence starts, 1-based (column in characters)
	Text         string // the sentence as written, from its first word to its period
	Cedar        string // the Cedar policy, annotations included, ending in ";\n"
}

// Error is a mistake in a rule file, located by file, line and column (both
// 1-based; the column counts characters).
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Compile compiles the rule file src, named file in ids and errors, into
// one Cedar policy per sentence, in order. If any sentence is bad it returns
// no rules and every error of the file, each an [*Error], joined with
// errors.Join.
func Compile(file string, src []byte) ([]Rule, error) {
	if len(src) > MaxSourceSize {
		return nil, &Error{File: file, Line: 1, Column: 1, Msg: fmt.Sprintf("rule file is %d bytes, more than the limit of %d", len(src), MaxSourceSize)}
	}
	var errs []error
	var rules []Rule
	fail := func(line, col int, msg string) {
		errs = append(errs, &Error{File: file, Line: line, Column: col, Msg: msg})
	}
	lineNo := 0
	for len(src) > 0 {
		lineNo++
		var raw []byte
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			raw, src = src[:i], src[i+1:]
		} else {
			raw, src = src, nil
		}
		raw = trimCR(raw)
		if !utf8.Valid(raw) {
			col := 1 + utf8.RuneCount(raw[:firstInvalid(raw)])
			fail(lineNo, col, "invalid UTF-8")
			continue
		}
		line := string(raw)
		sentences, lexErr := lexLine(line)
		// Sentences before a lexical error still compile (and report their
		// own errors); the rest of the line is not read.
		for _, s := range sentences {
			r, err := compileSentence(file, lineNo, line, s, len(sentences) > 1)
			if err != nil {
				fail(lineNo, err.col, err.msg)
				continue
			}
			rules = append(rules, r)
		}
		if lexErr != nil {
			fail(lineNo, lexErr.col, lexErr.msg)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rules, nil
}

// CompileToCedar compiles src as [Compile] does and returns the policies as
// one Cedar file: each policy preceded by a "// file:line: sentence"
// comment, separated by blank lines.
func CompileToCedar(file string, src []byte) ([]byte, error) {
	rules, err := Compile(file, src)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for i, r := range rules {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "// %s:%d: %s\n", commentSafe(file), r.Line, commentSafe(r.Text))
		b.WriteString(r.Cedar)
	}
	return []byte(b.String()), nil
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// commentSafe replaces what could end or confuse a // comment.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return utf8.RuneError
		}
		return r
	}, s)
}

// Token kinds.
type kind int

const (
	kWord kind = iota
	kString
	kComma
	kEnd // the sentence's period, or the end of its line
)

type token struct {
	kind kind
	text string // word text, decoded string value, "," or "." ("" for end of line)
	col  int    // 1-based column in characters
	off  int    // byte offset in the line
	end  int    // byte offset just after the token
}

// sentence is the tokens of one sentence; the last is always kEnd.
type sentence []token

type lexError struct {
	col int
	msg string
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-' || c == '/'
}

// lexLine splits one line into sentences. On a lexical error it returns the
// sentences completed before it and the error; the rest of the line is
// ignored.
func lexLine(line string) ([]sentence, *lexError) {
	var out []sentence
	var cur sentence
	// column converts a byte offset to a column; offsets asked for never
	// decrease, so counting resumes where the last call stopped.
	lastOff, lastCol := 0, 1
	column := func(off int) int {
		if off < lastOff {
			lastOff, lastCol = 0, 1
		}
		lastCol += utf8.RuneCountInString(line[lastOff:off])
		lastOff = off
		return lastCol
	}
	closeSentence := func(t token) {
		cur = append(cur, t)
		out = append(out, cur)
		cur = nil
	}
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '#':
			i = len(line)
		case c == '"':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(line) {
					return out, &lexError{column(start), "unterminated string"}
				}
				r, n := utf8.DecodeRuneInString(line[i:])
				if r == '"' {
					i++
					break
				}
				if r == '\\' {
					if i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
						b.WriteByte(line[i+1])
						i += 2
						continue
					}
					if i+1 >= len(line) {
						return out, &lexError{column(start), "unterminated string"}
					}
					e, _ := utf8.DecodeRuneInString(line[i+1:])
					return out, &lexError{column(i), fmt.Sprintf(`invalid escape %q in string: only \" and \\ are allowed`, `\`+string(e))}
				}
				if r < 0x20 && r != '\t' || r == 0x7f {
					return out, &lexError{column(i), fmt.Sprintf("control character %U in string", r)}
				}
				b.WriteString(line[i : i+n])
				i += n
			}
			cur = append(cur, token{kind: kString, text: b.String(), col: column(start), off: start, end: i})
		case c == ',':
			cur = append(cur, token{kind: kComma, text: ",", col: column(i), off: i, end: i + 1})
			i++
		case isWordByte(c):
			start := i
			for i < len(line) && isWordByte(line[i]) {
				i++
			}
			w := line[start:i]
			if w[len(w)-1] == '.' && endsSentence(line, i) {
				if len(w) > 1 {
					cur = append(cur, token{kind: kWord, text: w[:len(w)-1], col: column(start), off: start, end: i - 1})
				}
				closeSentence(token{kind: kEnd, text: ".", col: column(i - 1), off: i - 1, end: i})
				continue
			}
			cur = append(cur, token{kind: kWord, text: w, col: column(start), off: start, end: i})
		default:
			r, _ := utf8.DecodeRuneInString(line[i:])
			return out, &lexError{column(i), fmt.Sprintf("unexpected character %q", r)}
		}
	}
	if len(cur) > 0 {
		closeSentence(token{kind: kEnd, col: column(len(line)), off: len(line), end: len(line)})
	}
	return out, nil
}

// endsSentence reports whether a period just before line[i] ends a sentence.
func endsSentence(line string, i int) bool {
	return i >= len(line) || line[i] == ' ' || line[i] == '\t' || line[i] == '#'
}

// describe names a token for "found ..." in errors.
func describe(t token) string {
	switch t.kind {
	case kString:
		s := t.text
		if utf8.RuneCountInString(s) > 20 {
			s = string([]rune(s)[:20]) + "..."
		}
		return "string " + strconv.Quote(s)
	case kEnd:
		if t.text == "." {
			return `"."`
		}
		return "end of line"
	}
	return strconv.Quote(t.text)
}

// verbNames lists the verbs a tool may declare, for errors.
const verbNames = "read, list, create, update, write, delete, send, execute"

func isVerb(w string) bool {
	switch w {
	case "read", "list", "create", "update", "write", "delete", "send", "execute":
		return true
	}
	return false
}

// oneOf formats alternatives as `"a", "b" or "c"`.
func oneOf(alts ...string) string {
	q := make([]string, len(alts))
	for i, a := range alts {
		if strings.HasPrefix(a, "<") { // a description, not a keyword
			q[i] = a[1:]
		} else {
			q[i] = strconv.Quote(a)
		}
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
