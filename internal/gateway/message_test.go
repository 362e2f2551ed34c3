package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchParams is a typical tools/call: about 350 bytes, a nested object
// and a progress token.
const benchParams = `{"name":"mail.send","arguments":{"to":["alice@example.com","bob@example.com"],"subject":"Quarterly report",` +
	`"body":"Hi both, the quarterly report is attached; the numbers are in the second sheet. Thanks, Carol.",` +
	`"headers":{"X-Priority":"1","Reply-To":"carol@example.com"}},"_meta":{"progressToken":"tok-17"}}`

// BenchmarkParams compares reading and re-encoding a request's params the
// strict way (parseParams: duplicates, case variants and invalid UTF-8
// refused at every depth; the decided members re-encoded) with the lenient
// way the gateway used before (encoding/json into a map, name replaced,
// re-marshalled).
func BenchmarkParams(b *testing.B) {
	raw := json.RawMessage(benchParams)
	b.Run("strict", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			p, err := parseParams(raw)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.spelled(decidedMembers["tools/call"]...); err != nil {
				b.Fatal(err)
			}
			name, _, _ := p.str("name")
			_ = p.with("name", strings.TrimPrefix(name, "mail.")).with("arguments", json.RawMessage(p["arguments"])).encode()
		}
	})
	b.Run("lenient-before", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			var params map[string]json.RawMessage
			var name string
			if json.Unmarshal(raw, &params) != nil || json.Unmarshal(params["name"], &name) != nil {
				b.Fatal("decode")
			}
			params["name"], _ = json.Marshal(strings.TrimPrefix(name, "mail."))
			if _, err := json.Marshal(params); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestParamsRefuse covers parseParams' refusals directly.
func TestParamsRefuse(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"x":{"k":1,"K":2}}`, `{"x":[{"ab":1,"aB":2}]}`, "{\"a\":\"\xff\"}",
		`[]`, `"s"`, `{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, `{"\u212a":1,"k":2}`, `{"ß":1,"ẞ":2}`,
	} {
		if _, err := parseParams(json.RawMessage(in)); err == nil {
			t.Errorf("parseParams(%s) accepted", in)
		}
	}
	for _, in := range []string{``, `null`, `{}`, `{"a":1,"b":{"a":1}}`, `{"x":[{"k":1},{"K":2}]}`} {
		if _, err := parseParams(json.RawMessage(in)); err != nil {
			t.Errorf("parseParams(%s) = %v", in, err)
		}
	}
}
