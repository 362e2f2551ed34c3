package redact_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/ward-dev/ward/internal/redact"
)

// FuzzJSON redacts arbitrary documents, alone and with a password and an
// AWS key injected, and checks that: what is valid JSON within the limits is
// accepted; the output is valid JSON and never holds the injected secrets;
// redacting the output again changes nothing (output and paths); and with no
// rule at all the output is the input, only compacted.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `"AKIAABCDEFGHIJKLMNOP"`, `1.5e300`,
		`{"to":"bob@example.com","password":"hunter2","note":"key AKIAABCDEFGHIJKLMNOP"}`,
		`{"a":{"b":[{"token":"t"},"Bearer abc"]},"c":"postgres://u:p@h/db"}`,
		`{"headers":{"Authorization":"Basic dXNlcjpwYXNz"},"x":"redacted:hmac-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
		`{"k":"-----BEGIN PRIVATE KEY-----\nabc"}`, `{"a.b":{"*":1}}`, `[[[[[[]]]]]]`, `{"a":1,"a":2}`, `{"a":"\u00e9\ud800"}`,
		`"redacted:hmac-sha256:redacted:hmac-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAredacted:hmac-sha256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"`,
	} {
		f.Add([]byte(s), "hunter2-correct-horse", "ABCDEFGHIJKLMNOP")
	}
	f.Add([]byte(`{"x":"sk-aaaaaaaaaaaaaaaaaaaaaaaaaaa"}`), "p@ss\"word\\\u2028", "0123456789ABCDEF")
	rules := []redact.Rule{
		{Path: "a.*.b"},
		{Tool: "t*", Path: `x\.y`},
		{Path: "c", Pattern: `p[a-z]+`},
		{Pattern: `(?i)pin:\s*(?P<secret>\d+)`},
	}
	r := mustNew(f, redact.Config{Rules: rules})
	none := mustNew(f, redact.Config{NoDefaults: true})
	f.Fuzz(func(t *testing.T, doc []byte, password, key string) {
		check := func(doc []byte) (out []byte, ok bool) {
			out, paths, err := r.JSON("tool", doc)
			if err != nil {
				if jsontext.Value(doc).IsValid() && len(doc) <= redact.MaxSize && depth(doc) <= redact.MaxDepth {
					t.Fatalf("valid document refused: %v\n%s", err, doc)
				}
				return nil, false
			}
			if !jsontext.Value(out).IsValid() {
				t.Fatalf("output is not valid JSON:\n%s", out)
			}
			if !slices.IsSorted(paths) || len(slices.Compact(slices.Clone(paths))) != len(paths) {
				t.Fatalf("paths not sorted and distinct: %q", paths)
			}
			again, paths2, err := r.JSON("tool", out)
			if err != nil || !bytes.Equal(again, out) || !slices.Equal(paths, paths2) {
				t.Fatalf("not idempotent:\n%s %q\n%s %q %v", out, paths, again, paths2, err)
			}
			return out, true
		}
		if _, ok := check(doc); ok {
			plain, _, err := none.JSON("tool", doc)
			if want, _ := jsontext.AppendFormat(nil, doc); err != nil || !bytes.Equal(plain, want) {
				t.Fatalf("without rules, output differs from the compacted input:\n%s\n%s\n%v", plain, want, err)
			}
		}
		// Inject secrets into a valid document.
		if !jsontext.Value(doc).IsValid() || len(password) < 8 || strings.Contains(password, redact.Prefix) {
			return
		}
		akia := []byte("AKIA")
		for i := range 16 {
			c := byte('A')
			if i < len(key) {
				c = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[int(key[i])%36]
			}
			akia = append(akia, c)
		}
		pw, _ := jsontext.AppendQuote(nil, password)
		wrapped := append([]byte(`{"doc":`), doc...)
		wrapped = append(wrapped, `,"password":`...)
		wrapped = append(wrapped, pw...)
		wrapped = append(wrapped, `,"note":"key `...)
		wrapped = append(wrapped, akia...)
		wrapped = append(wrapped, ` here"}`...)
		if bytes.Contains(doc, []byte(password)) || bytes.Contains(doc, pw[1:len(pw)-1]) || bytes.Contains(doc, akia) ||
			strings.Contains(`{"doc":,"password":"note":"key  here"}`, password) {
			return // the secret is also elsewhere, in clear
		}
		out, ok := check(wrapped)
		if !ok {
			return // too deep once wrapped
		}
		for _, secret := range [][]byte{[]byte(password), pw[1 : len(pw)-1], akia} {
			if bytes.Contains(out, secret) {
				t.Fatalf("output holds the secret %q:\n%s", secret, out)
			}
		}
	})
}

// depth returns the nesting depth of the valid JSON v.
func depth(v []byte) int {
	dec := jsontext.NewDecoder(bytes.NewReader(v))
	deepest := 0
	for {
		if _, err := dec.ReadToken(); err != nil {
			return deepest
		}
		deepest = max(deepest, dec.StackDepth())
	}
}
