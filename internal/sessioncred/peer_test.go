package sessioncred

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

const tableHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// procLine prints a socket the way the kernel does (tcp4_seq_show,
// tcp6_seq_show): each 32-bit word of the address as a number read in the
// machine's byte order.
func procLine(local, remote netip.AddrPort, uid uint32, inode uint64) string {
	addr := func(ap netip.AddrPort) string {
		var words []uint32
		if ap.Addr().Is4() {
			b := ap.Addr().As4()
			words = []uint32{binary.NativeEndian.Uint32(b[:])}
		} else {
			b := ap.Addr().As16()
			for i := 0; i < 16; i += 4 {
				words = append(words, binary.NativeEndian.Uint32(b[i:]))
			}
		}
		s := ""
		for _, w := range words {
			s += fmt.Sprintf("%08X", w)
		}
		return fmt.Sprintf("%s:%04X", s, ap.Port())
	}
	return fmt.Sprintf("   0: %s %s 01 00000000:00000000 00:00000000 00000000 %5d        0 %d 1 0000000000000000 20 4 30 10 -1\n",
		addr(local), addr(remote), uid, inode)
}

func TestPeerInTable(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cli := netip.MustParseAddrPort("127.0.0.1:54321")
	srv6 := netip.MustParseAddrPort("[::1]:8080")
	cli6 := netip.MustParseAddrPort("[::1]:54321")
	mapped := func(ap netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	ours := procLine(srv, cli, 0, 100) // the sidecar's own end
	for _, tc := range []struct {
		name          string
		local, remote netip.AddrPort
		tables        []string
		uid           uint32
		err           string
	}{
		{"the client's socket", srv, cli, []string{tableHeader + ours + procLine(cli, srv, 1000, 200)}, 1000, ""},
		{"IPv6", srv6, cli6, []string{tableHeader, tableHeader + procLine(cli6, srv6, 1000, 200)}, 1000, ""},
		{"a dual-stack client socket in tcp6", srv, cli, []string{tableHeader + ours, tableHeader + procLine(mapped(cli), mapped(srv), 1000, 200)}, 1000, ""},
		{"closed: uid 0 inode 0 is not root", srv, cli, []string{tableHeader + ours + procLine(cli, srv, 0, 0)}, 0, "no longer held"},
		{"not there", srv, cli, []string{tableHeader + ours}, 0, "no socket matches"},
		{"only our own end", srv, cli, []string{tableHeader + procLine(srv, cli, 0, 100)}, 0, "no socket matches"},
		{"other port", srv, cli, []string{tableHeader + procLine(netip.MustParseAddrPort("127.0.0.1:54322"), srv, 0, 7)}, 0, "no socket matches"},
		{"two matches", srv, cli, []string{tableHeader + procLine(cli, srv, 1000, 200) + procLine(cli, srv, 0, 201)}, 0, "2 sockets"},
		{"no header", srv, cli, []string{procLine(cli, srv, 1000, 200)}, 0, "header"},
		{"empty", srv, cli, []string{""}, 0, "empty"},
		{"short line", srv, cli, []string{tableHeader + "   0: 0100007F:1F90 0100007F:D431 01\n"}, 0, "fields"},
		{"bad address", srv, cli, []string{tableHeader + strings.Replace(procLine(cli, srv, 1000, 200), "0100007F", "0100007G", 1)}, 0, "address"},
		{"bad uid", srv, cli, []string{tableHeader + strings.Replace(procLine(cli, srv, 1000, 200), " 1000 ", " -1000 ", 1)}, 0, "uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rs []io.Reader
			for _, s := range tc.tables {
				rs = append(rs, strings.NewReader(s))
			}
			uid, err := peerInTable(tc.local, tc.remote, rs...)
			if tc.err == "" && (err != nil || uid != tc.uid) {
				t.Fatalf("uid %d, %v; want %d", uid, err, tc.uid)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("uid %d, %v; want an error about %q", uid, err, tc.err)
			}
		})
	}
}

// TestPeerInTableKernelText: lines as this kernel printed them (on a
// little-endian machine).
func TestPeerInTableKernelText(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the sample is from a little-endian machine")
	}
	v4 := tableHeader +
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1168 1 00000000a51e6a6a 100 0 0 10 0\n" +
		"   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 7037 1 000000005d45fd61 20 4 30 10 -1\n"
	uid, err := peerInTable(netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("127.0.0.1:54321"), strings.NewReader(v4))
	if err != nil || uid != 1000 {
		t.Fatalf("IPv4: %d %v", uid, err)
	}
	v6 := tableHeader +
		"   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 4818 1 000000009eec7379 20 4 30 10 -1\n" +
		"   1: 0000000000000000FFFF00000100007F:D432 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1002        0 4819 1 000000009eec7379 20 4 30 10 -1\n"
	uid, err = peerInTable(netip.MustParseAddrPort("[::1]:8080"), netip.MustParseAddrPort("[::1]:54321"), strings.NewReader(v6))
	if err != nil || uid != 1001 {
		t.Fatalf("IPv6: %d %v", uid, err)
	}
	uid, err = peerInTable(netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("127.0.0.1:54322"), strings.NewReader(v6))
	if err != nil || uid != 1002 {
		t.Fatalf("IPv4-mapped: %d %v", uid, err)
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add(tableHeader + procLine(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), 7, 9))
	f.Add(tableHeader + procLine(netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:2"), 7, 0))
	f.Add(tableHeader + "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1168 1 x 100 0 0 10 0\n")
	f.Fuzz(func(t *testing.T, text string) {
		var got []tcpSocket
		err := parseProcNetTCP(strings.NewReader(text), func(s tcpSocket) bool { got = append(got, s); return true })
		for _, s := range got {
			for _, ap := range []netip.AddrPort{s.Local, s.Remote} {
				if !ap.Addr().IsValid() || ap.Addr().Is4In6() {
					t.Fatalf("address %v: invalid or still mapped", ap)
				}
			}
			// What was read prints back to a line that reads the same.
			var again []tcpSocket
			if err := parseProcNetTCP(strings.NewReader(tableHeader+procLine(s.Local, s.Remote, s.UID, s.Inode)), func(x tcpSocket) bool {
				again = append(again, x)
				return true
			}); err != nil || len(again) != 1 || again[0] != s {
				t.Fatalf("%+v reads back as %+v, %v", s, again, err)
			}
		}
		if err == nil && !strings.Contains(text, "local_address") {
			t.Fatal("a table without its header was accepted")
		}
	})
}

// TestRefusalsAggregate: a flood is reported in at most two reports (the
// first at once, the rest together), nothing is lost, and the kinds kept
// are bounded.
func TestRefusalsAggregate(t *testing.T) {
	var mu sync.Mutex
	var posts []map[string]any
	r := newRefusals(nil, func(_ context.Context, b []byte) error {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Error(err)
		}
		mu.Lock()
		posts = append(posts, m)
		mu.Unlock()
		return nil
	}, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	const n = 1000
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				r.add(refusal{"not the owner", int64(i % 100)}, strings.Repeat("é", 100))
			}
		}()
	}
	wg.Wait()
	cancel()
	<-done
	if len(posts) < 1 || len(posts) > 2 {
		t.Fatalf("%d reports", len(posts))
	}
	total := 0
	for _, p := range posts {
		total += int(p["count"].(float64))
		kinds := p["refused"].([]any)
		if len(kinds) > maxRefusalKinds+1 {
			t.Fatalf("%d kinds in one report", len(kinds))
		}
		for _, k := range kinds {
			if ex, _ := k.(map[string]any)["example"].(string); len(ex) > 132 {
				t.Fatalf("example of %d bytes", len(ex))
			}
		}
	}
	if total != n {
		t.Fatalf("reported %d of %d refusals", total, n)
	}
}
