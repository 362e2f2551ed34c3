//go:build linux

package confine

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Filter is a seccomp policy: an action for each named syscall, and allow for
// every syscall it does not name. Whatever the names, a syscall made with
// another calling convention than the native one (32-bit compat syscalls, and
// x32 on amd64) kills the process: the names resolve to native numbers only,
// so such calls would otherwise bypass the policy.
//
// Namespaces come from clone as well as unshare. When unshare is notified or
// denied, so is a clone with a CLONE_NEW* flag (notifications name it
// "clone"), and clone3, whose flags live in memory a filter cannot read,
// fails with ENOSYS, on which glibc, musl and Go fall back to clone (Go's
// os/exec needs clone3 only for SysProcAttr.UseCgroupFD).
//
// Names are the kernel's (as in unistd.h: "connect", "umount2", "newfstatat").
// A name the running architecture lacks but another supported one has (iopl
// exists on amd64 only) is ignored there; a name no supported architecture
// has is an error.
type Filter struct {
	// Notify names the syscalls that stop and wait for the supervisor holding
	// the listener returned by Install, which answers each with
	// [Listener.Continue] or [Listener.Deny]. See [DefaultNotify].
	Notify []string
	// Deny names the syscalls that fail with EPERM without asking the
	// supervisor. A name may not be in both lists.
	Deny []string
}

// DefaultNotify returns the syscalls ward's sandbox reports to its
// supervisor: network sends and connects, socket creation (so raw and packet
// sockets are recorded), tracing and cross-process memory access, signals,
// mounts and namespace changes, and kernel-wide operations (modules, kexec,
// keyrings, BPF, perf, clock, swap, reboot, port I/O). The sandbox's network
// namespace and mount namespace remain the boundary; notifications let the
// supervisor record attempts and refuse what policy forbids.
//
// pidfd_open stays allowed (a pidfd is harmless until pidfd_getfd or
// pidfd_send_signal, which are notified), and so does seccomp: a nested filter
// can only restrict its caller further.
func DefaultNotify() []string {
	return []string{
		// network
		"socket", "connect", "sendto", "sendmsg", "sendmmsg",
		// other processes: tracing, memory, signals, descriptors
		"ptrace", "process_vm_readv", "process_vm_writev",
		"kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
		"pidfd_send_signal", "pidfd_getfd",
		// mounts and namespaces
		"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
		"move_mount", "open_tree", "open_tree_attr", "fsopen", "fsmount", "fspick", "mount_setattr",
		// kernel-wide
		"bpf", "perf_event_open", "userfaultfd",
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"keyctl", "add_key", "request_key",
		"open_by_handle_at", "name_to_handle_at",
		"swapon", "swapoff", "reboot",
		"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
		"iopl", "ioperm",
	}
}

// arch is what the filter needs to know of one architecture.
type arch struct {
	name  string            // GOARCH
	audit uint32            // AUDIT_ARCH_* that seccomp_data.arch holds for native syscalls
	x32   bool              // numbers with bit 30 set are x32 syscalls, which the filter kills
	nr    map[string]uint32 // syscall numbers by name
}

var (
	archAMD64 = arch{name: "amd64", audit: unix.AUDIT_ARCH_X86_64, x32: true, nr: sysnumAMD64}
	archARM64 = arch{name: "arm64", audit: unix.AUDIT_ARCH_AARCH64, nr: sysnumARM64}
)

// x32Bit is __X32_SYSCALL_BIT.
const x32Bit = 0x40000000

func hostArch() (arch, error) {
	switch runtime.GOARCH {
	case "amd64":
		return archAMD64, nil
	case "arm64":
		return archARM64, nil
	}
	return arch{}, fmt.Errorf("seccomp filter: unsupported architecture %s", runtime.GOARCH)
}

// seccomp_data field offsets (linux/seccomp.h).
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// cloneNewMask are the namespace flags clone accepts: CLONE_NEWNS, _NEWCGROUP,
// _NEWUTS, _NEWIPC, _NEWUSER, _NEWPID and _NEWNET. (CLONE_NEWTIME lies in
// clone's exit-signal byte; only unshare and clone3 take it.)
const cloneNewMask = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// Program returns the filter as classic BPF for the running architecture: the
// program Install loads.
func (f Filter) Program() ([]unix.SockFilter, error) {
	a, err := hostArch()
	if err != nil {
		return nil, err
	}
	return f.program(a)
}

func (f Filter) program(a arch) ([]unix.SockFilter, error) {
	notify, err := resolve(a, f.Notify)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: notify: %w", err)
	}
	deny, err := resolve(a, f.Deny)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: deny: %w", err)
	}
	for _, nr := range notify {
		if _, both := slices.BinarySearch(deny, nr); both {
			return nil, fmt.Errorf("seccomp filter: syscall %d is both notified and denied", nr)
		}
	}

	unshare, hasUnshare := a.nr["unshare"]
	_, notifyUnshare := slices.BinarySearch(notify, unshare)
	_, denyUnshare := slices.BinarySearch(deny, unshare)

	var p assembler
	p.load(offArch)
	p.jeq(a.audit, "native", "")
	p.ret(unix.SECCOMP_RET_KILL_PROCESS)
	p.label("native")
	p.load(offNr)
	if a.x32 {
		p.jge(x32Bit, "", "numbered")
		p.ret(unix.SECCOMP_RET_KILL_PROCESS)
		p.label("numbered")
	}
	// One test and one return per syscall keeps every jump short. The kernel
	// caches the verdict of syscalls whose outcome does not depend on their
	// arguments, so the length of this list costs nothing per allowed call.
	// Namespaces: clone can create them as unshare does, so a clone with a
	// CLONE_NEW* flag gets unshare's action; clone3 passes its flags in
	// memory, which a filter cannot read, so it fails with ENOSYS and libc
	// falls back to clone.
	if hasUnshare && (notifyUnshare || denyUnshare) {
		action := uint32(unix.SECCOMP_RET_USER_NOTIF)
		if denyUnshare {
			action = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		}
		p.jeq(a.nr["clone3"], "", "not-clone3")
		p.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
		p.label("not-clone3")
		p.jeq(a.nr["clone"], "", "not-clone")
		p.load(offArgs) // the low 32 bits of clone's flags, on little-endian machines
		p.jset(cloneNewMask, "", "clone-allowed")
		p.ret(action)
		p.label("clone-allowed")
		p.ret(unix.SECCOMP_RET_ALLOW)
		p.label("not-clone")
	}
	for i, nr := range notify {
		next := fmt.Sprintf("n%d", i)
		p.jeq(nr, "", next)
		p.ret(unix.SECCOMP_RET_USER_NOTIF)
		p.label(next)
	}
	for i, nr := range deny {
		next := fmt.Sprintf("d%d", i)
		p.jeq(nr, "", next)
		p.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
		p.label(next)
	}
	p.ret(unix.SECCOMP_RET_ALLOW)
	return p.assemble()
}

// resolve turns names into a's sorted, distinct syscall numbers.
func resolve(a arch, names []string) ([]uint32, error) {
	var nrs []uint32
	for _, name := range names {
		nr, ok := a.nr[name]
		if !ok {
			if _, elsewhere := archAMD64.nr[name]; elsewhere {
				continue
			}
			if _, elsewhere := archARM64.nr[name]; elsewhere {
				continue
			}
			return nil, fmt.Errorf("unknown syscall %q", name)
		}
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	return slices.Compact(nrs), nil
}

// Install sets no_new_privs and loads the filter on the calling thread only,
// and returns the filter's notification listener: a close-on-exec file
// descriptor for [NewListener], to be handed to the supervisor (see
// [TakeListener]) before the thread execs the confined program, which
// inherits the filter.
//
// The caller must hold its OS thread (runtime.LockOSThread) from Install to
// exec, and should do little in between: the filter applies to every syscall
// that thread makes, including the Go runtime's (a tgkill preempting another
// thread, say), and a notified syscall blocks until the supervisor answers.
//
// The kernel allows one filter with a listener per thread: Install fails
// with EBUSY under a filter that already has one, as inside another sandbox
// that supervises with notifications.
//
// Where the kernel supports it (5.19+), a notified syscall whose notification
// the supervisor has received waits killably, so signals to the confined
// program (Go's preemption signals, for one) do not abort and restart it into
// a new notification.
func (f Filter) Install() (listener int, err error) {
	prog, err := f.Program()
	if err != nil {
		return -1, err
	}
	if err := setNoNewPrivs(); err != nil {
		return -1, fmt.Errorf("seccomp filter: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	if errno == unix.EINVAL {
		// Kernels before 5.19 do not know WAIT_KILLABLE_RECV.
		flags = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		fd, _, errno = unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	}
	runtime.KeepAlive(prog)
	if errno == unix.EBUSY {
		return -1, fmt.Errorf("seccomp filter: load: %w: a filter with a listener already confines this thread (a sandbox inside a sandbox?)", errno)
	}
	if errno != 0 {
		return -1, fmt.Errorf("seccomp filter: load: %w", errno)
	}
	return int(fd), nil
}

// setNoNewPrivs sets no_new_privs on the calling thread: execve will not grant
// privileges (setuid, file capabilities), which seccomp and Landlock require
// of an unprivileged caller. Every thread and process it creates, and every
// program it execs, keeps the flag.
func setNoNewPrivs() error {
	if _, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", errno)
	}
	return nil
}
