package egress

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// Plugins that do nothing, so the benchmarks measure the proxy itself.
var (
	allowAll = DeciderFunc(func(context.Context, *Identity, *Request) (Verdict, error) {
		return Verdict{Allow: true}, nil
	})
	discardRecords = RecorderFunc(func(context.Context, *Identity, *Request, Record) error { return nil })
)

// benchGets times GET url with c and reports p50 and p99 besides ns/op.
func benchGets(b *testing.B, c *http.Client, url string) {
	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		t0 := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkGet compares a plain-HTTP GET through the proxy (authenticate,
// decide, two records, forward) with the same GET made directly, over
// loopback with keep-alive.
func BenchmarkGet(b *testing.B) {
	up := newUpstream(b, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	h := start(b, Config{Decider: allowAll, Recorder: discardRecords})
	proxied, _ := h.client(b, nil)
	direct := &http.Client{Transport: &http.Transport{}}
	b.Cleanup(direct.CloseIdleConnections)
	b.Run("direct", func(b *testing.B) { benchGets(b, direct, up.URL+"/") })
	b.Run("proxied", func(b *testing.B) { benchGets(b, proxied, up.URL+"/") })
}

// BenchmarkGetTLS compares HTTPS GETs made directly, through a reused
// CONNECT tunnel (the proxy only splices), and brokered (the proxy
// terminates TLS, decides each request, injects a credential and
// re-encrypts).
func BenchmarkGetTLS(b *testing.B) {
	up := newUpstream(b, true, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	plain := start(b, Config{Decider: allowAll, Recorder: discardRecords})
	ca, caKey := newCA(b)
	brokering := start(b, Config{
		Decider: allowAll, Recorder: discardRecords,
		Credentials: []Credential{{Host: "127.0.0.1", Header: "Authorization", Value: "Bearer bench-secret-0123456789"}},
		CA:          ca, CAKey: caKey, UpstreamRoots: up.roots(),
	})
	agentRoots := x509.NewCertPool()
	agentRoots.AddCert(ca)
	tunnel, _ := plain.client(b, up.roots())
	brokered, _ := brokering.client(b, agentRoots)
	direct := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsRoots(up.roots())}}
	b.Cleanup(direct.CloseIdleConnections)
	b.Run("direct", func(b *testing.B) { benchGets(b, direct, up.URL+"/") })
	b.Run("tunnel", func(b *testing.B) { benchGets(b, tunnel, up.URL+"/") })
	b.Run("brokered", func(b *testing.B) { benchGets(b, brokered, up.URL+"/") })
}

// BenchmarkMask is the cost of checking a brokered response body for the
// secret, per 32 KiB read, against copying it unchecked.
func BenchmarkMask(b *testing.B) {
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = "abcdefghijklmnopqrstuvwxyz \n"[i%28]
	}
	m := newMasker([][]byte{[]byte("Bearer sk-0123456789abcdef"), []byte("sk-0123456789abcdef")})
	buf := make([]byte, 32<<10)
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			io.CopyBuffer(io.Discard, &chunkReader{body, 32 << 10}, buf)
		}
	})
	b.Run("mask", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			io.CopyBuffer(io.Discard, newMaskReader(io.NopCloser(&chunkReader{body, 32 << 10}), m, nil), buf)
		}
	})
}
