package approval

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// callHashVersion separates CallHash inputs from any other SHA-256 use.
const callHashVersion = "ward-approval-call-v1\n"

// CallHash returns the hex SHA-256 that binds an approval to one exact call:
//
//	sha256("ward-approval-call-v1\n" || canonical(["<method>","<name>",<arguments>]))
//
// where canonical is the JSON text with insignificant whitespace removed,
// object members sorted by the bytes of their unescaped UTF-8 names, strings
// re-encoded in the minimal form of RFC 8785 (section 3.2.2.2), and numbers
// kept exactly as written (1, 1.0 and 1e0 are different calls: ward does not
// guess which a tool treats as equal). Empty arguments hash as null.
//
// Arguments must be one JSON value: invalid JSON, invalid UTF-8 (including
// escaped lone surrogates), duplicate object member names and trailing data
// are rejected with an error wrapping ErrInvalid, since two parsers could read
// them differently.
func CallHash(method, name string, args json.RawMessage) (string, error) {
	c, err := canonicalCall(method, name, args)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, callHashVersion)
	h.Write(c)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// canonicalCall returns canonical(["method","name",args]).
func canonicalCall(method, name string, args []byte) ([]byte, error) {
	buf := make([]byte, 0, len(method)+len(name)+len(args)+16)
	buf = append(buf, '[')
	var err error
	if buf, err = jsontext.AppendQuote(buf, method); err != nil {
		return nil, fmt.Errorf("call hash: method is not valid UTF-8: %w", ErrInvalid)
	}
	buf = append(buf, ',')
	if buf, err = jsontext.AppendQuote(buf, name); err != nil {
		return nil, fmt.Errorf("call hash: name is not valid UTF-8: %w", ErrInvalid)
	}
	buf = append(buf, ',')
	if len(bytes.TrimSpace(args)) == 0 {
		buf = append(buf, "null"...)
	} else if buf, err = canonicalJSON(buf, args); err != nil {
		return nil, fmt.Errorf("call hash: arguments: %w", err)
	}
	return append(buf, ']'), nil
}

// canonicalJSON appends the canonical form of the single JSON value in src
// to dst.
func canonicalJSON(dst, src []byte) ([]byte, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(src),
		jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	dst, err := canonicalValue(dst, dec)
	if err != nil {
		return nil, invalidJSON(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("trailing data after JSON value: %w", ErrInvalid)
		}
		return nil, invalidJSON(err)
	}
	return dst, nil
}

func invalidJSON(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated JSON: %w", ErrInvalid)
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

type member struct {
	name  string
	value []byte
}

func canonicalValue(dst []byte, dec *jsontext.Decoder) ([]byte, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n', 't', 'f', '0':
		// For literals and numbers String returns the raw text as written.
		return append(dst, tok.String()...), nil
	case '"':
		return jsontext.AppendQuote(dst, tok.String())
	case '[':
		dst = append(dst, '[')
		for i := 0; dec.PeekKind() != ']'; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = canonicalValue(dst, dec); err != nil {
				return nil, err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return append(dst, ']'), nil
	case '{':
		var ms []member
		for dec.PeekKind() != '}' {
			nt, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			if nt.Kind() != '"' {
				return nil, fmt.Errorf("object member name is not a string")
			}
			name := nt.String() // before the next read voids nt
			v, err := canonicalValue(nil, dec)
			if err != nil {
				return nil, err
			}
			ms = append(ms, member{name: name, value: v})
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.name, b.name) })
		dst = append(dst, '{')
		for i, m := range ms {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = jsontext.AppendQuote(dst, m.name); err != nil {
				return nil, err
			}
			dst = append(dst, ':')
			dst = append(dst, m.value...)
		}
		return append(dst, '}'), nil
	default:
		return nil, fmt.Errorf("unexpected JSON token %v", tok.Kind())
	}
}
