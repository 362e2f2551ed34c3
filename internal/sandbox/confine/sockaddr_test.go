//go:build linux

package confine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSockaddr lays out a socket address as a program passes it.
func rawSockaddr(family uint16, rest ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, family)
	return append(b, rest...)
}

func inet4(port uint16, ip [4]byte) []byte {
	b := rawSockaddr(unix.AF_INET)
	b = binary.BigEndian.AppendUint16(b, port)
	b = append(b, ip[:]...)
	return append(b, make([]byte, 8)...)
}

func inet6(port uint16, ip [16]byte, scope uint32, full bool) []byte {
	b := rawSockaddr(unix.AF_INET6)
	b = binary.BigEndian.AppendUint16(b, port)
	b = append(b, 0, 0, 0, 0) // flowinfo
	b = append(b, ip[:]...)
	if full {
		b = binary.NativeEndian.AppendUint32(b, scope)
	}
	return b
}

func TestParseSockaddr(t *testing.T) {
	v6 := netip.MustParseAddr("fe80::1").As16()
	tests := []struct {
		name    string
		b       []byte
		want    string
		family  int
		wantErr bool
	}{
		{"inet", inet4(8080, [4]byte{127, 0, 0, 1}), "127.0.0.1:8080", unix.AF_INET, false},
		{"inet short", inet4(80, [4]byte{127, 0, 0, 1})[:8], "", unix.AF_INET, true},
		{"inet6 scoped", inet6(443, v6, 2, true), "[fe80::1%2]:443", unix.AF_INET6, false},
		{"inet6 rfc2133", inet6(443, netip.IPv6Loopback().As16(), 0, false), "[::1]:443", unix.AF_INET6, false},
		{"inet6 short", inet6(443, v6, 0, false)[:20], "", unix.AF_INET6, true},
		{"unix path", rawSockaddr(unix.AF_UNIX, append([]byte("/run/x.sock"), 0, 'j', 'u', 'n', 'k')...), "unix:/run/x.sock", unix.AF_UNIX, false},
		{"unix path unterminated", rawSockaddr(unix.AF_UNIX, []byte("/tmp/s")...), "unix:/tmp/s", unix.AF_UNIX, false},
		{"unix abstract", rawSockaddr(unix.AF_UNIX, 0, 'b', 'u', 's', 0, 'x'), `unix:@bus\x00x`, unix.AF_UNIX, false},
		{"unix unnamed", rawSockaddr(unix.AF_UNIX), "unix:", unix.AF_UNIX, false},
		{"unspec", rawSockaddr(unix.AF_UNSPEC, make([]byte, 14)...), "AF_UNSPEC", unix.AF_UNSPEC, false},
		{"netlink", rawSockaddr(unix.AF_NETLINK, make([]byte, 10)...), "AF_NETLINK", unix.AF_NETLINK, false},
		{"unknown", rawSockaddr(200, 1, 2), "family 200", 200, false},
		{"empty", nil, "", 0, true},
		{"one byte", []byte{2}, "", 0, true},
		{"too long", rawSockaddr(unix.AF_UNIX, make([]byte, MaxSockaddr)...), "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSockaddr(tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if s.Family != tt.family {
				t.Errorf("Family %d, want %d", s.Family, tt.family)
			}
			if err == nil && s.String() != tt.want {
				t.Errorf("String() = %q, want %q", s.String(), tt.want)
			}
		})
	}
}

// FuzzParseSockaddr checks that whatever a confined program passes decodes
// to what its bytes say, or to an error.
func FuzzParseSockaddr(f *testing.F) {
	f.Add(inet4(80, [4]byte{10, 0, 0, 1}))
	f.Add(inet6(53, netip.IPv6Loopback().As16(), 7, true))
	f.Add(rawSockaddr(unix.AF_UNIX, []byte("/run/docker.sock\x00")...))
	f.Add(rawSockaddr(unix.AF_UNIX, 0, 'x'))
	f.Add(rawSockaddr(unix.AF_PACKET, make([]byte, 18)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSockaddr(b)
		if len(b) > MaxSockaddr || len(b) < 2 {
			if err == nil {
				t.Fatalf("accepted %d bytes", len(b))
			}
			return
		}
		if fam := int(binary.NativeEndian.Uint16(b)); s.Family != fam {
			t.Fatalf("Family %d, bytes say %d", s.Family, fam)
		}
		if err != nil {
			if s.Family != unix.AF_INET && s.Family != unix.AF_INET6 {
				t.Fatalf("error for family %d: %v", s.Family, err)
			}
			return
		}
		if s.String() == "" {
			t.Fatal("empty String")
		}
		switch s.Family {
		case unix.AF_INET:
			if s.Addr.Port() != binary.BigEndian.Uint16(b[2:]) || s.Addr.Addr().As4() != [4]byte(b[4:8]) {
				t.Fatalf("%v from %x", s.Addr, b)
			}
		case unix.AF_INET6:
			if s.Addr.Port() != binary.BigEndian.Uint16(b[2:]) || s.Addr.Addr().As16() != [16]byte(b[8:24]) {
				t.Fatalf("%v from %x", s.Addr, b)
			}
		case unix.AF_UNIX:
			path := b[2:]
			switch {
			case len(path) == 0:
				if s.Unix != "" {
					t.Fatalf("unnamed address decoded as %q", s.Unix)
				}
			case path[0] == 0:
				if s.Unix != "@"+string(path[1:]) {
					t.Fatalf("abstract %q from %x", s.Unix, b)
				}
			default:
				if strings.IndexByte(s.Unix, 0) >= 0 || !bytes.HasPrefix(path, []byte(s.Unix)) ||
					len(s.Unix) < len(path) && path[len(s.Unix)] != 0 {
					t.Fatalf("path %q from %x", s.Unix, b)
				}
			}
		default:
			if s.Addr.IsValid() || s.Unix != "" {
				t.Fatalf("family %d decoded as %+v", s.Family, s)
			}
		}
	})
}

// TestReadSockaddr reads socket addresses out of this process's own memory
// through /proc/PID/mem.
func TestReadSockaddr(t *testing.T) {
	pid := uint32(os.Getpid())
	raw := inet4(8443, [4]byte{127, 0, 0, 1})
	s, err := ReadSockaddr(pid, uint64(uintptr(unsafe.Pointer(&raw[0]))), uint64(len(raw)))
	if err != nil || s.String() != "127.0.0.1:8443" {
		t.Errorf("ReadSockaddr = %v, %v", s, err)
	}

	hdr := unix.Msghdr{Name: &raw[0], Namelen: uint32(len(raw))}
	s, err = ReadMsgName(pid, uint64(uintptr(unsafe.Pointer(&hdr))))
	if err != nil || s.String() != "127.0.0.1:8443" {
		t.Errorf("ReadMsgName = %v, %v", s, err)
	}
	runtime.KeepAlive(raw)
	runtime.KeepAlive(&hdr)

	if _, err := ReadSockaddr(pid, 0, 16); !errors.Is(err, ErrNoAddress) {
		t.Errorf("ReadSockaddr of NULL: %v, want ErrNoAddress", err)
	}
	empty := unix.Msghdr{}
	if _, err := ReadMsgName(pid, uint64(uintptr(unsafe.Pointer(&empty)))); !errors.Is(err, ErrNoAddress) {
		t.Errorf("ReadMsgName without msg_name: %v, want ErrNoAddress", err)
	}
	if _, err := ReadSockaddr(pid, uint64(uintptr(unsafe.Pointer(&raw[0]))), MaxSockaddr+1); err == nil {
		t.Error("ReadSockaddr read past MaxSockaddr")
	}
	if _, err := ReadSockaddr(pid, 8, 16); err == nil {
		t.Error("ReadSockaddr of an unmapped address succeeded")
	}
	if _, err := ReadSockaddr(pid, 1<<63, 16); err == nil {
		t.Error("ReadSockaddr of a kernel address succeeded")
	}
}
