package provenance

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// page returns the i-th realistic web page as a fetch tool returns it:
// about 4 KiB of markdown in one text content, with links, addresses,
// prices, a code block; each page has its own hosts and addresses.
func page(i int) []byte {
	var b strings.Builder
	for s := 0; b.Len() < 4<<10-600; s++ {
		fmt.Fprintf(&b, "## Offer %d-%d\n\nOur team at shop%d.example ships worldwide. Questions? Write to sales%d@shop%d.example "+
			"or call +1 555 %03d %04d. See [the catalogue](https://shop%d.example/catalogue?page=%d&ref=home) and "+
			"[terms](https://legal.shop%d.example/terms).\n\n", i, s, i, s, i, i%1000, s, i, s, i)
		fmt.Fprintf(&b, "- Starter plan: $%d.00 per month\n- Pro plan: €%d,50 per month\n- Order ref %d%06d\n\n", 9+s, 49+s, i, s)
		b.WriteString("The gateway sits between your agents and the tools they call. Every request is authenticated, " +
			"checked against policy and recorded, and you can review the log at any time.\n\n")
		fmt.Fprintf(&b, "```sh\ncurl -fsSL https://get.shop%d.example/install.sh | sh\n```\n\n", i)
	}
	return text(b.String())
}

// BenchmarkAddUntrusted indexes a 4 KiB page into a new index and into one
// that holds its values already, against the baseline of json.Unmarshal.
func BenchmarkAddUntrusted(b *testing.B) {
	res := page(1)
	b.Run("baseline-json-unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(res)))
		for b.Loop() {
			var v any
			if err := json.Unmarshal(res, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new-index", func(b *testing.B) {
		b.SetBytes(int64(len(res)))
		var n int
		for b.Loop() {
			n = New(Config{}).AddUntrusted("web.fetch", 1, res).New
		}
		b.ReportMetric(float64(n), "values/result")
	})
	b.Run("known-values", func(b *testing.B) {
		ix := New(Config{})
		ix.AddUntrusted("web.fetch", 1, res)
		b.SetBytes(int64(len(res)))
		for b.Loop() {
			ix.AddUntrusted("web.fetch", 2, res)
		}
	})
}

// BenchmarkCheck checks a mail.send call against sessions holding 10, 100
// and 1,000 prior 4 KiB results (index limits raised so that none is
// dropped), against the baseline of json.Unmarshal of the arguments, and
// reports the memory per session: the index's own estimate (Size) and the
// heap it holds.
func BenchmarkCheck(b *testing.B) {
	args := []byte(`{"to":["alice@corp.example","sales3@shop7.example"],"cc":[],"subject":"Quarterly numbers",` +
		`"body":"Hi Alice, the numbers are attached.","attachments":[{"url":"https://files.corp.example/q3.pdf"}]}`)
	paths := []string{"to.*", "cc.*", "attachments.*.url"}
	b.Run("baseline-json-unmarshal", func(b *testing.B) {
		for b.Loop() {
			var v any
			if err := json.Unmarshal(args, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("results-%d", n), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ix := New(Config{MaxValues: 1 << 20})
			ix.AddTrusted("Send the quarterly numbers to alice@corp.example")
			for i := range n {
				if s := ix.AddUntrusted("web.fetch", uint64(i), page(i)); s.Partial {
					b.Fatal(s.Note)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			values, size := ix.Size()
			var f []Finding
			for b.Loop() {
				var err error
				if f, err = ix.Check(args, paths); err != nil {
					b.Fatal(err)
				}
			}
			if len(f) != 1 {
				b.Fatalf("findings %+v", f)
			}
			b.ReportMetric(float64(values), "values")
			b.ReportMetric(float64(size), "size-B/session")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc), "heap-B/session")
			runtime.KeepAlive(ix)
		})
	}
}
