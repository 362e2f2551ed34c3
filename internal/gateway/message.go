package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
	err := strictjson.Walk(trimmed, maxDepth, func(depth int, name string, start, end int64) {
		if depth == 1 {
			p[name] = jsontext.Value(bytes.TrimLeft(trimmed[start:end], " \t\r\n:"))
		}
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkNames refuses a document that strictjson.Walk refuses.
func checkNames(doc []byte) error { return strictjson.Walk(doc, maxDepth, nil) }

// fold is strictjson.Fold.
func fold(s string) string { return strictjson.Fold(s) }

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
