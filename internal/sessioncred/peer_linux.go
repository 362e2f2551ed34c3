package sessioncred

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// hasPeerCredentials reports whether peerUID can name the user behind a
// Unix socket connection on this system.
const hasPeerCredentials = true

// peerUID returns the uid of the process at the other end of c: for a
// Unix socket the credentials the kernel recorded when the client called
// connect (SO_PEERCRED); for a TCP connection the owner of the client's
// socket, asked of the kernel by the connection's addresses and ports
// (sock_diag, as ss does; where the kernel has no sock_diag, read from
// /proc/self/net/tcp{,6}). See the package documentation for what a TCP
// socket's owner is worth.
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
		uid, err := diagPeerUID(local.AddrPort(), remote.AddrPort())
		if errors.Is(err, errNoSockDiag) {
			return procPeerUID(local.AddrPort(), remote.AddrPort())
		}
		return uid, err
	}
	return 0, fmt.Errorf("%T has no peer credentials", c)
}

// procPeerUID finds the client's socket in /proc/self/net/tcp{,6}. Reading
// them walks the kernel's whole socket hash: milliseconds on a large host.
func procPeerUID(local, remote netip.AddrPort) (uint32, error) {
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
	return peerInTable(local, remote, tables...)
}

// errNoSockDiag: the kernel does not answer sock_diag requests.
var errNoSockDiag = errors.New("no sock_diag")

// Sizes and offsets of <linux/inet_diag.h>.
const (
	sizeofInetDiagReqV2 = 56 // family, protocol, ext, pad, states u32, sockid
	sizeofInetDiagMsg   = 72 // family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode
	sockidOffsetInMsg   = 4
	sizeofSockid        = 48 // sport, dport (be16), src[4], dst[4] (be32), if, cookie[2]
	tcpListen           = 10 // TCP_LISTEN
)

// diagPeerUID asks the kernel for the socket whose local address is remote
// and whose peer is local — the client's end of the connection — by an
// exact sock_diag lookup (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP), and
// returns its owner. Like peerInTable it refuses a socket no process holds
// (inode 0: closed, or TIME_WAIT, which shows uid 0) and anything but the
// exact connection asked for.
func diagPeerUID(local, remote netip.AddrPort) (uint32, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	family := byte(unix.AF_INET6)
	if local.Addr().Is4() && remote.Addr().Is4() {
		family = unix.AF_INET
	}
	id := diagSockid(local, remote, family)

	req := make([]byte, unix.NLMSG_HDRLEN+sizeofInetDiagReqV2)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], 1)
	body := req[unix.NLMSG_HDRLEN:]
	body[0], body[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(body[4:], ^uint32(0)) // every state
	copy(body[8:], id)

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errNoSockDiag, err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		return 0, fmt.Errorf("%w: %v", errNoSockDiag, err)
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("%w: %v", errNoSockDiag, err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	return parseDiagAnswer(buf[:n], local, remote)
}

// parseDiagAnswer reads the kernel's answer to an exact lookup of the
// client's socket of the connection local↔remote: one inet_diag_msg, or an
// error.
func parseDiagAnswer(b []byte, local, remote netip.AddrPort) (uint32, error) {
	if len(b) < unix.NLMSG_HDRLEN {
		return 0, errors.New("sock_diag: short answer")
	}
	l := binary.NativeEndian.Uint32(b[0:])
	if l < unix.NLMSG_HDRLEN || int(l) > len(b) {
		return 0, errors.New("sock_diag: malformed answer")
	}
	msg := b[unix.NLMSG_HDRLEN:l]
	switch binary.NativeEndian.Uint16(b[4:]) {
	case unix.NLMSG_ERROR:
		if len(msg) < 4 {
			return 0, errors.New("sock_diag: malformed error")
		}
		switch errno := unix.Errno(-int32(binary.NativeEndian.Uint32(msg))); errno {
		case unix.ENOENT:
			return 0, errors.New("no socket matches this connection (the client closed it, or is in another network namespace)")
		case unix.EINVAL, unix.EOPNOTSUPP, unix.EAFNOSUPPORT, unix.EPROTONOSUPPORT:
			return 0, fmt.Errorf("%w: %v", errNoSockDiag, errno)
		default:
			return 0, fmt.Errorf("sock_diag: %w", errno)
		}
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return 0, errors.New("sock_diag: unexpected answer")
	}
	if len(msg) < sizeofInetDiagMsg {
		return 0, errors.New("sock_diag: short message")
	}
	// The same connection, not a listener or another socket the lookup fell
	// back to. A dual-stack client's socket is an IPv6 one with IPv4-mapped
	// addresses; the interface and cookie are the kernel's to fill in.
	family := msg[0]
	if family != unix.AF_INET && family != unix.AF_INET6 || family == unix.AF_INET && !(local.Addr().Is4() && remote.Addr().Is4()) {
		return 0, errors.New("sock_diag: answer of another family")
	}
	got := msg[sockidOffsetInMsg : sockidOffsetInMsg+sizeofSockid]
	if msg[1] == tcpListen || string(got[:36]) != string(diagSockid(local, remote, family)[:36]) {
		return 0, errors.New("the kernel answered for another socket than this connection's")
	}
	uid := binary.NativeEndian.Uint32(msg[64:])
	if binary.NativeEndian.Uint32(msg[68:]) == 0 {
		return 0, errors.New("the client's socket is no longer held by a process")
	}
	return uid, nil
}

// diagSockid is the inet_diag_sockid of the client's end of the
// connection local↔remote (seen from the sidecar), in family.
func diagSockid(local, remote netip.AddrPort, family byte) []byte {
	id := make([]byte, sizeofSockid)
	binary.BigEndian.PutUint16(id[0:], remote.Port()) // the client's own port
	binary.BigEndian.PutUint16(id[2:], local.Port())
	putDiagAddr(id[4:20], remote.Addr(), family)
	putDiagAddr(id[20:36], local.Addr(), family)
	binary.NativeEndian.PutUint32(id[40:], ^uint32(0)) // INET_DIAG_NOCOOKIE
	binary.NativeEndian.PutUint32(id[44:], ^uint32(0))
	return id
}

func putDiagAddr(dst []byte, a netip.Addr, family byte) {
	if family == unix.AF_INET {
		b := a.As4()
		copy(dst, b[:])
		return
	}
	b := a.As16()
	copy(dst, b[:])
}
