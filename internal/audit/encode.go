package audit

import (
	"strconv"
	"time"
)

// appendPlain appends to dst the bytes json.Marshal encodes e to, for an
// event whose encoding needs no escaping and no compaction, and reports
// whether e was one: every string printable ASCII without '"', '\',
// '<', '>' and '&'; the time's year within 0 to 9999; the data free of
// whitespace outside its strings and of '<', '>', '&', U+2028 and U+2029
// anywhere. Any other event is left to json.Marshal (ok false).
//
// The data is copied as it is, not checked: Log.encode reads what it
// encoded back and insists that encoding/json encodes it to the same bytes
// (decodeCanonical), which only data that is one valid JSON value passes,
// so data json.Marshal would refuse is refused all the same. A decision's
// or a result's event is plain; json.Marshal compacted its data, a scan
// of every byte by encoding/json's state machine, twice per event
// (BenchmarkEncode, FuzzAppendPlain).
func appendPlain(dst []byte, e *Event) (_ []byte, ok bool) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	for _, s := range [...]string{e.Type, e.Actor, e.Session, e.Agent, e.Sponsor} {
		if !plainString(s) {
			return dst, false
		}
	}
	if !plainData(e.Data) {
		return dst, false
	}
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(e.V), 10)
	dst = append(dst, `,"index":`...)
	dst = strconv.AppendUint(dst, e.Index, 10)
	if e.Seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, e.Seq, 10)
	}
	if e.Prev != nil {
		dst = append(dst, `,"prev":`...)
		dst = strconv.AppendUint(dst, *e.Prev, 10)
	}
	dst = append(dst, `,"time":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","type":"`...)
	dst = append(dst, e.Type...)
	dst = append(dst, '"')
	for _, m := range [...]struct{ name, v string }{{`,"actor":"`, e.Actor}, {`,"session":"`, e.Session}, {`,"agent":"`, e.Agent}, {`,"sponsor":"`, e.Sponsor}} {
		if m.v != "" {
			dst = append(dst, m.name...)
			dst = append(dst, m.v...)
			dst = append(dst, '"')
		}
	}
	if len(e.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, e.Data...)
	}
	return append(dst, '}'), true
}

// plainString reports whether encoding/json writes s between quotes as it
// is.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// plainData reports whether encoding/json's compaction (with HTML
// escaping) leaves data, if it is valid JSON, as it is: no whitespace
// outside strings, no '<', '>' or '&', no U+2028 or U+2029.
func plainData(data []byte) bool {
	in := false // inside a string
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '<', '>', '&':
			return false
		case 0xE2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9
			if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
				return false
			}
		case '"':
			in = !in
		case '\\':
			if in {
				i++ // the escaped byte, '"' or '\' included
			}
		case ' ', '\t', '\n', '\r':
			if !in {
				return false
			}
		}
	}
	return true
}
