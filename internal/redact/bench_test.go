package redact_test

import (
	"encoding/json"
	"testing"

	"github.com/ward-dev/ward/internal/redact"
)

// benchArgs is a typical tools/call arguments object of about 300 bytes,
// with one secret member and one secret inside a string.
var benchArgs = []byte(`{"to":"bob@example.com","cc":["carol@example.com","dave@example.com"],"subject":"Quarterly report",` +
	`"body":"Hi Bob, the report is attached. Use key AKIAABCDEFGHIJKLMNOP for the bucket.","password":"hunter2",` +
	`"priority":3,"attachments":[{"name":"q3.pdf","size":48213}],"dry_run":false}`)

// BenchmarkJSON compares redacting an arguments object with the defaults
// (and with one path rule and no defaults) against the baseline of decoding
// and re-encoding it with encoding/json.
func BenchmarkJSON(b *testing.B) {
	b.Run("baseline-unmarshal-marshal", func(b *testing.B) {
		b.SetBytes(int64(len(benchArgs)))
		for b.Loop() {
			var v any
			if err := json.Unmarshal(benchArgs, &v); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		cfg  redact.Config
	}{
		{"defaults", redact.Config{}},
		{"one-path-rule", redact.Config{NoDefaults: true, Rules: []redact.Rule{{Path: "password"}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := mustNew(b, bc.cfg)
			b.SetBytes(int64(len(benchArgs)))
			for b.Loop() {
				if _, _, err := r.JSON("mail.send", benchArgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
