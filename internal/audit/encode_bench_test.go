package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// decisionEvent is a "decision" event as the gateway appends one for a
// tools/call (enforce.Pipeline.Check), the most frequent kind.
func decisionEvent() Event {
	return Event{Type: "decision", Actor: "spiffe://test.ward/agent/bench/session/0f8e2a7c9b1d4e6f", Session: "0f8e2a7c9b1d4e6f", Agent: "bench", Sponsor: "alice@example.com",
		Time: time.Unix(1767225600, 123456789),
		Data: []byte(`{"action":"call_tool","approvals":null,"arguments_sha256":"a5b1c0f3d7e2b9a4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2","decision":"allow","grant":"g-7f3a9c2e","method":"tools/call","name":"up.echo","policies":["policy0"],"reason":"allowed by policy0 (p.cedar:1)","server":"up"}`)}
}

// BenchmarkEncode is the CPU an append spends on its caller's goroutine
// before the writer: the event's canonical JSON and the check that it
// reads back to the same bytes.
func BenchmarkEncode(b *testing.B) {
	l := &Log{cfg: Config{Now: time.Now, MaxEventSize: DefaultMaxEventSize}}
	e := decisionEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

// decodeStrict is how decodeCanonical read an entry before it used
// json.Unmarshal: a decoder refusing unknown fields and trailing data.
func decodeStrict(b []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, err
	}
	if dec.InputOffset() != int64(len(b)) {
		return Event{}, errors.New("trailing data")
	}
	again, err := json.Marshal(e)
	if err != nil || !bytes.Equal(again, b) {
		return Event{}, errors.New("not in canonical encoding")
	}
	return e, nil
}

// FuzzDecodeCanonical: decodeCanonical accepts exactly what the strict
// decoder accepted, and reads it the same.
func FuzzDecodeCanonical(f *testing.F) {
	l := &Log{cfg: Config{Now: time.Now, MaxEventSize: DefaultMaxEventSize}}
	for _, e := range []Event{decisionEvent(), testEvent(3), {Type: "x"}} {
		b, err := l.encode(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, ' '))
		f.Add(bytes.Replace(b, []byte(`"type"`), []byte(`"Type"`), 1))
		f.Add(bytes.Replace(b, []byte(`"type"`), []byte(`"extra":1,"type"`), 1))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeCanonical(b)
		want, werr := decodeStrict(b)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeCanonical: %v; strict decoder: %v", err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("read differently:\n%+v\n%+v", got, want)
		}
	})
}

// FuzzAppendPlain: an event appendPlain takes is encoded to json.Marshal's
// bytes; where json.Marshal refuses it (invalid data), what appendPlain
// wrote does not read back (decodeCanonical), so encode refuses it too.
func FuzzAppendPlain(f *testing.F) {
	f.Add("decision", "spiffe://td/agent/a/session/1", "s1", uint64(3), int64(1767225600123456789), []byte(`{"a":[1,"b c",{"d":null}],"e":"\"x\\y"}`))
	f.Add("x", "", "", uint64(0), int64(0), []byte(` {"a": 1}`))
	f.Add("x", "<", "&", uint64(1), int64(-9000000000000000000), []byte(`{"a":"<"}`))
	f.Add("x", "a", "", uint64(0), int64(5), []byte(`{"a":1}}`))
	f.Add("x", "a", "", uint64(0), int64(5), []byte(`1,"type":"y"`))
	f.Add("x", "é", "", uint64(0), int64(5), []byte("\"\u2028\""))
	f.Fuzz(func(t *testing.T, typ, actor, session string, seq uint64, nanos int64, data []byte) {
		e := Event{V: schemaVersion, Type: typ, Actor: actor, Session: session, Seq: seq, Time: time.Unix(0, nanos).UTC(), Data: data}
		if seq%3 == 1 {
			e.Prev = &seq
		}
		got, ok := appendPlain(nil, &e)
		if !ok {
			return
		}
		want, err := json.Marshal(e)
		if err != nil {
			if _, derr := decodeCanonical(got); derr == nil {
				t.Fatalf("json.Marshal refuses (%v), but %s reads back", err, got)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendPlain:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}
