package sessioncred

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// errNoPeerCredentials is returned where the system cannot say which user
// opened a connection: the sidecar then relies on its token alone.
var errNoPeerCredentials = errors.New("this system gives no peer credentials")

// tcpSocket is one line of /proc/net/tcp or /proc/net/tcp6.
type tcpSocket struct {
	Local, Remote netip.AddrPort // IPv4-mapped addresses are unmapped
	UID           uint32         // owner of the socket's inode (its creator's fsuid)
	Inode         uint64         // 0 for a socket no process holds (closed, TIME_WAIT)
}

// parseProcNetTCP reads the socket table the kernel prints in
// /proc/net/tcp and /proc/net/tcp6 (net/ipv4/tcp_ipv4.c, tcp6_seq_show):
// a header line, then one line per socket whose fields are
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
//
// Addresses are hexadecimal 32-bit words printed in the machine's byte
// order (one word for IPv4, four for IPv6), ports hexadecimal numbers. It
// calls fn for every socket until fn returns false. A line it cannot read
// is an error: the caller refuses rather than guesses.
func parseProcNetTCP(r io.Reader, fn func(tcpSocket) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if !strings.Contains(line, "local_address") {
				return errors.New("socket table: no header line")
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
			return fmt.Errorf("socket table: line %q has %d fields", trim(line, 40), len(f))
		}
		var s tcpSocket
		var err error
		if s.Local, err = parseProcAddr(f[1]); err != nil {
			return err
		}
		if s.Remote, err = parseProcAddr(f[2]); err != nil {
			return err
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return fmt.Errorf("socket table: uid %q", trim(f[7], 20))
		}
		s.UID = uint32(uid)
		if s.Inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
			return fmt.Errorf("socket table: inode %q", trim(f[9], 20))
		}
		if !fn(s) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("socket table: %w", err)
	}
	if first {
		return errors.New("socket table: empty")
	}
	return nil
}

// parseProcAddr reads "0100007F:1F90" (IPv4) or 32 hex digits and a port
// (IPv6).
func parseProcAddr(s string) (netip.AddrPort, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok || len(port) != 4 || (len(host) != 8 && len(host) != 32) {
		return netip.AddrPort{}, fmt.Errorf("socket table: address %q", trim(s, 60))
	}
	raw, err := hex.DecodeString(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socket table: address %q", trim(s, 60))
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socket table: port %q", trim(s, 60))
	}
	// Each 32-bit word was printed as a number: turn it back into the
	// bytes the kernel held, in this machine's order.
	ip := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// peerInTable finds, in the socket tables read by each reader, the socket
// at the other end of the TCP connection local↔remote (seen from the
// sidecar): the one whose local address is remote and whose remote address
// is local. It returns that socket's owner. It refuses (errors) unless
// exactly one socket matches and a process holds it (inode not 0: a closed
// or TIME_WAIT socket shows uid 0, which would pass for root).
func peerInTable(local, remote netip.AddrPort, tables ...io.Reader) (uint32, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	var found []tcpSocket
	for _, t := range tables {
		err := parseProcNetTCP(t, func(s tcpSocket) bool {
			if s.Local == remote && s.Remote == local {
				found = append(found, s)
			}
			return len(found) <= 4
		})
		if err != nil {
			return 0, err
		}
	}
	switch {
	case len(found) == 0:
		return 0, fmt.Errorf("no socket matches %s → %s (the client closed it, or is in another network namespace)", remote, local)
	case len(found) > 1:
		return 0, fmt.Errorf("%d sockets match %s → %s", len(found), remote, local)
	case found[0].Inode == 0:
		return 0, fmt.Errorf("the socket %s → %s is no longer held by a process", remote, local)
	}
	return found[0].UID, nil
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
