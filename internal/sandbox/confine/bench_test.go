//go:build linux

package confine

import (
	"fmt"
	"io"
	"os"
	"testing"
)

// BenchmarkNotifyRoundTrip times one TCP connect (and close) to a loopback
// listener by a confined helper process, driven over a pipe, with no
// filter, with only connect notified, and with the default notify list
// (socket and connect notified). The supervisor only receives and continues,
// so the difference from "none" is the cost of the notification round trips.
func BenchmarkNotifyRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name   string
		filter *Filter
	}{
		{"none", nil},
		{"connect", &Filter{Notify: []string{"connect"}}},
		{"default", &Filter{Notify: DefaultNotify()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ln := listenTCP(b)
			inR, inW, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			outR, outW, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			s := startWith(b, stage2Spec{Filter: bc.filter, Argv: []string{os.Args[0]}}, []*os.File{inR, outW},
				envHelper+"=connect-loop", fmt.Sprintf("%s=127.0.0.1:%d", envTarget, ln.port))
			inR.Close()
			outW.Close()
			defer outR.Close()
			if s.listener != nil {
				// The least a supervisor does: receive and continue.
				go func() {
					for {
						n, err := s.listener.Receive()
						if err != nil {
							return
						}
						s.listener.Continue(n.ID)
					}
				}()
			}

			buf := make([]byte, 1)
			for b.Loop() {
				if _, err := inW.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(outR, buf); err != nil {
					b.Fatalf("helper: %v; stderr: %s", err, s.stderrText())
				}
			}
			inW.Close()
			s.wait(b)
		})
	}
}
