package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/go-json-experiment/json/jsontext"
)

var emptyRecord = types.NewRecord(nil)

// argumentsValue converts a call's JSON arguments into the Cedar record
// context.arguments, following the rules in the package documentation.
// Nil, empty and null arguments give an empty record.
func argumentsValue(raw []byte) (types.Value, error) {
	return argumentsValueWith(raw, nil)
}

// decoders reuses JSON decoders across requests.
type decoders struct{ pool sync.Pool }

// pooledDecoder is a decoder with the buffer it reads; jsontext parses a
// bytes.Buffer in place, without copying.
type pooledDecoder struct {
	buf bytes.Buffer
	dec *jsontext.Decoder
}

func (d *decoders) get(raw []byte) *pooledDecoder {
	var pd *pooledDecoder
	if d != nil {
		pd, _ = d.pool.Get().(*pooledDecoder)
	}
	if pd == nil {
		pd = &pooledDecoder{}
		pd.buf = *bytes.NewBuffer(raw)
		pd.dec = jsontext.NewDecoder(&pd.buf)
		return pd
	}
	pd.buf = *bytes.NewBuffer(raw)
	pd.dec.Reset(&pd.buf)
	return pd
}

// put returns pd to the pool, first dropping its reference to the
// arguments, which may hold secrets.
func (d *decoders) put(pd *pooledDecoder) {
	pd.buf = bytes.Buffer{}
	pd.dec.Reset(&pd.buf)
	if d != nil {
		d.pool.Put(pd)
	}
}

// argumentsValueWith is argumentsValue with decoders taken from pool (nil
// for none).
func argumentsValueWith(raw []byte, pool *decoders) (types.Value, error) {
	if len(raw) == 0 {
		return emptyRecord, nil
	}
	// jsontext rejects duplicate member names and invalid UTF-8 by default.
	// A bytes.Buffer is parsed in place, without copying.
	pd := pool.get(raw)
	defer pool.put(pd)
	dec := pd.dec
	switch k := dec.PeekKind(); k {
	case '{':
	case 'n':
	case jsontext.KindInvalid:
		_, err := dec.ReadToken()
		return nil, fmt.Errorf("arguments are not valid JSON: %w", errorWithoutInput(err))
	default:
		return nil, fmt.Errorf("arguments must be a JSON object, got %s", kindName(k))
	}
	v, present, err := readValue(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, errors.New("arguments are not valid JSON: data after the object")
	}
	if !present {
		return emptyRecord, nil
	}
	return v, nil
}

// readValue reads one JSON value at the given nesting depth. present is
// false for null, which the caller omits.
func readValue(dec *jsontext.Decoder, depth int) (v types.Value, present bool, err error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, false, errorWithoutInput(err)
	}
	switch tok.Kind() {
	case 'n':
		return nil, false, nil
	case 't', 'f':
		return types.Boolean(tok.Bool()), true, nil
	case '"':
		return types.String(tok.String()), true, nil
	case '0':
		text := tok.String()
		if !strings.ContainsAny(text, ".eE") {
			if n, err := strconv.ParseInt(text, 10, 64); err == nil {
				return types.Long(n), true, nil
			}
		}
		return types.String(text), true, nil
	case '{':
		if depth >= MaxArgumentDepth {
			return nil, false, fmt.Errorf("nested deeper than %d levels", MaxArgumentDepth)
		}
		m := types.RecordMap{}
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, false, errorWithoutInput(err)
			}
			key := types.String(name.String())
			val, ok, err := readValue(dec, depth+1)
			if err != nil {
				return nil, false, err
			}
			if ok {
				m[key] = val
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, false, errorWithoutInput(err)
		}
		return types.NewRecord(m), true, nil
	case '[':
		if depth >= MaxArgumentDepth {
			return nil, false, fmt.Errorf("nested deeper than %d levels", MaxArgumentDepth)
		}
		var vals []types.Value
		for dec.PeekKind() != ']' {
			val, ok, err := readValue(dec, depth+1)
			if err != nil {
				return nil, false, err
			}
			if ok {
				vals = append(vals, val)
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, false, errorWithoutInput(err)
		}
		return types.NewSet(vals...), true, nil
	}
	return nil, false, fmt.Errorf("unexpected JSON token %s", tok.Kind())
}

// errorWithoutInput keeps a JSON syntax error's description and offset but
// not the input it quotes, which may be sensitive: arguments can carry
// secrets and diagnostics are logged.
func errorWithoutInput(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return fmt.Errorf("offset %d: %w", se.ByteOffset, se.Err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of input")
	}
	return err
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case '[':
		return "an array"
	}
	return "invalid JSON"
}
