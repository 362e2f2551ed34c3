package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ward-dev/ward/internal/redact"
)

// TestRuntimeDataBound: a runtime record's data is recorded redacted; if
// redaction grows it past the bound, its diff is left out with a note and
// the rest kept, and data that is over the bound without a diff becomes
// a note.
func TestRuntimeDataBound(t *testing.T) {
	r, err := redact.New(redact.Config{Salt: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{redactor: r}
	// Each "bearer x" line grows by a marker once redacted.
	tokens := strings.Repeat("+bearer x\n", 20_000)
	for _, c := range []struct {
		name string
		data map[string]any
		want []string // substrings of the recorded data
		not  []string
	}{
		{"small", map[string]any{"changes": []string{"a.txt"}, "diff": "+key ghp_abcdefghijklmnopqrstuvwxyz0123456789\n"},
			[]string{`"changes":["a.txt"]`, `+key redacted:hmac-sha256:`}, []string{"ghp_abc"}},
		{"diff grows past the bound", map[string]any{"changes": []string{"a.txt"}, "exit_code": 0, "diff": map[string]any{"files": []any{map[string]any{"diff": tokens}}}},
			[]string{`"changes":["a.txt"]`, `"exit_code":0`, `"diff":"(not recorded: `, "once redacted, over the bound of 524288"}, []string{"bearer"}},
		{"over the bound without a diff", map[string]any{"note": tokens},
			[]string{`"(not recorded: `}, []string{"bearer"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := n.runtimeData("end", c.data)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) || len(got) > maxRuntimeData {
				t.Fatalf("recorded %d bytes, valid JSON %v", len(got), json.Valid(got))
			}
			for _, w := range c.want {
				if !strings.Contains(string(got), w) {
					t.Errorf("recorded data lacks %q: %.300s", w, got)
				}
			}
			for _, w := range c.not {
				if strings.Contains(string(got), w) {
					t.Errorf("recorded data holds %q: %.300s", w, got)
				}
			}
		})
	}
}
