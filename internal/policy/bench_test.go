package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// benchSizes are the policy counts of the performance budget (DESIGN.md:
// p50 ≤ 10 µs at 1,000 policies).
var benchSizes = []int{10, 100, 1000}

const benchRequests = 256

type benchCase struct {
	set      *Set
	full     *cedar.PolicySet
	reqs     []Request
	ents     []*entities
	creqs    []types.Request
	allowed  int
	mayAllow int
}

// newBenchCase builds n realistic policies for tool calls and requests
// calling tools.
func newBenchCase(b *testing.B, n int) *benchCase {
	b.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 7))
	src, w := realisticPolicies(r, n)
	return buildBenchCase(b, src, func() Request { return realisticRequest(r, w) })
}

// newEgressBenchCase builds n policies, four fifths for tool calls
// (realisticPolicies) and one fifth for outgoing HTTP (egressPolicies), and
// outgoing HTTP requests.
func newEgressBenchCase(b *testing.B, n int) *benchCase {
	b.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 8))
	src, w := realisticPolicies(r, n-n/5)
	w.hosts = max(2, n/10)
	src += egressPolicies(r, w, n/5)
	return buildBenchCase(b, src, func() Request { return egressRequest(r, w) })
}

func buildBenchCase(b *testing.B, src string, next func() Request) *benchCase {
	b.Helper()
	set, err := Parse(map[string][]byte{"bench.cedar": []byte(src)})
	if err != nil {
		b.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		b.Fatal(err)
	}
	bc := &benchCase{set: set, full: fullPolicySet(set)}
	for range benchRequests {
		req := next()
		args, err := argumentsValue(req.Arguments)
		if err != nil {
			b.Fatal(err)
		}
		ents, creq, msg := buildRequest(req, args)
		if msg != "" {
			b.Fatal(msg)
		}
		bc.reqs = append(bc.reqs, req)
		bc.ents = append(bc.ents, ents)
		bc.creqs = append(bc.creqs, creq)
		if set.Decide(req).Allow {
			bc.allowed++
		}
	}
	return bc
}

// BenchmarkDecide measures ward's Decide (arguments conversion, entity
// building, indexed evaluation) on realistic generated sets, and reports
// the median and 99th percentile latency of the first 65,536 calls
// (p50-ns, p99-ns) next to the mean (ns/op).
// BenchmarkCedarAuthorize is the baseline: cedar-go's Authorize over the
// same full set with the same, prebuilt entities and request.
func BenchmarkDecide(b *testing.B) { benchDecide(b, newBenchCase) }

func BenchmarkCedarAuthorize(b *testing.B) { benchAuthorize(b, newBenchCase) }

// BenchmarkDecideHTTP is BenchmarkDecide for outgoing HTTP requests against
// sets of tool and egress policies; BenchmarkCedarAuthorizeHTTP is its
// baseline.
func BenchmarkDecideHTTP(b *testing.B) { benchDecide(b, newEgressBenchCase) }

func BenchmarkCedarAuthorizeHTTP(b *testing.B) { benchAuthorize(b, newEgressBenchCase) }

func benchDecide(b *testing.B, newCase func(*testing.B, int) *benchCase) {
	for _, n := range benchSizes {
		bc := newCase(b, n)
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			lat := make([]time.Duration, 0, 1<<16)
			i := 0
			for b.Loop() {
				t0 := time.Now()
				bc.set.Decide(bc.reqs[i%benchRequests])
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(bc.allowed)/benchRequests, "allowed/op")
		})
	}
}

func benchAuthorize(b *testing.B, newCase func(*testing.B, int) *benchCase) {
	for _, n := range benchSizes {
		bc := newCase(b, n)
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				j := i % benchRequests
				cedar.Authorize(bc.full, bc.ents[j], bc.creqs[j])
				i++
			}
		})
	}
}

// BenchmarkMayAllow measures the tools/list filter (partial evaluation).
func BenchmarkMayAllow(b *testing.B) {
	for _, n := range benchSizes {
		bc := newBenchCase(b, n)
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req := bc.reqs[i%benchRequests]
				req.Arguments = nil
				bc.set.MayAllow(req)
				i++
			}
		})
	}
}

// BenchmarkParse measures loading a policy set, index included.
func BenchmarkParse(b *testing.B) {
	src, _ := realisticPolicies(rand.New(rand.NewPCG(1000, 7)), 1000)
	files := map[string][]byte{"bench.cedar": []byte(src)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(files); err != nil {
			b.Fatal(err)
		}
	}
}
