package scan

import (
	"fmt"
	"strings"
	"testing"
)

// page returns about n bytes of a realistic web page turned into markdown,
// as a fetch tool returns it: headings, prose, links, an image, a code
// block, a list.
func page(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "## Section %d: configuring the gateway\n\n", i)
		b.WriteString("The gateway sits between your agents and the tools they call. Every request is authenticated, " +
			"checked against policy and recorded; you can review the log at any time. If you need help, " +
			"[read the guide](https://docs.example.com/guide?ref=sidebar) or write to support@example.com.\n\n")
		b.WriteString("![diagram](https://cdn.example.com/img/arch.png?w=800&h=400)\n\n")
		b.WriteString("```sh\nward up --config ward.yaml --addr 127.0.0.1:8080\n```\n\n")
		b.WriteString("- Do not share your session token.\n- Rotate keys every 90 days.\n- Prices start at $49 per month.\n\n")
		b.WriteString("Our assistant will answer in a few minutes; the model behind it is not trained on your data.\n\n")
	}
	return b.String()[:n]
}

// BenchmarkResult compares Result with the baseline of lowercasing the same
// text (one pass that allocates a copy), on a 4 KiB and a 1 MiB page, and
// on 1 MiB of text made of nothing but anchors and near-misses.
func BenchmarkResult(b *testing.B) {
	adversarial := strings.Repeat("ignore you must <x [ # ![a](http://x/?d) ai model ", (1<<20)/51)
	for _, c := range []struct {
		name string
		text string
	}{
		{"4KiB", page(4 << 10)},
		{"1MiB", page(1 << 20)},
		{"1MiB-anchors", adversarial},
	} {
		b.Run(c.name+"/baseline-tolower", func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				_ = strings.ToLower(c.text)
			}
		})
		b.Run(c.name+"/result", func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				Result(c.text)
			}
		})
	}
}
