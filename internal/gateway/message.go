package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/strictjson"
)

// A client's message is read once, here, and everything the gateway
// decides is read from that reading. params is a request's params as parsed
// then: its members by exact name, each as the exact bytes received (which
// strictjson has checked: valid UTF-8, no duplicate names at any depth). A
// request that a server could read differently is refused before anything
// is decided: besides duplicates, that is two members, at any depth, whose
// names differ only in case ("uri" and "URI"), which a server matching
// names without regard to case would confuse.
//
// What is forwarded is a re-encoding of the members (encode): the ones the
// gateway decided on replaced by the values it decided, the others as
// received.
type params map[string]jsontext.Value

// maxDepth bounds the nesting of a client's params.
const maxDepth = 64

// parseParams parses a request's params strictly, in one pass over them
// with one decoder: each member's value is kept as its exact bytes (a
// slice of raw), and every object at every depth is checked for names
// that differ only in case. Absent or null params are an empty object;
// anything but an object is refused.
func parseParams(raw json.RawMessage) (params, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return params{}, nil
	}
	if trimmed[0] != '{' {
		return nil, errors.New("params must be a JSON object")
	}
	p := params{}
	err := walk(trimmed, func(depth int, name string, start, end int64) {
		if depth == 1 {
			p[name] = jsontext.Value(bytes.TrimLeft(trimmed[start:end], " \t\r\n:"))
		}
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkNames walks a JSON document as parseParams does, keeping nothing.
func checkNames(doc []byte) error {
	return walk(doc, func(int, string, int64, int64) {})
}

// decoders reuses JSON decoders: parsing a request's params is on every
// call's path.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil)) }}

// walk reads one JSON value from doc, refusing duplicate names and invalid
// UTF-8 (the decoder's own checks), nesting deeper than maxDepth, data
// after the value, and objects with two member names equal under Unicode
// case folding. It calls member for every object member it has read, with
// the depth of its object (1 for the top) and the offsets of what follows
// the name up to the end of the value.
func walk(doc []byte, member func(depth int, name string, start, end int64)) error {
	dec := decoders.Get().(*jsontext.Decoder)
	dec.Reset(bytes.NewReader(doc))
	defer func() {
		dec.Reset(bytes.NewReader(nil))
		decoders.Put(dec)
	}()
	type frame struct {
		object bool
		names  nameSet
		name   string // the member whose value is being read
		start  int64  // where that value starts (after the name)
		key    bool   // the next token of an object is a name
	}
	var stack []frame
	// ended closes a value in the innermost object, if any.
	ended := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			top := &stack[n-1]
			member(n, top.name, top.start, dec.InputOffset())
			top.key = true
		}
	}
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return errors.New("params are not valid JSON: unexpected end")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("params are not valid JSON: %v", err)
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].key && tok.Kind() == '"' {
			top := &stack[n-1]
			top.name = tok.String()
			if err := top.names.add(top.name); err != nil {
				return err
			}
			top.start, top.key = dec.InputOffset(), false
			continue
		}
		switch tok.Kind() {
		case '{', '[':
			if len(stack) >= maxDepth {
				return fmt.Errorf("params are nested deeper than %d levels", maxDepth)
			}
			stack = append(stack, frame{object: tok.Kind() == '{', key: true})
			continue
		case '}', ']':
			stack = stack[:len(stack)-1]
		}
		ended()
	}
}

// nameSet holds the names of one object's members to refuse two that are
// equal under case folding: compared pairwise while the object is small,
// by folded form beyond.
type nameSet struct {
	written []string
	folded  map[string]string // fold(name) → name, once written is long
}

// smallObject is how many names are compared pairwise.
const smallObject = 16

func (s *nameSet) add(name string) error {
	clash := func(prev string) error {
		return fmt.Errorf("params hold members %q and %q, which differ only in case; ward refuses them rather than guess which one the server reads", prev, name)
	}
	if s.folded == nil {
		for _, prev := range s.written {
			if strings.EqualFold(prev, name) {
				return clash(prev)
			}
		}
		s.written = append(s.written, name)
		if len(s.written) > smallObject {
			s.folded = make(map[string]string, 2*smallObject)
			for _, w := range s.written {
				s.folded[fold(w)] = w
			}
		}
		return nil
	}
	key := fold(name)
	if prev, ok := s.folded[key]; ok {
		return clash(prev)
	}
	s.folded[key] = name
	return nil
}

// fold maps s to a canonical form shared by every string equal to it under
// Unicode simple case folding (strings.EqualFold): each rune becomes the
// least rune of its folding orbit (so ASCII letters become upper case).
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// Fast path, same result: the least rune of an ASCII letter's
		// orbit is its upper case.
		return strings.ToUpper(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == utf8.RuneError {
			b.WriteRune(r)
			continue
		}
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

// spelled refuses members whose names equal one of names but for case
// ("Arguments" for "arguments"): ward reads the exact name, and a server
// that matches names without regard to case would read the variant.
func (p params) spelled(names ...string) error {
	for k := range p {
		for _, n := range names {
			if k != n && fold(k) == fold(n) {
				return fmt.Errorf("params hold member %q where %q is meant, which differ only in case; ward refuses it rather than guess which one the server reads", k, n)
			}
		}
	}
	return nil
}

// str reads member name as a string; ok is false when it is absent or
// null.
func (p params) str(name string) (s string, ok bool, err error) {
	v, present := p[name]
	if !present || string(v) == "null" {
		return "", false, nil
	}
	if v.Kind() != '"' {
		return "", false, fmt.Errorf("%q must be a string", name)
	}
	u, err := jsontext.AppendUnquote(nil, v)
	if err != nil {
		return "", false, fmt.Errorf("%q must be a string", name)
	}
	return string(u), true, nil
}

// object returns member name if it is an object, nil if absent or null.
func (p params) object(name string) (params, error) {
	v, present := p[name]
	if !present || string(v) == "null" {
		return nil, nil
	}
	m, err := strictjson.Object(v)
	if err != nil {
		return nil, fmt.Errorf("%q must be an object", name)
	}
	return params(m), nil
}

// with returns a copy of p with member name set to the JSON encoding of v
// (or deleted, for a nil v).
func (p params) with(name string, v any) params {
	out := make(params, len(p)+1)
	for k, x := range p {
		out[k] = x
	}
	if v == nil {
		delete(out, name)
		return out
	}
	switch x := v.(type) {
	case jsontext.Value:
		out[name] = x
	case json.RawMessage:
		out[name] = jsontext.Value(x)
	case params:
		out[name] = jsontext.Value(x.encode())
	default:
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("gateway: encode %s: %v", name, err))
		}
		out[name] = b
	}
	return out
}

// encode is the JSON object of p's members, sorted by name.
func (p params) encode() json.RawMessage {
	names := make([]string, 0, len(p))
	for k := range p {
		names = append(names, k)
	}
	slices.Sort(names)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(p[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}
