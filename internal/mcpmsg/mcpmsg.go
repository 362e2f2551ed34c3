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
	if err := strictjson.Valid(data); err != nil {
		return nil, &ErrInvalid{jsonrpc.CodeParseError, fmt.Errorf("parse error: %v", err)}
	}
	m, err := strictjson.Object(data)
	if err != nil {
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
	msg, err := jsonrpc.DecodeMessage(data)
	if err != nil {
		return nil, &ErrInvalid{jsonrpc.CodeInvalidRequest, fmt.Errorf("invalid request: %v", err)}
	}
	return msg, nil
}

// checkMembers refuses a message that is not an object of JSON-RPC 2.0
// members spelled exactly so (an error object likewise): a reader that
// matches names case-insensitively, as some servers do, would take
// {"Params": …} for the params ward did not see.
func checkMembers(m map[string]jsontext.Value) error {
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if !envelope[name] {
			return fmt.Errorf("invalid request: unknown member %q: a JSON-RPC message has only jsonrpc, id, method, params, result and error, spelled so", name)
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
