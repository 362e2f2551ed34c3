//go:build linux

package confine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock is a filesystem and TCP policy for the calling thread and every
// program it execs. Access not granted here is refused (EACCES) for every
// right the running kernel's Landlock can restrict; what it cannot restrict
// is listed in the [Report] that Restrict returns.
//
// A path's rule covers the file or directory hierarchy it names, resolved at
// Restrict time (symbolic links followed). A rule on a file other than a
// directory grants only the rights that apply to files (no creating or
// removing entries). Descriptors opened before Restrict keep their access:
// the caller should not pass them to the confined program.
type Landlock struct {
	// ReadExec hierarchies may be read, listed and executed: programs and
	// libraries (/usr, /bin, /lib, /lib64).
	ReadExec []string
	// ReadOnly hierarchies may be read and listed, and nothing under them
	// may be executed: configuration (/etc) and data.
	ReadOnly []string
	// ReadWrite hierarchies allow everything Landlock restricts: read, write,
	// truncate, create and remove entries of every kind, move files within
	// and between ReadWrite hierarchies, execute, and device ioctls. For the
	// workspace and /tmp.
	ReadWrite []string
	// ConnectTCP are the only TCP ports the program may connect to, on any
	// address (Landlock ABI 4). Nil allows no TCP connect at all.
	ConnectTCP []uint16
	// BindTCP are the only TCP ports the program may bind to (Landlock ABI
	// 4). Nil allows no TCP bind; binding an ephemeral port needs port 0.
	BindTCP []uint16
}

// Report says what Restrict enforced, as sentences for the caller to print.
type Report struct {
	// ABI is the kernel's Landlock ABI version, 0 if Landlock is unavailable.
	ABI int
	// Enforced lists the restrictions in force.
	Enforced []string
	// NotEnforced lists what the policy asked for that the kernel cannot
	// enforce, and why.
	NotEnforced []string
	// Skipped lists the configured paths that do not exist, which got no rule.
	Skipped []string
}

// String is the report as lines.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "landlock ABI %d", r.ABI)
	for _, s := range r.Enforced {
		b.WriteString("\nenforced: " + s)
	}
	for _, s := range r.NotEnforced {
		b.WriteString("\nnot enforced: " + s)
	}
	for _, s := range r.Skipped {
		b.WriteString("\nskipped missing path: " + s)
	}
	return b.String()
}

// abiKnown is the newest Landlock ABI whose restrictions this package knows.
// ABI 7 added only audit logging, so it restricts nothing more than ABI 6.
const abiKnown = 7

// ABI returns the running kernel's Landlock ABI version, or 0 if Landlock is
// not built in or not enabled.
func ABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// Access rights (linux/landlock.h).
const (
	// fsABI1 are the filesystem rights of ABI 1, EXECUTE through MAKE_SYM.
	fsABI1 = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	fsRead     = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	fsReadExec = fsRead | unix.LANDLOCK_ACCESS_FS_EXECUTE
	// fsFile are the rights a rule on a non-directory may grant.
	fsFile = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE |
		unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	netTCP = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	scopes = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
)

// ruleNetPort is LANDLOCK_RULE_NET_PORT.
const ruleNetPort = 2

// handledFS returns the filesystem rights a kernel of the given ABI restricts.
func handledFS(abi int) uint64 {
	h := uint64(fsABI1)
	if abi >= 2 {
		h |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		h |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		h |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	return h
}

// Restrict sets no_new_privs and confines the calling thread, and every
// process it creates or program it execs from then on, to l. It uses every
// restriction the running kernel's Landlock ABI offers: filesystem rights
// (refer from ABI 2, truncate from ABI 3, device ioctl from ABI 5), TCP bind
// and connect ports from ABI 4, and from ABI 6 scoping, so that the program
// can neither signal processes outside its domain nor connect to abstract
// unix sockets they created.
//
// The caller must hold its OS thread (runtime.LockOSThread): only that thread
// is restricted. Without Landlock (ABI 0) Restrict changes nothing and
// returns a Report saying so, and no error: whether that is fatal is the
// caller's decision. Restrict fails if a path exists but cannot be opened,
// or if the kernel refuses the ruleset.
func (l Landlock) Restrict() (Report, error) {
	abi := ABI()
	if abi == 0 {
		return Report{NotEnforced: []string{"Landlock is unavailable: the kernel lacks it or it is disabled (lsm= boot parameter)"}}, nil
	}
	return l.restrict(abi)
}

// restrict is Restrict on a kernel whose ABI is abi or newer: tests pass an
// older ABI than the kernel's to check what Restrict does on older kernels.
func (l Landlock) restrict(abi int) (Report, error) {
	r := Report{ABI: abi}
	if err := setNoNewPrivs(); err != nil {
		return r, fmt.Errorf("landlock: %w", err)
	}

	// struct landlock_ruleset_attr: three __u64, of which a kernel reads
	// those its ABI knows (it refuses a larger size unless the rest is zero).
	var attr struct{ fs, net, scoped uint64 }
	size := unsafe.Sizeof(attr.fs)
	attr.fs = handledFS(r.ABI)
	r.Enforced = append(r.Enforced, fmt.Sprintf("filesystem access outside the listed paths (%s)", describeFS(attr.fs)))
	if r.ABI < 2 {
		r.NotEnforced = append(r.NotEnforced, "moving files between directories needs Landlock ABI 2, kernel has 1: it is always refused")
	}
	if r.ABI < 3 {
		r.NotEnforced = append(r.NotEnforced, fmt.Sprintf("truncating files needs Landlock ABI 3, kernel has %d", r.ABI))
	}
	if r.ABI < 5 {
		r.NotEnforced = append(r.NotEnforced, fmt.Sprintf("device ioctl rules need Landlock ABI 5, kernel has %d", r.ABI))
	}
	if r.ABI >= 4 {
		attr.net = netTCP
		size = unsafe.Sizeof(attr.fs) + unsafe.Sizeof(attr.net)
		r.Enforced = append(r.Enforced, tcpRule("connect", l.ConnectTCP), tcpRule("bind", l.BindTCP))
	} else {
		r.NotEnforced = append(r.NotEnforced, fmt.Sprintf("network rules need Landlock ABI 4, kernel has %d", r.ABI))
	}
	if r.ABI >= 6 {
		attr.scoped = scopes
		size = unsafe.Sizeof(attr)
		r.Enforced = append(r.Enforced, "no signals to, and no abstract unix socket connections to, processes outside the sandbox")
	} else {
		r.NotEnforced = append(r.NotEnforced, fmt.Sprintf("signal and abstract unix socket scoping needs Landlock ABI 6, kernel has %d", r.ABI))
	}
	if r.ABI > abiKnown {
		r.NotEnforced = append(r.NotEnforced, fmt.Sprintf("rights added after Landlock ABI %d (kernel has %d) are not restricted", abiKnown, r.ABI))
	}

	rfd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return r, fmt.Errorf("landlock: create ruleset: %w", errno)
	}
	ruleset := int(rfd)
	defer unix.Close(ruleset)

	for _, set := range []struct {
		paths  []string
		access uint64
	}{
		{l.ReadExec, fsReadExec},
		{l.ReadOnly, fsRead},
		{l.ReadWrite, attr.fs},
	} {
		for _, path := range set.paths {
			skipped, err := addPathRule(ruleset, path, set.access&attr.fs)
			if err != nil {
				return r, fmt.Errorf("landlock: %w", err)
			}
			if skipped {
				r.Skipped = append(r.Skipped, path)
			}
		}
	}
	if r.ABI >= 4 {
		for _, set := range []struct {
			ports  []uint16
			access uint64
		}{
			{l.ConnectTCP, unix.LANDLOCK_ACCESS_NET_CONNECT_TCP},
			{l.BindTCP, unix.LANDLOCK_ACCESS_NET_BIND_TCP},
		} {
			for _, port := range set.ports {
				rule := struct{ access, port uint64 }{set.access, uint64(port)}
				if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), ruleNetPort, uintptr(unsafe.Pointer(&rule)), 0, 0, 0); errno != 0 {
					return r, fmt.Errorf("landlock: rule for TCP port %d: %w", port, errno)
				}
			}
		}
	}

	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); errno != 0 {
		return r, fmt.Errorf("landlock: restrict self: %w", errno)
	}
	return r, nil
}

// addPathRule allows access beneath path. It reports skipped for a path that
// does not exist.
func addPathRule(ruleset int, path string, access uint64) (skipped bool, err error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= fsFile
	}
	// struct landlock_path_beneath_attr is packed: __u64 allowed_access,
	// __s32 parent_fd, 12 bytes.
	var rule [12]byte
	binary.NativeEndian.PutUint64(rule[0:], access)
	binary.NativeEndian.PutUint32(rule[8:], uint32(int32(fd)))
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule[0])), 0, 0, 0); errno != 0 {
		return false, fmt.Errorf("rule for %s: %w", path, errno)
	}
	return false, nil
}

func describeFS(access uint64) string {
	names := []struct {
		bit  uint64
		name string
	}{
		{unix.LANDLOCK_ACCESS_FS_EXECUTE, "execute"},
		{unix.LANDLOCK_ACCESS_FS_WRITE_FILE, "write"},
		{unix.LANDLOCK_ACCESS_FS_READ_FILE, "read"},
		{unix.LANDLOCK_ACCESS_FS_READ_DIR, "list"},
		{unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR, "remove"},
		{unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_SYM |
			unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
			unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK, "create"},
		{unix.LANDLOCK_ACCESS_FS_REFER, "move between directories"},
		{unix.LANDLOCK_ACCESS_FS_TRUNCATE, "truncate"},
		{unix.LANDLOCK_ACCESS_FS_IOCTL_DEV, "device ioctl"},
	}
	var out []string
	for _, n := range names {
		if access&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, ", ")
}

func tcpRule(op string, ports []uint16) string {
	if len(ports) == 0 {
		return "no TCP " + op
	}
	ports = slices.Compact(slices.Sorted(slices.Values(ports)))
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return "TCP " + op + " only to ports " + strings.Join(s, ", ")
}
