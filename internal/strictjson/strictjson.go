// Package strictjson reads JSON that comes from outside ward — API bodies,
// token-exchange fields, MCP messages, upstream answers, webhook replies,
// configuration — in exactly one way, so that ward and whoever else reads
// the same bytes cannot disagree about what they say.
//
// A document is accepted only if it is one JSON value (whitespace around it
// is allowed, nothing else), is valid UTF-8, and has no object with two
// members of the same name at any depth. Member names are matched to Go
// struct fields case-sensitively: {"URI": …} does not fill a field tagged
// "uri". [Unmarshal] also refuses members no field is declared for;
// [UnmarshalOpen] accepts and ignores them, for documents (answers of
// upstream servers and webhooks) that may carry fields ward does not use.
//
// Everything else follows encoding/json's rules (the v1 semantics of
// github.com/go-json-experiment/json): durations are integers of
// nanoseconds, json.RawMessage holds the member's bytes as written, and
// omitempty and string tags mean what they mean there.
//
//	var p struct{ URI string `json:"uri"` }
//	strictjson.Unmarshal([]byte(`{"uri":"a","URI":"b"}`), &p)  // error: unknown member "URI"
//	strictjson.Unmarshal([]byte(`{"uri":"a","uri":"b"}`), &p)  // error: duplicate member "uri"
package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// ErrInvalid is wrapped by every error that says the input is not
// acceptable JSON (as opposed to an I/O error of the reader).
var ErrInvalid = errors.New("invalid JSON")

// options are v1 semantics with every leniency of v1 turned off.
var (
	closed = jsonv2.JoinOptions(
		jsonv1.DefaultOptionsV1(),
		jsonv2.MatchCaseInsensitiveNames(false),
		jsonv1.MatchCaseSensitiveDelimiter(true),
		jsontext.AllowDuplicateNames(false),
		jsontext.AllowInvalidUTF8(false),
		jsonv2.RejectUnknownMembers(true),
		jsonv1.ReportErrorsWithLegacySemantics(false),
	)
	open = jsonv2.JoinOptions(closed, jsonv2.RejectUnknownMembers(false))
)

// Unmarshal decodes data into v strictly: one value, valid UTF-8, no
// duplicate member names, names matched case-sensitively, no unknown
// members.
func Unmarshal(data []byte, v any) error { return unmarshal(data, v, closed) }

// UnmarshalOpen is Unmarshal but ignores members v declares no field for.
func UnmarshalOpen(data []byte, v any) error { return unmarshal(data, v, open) }

func unmarshal(data []byte, v any, opts jsonv2.Options) error {
	if err := jsonv2.Unmarshal(data, v, opts); err != nil {
		return describe(err)
	}
	return nil
}

// Decode reads one document of at most limit bytes from r and decodes it
// as Unmarshal does. A longer document is refused with an error that
// wraps ErrTooLarge.
func Decode(r io.Reader, limit int64, v any) error {
	data, err := Read(r, limit)
	if err != nil {
		return err
	}
	return Unmarshal(data, v)
}

// ErrTooLarge is wrapped by Read and Decode when the input exceeds its
// limit.
var ErrTooLarge = errors.New("JSON document too large")

// Read reads at most limit bytes from r, refusing more, and checks that
// they are one strict JSON value ([Valid]).
func Read(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if err := Valid(data); err != nil {
		return nil, err
	}
	return data, nil
}

// Valid reports whether data is one JSON value with valid UTF-8 and no
// duplicate member names at any depth.
func Valid(data []byte) error {
	// The same check on a pooled decoder reading data in place (no reader,
	// no buffer, no copy); the reader's decoder runs only to say what is
	// wrong with data it refuses.
	if jsontext.Value(data).IsValid() {
		return nil
	}
	return invalid(data)
}

// invalid says what is wrong with data, or nil if nothing is: Valid's
// check, on a decoder of its own, for its error.
func invalid(data []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	if _, err := dec.ReadValue(); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty document", ErrInvalid)
		}
		return describe(err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON value", ErrInvalid)
	}
	return nil
}

// Object splits a JSON object into its members, strictly: the names as
// written (case-sensitive, no duplicates) and each member's value as its
// exact bytes. A document that is not an object is refused.
func Object(data []byte) (map[string]jsontext.Value, error) {
	var m map[string]jsontext.Value
	if err := unmarshal(data, &m, closed); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: want an object, not null", ErrInvalid)
	}
	return m, nil
}

// describe turns the library's errors into one-line messages that say what
// was wrong and where, wrapping ErrInvalid.
func describe(err error) error {
	var se *jsonv2.SemanticError
	var ste *jsontext.SyntacticError
	switch {
	case errors.Is(err, jsonv2.ErrUnknownName) && errors.As(err, &se):
		return fmt.Errorf("%w: unknown member %s (names are case-sensitive)", ErrInvalid, pointer(se.JSONPointer))
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &ste):
		return fmt.Errorf("%w: duplicate member %s", ErrInvalid, pointer(ste.JSONPointer))
	case errors.As(err, &ste):
		msg := ste.Err.Error()
		if ste.JSONPointer != "" {
			return fmt.Errorf("%w: %s at %s", ErrInvalid, msg, pointer(ste.JSONPointer))
		}
		return fmt.Errorf("%w: %s at byte %d", ErrInvalid, msg, ste.ByteOffset)
	case errors.As(err, &se):
		what := "a value of the wrong type"
		if se.JSONKind != 0 && se.GoType != nil {
			what = fmt.Sprintf("a JSON %s where %s is expected", se.JSONKind, goKind(se.GoType.String()))
		}
		if se.Err != nil && se.JSONKind == 0 {
			what = se.Err.Error()
		}
		if se.JSONPointer != "" {
			return fmt.Errorf("%w: %s at %s", ErrInvalid, what, pointer(se.JSONPointer))
		}
		return fmt.Errorf("%w: %s", ErrInvalid, what)
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

func pointer(p jsontext.Pointer) string {
	if p == "" {
		return "at the top level"
	}
	return fmt.Sprintf("%q", string(p))
}

func goKind(t string) string {
	switch t {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint", "uint64", "uint32", "float64", "float32", "time.Duration":
		return "a number"
	}
	if len(t) > 2 && t[:2] == "[]" {
		return "an array"
	}
	if len(t) > 4 && t[:4] == "map[" {
		return "an object"
	}
	return t
}
