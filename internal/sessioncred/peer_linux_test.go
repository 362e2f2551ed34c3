package sessioncred

import (
	"net"
	"os"
	"syscall"
	"testing"
)

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
