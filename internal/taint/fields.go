package taint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"gopkg.in/yaml.v3"

	"github.com/ward-dev/ward/internal/jsonpath"
)

// Limits on reading a result by its fields.
const (
	// MaxFieldDepth is the deepest a field is read: values nested deeper
	// take the labels of a result that cannot be read by its fields.
	MaxFieldDepth = 64
	// MaxYAMLBytes bounds a text result read as YAML; a longer one is
	// plain text.
	MaxYAMLBytes = 256 << 10
)

// FieldLabels are the labels of the fields of one tool's results: which
// parts of a result a third party can write and which it cannot. See
// [Labeler.WithFields] for the configuration and [FieldLabels.Split] for
// how a result is read.
type FieldLabels struct {
	rules []fieldRule // most specific first
	// fallback is [Untrusted] when a rule labels a field untrusted: a
	// part of a result that cannot be read by its fields may be one.
	fallback []string
}

type fieldRule struct {
	path   []jsonpath.Segment
	stars  int
	labels []string
	// fold: the rule labels its field untrusted, and matches member
	// names whatever their case ("Subject" for "subject"), so that a
	// server's spelling cannot make a field a third party writes take the
	// tool's more trusted labels. Other rules match exactly.
	fold bool
}

// WithFields returns a copy of l that also labels the fields of tools'
// results: fields maps a tool pattern (as in NewLabeler: "SERVER.TOOL" or
// a prefix ending in "*") to field paths (jsonpath syntax: "transactions.*.subject")
// and their labels, which take the place of the tool's for the values at
// and under that path:
//
//	bank.list_transactions: {"*.subject": [private, untrusted]}    # the bank's labels: [private, reliable]
//	calendar.*:            {"*.description": [private, untrusted]}
//	web.get_page:          {"url": [trusted]}
//
// The most specific tool pattern has the fields of a tool (an exact name,
// then the longest prefix); within it the longest matching path wins (then
// the one with fewer "*"). A path labelled untrusted matches member names
// whatever their case, so that no spelling of a field a third party writes
// takes the tool's labels; other paths match exactly.
func (l *Labeler) WithFields(fields map[string]map[string][]string) (*Labeler, error) {
	c := &Labeler{}
	if l != nil {
		c.tools, c.hosts = l.tools, l.hosts
	}
	for p, fs := range fields {
		if i := strings.IndexByte(p, '*'); p == "" || (i >= 0 && i != len(p)-1) {
			return nil, fmt.Errorf("taint fields: tool pattern %q: a name, optionally ending in *", p)
		}
		if len(fs) == 0 {
			return nil, fmt.Errorf("taint fields: tool pattern %q: no fields", p)
		}
		f := &FieldLabels{}
		untrusted := false
		for path, labels := range fs {
			segs, err := jsonpath.Parse(path)
			if err != nil {
				return nil, fmt.Errorf("taint fields: %s: path %q: %w", p, path, err)
			}
			r, err := newRule(p+" "+path, labels)
			if err != nil {
				return nil, fmt.Errorf("taint fields: %w", err)
			}
			stars := 0
			for _, s := range segs {
				if s.Any {
					stars++
				}
			}
			fold := slices.Contains(r.labels, Untrusted)
			if fold {
				for i := range segs {
					segs[i].Name = strings.ToLower(segs[i].Name)
				}
			}
			f.rules = append(f.rules, fieldRule{path: segs, stars: stars, labels: r.labels, fold: fold})
			untrusted = untrusted || fold
		}
		// Most specific first: longest path, then fewest "*", then by
		// text, so that the order of a YAML mapping does not matter.
		slices.SortFunc(f.rules, func(a, b fieldRule) int {
			if len(a.path) != len(b.path) {
				return len(b.path) - len(a.path)
			}
			if a.stars != b.stars {
				return a.stars - b.stars
			}
			return strings.Compare(jsonpath.Render(segNames(a.path)), jsonpath.Render(segNames(b.path)))
		})
		if untrusted {
			f.fallback = []string{Untrusted}
		}
		c.fields = append(c.fields, fieldSet{pattern: p, f: f})
	}
	return c, nil
}

func segNames(segs []jsonpath.Segment) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.Name
	}
	return out
}

type fieldSet struct {
	pattern string
	f       *FieldLabels
}

// Fields returns the field labels of a tool's results, or nil if none are
// configured for it.
func (l *Labeler) Fields(name string) *FieldLabels {
	if l == nil {
		return nil
	}
	var best *FieldLabels
	score := -1
	for _, fs := range l.fields {
		if ok, s := toolMatch(fs.pattern, name); ok && s > score {
			best, score = fs.f, s
		}
	}
	return best
}

// toolMatch reports whether a tool pattern matches name and how specific
// it is.
func toolMatch(p, name string) (bool, int) {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(name, prefix), len(prefix)
	}
	return p == name, len(p) + 1
}

// Value is one string or number of a result.
type Value struct {
	Text   string // a string as decoded, or a number's JSON text
	Number bool
	// Record numbers the record the value belongs to, from 1 in the
	// order records are met: the element of the outermost list of the
	// document that holds it (a mail of an inbox, a transaction, a
	// calendar entry). 0: the value is in no list (the fields of a
	// document that is one record, such as a file with its name and
	// content, and whatever cannot be read by its fields). The same
	// record met twice (structuredContent and its JSON text copy) has
	// two numbers.
	Record int
}

// Part is the values of a result that carry the same labels.
type Part struct {
	Labels []string
	Values []Value
}

// Split is a result read by its fields.
type Split struct {
	// Parts are the values by labels, in the order labels were first met.
	Parts []Part
	// Note says what of the result was not read ("" when all was), for
	// the record; it quotes nothing of the result.
	Note string
}

// Labels returns the labels of all parts, sorted, without duplicates.
func (s Split) Labels() []string {
	var out []string
	for _, p := range s.Parts {
		out = append(out, p.Labels...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Split reads result by its fields. whole are the tool's labels, which
// the values no field rule covers carry. A result is read as follows:
//
//   - an MCP tool result with structuredContent: the fields are those of
//     structuredContent; each text content item is read as a text below
//   - an MCP tool result without it: each text content item (and the text
//     of each embedded resource) is read as a text
//   - a resources/read result: the text of each item of its contents
//   - any other JSON document: its own fields
//   - a text: a JSON document if it is one; a YAML block mapping or
//     sequence if it starts like one ("key: value" or "- " on its first
//     line that is not blank or a comment) and parses as one, within
//     MaxYAMLBytes; its fields are then the YAML's, as JSON would name
//     them (tools that print their results as YAML, one field a line)
//
// Paths start at the fields: "subject", "transactions.*.subject", "*.id"
// for a list at the top. Member names carry the labels of their value.
// What cannot be read by its fields (plain text, a JSON or YAML document
// that does not parse, values nested deeper than MaxFieldDepth, the
// members of the MCP envelope) carries the tool's labels together with
// untrusted if any field rule of the tool says untrusted: a part whose
// place cannot be told is taken for the least trusted it could be.
//
// A text result is only as good as its format: a server that writes a
// third party's text into "key: value" lines without quoting lets that
// text add lines of its own. Use field labels on text results of servers
// that quote what they print (YAML and JSON emitters do), and prefer
// structuredContent.
func (f *FieldLabels) Split(result []byte, whole []string) Split {
	sp := splitter{f: f, whole: whole}
	sp.fallback = slices.Compact(slices.Sorted(slices.Values(slices.Concat(whole, f.fallback))))
	sp.result(result)
	return sp.out
}

type splitter struct {
	f        *FieldLabels
	whole    []string
	fallback []string
	out      Split
	path     []string
	rec      int // the record being read, 0 outside any list
	records  int // records numbered so far
}

// element starts reading an element of a list: the first list met opens
// a record. It returns what done must be given when the element is read.
func (sp *splitter) element() (opened bool) {
	if sp.rec != 0 {
		return false
	}
	sp.records++
	sp.rec = sp.records
	return true
}

// done ends an element started by element.
func (sp *splitter) done(opened bool) {
	if opened {
		sp.rec = 0
	}
}

func (sp *splitter) note(n string) {
	if !strings.Contains(sp.out.Note, n) {
		if sp.out.Note != "" {
			sp.out.Note += "; "
		}
		sp.out.Note += n
	}
}

// add files v under labels.
func (sp *splitter) add(labels []string, v Value) {
	for i := range sp.out.Parts {
		if slices.Equal(sp.out.Parts[i].Labels, labels) {
			sp.out.Parts[i].Values = append(sp.out.Parts[i].Values, v)
			return
		}
	}
	sp.out.Parts = append(sp.out.Parts, Part{Labels: labels, Values: []Value{v}})
}

// labels returns the labels of the value at sp.path.
func (sp *splitter) labels() []string {
	var lower []string
	for _, r := range sp.f.rules {
		if len(r.path) > len(sp.path) {
			continue
		}
		path := sp.path
		if r.fold {
			if lower == nil {
				lower = make([]string, len(sp.path))
				for i, p := range sp.path {
					lower[i] = strings.ToLower(p)
				}
			}
			path = lower
		}
		if jsonpath.Match(r.path, path[:len(r.path)]) {
			return r.labels
		}
	}
	return sp.whole
}

// result reads a tool result, a resources/read result, any other JSON
// document, or a text.
func (sp *splitter) result(b []byte) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return
	}
	if t[0] != '{' && t[0] != '[' {
		sp.text(string(b))
		return
	}
	if top, err := decodeObject(t); t[0] == '{' && err == nil && slices.ContainsFunc(top, func(m member) bool {
		return m.name == "structuredContent" || m.name == "content" || m.name == "contents"
	}) {
		for _, m := range top {
			switch m.name {
			case "structuredContent":
				if !sp.document(m.value) {
					sp.fallbackValues(m.value)
				}
			case "content", "contents":
				sp.items(m.value)
			default: // the envelope: isError, _meta, …
				sp.fallbackValues(m.value)
			}
		}
		return
	}
	if !sp.document(t) {
		sp.text(string(b))
	}
}

// items reads content (or contents) items: their texts as texts, the rest
// with the fallback labels.
func (sp *splitter) items(v jsontext.Value) {
	items, err := decodeArray(v)
	if err != nil {
		sp.fallbackValues(v)
		return
	}
	for _, it := range items {
		for _, m := range it {
			switch {
			case m.name == "type" || m.name == "mimeType":
				// what the item is, not what it says
			case m.name == "text" && m.value.Kind() == '"':
				sp.text(unquote(m.value))
			case m.name == "resource" && m.value.Kind() == '{':
				res, err := decodeObject(m.value)
				if err != nil {
					sp.fallbackValues(m.value)
					continue
				}
				for _, r := range res {
					if r.name == "text" && r.value.Kind() == '"' {
						sp.text(unquote(r.value))
					} else {
						sp.fallbackValues(r.value)
					}
				}
			default:
				sp.fallbackValues(m.value)
			}
		}
	}
}

// text reads a text: JSON, YAML, or plain.
func (sp *splitter) text(s string) {
	t := strings.TrimSpace(s)
	if t == "" {
		return
	}
	if (t[0] == '{' || t[0] == '[') && sp.document([]byte(t)) {
		return
	}
	if len(t) <= MaxYAMLBytes && yamlStart(t) && sp.yamlDocument(t) {
		return
	}
	sp.add(sp.fallback, Value{Text: s})
}

// yamlStart reports whether the first line of t that is not blank or a
// comment starts a YAML block mapping or sequence.
func yamlStart(t string) bool {
	for line := range strings.Lines(t) {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") || l == "---" {
			continue
		}
		if strings.HasPrefix(l, "- ") || l == "-" {
			return true
		}
		key, _, ok := strings.Cut(l, ":")
		if !ok || key == "" || strings.ContainsAny(key, "\"'{}[],&*!|>%@`") {
			return false
		}
		rest := l[len(key)+1:]
		return rest == "" || rest[0] == ' '
	}
	return false
}

// yamlDocument reads t as a YAML block mapping or sequence and reports
// whether it was one.
func (sp *splitter) yamlDocument(t string) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(t), &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode && root.Kind != yaml.SequenceNode {
		return false
	}
	base := len(sp.path)
	sp.yamlNode(root)
	sp.path = sp.path[:base]
	return true
}

func (sp *splitter) yamlNode(n *yaml.Node) {
	if len(sp.path) > MaxFieldDepth {
		sp.note("fields nested too deep")
		sp.yamlFallback(n)
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			sp.add(sp.labels(), Value{Text: n.Value, Record: sp.rec})
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			sp.path = append(sp.path, name)
			if k.Kind == yaml.ScalarNode {
				sp.add(sp.labels(), Value{Text: name, Record: sp.rec})
			}
			sp.yamlNode(v)
			sp.path = sp.path[:len(sp.path)-1]
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			sp.path = append(sp.path, strconv.Itoa(i))
			opened := sp.element()
			sp.yamlNode(c)
			sp.done(opened)
			sp.path = sp.path[:len(sp.path)-1]
		}
	}
	// Aliases repeat a node read where it is anchored.
}

func (sp *splitter) yamlFallback(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		sp.add(sp.fallback, Value{Text: n.Value, Record: sp.rec})
	}
	for _, c := range n.Content {
		sp.yamlFallback(c)
	}
}

// document reads a JSON document by its fields and reports whether it was
// valid JSON (an invalid one adds nothing).
func (sp *splitter) document(doc []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(doc), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var vals []Value
	var labels [][]string
	base := len(sp.path)
	var walk func() error
	walk = func() error {
		kind := dec.PeekKind()
		if kind == '{' || kind == '[' {
			if _, err := dec.ReadToken(); err != nil {
				return err
			}
			for i := 0; dec.PeekKind() != kind+2; i++ {
				seg := strconv.Itoa(i)
				if kind == '{' {
					tok, err := dec.ReadToken()
					if err != nil {
						return err
					}
					seg = tok.String()
					sp.path = append(sp.path, seg)
					vals, labels = append(vals, Value{Text: seg, Record: sp.rec}), append(labels, sp.deepLabels())
				} else {
					sp.path = append(sp.path, seg)
				}
				opened := kind == '[' && sp.element()
				if err := walk(); err != nil {
					return err
				}
				sp.done(opened)
				sp.path = sp.path[:len(sp.path)-1]
			}
			_, err := dec.ReadToken()
			return err
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch tok.Kind() {
		case '"':
			vals, labels = append(vals, Value{Text: tok.String(), Record: sp.rec}), append(labels, sp.deepLabels())
		case '0':
			vals, labels = append(vals, Value{Text: tok.String(), Number: true, Record: sp.rec}), append(labels, sp.deepLabels())
		}
		return nil
	}
	rec, records := sp.rec, sp.records
	err := walk()
	sp.path = sp.path[:base]
	if err != nil {
		sp.rec, sp.records = rec, records // nothing of it is kept
		return false
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return false // more than one value, or garbage after it
	}
	for i, v := range vals {
		sp.add(labels[i], v)
	}
	return true
}

// deepLabels is labels, or the fallback past MaxFieldDepth.
func (sp *splitter) deepLabels() []string {
	if len(sp.path) > MaxFieldDepth {
		sp.note("fields nested too deep")
		return sp.fallback
	}
	return sp.labels()
}

// fallbackValues files every string and number of v under the fallback
// labels.
func (sp *splitter) fallbackValues(v jsontext.Value) {
	dec := jsontext.NewDecoder(bytes.NewReader(v), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return
		}
		switch tok.Kind() {
		case '"':
			sp.add(sp.fallback, Value{Text: tok.String()})
		case '0':
			sp.add(sp.fallback, Value{Text: tok.String(), Number: true})
		}
	}
}

// member is a member of a JSON object.
type member struct {
	name  string
	value jsontext.Value
}

// decodeObject reads a JSON object's members, in order, duplicates
// included (whoever reads the result may take either).
func decodeObject(b []byte) ([]member, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, errors.New("not an object")
	}
	var out []member
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		name := tok.String()
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		out = append(out, member{name, slices.Clone(v)})
	}
	return out, nil
}

// decodeArray reads a JSON array of objects.
func decodeArray(b []byte) ([][]member, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, errors.New("not an array")
	}
	var out [][]member
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		m, err := decodeObject(v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// unquote decodes a JSON string value.
func unquote(v jsontext.Value) string {
	b, _ := jsontext.AppendUnquote(nil, v)
	return string(b)
}
