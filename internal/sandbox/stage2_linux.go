package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/sandbox/confine"
)

// stage2Spec is what stage2 needs: sent by init through a pipe.
type stage2Spec struct {
	Root            string   `json:"root"`
	Argv            []string `json:"argv"`
	Env             []string `json:"env"`
	Limits          Limits   `json:"limits"`
	NprocRlimit     bool     `json:"nproc_rlimit,omitempty"`
	ReadOnly        []string `json:"read_only,omitempty"`
	RequireLandlock bool     `json:"require_landlock,omitempty"`
	// ConnectTCP are ward's ports on the runtime's loopback: the only TCP
	// destinations Landlock lets the program connect to.
	ConnectTCP []uint16 `json:"connect_tcp,omitempty"`
}

// Descriptors stage2 is started with.
const (
	fdSpec   = 3
	fdStatus = 4 // close-on-exec: the program does not inherit it
	fdAck    = 5
)

// stage2Main is PID 1 of the program's own PID namespace. It mounts that
// namespace's /proc in the runtime's root, pivots into the root,
// confines itself (Landlock, no capabilities, a seccomp filter whose
// notifications ward receives), starts the program, which inherits all of
// it, and reaps until the program ends; then it exits, and the kernel
// kills whatever of the program is left. It reports to init on fdStatus,
// one line each: "R text" (what is in force), "L fd" (the seccomp
// listener, which init takes with pidfd_getfd; then it waits for a byte
// on fdAck), "E error" (it failed), "S" (the program's execve succeeded)
// and last "X CODE [SIGNAL]" (how the program ended).
//
// With a PID namespace of its own, the program sees only its own
// processes and stage2: not the runtime's init, which holds the session
// key and whose mount table is the host's. stage2 is not dumpable and
// ignores every signal it can, so the program can neither read it nor end
// it early but by ending itself.
func stage2Main() {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	signal.Ignore(stage2Ignored...)
	status := os.NewFile(fdStatus, "status")
	syscall.CloseOnExec(fdStatus)
	fail := func(code int, format string, args ...any) {
		fmt.Fprintf(status, "E %s\n", strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " "))
		os.Exit(code)
	}
	b, err := io.ReadAll(io.LimitReader(os.NewFile(fdSpec, "spec"), maxMessage))
	if err != nil {
		fail(125, "runtime stage2: %v", err)
	}
	var spec stage2Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		fail(125, "runtime stage2: %v", err)
	}
	syscall.Close(fdSpec)
	if err := unix.Mount("proc", filepath.Join(spec.Root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		fail(125, "runtime stage2: mount /proc: %v", err)
	}
	if err := pivot(spec.Root); err != nil {
		fail(125, "runtime stage2: pivot_root: %v", err)
	}
	path, err := lookPath(spec.Argv[0], spec.Env)
	if err != nil {
		fail(127, "%v", err)
	}
	if err := setRlimits(spec); err != nil {
		fail(125, "runtime stage2: rlimits: %v", err)
	}
	ll := confine.Landlock{
		ReadExec: append([]string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}, spec.ReadOnly...),
		// The root itself is the runtime's skeleton: what is not mounted
		// in it does not exist for the program.
		ReadOnly:   []string{"/"},
		ReadWrite:  []string{"/workspace", "/tmp", "/home/agent", "/dev/shm", "/dev/null", "/dev/zero", "/dev/full"},
		ConnectTCP: spec.ConnectTCP,
	}
	rep, err := ll.Restrict()
	if err != nil {
		fail(125, "runtime stage2: landlock: %v", err)
	}
	for _, line := range strings.Split(rep.String(), "\n") {
		fmt.Fprintf(status, "R landlock: %s\n", line)
	}
	if spec.RequireLandlock && (rep.ABI == 0 || len(rep.Enforced) == 0) {
		fail(125, "Landlock is required (--require-landlock) but this kernel does not enforce it")
	}
	if err := dropCapabilities(); err != nil {
		fail(125, "runtime stage2: drop capabilities: %v", err)
	}
	fmt.Fprintln(status, "R capabilities: none (bounding set cleared, securebits locked, no_new_privs)")
	fmt.Fprintln(status, "R processes: a PID namespace of the program's own, with its own /proc")
	// io_uring would carry connects and sends past the filter: refused
	// (and recorded) like the other notified calls.
	notify := append(confine.DefaultNotify(), "io_uring_setup", "io_uring_enter", "io_uring_register")
	fd, err := confine.Filter{Notify: notify}.Install()
	if err != nil {
		fail(125, "runtime stage2: seccomp: %v", err)
	}
	fmt.Fprintf(status, "R seccomp: filter installed; ward is notified of %d kinds of system call\n", len(notify))
	fmt.Fprintf(status, "L %d\n", fd)
	var ack [1]byte
	if n, _ := syscall.Read(fdAck, ack[:]); n != 1 {
		os.Exit(125)
	}
	syscall.Close(fdAck)
	syscall.Close(fd)
	// Nothing of ward's but stdio crosses into the program.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// Started from this thread, which holds the confinement. A process
	// group of its own: kill(0, …) from the program reaches the
	// program's processes, not stage2.
	pid, err := syscall.ForkExec(path, spec.Argv, &syscall.ProcAttr{Env: spec.Env, Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		fail(code, "%s: %v", spec.Argv[0], err)
	}
	fmt.Fprintln(status, "S")
	code, sig := reapUntil(pid)
	fmt.Fprintf(status, "X %d %s\n", code, sig)
	os.Exit(0)
}

// stage2Ignored are the signals stage2 ignores: all it can but SIGCHLD,
// which it reaps by, and the Go runtime's own.
var stage2Ignored = []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP,
	syscall.SIGABRT, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGUSR1, syscall.SIGSEGV, syscall.SIGUSR2, syscall.SIGPIPE,
	syscall.SIGALRM, syscall.SIGTERM, syscall.SIGSTKFLT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
	syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM, syscall.SIGIO, syscall.SIGPWR, syscall.SIGSYS}

// pivot makes root the root of this mount namespace and detaches the old
// one, so that nothing of the host outside root is reachable.
func pivot(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return err
	}
	return unix.Chdir("/workspace")
}

// lookPath finds the program as the runtime's PATH says, inside the new
// root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := unix.Access(name, unix.X_OK); err != nil {
			return "", fmt.Errorf("%s: %v", name, err)
		}
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in the runtime (PATH=%s)", name, path)
}

func setRlimits(spec stage2Spec) error {
	lims := []struct {
		res int
		v   uint64
	}{{unix.RLIMIT_NOFILE, spec.Limits.NoFile}, {unix.RLIMIT_CORE, 0}}
	if spec.NprocRlimit {
		lims = append(lims, struct {
			res int
			v   uint64
		}{unix.RLIMIT_NPROC, uint64(spec.Limits.Pids)})
	}
	for _, l := range lims {
		if err := unix.Setrlimit(l.res, &unix.Rlimit{Cur: l.v, Max: l.v}); err != nil {
			return err
		}
	}
	return nil
}

// dropCapabilities leaves the program no capability, now or after execve,
// even though it runs as the namespace's uid 0: the bounding and ambient
// sets are cleared, securebits stop uid 0 from regaining any and are
// locked, and the permitted, effective and inheritable sets are emptied.
func dropCapabilities() error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("bounding set: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("ambient set: %w", err)
	}
	// linux/securebits.h
	const (
		noRoot, noRootLocked             = 1 << 0, 1 << 1
		noSetuidFixup, noSetuidFixupLock = 1 << 2, 1 << 3
		keepCapsLocked                   = 1 << 5
		noAmbientRaise, noAmbientLocked  = 1 << 6, 1 << 7
		bits                             = noRoot | noRootLocked | noSetuidFixup | noSetuidFixupLock | keepCapsLocked | noAmbientRaise | noAmbientLocked
	)
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, bits, 0, 0, 0); err != nil {
		return fmt.Errorf("securebits: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
