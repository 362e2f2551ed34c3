//go:build linux

package confine

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Describe renders a notification for a record from its registers alone:
//
//	socket(AF_PACKET, SOCK_RAW, 768)
//	connect(fd=3, addrlen=16)
//	kill(pid=1, SIGKILL)
//	ptrace(PTRACE_ATTACH, pid=7)
//	unshare(CLONE_NEWUSER|CLONE_NEWNET)
//	clone(CLONE_NEWUSER, SIGCHLD)
//
// It reads no memory, so it is safe on any notification and never blocks;
// pointer arguments (the address of a connect) are for [ReadSockaddr].
// Syscalls it has no format for show their first three arguments in hex.
func Describe(n *Notif) string {
	a := n.Args
	switch n.Syscall {
	case "socket":
		return fmt.Sprintf("socket(%s, %s, %d)", family(int(a[0])), sockType(a[1]), int32(a[2]))
	case "connect":
		return fmt.Sprintf("connect(fd=%d, addrlen=%d)", int32(a[0]), uint32(a[2]))
	case "sendto":
		if a[4] == 0 {
			return fmt.Sprintf("sendto(fd=%d, len=%d)", int32(a[0]), a[2])
		}
		return fmt.Sprintf("sendto(fd=%d, len=%d, addrlen=%d)", int32(a[0]), a[2], uint32(a[5]))
	case "sendmsg":
		return fmt.Sprintf("sendmsg(fd=%d)", int32(a[0]))
	case "sendmmsg":
		return fmt.Sprintf("sendmmsg(fd=%d, vlen=%d)", int32(a[0]), uint32(a[2]))
	case "ptrace":
		if a[0] == unix.PTRACE_TRACEME {
			return "ptrace(PTRACE_TRACEME)"
		}
		return fmt.Sprintf("ptrace(%s, pid=%d)", ptraceRequest(a[0]), int32(a[1]))
	case "process_vm_readv", "process_vm_writev":
		return fmt.Sprintf("%s(pid=%d)", n.Syscall, int32(a[0]))
	case "kill", "rt_sigqueueinfo":
		return fmt.Sprintf("%s(pid=%d, %s)", n.Syscall, int32(a[0]), signal(a[1]))
	case "tkill":
		return fmt.Sprintf("tkill(tid=%d, %s)", int32(a[0]), signal(a[1]))
	case "tgkill", "rt_tgsigqueueinfo":
		return fmt.Sprintf("%s(tgid=%d, tid=%d, %s)", n.Syscall, int32(a[0]), int32(a[1]), signal(a[2]))
	case "pidfd_send_signal":
		return fmt.Sprintf("pidfd_send_signal(pidfd=%d, %s)", int32(a[0]), signal(a[1]))
	case "pidfd_getfd":
		return fmt.Sprintf("pidfd_getfd(pidfd=%d, fd=%d)", int32(a[0]), int32(a[1]))
	case "clone":
		return fmt.Sprintf("clone(%s, %s)", cloneFlags(a[0]&^0xff), signal(a[0]&0xff))
	case "unshare":
		return fmt.Sprintf("unshare(%s)", cloneFlags(a[0]))
	case "setns":
		return fmt.Sprintf("setns(fd=%d, %s)", int32(a[0]), cloneFlags(a[1]))
	case "bpf":
		return fmt.Sprintf("bpf(%s)", bpfCommand(a[0]))
	}
	name := n.Syscall
	if name == "" {
		name = "syscall " + strconv.Itoa(int(n.Nr))
	}
	return fmt.Sprintf("%s(%#x, %#x, %#x, ...)", name, a[0], a[1], a[2])
}

var familyNames = map[int]string{
	unix.AF_UNSPEC: "AF_UNSPEC", unix.AF_UNIX: "AF_UNIX", unix.AF_INET: "AF_INET",
	unix.AF_AX25: "AF_AX25", unix.AF_IPX: "AF_IPX", unix.AF_APPLETALK: "AF_APPLETALK",
	unix.AF_BRIDGE: "AF_BRIDGE", unix.AF_X25: "AF_X25", unix.AF_INET6: "AF_INET6",
	unix.AF_KEY: "AF_KEY", unix.AF_NETLINK: "AF_NETLINK", unix.AF_PACKET: "AF_PACKET",
	unix.AF_RDS: "AF_RDS", unix.AF_LLC: "AF_LLC", unix.AF_CAN: "AF_CAN",
	unix.AF_TIPC: "AF_TIPC", unix.AF_BLUETOOTH: "AF_BLUETOOTH", unix.AF_ALG: "AF_ALG",
	unix.AF_VSOCK: "AF_VSOCK", unix.AF_XDP: "AF_XDP", unix.AF_MCTP: "AF_MCTP",
}

func family(f int) string {
	if name, ok := familyNames[f]; ok {
		return name
	}
	return strconv.Itoa(f)
}

func sockType(t uint64) string {
	names := map[uint64]string{
		unix.SOCK_STREAM: "SOCK_STREAM", unix.SOCK_DGRAM: "SOCK_DGRAM", unix.SOCK_RAW: "SOCK_RAW",
		unix.SOCK_RDM: "SOCK_RDM", unix.SOCK_SEQPACKET: "SOCK_SEQPACKET", unix.SOCK_DCCP: "SOCK_DCCP",
		unix.SOCK_PACKET: "SOCK_PACKET",
	}
	base := t & 0xf
	s, ok := names[base]
	if !ok {
		s = strconv.FormatUint(base, 10)
	}
	return s + flagNames(t&^0xf, []flagName{
		{unix.SOCK_NONBLOCK, "SOCK_NONBLOCK"},
		{unix.SOCK_CLOEXEC, "SOCK_CLOEXEC"},
	}, true)
}

type flagName struct {
	bit  uint64
	name string
}

// flagNames renders the bits of v as names joined by "|", unnamed bits as
// one hex number; with cont it continues an expression ("|A|B").
func flagNames(v uint64, names []flagName, cont bool) string {
	var parts []string
	for _, f := range names {
		if v&f.bit != 0 {
			parts = append(parts, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		parts = append(parts, fmt.Sprintf("%#x", v))
	}
	s := strings.Join(parts, "|")
	if cont && s != "" {
		return "|" + s
	}
	return s
}

func cloneFlags(v uint64) string {
	if v == 0 {
		return "0"
	}
	return flagNames(v, []flagName{
		{unix.CLONE_NEWNS, "CLONE_NEWNS"},
		{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
		{unix.CLONE_NEWUTS, "CLONE_NEWUTS"},
		{unix.CLONE_NEWIPC, "CLONE_NEWIPC"},
		{unix.CLONE_NEWUSER, "CLONE_NEWUSER"},
		{unix.CLONE_NEWPID, "CLONE_NEWPID"},
		{unix.CLONE_NEWNET, "CLONE_NEWNET"},
		{unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
		{unix.CLONE_FILES, "CLONE_FILES"},
		{unix.CLONE_FS, "CLONE_FS"},
		{unix.CLONE_SYSVSEM, "CLONE_SYSVSEM"},
		{unix.CLONE_VM, "CLONE_VM"},
		{unix.CLONE_VFORK, "CLONE_VFORK"},
		{unix.CLONE_THREAD, "CLONE_THREAD"},
		{unix.CLONE_SIGHAND, "CLONE_SIGHAND"},
		{unix.CLONE_PIDFD, "CLONE_PIDFD"},
		{unix.CLONE_SETTLS, "CLONE_SETTLS"},
		{unix.CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"},
		{unix.CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"},
		{unix.CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"},
	}, false)
}

func signal(v uint64) string {
	if v <= 64 {
		if name := unix.SignalName(syscall.Signal(v)); name != "" {
			return name
		}
	}
	return "signal " + strconv.FormatUint(v, 10)
}

func ptraceRequest(r uint64) string {
	names := map[uint64]string{
		unix.PTRACE_PEEKTEXT: "PTRACE_PEEKTEXT", unix.PTRACE_PEEKDATA: "PTRACE_PEEKDATA",
		unix.PTRACE_PEEKUSR: "PTRACE_PEEKUSER", unix.PTRACE_POKETEXT: "PTRACE_POKETEXT",
		unix.PTRACE_POKEDATA: "PTRACE_POKEDATA", unix.PTRACE_POKEUSR: "PTRACE_POKEUSER",
		unix.PTRACE_CONT: "PTRACE_CONT", unix.PTRACE_KILL: "PTRACE_KILL",
		unix.PTRACE_SINGLESTEP: "PTRACE_SINGLESTEP", unix.PTRACE_ATTACH: "PTRACE_ATTACH",
		unix.PTRACE_DETACH: "PTRACE_DETACH", unix.PTRACE_SYSCALL: "PTRACE_SYSCALL",
		unix.PTRACE_SETOPTIONS: "PTRACE_SETOPTIONS", unix.PTRACE_GETEVENTMSG: "PTRACE_GETEVENTMSG",
		unix.PTRACE_GETSIGINFO: "PTRACE_GETSIGINFO", unix.PTRACE_SETSIGINFO: "PTRACE_SETSIGINFO",
		unix.PTRACE_GETREGSET: "PTRACE_GETREGSET", unix.PTRACE_SETREGSET: "PTRACE_SETREGSET",
		unix.PTRACE_SEIZE: "PTRACE_SEIZE", unix.PTRACE_INTERRUPT: "PTRACE_INTERRUPT",
		unix.PTRACE_LISTEN: "PTRACE_LISTEN",
	}
	if name, ok := names[r]; ok {
		return name
	}
	return fmt.Sprintf("request %#x", r)
}

func bpfCommand(c uint64) string {
	names := map[uint64]string{
		unix.BPF_MAP_CREATE: "BPF_MAP_CREATE", unix.BPF_PROG_LOAD: "BPF_PROG_LOAD",
		unix.BPF_PROG_ATTACH: "BPF_PROG_ATTACH", unix.BPF_LINK_CREATE: "BPF_LINK_CREATE",
		unix.BPF_BTF_LOAD: "BPF_BTF_LOAD",
	}
	if name, ok := names[c]; ok {
		return name
	}
	return "cmd=" + strconv.FormatUint(c, 10)
}

// SignalsOwnProcess reports whether n is a kill, tgkill or tkill by which
// the caller signals its own process: the Go runtime preempting its threads
// (tgkill with SIGURG, every few milliseconds in a busy Go program), raise
// and abort in libc. A supervisor usually continues those without a record.
// Signal targets are PIDs in the caller's PID namespace, so SignalsOwnProcess
// reads the caller's IDs there from /proc/PID/status; check
// [Listener.Valid] afterwards. It reports false for every other syscall.
func SignalsOwnProcess(n *Notif) (bool, error) {
	switch n.Syscall {
	case "kill", "tgkill", "tkill":
	default:
		return false, nil
	}
	b, err := readStatus(n.Pid)
	if err != nil {
		return false, err
	}
	tgid, tid, err := innermostIDs(b)
	if err != nil {
		return false, fmt.Errorf("status of %d: %w", n.Pid, err)
	}
	target := int64(int32(n.Args[0]))
	switch n.Syscall {
	case "kill", "tgkill":
		return target == tgid, nil
	default: // tkill: only a signal to the calling thread itself is known to be
		return target == tid, nil
	}
}

// readStatus reads /proc/PID/status, at most 64 KiB of it.
func readStatus(pid uint32) ([]byte, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// innermostIDs returns a thread's thread group ID and thread ID in its own
// (innermost) PID namespace: the last fields of NStgid and NSpid.
func innermostIDs(status []byte) (tgid, tid int64, err error) {
	tgid, tid = -1, -1
	for line := range strings.SplitSeq(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || key != "NStgid" && key != "NSpid" {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			return -1, -1, fmt.Errorf("empty %s", key)
		}
		id, err := strconv.ParseInt(fields[len(fields)-1], 10, 32)
		if err != nil {
			return -1, -1, fmt.Errorf("%s: %w", key, err)
		}
		if key == "NStgid" {
			tgid = id
		} else {
			tid = id
		}
	}
	if tgid < 0 || tid < 0 {
		return -1, -1, fmt.Errorf("no NStgid and NSpid lines")
	}
	return tgid, tid, nil
}
