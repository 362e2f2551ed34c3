package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/sandbox/confine"
)

// MaxEvents bounds how many refusals a runtime reports one by one through
// Spec.OnEvent; the rest are counted, in one last event.
const MaxEvents = 1000

// supervisor answers the runtime's seccomp notifications: it lets through
// what the namespaces would let through anyway, refuses the rest with the
// errno the program would expect, and records each refusal.
type supervisor struct {
	l       *confine.Listener
	onEvent func(Event)
	ward    map[uint16]bool // ward's ports on the runtime's loopback: always listening

	mu      sync.Mutex
	events  int
	dropped int
	done    chan struct{}
}

func newSupervisor(l *confine.Listener, spec *Spec) *supervisor {
	s := &supervisor{l: l, onEvent: spec.OnEvent, ward: map[uint16]bool{}, done: make(chan struct{})}
	for _, f := range spec.Forwards {
		if f.Port != 0 {
			s.ward[f.Port] = true
		}
	}
	for _, p := range spec.ServicePorts {
		s.ward[p] = true
	}
	return s
}

func (s *supervisor) run() {
	defer close(s.done)
	for {
		n, err := s.l.Receive()
		if err != nil {
			return
		}
		kind, detail, errno := s.decide(n)
		if errno == 0 {
			s.l.Continue(n.ID)
			continue
		}
		s.l.Deny(n.ID, errno)
		s.record(Event{Time: time.Now(), Kind: kind, Detail: detail, Pid: nsPid(n.Pid)})
	}
}

func (s *supervisor) record(e Event) {
	if s.onEvent == nil {
		return
	}
	s.mu.Lock()
	if s.events >= MaxEvents {
		s.dropped++
		s.mu.Unlock()
		return
	}
	s.events++
	s.mu.Unlock()
	s.onEvent(e)
}

// close stops the supervisor and records how many refusals went
// uncounted.
func (s *supervisor) close() {
	s.l.Close()
	<-s.done
	s.mu.Lock()
	dropped := s.dropped
	s.mu.Unlock()
	if dropped > 0 && s.onEvent != nil {
		s.onEvent(Event{Time: time.Now(), Kind: "limit", Detail: fmt.Sprintf("%d more refused attempts were not recorded one by one", dropped)})
	}
}

// decide returns errno 0 to let the call through, or the refusal.
func (s *supervisor) decide(n *confine.Notif) (kind, detail string, errno syscall.Errno) {
	switch n.Syscall {
	case "connect":
		sa, err := confine.ReadSockaddr(n.Pid, n.Args[1], n.Args[2])
		return s.destination(n, "connect", sa, err)
	case "sendto":
		sa, err := confine.ReadSockaddr(n.Pid, n.Args[4], n.Args[5])
		return s.destination(n, "sendto", sa, err)
	case "sendmsg":
		sa, err := confine.ReadMsgName(n.Pid, n.Args[1])
		return s.destination(n, "sendmsg", sa, err)
	case "socket":
		domain, typ, proto := int(n.Args[0]), int(n.Args[1])&0xf, int(n.Args[2])
		if domain == unix.AF_NETLINK && proto == unix.NETLINK_ROUTE && (typ == unix.SOCK_RAW || typ == unix.SOCK_DGRAM) {
			// libc reads the interfaces this way for getaddrinfo with
			// AI_ADDRCONFIG (most programs' name lookups) and
			// if_nameindex: a route socket sees only the runtime's own
			// network namespace (its loopback), and changing that needs
			// CAP_NET_ADMIN, which the program does not hold. Refusing
			// it recorded a refusal for every such lookup.
			return "", "", 0
		}
		if domain == unix.AF_PACKET || typ == unix.SOCK_RAW || typ == unix.SOCK_PACKET {
			return "socket", confine.Describe(n) + " refused: no raw or packet sockets in the runtime", unix.EPERM
		}
		return "", "", 0
	case "sendmmsg":
		return "", "", 0 // each message's address is not read; the namespace decides
	case "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo":
		if own, err := confine.SignalsOwnProcess(n); err == nil && own {
			return "", "", 0 // e.g. the Go runtime preempting its own threads
		}
		target := int32(n.Args[0])
		if target <= 0 {
			return "", "", 0 // the caller's own process group, or all it may signal: inside the runtime
		}
		if target == 1 {
			return "signal", confine.Describe(n) + " refused: PID 1 is the runtime's init, which belongs to ward", unix.EPERM
		}
		if _, err := os.Lstat(fmt.Sprintf("/proc/%d/root/proc/%d", n.Pid, target)); err != nil {
			return "signal", confine.Describe(n) + " refused: no such process in the runtime (ward and the host are not visible)", unix.ESRCH
		}
		return "", "", 0
	case "pidfd_send_signal":
		return "", "", 0 // a pidfd can only name a process of the runtime
	case "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd":
		return "ptrace", confine.Describe(n) + " refused: no process may inspect another in the runtime", unix.EPERM
	}
	return "syscall", confine.Describe(n) + " refused: not allowed in the runtime", unix.EPERM
}

// destination decides a connect or send to an address. The runtime's
// network namespace has only loopback: a loopback destination is let
// through when something in the runtime listens there (ward's relays, or
// the program's own servers); anything else is refused as the kernel would
// refuse it, and recorded.
//
// A call whose address cannot be read (none given, or the caller gone) is
// let through: the kernel then decides it within the namespace. Nothing
// here is a boundary (the address may change after it is read): the
// network namespace is; this only records what it will refuse.
func (s *supervisor) destination(n *confine.Notif, call string, sa confine.Sockaddr, err error) (string, string, syscall.Errno) {
	if err != nil || !s.l.Valid(n.ID) {
		return "", "", 0
	}
	switch sa.Family {
	case unix.AF_UNIX:
		// Not decided here: the address is in the caller's memory and
		// may change before the kernel reads it. The runtime's mounts
		// are the boundary: every host directory it shows is an
		// overlay, where a host socket is an inode of the overlay's
		// that nothing listens on, and abstract names belong to the
		// runtime's network namespace.
		return "", "", 0
	case unix.AF_NETLINK, unix.AF_UNSPEC:
		return "", "", 0
	case unix.AF_INET, unix.AF_INET6:
	default:
		return call, fmt.Sprintf("%s to an address of family %d refused", call, sa.Family), unix.EAFNOSUPPORT
	}
	ap := sa.Addr
	ip := ap.Addr().Unmap()
	what := call + " to " + ap.String()
	if ap.Port() == 53 || ap.Port() == 5353 {
		what = "DNS query (" + call + ") to " + ap.String()
	}
	if !ip.IsLoopback() && !ip.IsUnspecified() {
		return call, what + " refused: the runtime has no route out; the only ways out are ward's egress proxy (HTTP_PROXY) and gateway", unix.ENETUNREACH
	}
	if s.ward[ap.Port()] || listening(n.Pid, ap.Port()) {
		return "", "", 0
	}
	return call, what + " refused: nothing in the runtime listens there, and the host's own ports are not reachable", unix.ECONNREFUSED
}

// listening reports whether a socket in the caller's network namespace is
// bound to port: a TCP listener, or a bound UDP socket.
func listening(pid uint32, port uint16) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		fh, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/net/" + f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || !strings.HasSuffix(fields[1], want) {
				continue
			}
			if (strings.HasPrefix(f, "tcp") && fields[3] == "0A") || (strings.HasPrefix(f, "udp") && fields[3] == "07") {
				fh.Close()
				return true
			}
		}
		fh.Close()
	}
	return false
}

// nsPid is the runtime's number for a host PID (its last NSpid), or 0.
func nsPid(host uint32) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(host)) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return 0
}
