// Package mcpmsg reads the JSON-RPC messages of the Model Context Protocol
// the one way ward reads them: strictly. A message is accepted only if it
// is one JSON object, valid UTF-8, without duplicate member names at any
// depth, with no top-level members but jsonrpc ("2.0"), id, method, params,
// result and error (spelled exactly so), and with an id that survives
// decoding exactly (a string, or an integer within ±2^53). Whatever the
// gateway decides is then read from that one reading.
//
// [Decode] reads one message; [Stdio] is a connection of newline-delimited
// messages (the MCP stdio transport) that reads with Decode and answers a
// line it refuses with a JSON-RPC error instead of ending the session.
package mcpmsg

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ward-dev/ward/internal/strictjson"
)

// ErrInvalid is wrapped by every error Decode returns; Code says which
// JSON-RPC error to answer with.
type ErrInvalid struct {
	Code int64 // jsonrpc.CodeParseError or jsonrpc.CodeInvalidRequest
	Err  error
}

func (e *ErrInvalid) Error() string { return e.Err.Error() }
func (e *ErrInvalid) Unwrap() error { return e.Err }

// envelope and errorMembers are the members a JSON-RPC 2.0 message and
// its error object have.
var (
	envelope     = map[string]bool{"jsonrpc": true, "id": true, "method": true, "params": true, "result": true, "error": true}
	errorMembers = map[string]bool{"code": true, "message": true, "data": true}
)

// Decode reads one message strictly.
func Decode(data []byte) (jsonrpc.Message, error) {
	// One strict reading: what Object accepts, Valid accepts too
	// (strictjson's FuzzValid checks it), so Valid is asked only to tell a
	// refusal's kind, unreadable JSON from JSON that is not an object.
	m, err := strictjson.Object(data)
	if err != nil {
		if verr := strictjson.Valid(data); verr != nil {
			return nil, &ErrInvalid{jsonrpc.CodeParseError, fmt.Errorf("parse error: %v", verr)}
		}
		return nil, &ErrInvalid{jsonrpc.CodeInvalidRequest, fmt.Errorf("invalid request: %v", err)}
	}
	if err := checkMembers(m); err != nil {
		return nil, &ErrInvalid{jsonrpc.CodeInvalidRequest, err}
	}
	if v := m["jsonrpc"]; string(v) != `"2.0"` {
		return nil, &ErrInvalid{jsonrpc.CodeInvalidRequest, errors.New(`invalid request: "jsonrpc" must be "2.0"`)}
	}
	if err := checkID(json.RawMessage(m["id"])); err != nil {
		return nil, &ErrInvalid{jsonrpc.CodeInvalidRequest, err}
	}
	if d := depth(data); d > maxDepth {
		return nil, &ErrInvalid{jsonrpc.CodeInvalidRequest, fmt.Errorf("invalid request: nested to depth %d, more than the maximum depth of %d", d, maxDepth)}
	}
	msg, err := fromMembers(m)
	if err != nil {
		return nil, &ErrInvalid{jsonrpc.CodeInvalidRequest, fmt.Errorf("invalid request: %v", err)}
	}
	return msg, nil
}

// fromMembers builds from a message's members, as strictjson.Object read
// them and checkMembers and checkID checked them, the message
// jsonrpc.DecodeMessage would decode (FuzzDecode compares the two),
// without reading the message a second time: the SDK's decoder allocates
// a 32 KiB buffer for every value it decodes, twice per message, which
// was most of the node's allocation per call.
func fromMembers(m map[string]jsontext.Value) (jsonrpc.Message, error) {
	id, err := idOf(m["id"])
	if err != nil {
		return nil, err
	}
	if method, ok := m["method"]; ok {
		name, plain := plainString(method)
		if !plain {
			if err := json.Unmarshal(method, &name); err != nil {
				return nil, fmt.Errorf("method: %v", err)
			}
		}
		return &jsonrpc.Request{Method: name, ID: id, Params: rawOf(m["params"])}, nil
	}
	if !id.IsValid() {
		return nil, errors.New("a response without an id")
	}
	resp := &jsonrpc.Response{ID: id, Result: rawOf(m["result"])}
	if e, ok := m["error"]; ok && string(e) != "null" {
		var we jsonrpc.Error
		if err := json.Unmarshal(e, &we); err != nil {
			return nil, fmt.Errorf("error: %v", err)
		}
		resp.Error = &we
	}
	return resp, nil
}

// plainString reads a JSON string without escapes, of a document already
// read strictly (valid UTF-8): its bytes between the quotes, as
// json.Unmarshal would read it. Any other value is not plain.
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	return string(v[1 : len(v)-1]), true
}

// rawOf is a member's value as the SDK keeps it: nil when absent, its
// bytes (copied: the message's buffer may be reused) otherwise.
func rawOf(v jsontext.Value) json.RawMessage {
	if v == nil {
		return nil
	}
	return json.RawMessage(bytes.Clone(v))
}

// idOf reads an id that checkID accepted: absent or null, a string, or an
// integer within ±2^53 (which the SDK reads through float64, exactly).
func idOf(raw []byte) (jsonrpc.ID, error) {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return jsonrpc.ID{}, nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return jsonrpc.ID{}, fmt.Errorf("id: %v", err)
		}
		return jsonrpc.MakeID(s)
	default:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return jsonrpc.ID{}, fmt.Errorf("id: %v", err)
		}
		return jsonrpc.MakeID(float64(n))
	}
}

// checkMembers refuses a message that is not an object of JSON-RPC 2.0
// members spelled exactly so (an error object likewise): a reader that
// matches names case-insensitively, as some servers do, would take
// {"Params": …} for the params ward did not see.
func checkMembers(m map[string]jsontext.Value) error {
	for name := range m {
		if envelope[name] {
			continue
		}
		// Named in sorted order, so that the same message is always
		// refused with the same words.
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if !envelope[name] {
				return fmt.Errorf("invalid request: unknown member %q: a JSON-RPC message has only jsonrpc, id, method, params, result and error, spelled so", name)
			}
		}
	}
	if e, ok := m["error"]; ok {
		em, err := strictjson.Object(e)
		if err != nil {
			return fmt.Errorf("invalid request: error: %v", err)
		}
		for _, name := range slices.Sorted(maps.Keys(em)) {
			if !errorMembers[name] {
				return fmt.Errorf("invalid request: error: unknown member %q: an error has only code, message and data", name)
			}
		}
	}
	return nil
}

// checkID refuses ids that would not survive decoding exactly (the SDK
// decodes numbers through float64): fractions, exponents and integers
// beyond ±2^53. Two different ids must never become one.
func checkID(id json.RawMessage) error {
	if len(id) == 0 || id[0] == '"' || string(id) == "null" {
		return nil
	}
	n, err := strconv.ParseInt(string(id), 10, 64)
	if err != nil || n > 1<<53 || n < -(1<<53) {
		return fmt.Errorf("invalid request: id %s must be a string or an integer within ±2^53", id)
	}
	return nil
}

// errTooLong is why a Stdio connection ends on an overlong line.
var errTooLong = errors.New("mcpmsg: a line too long")

// DefaultMaxLine bounds one line of a Stdio connection.
const DefaultMaxLine = 4 << 20

// Stdio is an MCP connection over newline-delimited JSON: messages are read
// from r with Decode and written to w, one per line. A line that Decode
// refuses is answered on w with a JSON-RPC error (and reported to
// OnRefuse, if set); a line longer than the limit ends the connection.
type Stdio struct {
	// OnRefuse, if set, is told of every line refused, with the reason.
	OnRefuse func(reason string)

	r    *bufio.Reader
	max  int
	wmu  sync.Mutex
	w    io.Writer
	c    io.Closer
	once sync.Once
}

var _ mcp.Connection = (*Stdio)(nil)

// NewStdio returns a connection reading r and writing w; maxLine <= 0
// means DefaultMaxLine. closer, if not nil, is closed by Close.
func NewStdio(r io.Reader, w io.Writer, closer io.Closer, maxLine int) *Stdio {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Stdio{r: bufio.NewReaderSize(r, 64<<10), max: maxLine, w: w, c: closer}
}

// Read implements mcp.Connection.
func (s *Stdio) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		line, err := s.line()
		if err != nil {
			if errors.Is(err, errTooLong) && s.OnRefuse != nil {
				s.OnRefuse(err.Error() + "; the connection is closed")
			}
			return nil, err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		msg, err := Decode(line)
		if err == nil {
			return msg, nil
		}
		var inv *ErrInvalid
		code := int64(jsonrpc.CodeInvalidRequest)
		if errors.As(err, &inv) {
			code = inv.Code
		}
		if s.OnRefuse != nil {
			s.OnRefuse(err.Error())
		}
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": code, "message": err.Error()}})
		if werr := s.writeLine(body); werr != nil {
			return nil, werr
		}
	}
}

// line reads one line of at most s.max bytes.
func (s *Stdio) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > s.max+1 {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLong, s.max)
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}

// Write implements mcp.Connection.
func (s *Stdio) Write(ctx context.Context, msg jsonrpc.Message) error {
	b, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return err
	}
	return s.writeLine(b)
}

func (s *Stdio) writeLine(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.w.Write(append(b, '\n'))
	return err
}

// Close implements mcp.Connection.
func (s *Stdio) Close() error {
	var err error
	s.once.Do(func() {
		if s.c != nil {
			err = s.c.Close()
		}
	})
	return err
}

// SessionID implements mcp.Connection.
func (s *Stdio) SessionID() string { return "" }

// DecodeLenient reads a message exactly as jsonrpc.DecodeMessage does,
// for messages ward relays rather than decides on (an upstream server's):
// a message Decode accepts, which Decode reads as the SDK does
// (FuzzDecode), is read by Decode; any other by the SDK. The SDK's
// decoder allocates a 32 KiB buffer for every value it decodes, twice per
// message; Decode does not.
func DecodeLenient(data []byte) (jsonrpc.Message, error) {
	if m, err := Decode(data); err == nil {
		return m, nil
	}
	return jsonrpc.DecodeMessage(data)
}

// maxDepth is the nesting of arrays and objects the SDK's decoder accepts.
const maxDepth = 1000

// depth is how deeply data's arrays and objects nest (outside strings).
func depth(data []byte) int {
	d, most, in, esc := 0, 0, false, false
	for _, c := range data {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case in:
		case c == '{' || c == '[':
			d++
			most = max(most, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return most
}
