package sessioncred

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// hasPeerCredentials reports whether peerUID can name the user behind a
// Unix socket connection on this system.
const hasPeerCredentials = true

// peerUID returns the uid of the process at the other end of c: for a
// Unix socket the credentials the kernel recorded when the client called
// connect (SO_PEERCRED); for a TCP connection the owner of the client's
// socket in /proc/self/net/tcp{,6} (see peerInTable for what that is
// worth).
func peerUID(c net.Conn) (uint32, error) {
	switch c := c.(type) {
	case *net.UnixConn:
		raw, err := c.SyscallConn()
		if err != nil {
			return 0, err
		}
		var cred *unix.Ucred
		var gerr error
		if err := raw.Control(func(fd uintptr) {
			cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		}); err != nil {
			return 0, err
		}
		if gerr != nil {
			return 0, fmt.Errorf("SO_PEERCRED: %w", gerr)
		}
		return cred.Uid, nil
	case *net.TCPConn:
		local, lok := c.LocalAddr().(*net.TCPAddr)
		remote, rok := c.RemoteAddr().(*net.TCPAddr)
		if !lok || !rok {
			return 0, errors.New("not a TCP connection")
		}
		var tables []io.Reader
		for _, name := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
			f, err := os.Open(name)
			if errors.Is(err, os.ErrNotExist) && name != "/proc/self/net/tcp" {
				continue // no IPv6
			}
			if err != nil {
				return 0, fmt.Errorf("read the socket table: %w", err)
			}
			defer f.Close()
			tables = append(tables, f)
		}
		return peerInTable(local.AddrPort(), remote.AddrPort(), tables...)
	}
	return 0, fmt.Errorf("%T has no peer credentials", c)
}
