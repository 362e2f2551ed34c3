package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestCallHash(t *testing.T) {
	base := mustHash(t, "tools/call", "db.export", `{"a":1,"b":[true,null,"x"]}`)
	for _, tc := range []struct {
		name, method, tool, args string
		equal                    bool
	}{
		{"identical", "tools/call", "db.export", `{"a":1,"b":[true,null,"x"]}`, true},
		{"whitespace and order", "tools/call", "db.export", " {\n\"b\" : [ true , null , \"x\" ] ,\t\"a\":1 } ", true},
		{"escaped string", "tools/call", "db.export", `{"\u0061":1,"b":[true,null,"\u0078"]}`, true},
		{"number as written", "tools/call", "db.export", `{"a":1.0,"b":[true,null,"x"]}`, false},
		{"other value", "tools/call", "db.export", `{"a":2,"b":[true,null,"x"]}`, false},
		{"other tool", "tools/call", "db.read", `{"a":1,"b":[true,null,"x"]}`, false},
		{"other method", "resources/read", "db.export", `{"a":1,"b":[true,null,"x"]}`, false},
		{"name and method boundary", "tools/calldb.export", "", `{"a":1,"b":[true,null,"x"]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustHash(t, tc.method, tc.tool, tc.args) == base; got != tc.equal {
				t.Errorf("hash equal = %v, want %v", got, tc.equal)
			}
		})
	}
	if mustHash(t, "m", "n", "") != mustHash(t, "m", "n", "null") {
		t.Error("empty arguments do not hash as null")
	}
	if len(base) != 64 || strings.ToLower(base) != base {
		t.Errorf("hash %q is not lowercase hex sha256", base)
	}
}

func TestCallHashInvalid(t *testing.T) {
	for _, args := range []string{
		`{`, `{"a":1,}`, `{"a":1}{}`, `{"a":1} x`, `[1,2`, `{"a":1,"a":1}`, `{"a":{"b":1,"b":2}}`,
		"\"\xff\"", `"\ud800"`, `{a:1}`, `01`, `NaN`, `'a'`,
	} {
		if _, err := CallHash("m", "n", json.RawMessage(args)); !errors.Is(err, ErrInvalid) {
			t.Errorf("CallHash(%q) error %v, want ErrInvalid", args, err)
		}
	}
	if _, err := CallHash("m\xff", "n", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid UTF-8 method: %v", err)
	}
}

// FuzzCallHash checks the canonicalisation: CallHash rejects what
// encoding/json rejects; for accepted input the canonical form means the
// same value, is a fixed point, and every re-encoding of the value with
// other key order, escaping and whitespace hashes the same.
func FuzzCallHash(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1,"b":[true,null,"x"]}`, `{"b":{"d":1,"c":2},"a":"<&>"}`, `[1,2.50,-0,1e3,1E+3]`,
		`"\u00e9\ud83d\ude00"`, `{"a":1,"a":2}`, `{"":{"":[]}}`, `12345678901234567890123`, `{"a":`, "\"\xff\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := CallHash("tools/call", "t", json.RawMessage(s))
		if !json.Valid([]byte(s)) {
			if err == nil && strings.TrimSpace(s) != "" {
				t.Fatalf("CallHash accepted invalid JSON %q", s)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		canon, err := canonicalJSON(nil, []byte(s))
		if err != nil {
			t.Fatalf("canonicalJSON failed where CallHash succeeded: %v", err)
		}
		again, err := canonicalJSON(nil, canon)
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("canonical form is not a fixed point: %s → %s (%v)", canon, again, err)
		}
		orig, cv := decodeNumbers(t, []byte(s)), decodeNumbers(t, canon)
		if !reflect.DeepEqual(orig, cv) {
			t.Fatalf("canonical form %s changed the value of %q", canon, s)
		}
		for _, reverse := range []bool{false, true} {
			var buf bytes.Buffer
			permuted(&buf, orig, reverse)
			if h2, err := CallHash("tools/call", "t", buf.Bytes()); err != nil || h2 != h {
				t.Fatalf("re-encoding %s hashes %s (%v), original %q hashes %s", buf.Bytes(), h2, err, s, h)
			}
		}
	})
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// permuted writes v with object keys in sorted or reverse-sorted order,
// HTML-escaped strings and extra whitespace.
func permuted(buf *bytes.Buffer, v any, reverse bool) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if reverse {
			slices.Reverse(keys)
		}
		buf.WriteString("{ ")
		for i, k := range keys {
			if i > 0 {
				buf.WriteString(" ,\n")
			}
			permuted(buf, k, reverse)
			buf.WriteString(" : ")
			permuted(buf, x[k], reverse)
		}
		buf.WriteString(" }")
	case []any:
		buf.WriteString("[\t")
		for i, e := range x {
			if i > 0 {
				buf.WriteString(", ")
			}
			permuted(buf, e, reverse)
		}
		buf.WriteString("]")
	default:
		b, _ := json.Marshal(x) // escapes <, > and & as \u003c etc.
		buf.Write(b)
	}
}
