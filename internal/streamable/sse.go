package streamable

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// errEventTooLarge reports an SSE event larger than the configured bound.
var errEventTooLarge = errors.New("sse event too large")

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	ID       string // value of the last id field in the event, "" if none
	HasID    bool   // an id field was present
	Name     string // event type; "" means "message"
	Data     []byte // data lines joined with '\n'
	Retry    time.Duration
	HasRetry bool
}

// sseReader parses a text/event-stream body as specified by the WHATWG HTML
// standard (section 9.2.6), with every event bounded by max bytes (counting
// all of its lines, including field names). Lines may end in LF, CRLF or CR.
// An event still incomplete at end of input is discarded.
type sseReader struct {
	sc  *bufio.Scanner
	max int
}

func newSSEReader(r io.Reader, max int) *sseReader {
	sc := bufio.NewScanner(r)
	bufMax := max + 2
	if bufMax < 64 {
		bufMax = 64
	}
	// The buffer starts small and doubles as lines need: a standing
	// stream (one per session and upstream) mostly carries a priming
	// event and keep-alives, and 4 KiB held by each of 10,000 was 40 MB.
	sc.Buffer(make([]byte, 0, min(bufMax, 512)), bufMax)
	sc.Split(scanSSELines)
	return &sseReader{sc: sc, max: max}
}

// scanSSELines is a bufio.SplitFunc for LF, CRLF and lone CR line endings.
func scanSSELines(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		// CR: may be followed by LF.
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil // need one more byte to tell CR from CRLF
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Next returns the next event. It returns io.EOF at the end of input,
// errEventTooLarge for an event over the bound, and the underlying read error
// otherwise. Events with no data (such as priming events that carry only an
// id) are returned too; callers skip them.
func (r *sseReader) Next() (sseEvent, error) {
	var ev sseEvent
	var data bytes.Buffer
	size := 0
	hasData := false
	started := false
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if len(line) == 0 {
			if !started {
				size = 0 // a blank line ends whatever comments came before
				continue
			}
			if hasData {
				ev.Data = bytes.Clone(data.Bytes())
			}
			return ev, nil
		}
		size += len(line) + 1
		if size > r.max {
			return sseEvent{}, errEventTooLarge
		}
		if line[0] == ':' {
			continue // comment
		}
		started = true
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(name) {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "event":
			ev.Name = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID = string(value)
				ev.HasID = true
			}
		case "retry":
			if n, err := strconv.ParseUint(string(value), 10, 31); err == nil && len(value) > 0 {
				ev.Retry = time.Duration(n) * time.Millisecond
				ev.HasRetry = true
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return sseEvent{}, errEventTooLarge
		}
		return sseEvent{}, fmt.Errorf("read sse stream: %w", err)
	}
	return sseEvent{}, io.EOF
}

// appendSSEEvent appends the wire form of one event with the given id and
// JSON data. Data is compact JSON and so has no line breaks, but any are
// split into separate data lines to keep the framing intact.
func appendSSEEvent(b []byte, id string, data []byte) []byte {
	b = append(b, "id: "...)
	b = append(b, id...)
	b = append(b, '\n')
	if len(data) == 0 {
		b = append(b, "data:\n\n"...)
		return b
	}
	for len(data) > 0 {
		line := data
		i := bytes.IndexAny(data, "\r\n")
		if i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	return append(b, '\n')
}
