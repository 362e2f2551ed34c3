package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

type inner struct {
	Tools []string `json:"tools"`
}

type embedded struct {
	Kind string `json:"kind"`
}

type doc struct {
	embedded
	Name    string          `json:"name"`
	Ceiling *inner          `json:"ceiling,omitempty"`
	TTL     time.Duration   `json:"ttl"`
	Raw     json.RawMessage `json:"raw,omitempty"`
	When    time.Time       `json:"when,omitzero"`
	N       int             `json:"n,string,omitempty"`
}

func TestUnmarshalRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"duplicate top", `{"name":"a","name":"b"}`, `duplicate member "/name"`},
		{"duplicate nested", `{"ceiling":{"tools":["x"],"tools":["*"]}}`, `duplicate member "/ceiling/tools"`},
		{"duplicate object", `{"ceiling":{"tools":["demo.echo"]},"ceiling":{"tools":["*"]}}`, `duplicate member "/ceiling"`},
		{"case", `{"Name":"a"}`, `unknown member "/Name"`},
		{"case nested", `{"ceiling":{"Tools":["*"]}}`, `unknown member "/ceiling/Tools"`},
		{"unknown", `{"nme":"a"}`, `unknown member "/nme"`},
		{"utf8", "{\"name\":\"\xff\"}", "invalid UTF-8"},
		{"trailing", `{"name":"a"} {}`, "after"},
		{"trailing garbage", `{"name":"a"}x`, "invalid"},
		{"empty", ``, "invalid JSON"},
		{"type", `{"name":1}`, `"/name"`},
		{"duplicate in raw", `{"raw":{"a":1,"a":2}}`, `duplicate member "/raw/a"`},
		{"duplicate escaped", `{"name":"a","n\u0061me":"b"}`, "duplicate member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			err := Unmarshal([]byte(tc.in), &d)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unmarshal(%s) = %v, want an ErrInvalid containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestUnmarshalV1Semantics(t *testing.T) {
	in := `{"kind":"k","name":"a","ceiling":{"tools":["x"]},"ttl":1500000000,"raw": {"b" : [1, 2]},"when":"2026-12-07T01:00:00Z","n":"7"}`
	var got doc
	if err := Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	var want doc
	if err := json.Unmarshal([]byte(in), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("strict decode differs from encoding/json:\n got %+v\nwant %+v", got, want)
	}
	if string(got.Raw) != `{"b" : [1, 2]}` {
		t.Fatalf("RawMessage = %s, want the bytes as written", got.Raw)
	}
}

func TestUnmarshalOpen(t *testing.T) {
	var d doc
	if err := UnmarshalOpen([]byte(`{"name":"a","extra":{"x":1}}`), &d); err != nil || d.Name != "a" {
		t.Fatalf("UnmarshalOpen = %v, %+v", err, d)
	}
	// Case still matters: an unknown "Name" is ignored, not taken for "name".
	d = doc{}
	if err := UnmarshalOpen([]byte(`{"Name":"a"}`), &d); err != nil || d.Name != "" {
		t.Fatalf("UnmarshalOpen(Name) = %v, %+v; want the member ignored", err, d)
	}
	if err := UnmarshalOpen([]byte(`{"extra":1,"extra":2}`), &d); err == nil {
		t.Fatal("duplicate unknown members accepted")
	}
}

func TestObject(t *testing.T) {
	m, err := Object([]byte(`{"uri":"a", "URI" : "b","x":{"y":[1, 2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(m["uri"]) != `"a"` || string(m["URI"]) != `"b"` || string(m["x"]) != `{"y":[1, 2]}` {
		t.Fatalf("Object = %q", m)
	}
	for _, in := range []string{`[]`, `null`, `"s"`, `{"a":1,"a":1}`, `{"a":{"b":1,"b":1}}`} {
		if _, err := Object([]byte(in)); err == nil {
			t.Errorf("Object(%s) accepted", in)
		}
	}
}

func TestRead(t *testing.T) {
	if _, err := Read(strings.NewReader(`{"a":"`+strings.Repeat("x", 100)+`"}`), 50); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read over the limit = %v", err)
	}
	if b, err := Read(strings.NewReader(` {"a":1} `), 50); err != nil || string(b) != ` {"a":1} ` {
		t.Fatalf("Read = %q, %v", b, err)
	}
	var d doc
	if err := Decode(strings.NewReader(`{"name":"x"}`), 100, &d); err != nil || d.Name != "x" {
		t.Fatalf("Decode = %v", err)
	}
}

// FuzzUnmarshal checks that whatever Unmarshal accepts, encoding/json reads
// the same way, and that Valid agrees with it.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"ceiling":{"tools":["x"]}}`, `{"Name":"a"}`, `{"name":"a","name":"b"}`, `{"ttl":5}`, `{}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		err := Unmarshal(data, &d)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := Valid(data); err != nil {
			t.Fatalf("Unmarshal accepted what Valid refuses: %v", err)
		}
		var v1 doc
		if err := json.Unmarshal(data, &v1); err != nil {
			t.Fatalf("encoding/json refuses what Unmarshal accepted: %v", err)
		}
		if !reflect.DeepEqual(d, v1) {
			t.Fatalf("strict and encoding/json differ on %q:\n%+v\n%+v", data, d, v1)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) == nil {
			for k := range m {
				// every accepted name is one of the declared ones, exactly
				switch k {
				case "kind", "name", "ceiling", "ttl", "raw", "when", "n":
				default:
					t.Fatalf("accepted member %q", k)
				}
			}
		}
	})
}

func BenchmarkValid(b *testing.B) {
	data := []byte(`{"jsonrpc":"2.0","id":12,"result":{"content":[{"type":"text","text":"hello"}],"structuredContent":{"text":"hello"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := Valid(data); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzValid: Valid's check in place accepts exactly what the decoder that
// says what is wrong accepts.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ` {"a":[1,{"b":2}]} `, `{"a":{"b":"\xff"}}`, `{"a":1} x`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, "\"\xff\"", `1 2`, ``, `[`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast := jsontext.Value(data).IsValid()
		slow := invalid(data)
		if fast != (slow == nil) {
			t.Fatalf("in place: %v; decoder: %v", fast, slow)
		}
		if slow != nil && !errors.Is(slow, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", slow)
		}
		// mcpmsg.Decode relies on it: an object Object accepts is valid.
		if _, err := Object(data); err == nil && slow != nil {
			t.Fatalf("Object accepted what Valid refuses: %v", slow)
		}
	})
}
