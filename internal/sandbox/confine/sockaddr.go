//go:build linux

package confine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// MaxSockaddr is the longest socket address the kernel accepts
// (sizeof(struct sockaddr_storage)), and so the most ReadSockaddr reads.
const MaxSockaddr = 128

// ErrNoAddress is returned by ReadSockaddr and ReadMsgName when the syscall
// names no address: a sendto or sendmsg on a connected socket, which goes
// where the socket's earlier connect (notified itself) pointed it.
var ErrNoAddress = errors.New("no socket address")

// Sockaddr is a decoded socket address.
type Sockaddr struct {
	// Family is the address family, AF_*.
	Family int
	// Addr is the address and port of an AF_INET or AF_INET6 address, with
	// an IPv6 scope ID as its zone.
	Addr netip.AddrPort
	// Unix is the path of an AF_UNIX address; an abstract name is "@"
	// followed by the name, NUL bytes included. Empty for an unnamed socket.
	Unix string
}

// String is the address as it reads in a record: 127.0.0.1:80, [::1]:80,
// unix:/run/x.sock, unix:@name, unix: (unnamed), AF_UNSPEC or "family 17".
func (s Sockaddr) String() string {
	switch s.Family {
	case unix.AF_INET, unix.AF_INET6:
		return s.Addr.String()
	case unix.AF_UNIX:
		q := strconv.QuoteToASCII(s.Unix)
		return "unix:" + q[1:len(q)-1]
	case unix.AF_UNSPEC:
		return "AF_UNSPEC"
	}
	if name, ok := familyNames[s.Family]; ok {
		return name
	}
	return "family " + strconv.Itoa(s.Family)
}

// ParseSockaddr decodes a socket address as a confined process passed it to
// connect, sendto or sendmsg. AF_INET, AF_INET6 and AF_UNIX addresses are
// decoded in full; any other family has only Family set. An address the
// kernel would refuse as too short or too long is an error, with Family set
// when there was one.
func ParseSockaddr(b []byte) (Sockaddr, error) {
	if len(b) > MaxSockaddr {
		return Sockaddr{}, fmt.Errorf("socket address of %d bytes exceeds %d", len(b), MaxSockaddr)
	}
	if len(b) < 2 {
		return Sockaddr{}, fmt.Errorf("socket address of %d bytes has no family", len(b))
	}
	s := Sockaddr{Family: int(binary.NativeEndian.Uint16(b))}
	switch s.Family {
	case unix.AF_INET:
		// struct sockaddr_in: family, port (big-endian), address, zero padding.
		if len(b) < 16 {
			return s, fmt.Errorf("AF_INET address of %d bytes, want 16", len(b))
		}
		s.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
	case unix.AF_INET6:
		// struct sockaddr_in6: family, port, flowinfo, address, and from 28
		// bytes on a scope ID; the kernel takes the 24-byte RFC 2133 form.
		if len(b) < 24 {
			return s, fmt.Errorf("AF_INET6 address of %d bytes, want 24 or more", len(b))
		}
		ip := netip.AddrFrom16([16]byte(b[8:24]))
		if len(b) >= 28 {
			if scope := binary.NativeEndian.Uint32(b[24:28]); scope != 0 {
				ip = ip.WithZone(strconv.FormatUint(uint64(scope), 10))
			}
		}
		s.Addr = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4]))
	case unix.AF_UNIX:
		path := b[2:]
		switch {
		case len(path) == 0:
		case path[0] == 0:
			s.Unix = "@" + string(path[1:])
		default:
			if end := bytes.IndexByte(path, 0); end >= 0 {
				path = path[:end]
			}
			s.Unix = string(path)
		}
	}
	return s, nil
}

// ReadSockaddr reads and decodes the socket address of length bytes at addr
// in the memory of process pid, as passed to connect (Args[1], Args[2]) or
// sendto (Args[4], Args[5]). It reads /proc/PID/mem, which needs ptrace
// access to pid, and never more than MaxSockaddr bytes.
//
// What it returns is what the memory held when it read it, for the record.
// The kernel reads the address again only when the supervisor continues the
// syscall, and another thread of the caller may have rewritten it in
// between: a decision to Continue based on a pointer argument is racy by
// design. Notifications let the supervisor observe and record; the sandbox's
// network namespace is the boundary that holds. After reading, check
// [Listener.Valid]: if the notification is gone, pid may be another process.
func ReadSockaddr(pid uint32, addr, length uint64) (Sockaddr, error) {
	if addr == 0 {
		return Sockaddr{}, ErrNoAddress
	}
	if length > MaxSockaddr {
		return Sockaddr{}, fmt.Errorf("socket address of %d bytes exceeds %d", length, MaxSockaddr)
	}
	b := make([]byte, length)
	if err := readMem(pid, addr, b); err != nil {
		return Sockaddr{}, err
	}
	return ParseSockaddr(b)
}

// ReadMsgName reads the destination address of a sendmsg call: the msg_name
// of the struct msghdr at msghdr (Args[1]) in process pid's memory. The same
// caveats as for ReadSockaddr apply.
func ReadMsgName(pid uint32, msghdr uint64) (Sockaddr, error) {
	// struct msghdr on 64-bit: void *msg_name; socklen_t msg_namelen; ...
	var hdr [12]byte
	if err := readMem(pid, msghdr, hdr[:]); err != nil {
		return Sockaddr{}, err
	}
	name := binary.NativeEndian.Uint64(hdr[0:])
	namelen := binary.NativeEndian.Uint32(hdr[8:])
	if name == 0 || namelen == 0 {
		// The kernel ignores msg_namelen without msg_name, and vice versa.
		return Sockaddr{}, ErrNoAddress
	}
	return ReadSockaddr(pid, name, uint64(namelen))
}

// readMem fills b from address addr of process pid.
func readMem(pid uint32, addr uint64, b []byte) error {
	if addr > math.MaxInt64-uint64(len(b)) {
		return fmt.Errorf("read memory of %d at %#x: not a user address", pid, addr)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/mem", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("read memory of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	for done := 0; done < len(b); {
		n, err := unix.Pread(fd, b[done:], int64(addr)+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read memory of %d at %#x: %w", pid, addr, err)
		}
		if n == 0 {
			return fmt.Errorf("read memory of %d at %#x: short read", pid, addr)
		}
		done += n
	}
	return nil
}
