package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// decoders reuses JSON decoders: Walk is on every call's path.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil)) }}

// Walk reads one JSON value from doc, refusing duplicate names and invalid
// UTF-8, nesting deeper than maxDepth, data after the value, and objects
// with two member names equal under Unicode case folding ("uri" and
// "URI"), which a reader matching names without regard to case would
// confuse. It calls member (if not nil) for every object member it has
// read, with the depth of its object (1 for the top) and the offsets of
// what follows the name up to the end of the value. Errors wrap ErrInvalid.
func Walk(doc []byte, maxDepth int, member func(depth int, name string, start, end int64)) error {
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
	done := false // one whole value has been read
	// ended closes a value in the innermost object, if any.
	ended := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			top := &stack[n-1]
			if member != nil {
				member(n, top.name, top.start, dec.InputOffset())
			}
			top.key = true
		}
	}
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return fmt.Errorf("%w: unexpected end", ErrInvalid)
			}
			return nil
		}
		if err != nil {
			return describe(err)
		}
		if done {
			return fmt.Errorf("%w: data after the JSON value", ErrInvalid)
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
				return fmt.Errorf("%w: nested deeper than %d levels", ErrInvalid, maxDepth)
			}
			stack = append(stack, frame{object: tok.Kind() == '{', key: true})
			continue
		case '}', ']':
			stack = stack[:len(stack)-1]
		}
		ended()
		done = len(stack) == 0
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
		return fmt.Errorf("%w: members %q and %q differ only in case; ward refuses them rather than guess which one is meant", ErrInvalid, prev, name)
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
				s.folded[Fold(w)] = w
			}
		}
		return nil
	}
	key := Fold(name)
	if prev, ok := s.folded[key]; ok {
		return clash(prev)
	}
	s.folded[key] = name
	return nil
}

// Fold maps s to a canonical form shared by every string equal to it under
// Unicode simple case folding (strings.EqualFold): each rune becomes the
// least rune of its folding orbit (so ASCII letters become upper case).
func Fold(s string) string {
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
