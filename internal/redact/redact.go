// Package redact removes secrets from JSON documents before they are
// recorded, keeping a salted hash of each so that equality stays checkable.
//
// A [Redactor] is built from a [Config]: operator [Rule]s, the built-in
// defaults below (unless Config.NoDefaults) and a salt of at least
// [MinSaltSize] bytes that the server generates once and keeps secret.
// [Redactor.JSON] rewrites a document (a tool call's arguments, its result),
// replacing every redacted value, or part of a string, by a marker:
//
//	redacted:hmac-sha256:<base64url, unpadded, of HMAC-SHA256(salt, value)>
//
// The hashed value is the string's UTF-8 bytes for a string value and for a
// part of a string matched by a pattern; for any other value (number,
// object, array, bool, null) it is the value's compact JSON encoding as
// written, member order and numbers kept, strings minimally escaped (no
// HTML escaping). Equal secrets thus get equal markers, and an operator who
// holds the salt can tell whether a given secret was used ([Redactor.Hash]),
// while the log never holds the secret itself.
//
// # Rules
//
// A rule applies to the tools its Tool pattern names: an exact name
// ("mail.send"), a prefix followed by one trailing '*' ("mail.*"), or "*";
// "" means every tool. The gateway passes a resource's URI or a prompt's
// exposed name as the tool for resources/read and prompts/get.
//
// A rule with a Path replaces the whole value found there, whatever its
// type. A path is dotted member names or array indexes from the document's
// root: "credentials.password", "headers.*", "items.0.token"; a segment "*"
// matches any one member name or index, and "\.", "\*" and "\\" stand for a
// literal '.', '*' and '\' inside a name.
//
// A rule with a Pattern (an RE2 regular expression) replaces every match in
// every string value of the document; with a Path as well, only in strings
// at or under that path. A pattern that has a group named "secret" replaces
// only what that group matched ("Bearer (?P<secret>\S+)" keeps the word
// "Bearer"). A pattern may not match the empty string.
//
// Member names are never redacted: secrets belong in values.
//
// # Defaults
//
// Unless Config.NoDefaults, every tool gets these rules after its own.
//
// A member's whole value is replaced, at any depth, when its name, lowercased
// and stripped of '-', '_', '.' and ' ', contains "password", "passwd",
// "passphrase", "secret", "apikey", "privatekey", "credential", "accesskey",
// "authorization" or "cookie"; ends in "token"; or is "auth" or "pwd". So
// "db_password", "X-Api-Key", "client_secret", "Set-Cookie", "access_token"
// and "GITHUB_TOKEN" are redacted; "max_tokens" and "token_type" are not.
//
// These patterns are replaced inside every string:
//
//   - AWS access key ids: AKIA or ASIA and 16 more of [0-9A-Z]
//   - PEM private keys: "-----BEGIN … PRIVATE KEY-----" through the matching
//     END line, or through the end of the string if it has none
//   - HTTP credentials: the token after "Bearer " and the (8 or more
//     characters of) credentials after "Basic ", in any case
//   - passwords in URLs: the "pass" of "scheme://user:pass@host"
//   - GitHub tokens: ghp_, gho_, ghu_, ghs_ or ghr_ and 20 or more
//     alphanumerics, and github_pat_ tokens
//   - Slack tokens: xoxa-, xoxb-, xoxp-, xoxo-, xoxs- and xoxr-
//   - API keys in the "sk-" style (OpenAI, Anthropic, …): "sk-" and 20 or
//     more of [A-Za-z0-9_-]
//   - Stripe keys: sk_live_, rk_live_, sk_test_, rk_test_
//   - Google API keys: AIza and 35 more of [0-9A-Za-z_-]
//   - JSON Web Tokens: eyJ….eyJ….signature
//
// # Example
//
// With the defaults, for any tool,
//
//	{"to":"bob@example.com","password":"hunter2","note":"key AKIAABCDEFGHIJKLMNOP"}
//
// becomes
//
//	{"to":"bob@example.com","password":"redacted:hmac-sha256:…","note":"key redacted:hmac-sha256:…"}
//
// with the redacted paths ["note", "password"].
//
// # Guarantees
//
// [Redactor.JSON] is deterministic and idempotent: redacting its output
// again changes nothing and reports the same paths. A string that already is
// a marker, and markers inside strings, are left as they are, and a value or
// string that is or holds a marker is reported as redacted. Documents larger
// than [MaxSize], nested deeper than [MaxDepth], not valid JSON (including
// invalid UTF-8 and duplicate member names) or with more than one top-level
// value are refused with an error that quotes nothing of the input, so that
// the caller can fall back to recording a digest only.
package redact

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/jsonpath"
)

const (
	// MinSaltSize is the shortest Config.Salt accepted, in bytes.
	MinSaltSize = 16
	// MaxSize is the largest document JSON accepts, in bytes.
	MaxSize = 1 << 20
	// MaxDepth is the deepest nesting of objects and arrays JSON accepts.
	MaxDepth = 64
	// Prefix starts every marker.
	Prefix = "redacted:hmac-sha256:"

	// markerLen is the length of a marker: Prefix and 43 characters of
	// unpadded base64url for 32 bytes.
	markerLen = len(Prefix) + 43
	// maxPooledBuffer bounds the output buffer a pooled walker keeps.
	maxPooledBuffer = 64 << 10
	// maxPasses bounds how often the patterns are applied to one string
	// until none matches any more.
	maxPasses = 8
)

// Rule says what to redact in the documents of some tools. It must have a
// Path or a Pattern, or both; see the package documentation.
type Rule struct {
	Tool    string `json:"tool,omitempty" yaml:"tool"`
	Path    string `json:"path,omitempty" yaml:"path"`
	Pattern string `json:"pattern,omitempty" yaml:"pattern"`
}

// Config configures a [Redactor].
type Config struct {
	Rules []Rule `json:"rules,omitempty" yaml:"rules"`
	// NoDefaults turns off the built-in rules.
	NoDefaults bool `json:"no_defaults,omitempty" yaml:"no_defaults"`
	// Salt keys the hashes: at least MinSaltSize random bytes, kept secret
	// and stable (markers made with different salts do not compare).
	Salt []byte `json:"-" yaml:"-"`
}

// Redactor applies a Config. It is safe for concurrent use.
type Redactor struct {
	rules   []rule    // the configured rules, then the default patterns
	keys    bool      // the default member-name rule is on
	macs    sync.Pool // of hash.Hash: HMAC-SHA256 under the salt
	walkers sync.Pool // of *walker
}

// rule is a validated Rule.
type rule struct {
	tool  string // "" for every tool
	wild  bool   // tool is a prefix
	path  []jsonpath.Segment
	re    *regexp.Regexp // nil: replace the value at path whole
	group int            // submatch to replace; 0 for the whole match
	hints []string       // see mayMatch
	fold  bool
}

// New validates cfg and returns its Redactor. An error names the first
// invalid rule by its index in cfg.Rules.
func New(cfg Config) (*Redactor, error) {
	if len(cfg.Salt) < MinSaltSize {
		return nil, fmt.Errorf("redact: salt of %d bytes, want at least %d", len(cfg.Salt), MinSaltSize)
	}
	r := &Redactor{keys: !cfg.NoDefaults}
	for i, c := range cfg.Rules {
		cr, err := compile(c)
		if err != nil {
			return nil, fmt.Errorf("redact: rule %d: %w", i, err)
		}
		r.rules = append(r.rules, cr)
	}
	if !cfg.NoDefaults {
		r.rules = append(r.rules, defaultPatterns...)
	}
	salt := bytes.Clone(cfg.Salt)
	r.macs.New = func() any { return hmac.New(sha256.New, salt) }
	return r, nil
}

func compile(c Rule) (rule, error) {
	var r rule
	if c.Path == "" && c.Pattern == "" {
		return r, errors.New("needs a path or a pattern")
	}
	tool, wild := strings.CutSuffix(c.Tool, "*")
	if strings.Contains(tool, "*") {
		return r, fmt.Errorf("tool %q: '*' is allowed only at the end", c.Tool)
	}
	r.tool, r.wild = tool, wild || c.Tool == ""
	if c.Path != "" {
		p, err := jsonpath.Parse(c.Path)
		if err != nil {
			return r, fmt.Errorf("path %q: %w", c.Path, err)
		}
		r.path = p
	}
	if c.Pattern != "" {
		re, err := regexp.Compile(c.Pattern)
		if err != nil {
			return r, fmt.Errorf("pattern: %w", err)
		}
		if re.MatchString("") {
			return r, fmt.Errorf("pattern %q matches the empty string", c.Pattern)
		}
		r.re, r.group = re, max(re.SubexpIndex("secret"), 0)
	}
	return r, nil
}

// Hash returns the marker of value: Prefix and the unpadded base64url
// HMAC-SHA256 of value under the salt. It is the marker JSON writes for a
// string whose UTF-8 bytes are value, so whoever holds the Redactor can
// check whether a marker stands for a given secret.
func (r *Redactor) Hash(value []byte) string {
	m := r.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(value)
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	r.macs.Put(m)
	b := make([]byte, markerLen)
	copy(b, Prefix)
	base64.RawURLEncoding.Encode(b[len(Prefix):], sum[:])
	return string(b)
}

// JSON returns doc with what the rules for tool select replaced by markers,
// and the sorted, distinct paths of the values it replaced or that hold a
// marker (in the syntax of Rule.Path; "" for the root). The output is
// compact JSON with members in their input order and numbers as written.
func (r *Redactor) JSON(tool string, doc []byte) (out []byte, paths []string, err error) {
	if len(doc) > MaxSize {
		return nil, nil, fmt.Errorf("document of %d bytes, more than %d", len(doc), MaxSize)
	}
	w, _ := r.walkers.Get().(*walker)
	if w == nil {
		w = &walker{r: r}
		w.dec, w.enc = jsontext.NewDecoder(&w.in), jsontext.NewEncoder(&w.out)
	}
	defer r.release(w)
	w.in = *bytes.NewBuffer(doc)
	w.dec.Reset(&w.in)
	w.out.Grow(len(doc) + len(doc)/4)
	// The decoder has rejected duplicate names already.
	w.enc.Reset(&w.out, jsontext.AllowDuplicateNames(true))
	for i := range r.rules {
		if rl := &r.rules[i]; rl.appliesTo(tool) {
			w.rules = append(w.rules, rl)
		}
	}
	if err := w.value(false); err != nil {
		return nil, nil, describe(err)
	}
	if _, err := w.dec.ReadToken(); err != io.EOF {
		return nil, nil, errors.New("invalid JSON: more than one top-level value")
	}
	slices.Sort(w.paths)
	return bytes.Clone(bytes.TrimSuffix(w.out.Bytes(), []byte("\n"))), slices.Compact(w.paths), nil
}

// release returns w to the pool, first dropping its reference to the
// input, which may hold secrets. What w keeps (its output buffer, member
// names on its path) is redacted output: redacted values never reach the
// encoder.
func (r *Redactor) release(w *walker) {
	w.in = bytes.Buffer{}
	w.dec.Reset(&w.in)
	w.out.Reset()
	if w.out.Cap() > maxPooledBuffer {
		w.out = bytes.Buffer{}
	}
	w.enc.Reset(&w.out)
	w.rules, w.path, w.pats, w.paths = w.rules[:0], w.path[:0], w.pats[:0], nil
	r.walkers.Put(w)
}

// describe turns a JSON error into one that quotes nothing of the input
// (member names included).
func describe(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.As(err, &se) && errors.Is(se.Err, jsontext.ErrDuplicateName):
		return fmt.Errorf("invalid JSON at byte %d: duplicate member name", se.ByteOffset)
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.ByteOffset, se.Err)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: unexpected end of input")
	}
	return err
}

func (rl *rule) appliesTo(tool string) bool {
	if rl.wild {
		return strings.HasPrefix(tool, rl.tool)
	}
	return tool == rl.tool
}

// under reports whether rl's path is a prefix of path (exact: equal to it).
func (rl *rule) under(path []string, exact bool) bool {
	if len(rl.path) > len(path) || exact && len(rl.path) != len(path) {
		return false
	}
	return jsonpath.Match(rl.path, path[:len(rl.path)])
}

// walker rewrites one document.
type walker struct {
	r     *Redactor
	in    bytes.Buffer // parsed in place
	out   bytes.Buffer
	dec   *jsontext.Decoder
	enc   *jsontext.Encoder
	rules []*rule  // those for the tool
	path  []string // member names and indexes down to the current value
	pats  []*rule  // scratch: patterns for the current string
	paths []string
}

// value copies the next value, redacting it; named says that the last
// segment of w.path is a member name.
func (w *walker) value(named bool) error {
	if w.whole(named) {
		raw, err := w.dec.ReadValue()
		if err != nil {
			return err
		}
		if nesting(raw)+len(w.path) > MaxDepth {
			return errTooDeep
		}
		var m string
		if raw.Kind() == '"' {
			s, err := jsontext.AppendUnquote(nil, raw)
			if err != nil {
				return err
			}
			if m = string(s); !isMarker(m) {
				m = w.r.Hash(s)
			}
		} else {
			canon, err := jsontext.AppendFormat(nil, raw)
			if err != nil {
				return err
			}
			m = w.r.Hash(canon)
		}
		w.report()
		return w.enc.WriteToken(jsontext.String(m))
	}
	switch w.dec.PeekKind() {
	case '{', '[':
		if len(w.path) == MaxDepth {
			return errTooDeep
		}
		tok, err := w.dec.ReadToken()
		if err != nil {
			return err
		}
		if err := w.enc.WriteToken(tok); err != nil {
			return err
		}
		object := tok.Kind() == '{'
		for i := 0; w.dec.PeekKind() != tok.Kind()+2; i++ { // '{'+2 == '}', '['+2 == ']'
			seg := strconv.Itoa(i)
			if object {
				name, err := w.dec.ReadToken()
				if err != nil {
					return err
				}
				if err := w.enc.WriteToken(name); err != nil {
					return err
				}
				seg = name.String()
			}
			w.path = append(w.path, seg)
			if err := w.value(object); err != nil {
				return err
			}
			w.path = w.path[:len(w.path)-1]
		}
		end, err := w.dec.ReadToken()
		if err != nil {
			return err
		}
		return w.enc.WriteToken(end)
	case '"':
		raw, err := w.dec.ReadValue()
		if err != nil {
			return err
		}
		w.pats = w.pats[:0]
		for _, rl := range w.rules {
			if rl.re != nil && rl.under(w.path, false) {
				w.pats = append(w.pats, rl)
			}
		}
		if len(w.pats) == 0 {
			return w.enc.WriteValue(raw)
		}
		b, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return err
		}
		s := string(b)
		out, marked, err := w.r.scrub(s, w.pats)
		if err != nil {
			return err
		}
		if marked {
			w.report()
		}
		if out == s {
			return w.enc.WriteValue(raw)
		}
		return w.enc.WriteToken(jsontext.String(out))
	default:
		raw, err := w.dec.ReadValue()
		if err != nil {
			return err
		}
		return w.enc.WriteValue(raw)
	}
}

var errTooDeep = fmt.Errorf("invalid JSON: nested deeper than %d", MaxDepth)

// nesting returns how deeply objects and arrays nest in the valid JSON v.
func nesting(v []byte) int {
	depth, deepest, quoted := 0, 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// whole reports whether the next value is replaced whole.
func (w *walker) whole(named bool) bool {
	if named && w.r.keys && secretName(w.path[len(w.path)-1]) {
		return true
	}
	for _, rl := range w.rules {
		if rl.re == nil && rl.under(w.path, true) {
			return true
		}
	}
	return false
}

// report records the current path as redacted.
func (w *walker) report() {
	w.paths = append(w.paths, jsonpath.Render(w.path))
}

// scrub replaces what pats match in s outside markers until nothing
// matches any more, and reports whether the result holds a marker.
func (r *Redactor) scrub(s string, pats []*rule) (string, bool, error) {
	for range maxPasses {
		out, changed := r.scrubOnce(s, pats)
		if !changed {
			return s, strings.Contains(s, Prefix) && nextMarker(s, 0) >= 0, nil
		}
		s = out
	}
	return "", false, fmt.Errorf("patterns still matched after %d passes", maxPasses)
}

// scrubOnce applies every pattern to each stretch of s between markers,
// each stretch on its own; where matches overlap, the one that starts first
// (then the longest) wins.
func (r *Redactor) scrubOnce(s string, pats []*rule) (string, bool) {
	var out strings.Builder
	changed := false
	var spans [][2]int
	for start := 0; start <= len(s); {
		m := nextMarker(s, start)
		end := m
		if m < 0 {
			end = len(s)
		}
		text := s[start:end]
		spans = spans[:0]
		for _, p := range pats {
			if !p.mayMatch(text) {
				continue
			}
			for _, loc := range p.re.FindAllStringSubmatchIndex(text, -1) {
				a, b := loc[0], loc[1]
				if g := 2 * p.group; p.group > 0 && loc[g] >= 0 && loc[g] < loc[g+1] {
					a, b = loc[g], loc[g+1]
				}
				if a < b {
					spans = append(spans, [2]int{a, b})
				}
			}
		}
		if len(spans) > 0 && !changed {
			changed = true
			out.Grow(len(s) + len(spans)*markerLen)
			out.WriteString(s[:start])
		}
		if changed {
			slices.SortFunc(spans, func(x, y [2]int) int {
				if x[0] != y[0] {
					return x[0] - y[0]
				}
				return y[1] - x[1]
			})
			at := 0
			for _, sp := range spans {
				if sp[0] < at {
					continue
				}
				out.WriteString(text[at:sp[0]])
				out.WriteString(r.Hash([]byte(text[sp[0]:sp[1]])))
				at = sp[1]
			}
			out.WriteString(text[at:])
			if m >= 0 {
				out.WriteString(s[m : m+markerLen])
			}
		}
		if m < 0 {
			break
		}
		start = m + markerLen
	}
	return out.String(), changed
}

// nextMarker returns the offset of the first marker in s at or after from,
// or -1.
func nextMarker(s string, from int) int {
	for from <= len(s)-markerLen {
		i := strings.Index(s[from:], Prefix)
		if i < 0 {
			return -1
		}
		if isMarker(s[from+i : from+i+min(markerLen, len(s)-from-i)]) {
			return from + i
		}
		from += i + 1
	}
	return -1
}

// isMarker reports whether s is exactly one marker.
func isMarker(s string) bool {
	if len(s) != markerLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	for i := len(Prefix); i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
