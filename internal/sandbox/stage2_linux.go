package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
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
	fdStatus = 4 // close-on-exec: EOF tells init the execve succeeded
	fdAck    = 5
)

// stage2Main pivots into the runtime's root, confines itself and executes
// the program. It reports to init on fdStatus, one line each: "R text"
// (what is in force), "L fd" (the seccomp listener, which init takes with
// pidfd_getfd; then it waits for a byte on fdAck), "E error" (it failed).
func stage2Main() {
	runtime.LockOSThread()
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
	if err := pivot(spec.Root); err != nil {
		fail(125, "runtime stage2: pivot_root: %v", err)
	}
	path, err := lookPath(spec.Argv[0], spec.Env)
	if err != nil {
		fail(127, "%v", err)
	}
	// A process group of its own: kill(0, …) from the program reaches
	// the program's processes, not init (whose group is the session's).
	if err := unix.Setpgid(0, 0); err != nil {
		fail(125, "runtime stage2: setpgid: %v", err)
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
	err = syscall.Exec(path, spec.Argv, spec.Env)
	fail(126, "%s: %v", spec.Argv[0], err)
}

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
