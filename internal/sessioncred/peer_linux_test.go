package sessioncred

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPeerUIDReal: on this machine's kernel, by sock_diag and by the
// /proc tables alike, the owner of a live client socket is found for IPv4
// and IPv6 loopback; a client that has closed its socket is refused, not
// taken for root (who runs these tests).
func TestPeerUIDReal(t *testing.T) {
	lookups := map[string]func(local, remote netip.AddrPort) (uint32, error){"sock_diag": diagPeerUID, "proc": procPeerUID}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v", addr, err)
			continue
		}
		defer ln.Close()
		accept := func() (net.Conn, netip.AddrPort, netip.AddrPort) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return c, s.LocalAddr().(*net.TCPAddr).AddrPort(), s.RemoteAddr().(*net.TCPAddr).AddrPort()
		}
		c, local, remote := accept()
		for name, lookup := range lookups {
			if uid, err := lookup(local, remote); err != nil || int(uid) != os.Geteuid() {
				t.Errorf("%s, %s: peer uid %d, %v; want %d", addr, name, uid, err, os.Geteuid())
			}
		}
		c.Close()
		for name, lookup := range lookups {
			if uid, err := lookup(local, remote); err == nil {
				t.Errorf("%s, %s: a closed client socket passed as uid %d", addr, name, uid)
			}
		}
	}
	// Unix sockets: the kernel's peer credentials.
	sock := t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if uid, err := peerUID(s); err != nil || int(uid) != os.Geteuid() {
		t.Fatalf("unix: peer uid %d, %v", uid, err)
	}
}

// FuzzParseDiagAnswer: whatever the answer, a uid comes back only for a
// message about exactly the connection asked for, held by a process.
func FuzzParseDiagAnswer(f *testing.F) {
	local, remote := netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("127.0.0.1:54321")
	answer := func(family byte, state byte, id []byte, uid, inode uint32) []byte {
		b := make([]byte, unix.NLMSG_HDRLEN+sizeofInetDiagMsg)
		binary.NativeEndian.PutUint32(b, uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
		m := b[unix.NLMSG_HDRLEN:]
		m[0], m[1] = family, state
		copy(m[sockidOffsetInMsg:], id)
		binary.NativeEndian.PutUint32(m[64:], uid)
		binary.NativeEndian.PutUint32(m[68:], inode)
		return b
	}
	good := answer(unix.AF_INET, 1, diagSockid(local, remote, unix.AF_INET), 1000, 7)
	if uid, err := parseDiagAnswer(good, local, remote); err != nil || uid != 1000 {
		f.Fatalf("a good answer: %d %v", uid, err)
	}
	mapped := answer(unix.AF_INET6, 1, diagSockid(local, remote, unix.AF_INET6), 1000, 7)
	if uid, err := parseDiagAnswer(mapped, local, remote); err != nil || uid != 1000 {
		f.Fatalf("a dual-stack answer: %d %v", uid, err)
	}
	for name, bad := range map[string][]byte{
		"closed":   answer(unix.AF_INET, 1, diagSockid(local, remote, unix.AF_INET), 0, 0),
		"listener": answer(unix.AF_INET, tcpListen, diagSockid(local, remote, unix.AF_INET), 0, 7),
		"reversed": answer(unix.AF_INET, 1, diagSockid(remote, local, unix.AF_INET), 0, 7),
	} {
		if uid, err := parseDiagAnswer(bad, local, remote); err == nil {
			f.Fatalf("%s: uid %d accepted", name, uid)
		}
		f.Add(bad)
	}
	f.Add(good)
	f.Add(mapped)
	f.Fuzz(func(t *testing.T, b []byte) {
		uid, err := parseDiagAnswer(b, local, remote)
		if err != nil {
			return
		}
		m := b[unix.NLMSG_HDRLEN:]
		fam := m[0]
		if string(m[sockidOffsetInMsg:sockidOffsetInMsg+36]) != string(diagSockid(local, remote, fam)[:36]) ||
			binary.NativeEndian.Uint32(m[68:]) == 0 || m[1] == tcpListen || uid != binary.NativeEndian.Uint32(m[64:]) {
			t.Fatalf("accepted %x as uid %d", b, uid)
		}
	})
}

// TestPeerUIDDualStack: a client's IPv6 socket connected to the IPv4
// listener through an IPv4-mapped address (as dual-stack clients do) is
// listed in tcp6 and is found.
func TestPeerUIDDualStack(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 sockets here: %v", err)
	}
	sa := &syscall.SockaddrInet6{Port: ln.Addr().(*net.TCPAddr).Port}
	copy(sa.Addr[:], net.ParseIP("127.0.0.1").To16()) // ::ffff:127.0.0.1
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		t.Fatalf("connect through an IPv4-mapped address: %v", err)
	}
	f := os.NewFile(uintptr(fd), "dual-stack client")
	defer f.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if uid, err := peerUID(s); err != nil || int(uid) != os.Geteuid() {
		t.Fatalf("dual-stack client: peer uid %d, %v", uid, err)
	}
}

// BenchmarkPeerUIDTCP is the cost of finding a TCP client's owner, paid
// once per connection: by sock_diag (what peerUID uses) and by reading
// /proc/net/tcp{,6} (its fallback), which walks the kernel's whole socket
// hash.
func BenchmarkPeerUIDTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	local, remote := s.LocalAddr().(*net.TCPAddr).AddrPort(), s.RemoteAddr().(*net.TCPAddr).AddrPort()
	for name, lookup := range map[string]func(local, remote netip.AddrPort) (uint32, error){"sock_diag": diagPeerUID, "proc": procPeerUID} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := lookup(local, remote); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
