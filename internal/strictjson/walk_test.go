package strictjson_test

import (
	"testing"

	"github.com/ward-dev/ward/internal/strictjson"
)

// TestWalkOneValue (red team, decide on exactly what is forwarded): Walk
// read a stream of values, so `{"a":1}{"b":2}` passed it as if it were
// one document, and a caller deciding on the first value would pass on
// the second. Walk accepts what Valid accepts and no more.
func TestWalkOneValue(t *testing.T) {
	for _, doc := range []string{`{"a":1}{"b":2}`, `{"a":1} {"a":2}`, `[1][2]`, `1 2`, `"a""b"`, `{} null`} {
		if err := strictjson.Walk([]byte(doc), 64, nil); err == nil {
			t.Errorf("Walk(%s) accepted two values", doc)
		}
		if err := strictjson.Valid([]byte(doc)); err == nil {
			t.Errorf("Valid(%s) accepted two values", doc)
		}
	}
	for _, doc := range []string{`{"a":1}`, ` {"a":[1,{"b":2}]} `, `1`, `"x"`, `null`} {
		if err := strictjson.Walk([]byte(doc), 64, nil); err != nil {
			t.Errorf("Walk(%s): %v", doc, err)
		}
	}
}
