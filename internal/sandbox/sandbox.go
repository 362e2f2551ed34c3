// Package sandbox is ward's ephemeral runtime: it runs an agent program in
// Linux namespaces whose only ways out are the ones ward relays.
//
// A runtime is three processes, all of them this binary:
//
//	ward (outside)   starts the runtime, relays its ports, supervises its
//	                 system calls, scans its workspace changes, tears it down
//	init (inside)    PID 1 of new user, mount, PID, network, IPC and UTS
//	                 namespaces: builds the root file system, listens on
//	                 the relayed ports, runs the runtime's service (ward run
//	                 keeps the session key there), reaps every process
//	stage2 → CMD     PID 1 of a PID namespace of the program's own, in a
//	                 mount namespace of its own: mounts that namespace's
//	                 /proc, pivots into the new root, confines itself
//	                 (Landlock, no capabilities, a seccomp filter whose
//	                 notifications ward receives), starts the program,
//	                 which inherits all of it, and reaps until it ends
//
// The program sees its own processes and stage2 (not dumpable, ignoring
// every signal it can) and nothing of init: neither the session key's
// process nor its mount table, which is the host's.
//
// The file system is the host's read-only where a program needs it (/usr,
// the libraries, a curated /etc), a fresh /tmp, and /workspace: an overlay
// whose lower layer is the real workspace and whose upper layer, on a
// size-limited tmpfs, captures every change. Nothing else of the host is
// there: not /root, /home, /var, nor ward's own data. Every host directory
// shown, the workspace included, is an overlay of a bind of it (named
// relative to the run directory, so the program's mount table does not
// show host paths): in an overlay, a socket or FIFO of the host is an
// inode of the overlay's own, which no socket is bound to and no pipe
// attached to. So a host daemon's socket under a shown directory cannot
// be connected to or sent to, however the program names it; this rests
// on the mounts, not on reading the address a program passes. Host files
// shown one by one are bound read-only and must be regular files; ReadOnly
// paths are resolved (symlinks followed) before they are checked.
//
// The network namespace has only a loopback interface. On it, init listens
// on the Forward ports and relays each connection, through a Unix socket in
// the run directory, to ward outside, which dials the real destination.
// Everything else fails: there is no route, no resolver and no other
// listener; abstract Unix socket names belong to the network namespace.
// The seccomp filter's notifications let ward record each refused
// attempt (a direct connection, a raw socket, a signal or ptrace aimed
// outside the sandbox, a mount); the namespaces and mounts, not the
// filter, are the boundary, since a notification's pointer arguments can
// change after ward reads them.
//
// Limits: a cgroup (v1 or v2, whichever the host delegates) caps memory,
// CPU and processes; the scratch tmpfs caps the disk; rlimits cap open files
// and core dumps. What the host does not offer is reported, never silently
// skipped; a runtime that cannot be confined at all does not start. When
// the program has ended, Result.Limits says which limits it met, from the
// kernel's counts (an OOM kill is not just any SIGKILL).
//
// The ward process holding a runtime locks its run directory, where the
// runtime's cgroups are recorded before they are made. If that process is
// killed, the runtime dies with it (init has a parent-death signal); [Reap]
// removes the cgroups and directory it leaves.
//
// Programs that re-execute this binary as a runtime must call [Child] first
// thing in main.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Defaults for Limits left zero.
const (
	DefaultMemory = 2 << 30 // bytes
	DefaultPids   = 512
	DefaultDisk   = 1 << 30 // bytes of scratch: workspace changes and /tmp
	DefaultNoFile = 4096
)

// Limits bound a runtime's resources.
type Limits struct {
	Memory int64   // bytes (cgroup)
	CPU    float64 // CPUs; 0: no CPU limit (cgroup)
	Pids   int     // processes and threads (cgroup, else RLIMIT_NPROC)
	Disk   int64   // bytes of changes plus /tmp (tmpfs size)
	NoFile uint64  // open files per process (rlimit)
}

func (l Limits) withDefaults() Limits {
	if l.Memory <= 0 {
		l.Memory = DefaultMemory
	}
	if l.Pids <= 0 {
		l.Pids = DefaultPids
	}
	if l.Disk <= 0 {
		l.Disk = DefaultDisk
	}
	if l.NoFile == 0 {
		l.NoFile = DefaultNoFile
	}
	return l
}

// Forward is a way out of the runtime: a TCP port on the runtime's
// 127.0.0.1 (Port > 0), or a name only the runtime's service can dial
// (Port 0), relayed to what Dial connects to outside.
type Forward struct {
	Name string
	Port uint16
	Dial func(ctx context.Context) (net.Conn, error)
}

// Event is something the runtime refused, or the runtime itself did, for
// the caller to record.
type Event struct {
	Time   time.Time
	Kind   string // "connect", "sendto", "socket", "signal", "ptrace", "syscall", "exec", "limit"
	Detail string // e.g. "connect to 127.0.0.1:5432 refused: the only ways out are ward's"
	Pid    int    // the process inside, as the runtime numbers it (0 unknown)
}

// Spec describes one runtime.
type Spec struct {
	// Argv is the program and its arguments; Argv[0] is looked up in the
	// runtime's PATH (from Env) unless it contains a slash.
	Argv []string
	// Env is the program's whole environment (plus what the service adds).
	Env []string
	// Workspace is the host directory the program works on, seen as
	// /workspace; changes land in the run's change set, not in it. ""
	// gives an empty workspace.
	Workspace string
	// ReadOnly lists more host directories or regular files to show,
	// read-only, at their real paths (Validate resolves symlinks).
	ReadOnly []string
	// RunDir is a directory ward owns for this run (mode 0700): relay
	// sockets live there while the runtime runs. Start locks it and
	// records there what the runtime makes outside it, for Reap.
	RunDir   string
	Hostname string
	Limits   Limits
	Forwards []Forward
	// Files are placed, read-only, under /run/ward in the runtime.
	Files map[string][]byte
	// Service names a function registered with [RegisterService] that
	// init runs before the program starts; Serve answers its calls.
	Service string
	Serve   func(method string, body json.RawMessage) (any, error)
	// ServicePorts are the ports the service listens on, on the
	// runtime's loopback: with the forwarded ports, the only TCP
	// destinations the program may connect to.
	ServicePorts []uint16
	// OnEvent receives what the runtime refused; it must not block long.
	OnEvent func(Event)
	// Stdio of the program; nil is /dev/null.
	Stdin, Stdout, Stderr *os.File
	// RequireLandlock refuses to start where Landlock is unavailable.
	RequireLandlock bool
}

// Result is how a runtime ended.
type Result struct {
	// ExitCode is the program's exit status, or 128+signal.
	ExitCode int
	Signal   string // the signal that ended it, if one did
	// Stopped is why ward stopped the runtime early ("" if the program
	// ended by itself).
	Stopped string
	// Upper is the overlay's upper layer, readable until Release: the
	// workspace's changes.
	Upper string
	// Started is how long it took from Start to the program's first
	// instruction (the moment its execve succeeded).
	Started time.Duration
	// Limits says which limits the program ran into, one sentence each
	// ("memory: out of memory: the kernel killed 1 process at the limit
	// of 64 MiB (--memory)"): an exit status alone does not tell an OOM
	// kill from any other SIGKILL.
	Limits []string
}

// Sandbox is a running runtime.
type Sandbox struct {
	start  time.Time
	host   *hostSide
	report []string

	mu      sync.Mutex
	stopped string

	done   chan struct{}
	result Result
	err    error
}

// Report says which confinement is in force, one line each, and what the
// host does not offer.
func (s *Sandbox) Report() []string { return s.report }

// StartedIn is how long the program took to start (see Result.Started).
func (s *Sandbox) StartedIn() time.Duration { return s.result.Started }

// Stop ends the program now: every process of the runtime but its init
// is killed, and Wait returns with reason in Result.Stopped and the
// changes still readable. If init does not answer within 5s, it is killed
// too (and the changes are lost). Stop may be called more than once and
// from any goroutine; it does not wait, and does nothing once the program
// has ended.
func (s *Sandbox) Stop(reason string) {
	select {
	case <-s.done:
		return
	default:
	}
	s.mu.Lock()
	first := s.stopped == ""
	if first {
		s.stopped = reason
	}
	s.mu.Unlock()
	if !first {
		return
	}
	if err := s.host.ctrl.send(message{Type: "stop"}, -1); err != nil {
		s.host.kill()
		return
	}
	go func() {
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.host.kill()
		}
	}()
}

// Wait waits for the program to end. The runtime's init stays alive, and
// Result.Upper readable, until Release.
func (s *Sandbox) Wait() (Result, error) {
	<-s.done
	s.mu.Lock()
	s.result.Stopped = s.stopped
	s.mu.Unlock()
	return s.result, s.err
}

// Release tears the runtime down: init and anything left are killed, the
// scratch file systems go with its mount namespace, limits are removed and
// the relay sockets deleted. It waits until the processes are gone.
func (s *Sandbox) Release() error { return s.host.release() }

// Validate checks a Spec before anything is started, so that bad input
// gets a clear error and leaves nothing behind.
func (spec *Spec) Validate() error {
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return errors.New("no program to run")
	}
	if spec.RunDir == "" || !filepath.IsAbs(spec.RunDir) {
		return errors.New("the run directory must be an absolute path")
	}
	if spec.Workspace != "" {
		ws, err := filepath.Abs(spec.Workspace)
		if err != nil {
			return err
		}
		fi, err := os.Stat(ws)
		if err != nil {
			return fmt.Errorf("workspace: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("workspace %s is not a directory", ws)
		}
		if strings.ContainsAny(ws, ",:\\\n") {
			return fmt.Errorf("workspace %q: overlayfs cannot take a path with ',', ':' or '\\'", ws)
		}
		spec.Workspace = ws
	}
	ro := make([]string, len(spec.ReadOnly))
	for i, p := range spec.ReadOnly {
		real, err := realReadOnly(p)
		if err != nil {
			return err
		}
		ro[i] = real
	}
	spec.ReadOnly = ro
	for name := range spec.Files {
		if err := plainName(name); err != nil {
			return err
		}
	}
	seen := map[uint16]bool{}
	for _, f := range spec.Forwards {
		if f.Name == "" || f.Dial == nil {
			return errors.New("a forward needs a name and a dialer")
		}
		if f.Port != 0 && seen[f.Port] {
			return fmt.Errorf("port %d forwarded twice", f.Port)
		}
		seen[f.Port] = true
	}
	if spec.Service != "" && spec.Serve == nil {
		return errors.New("a service needs Serve")
	}
	spec.Limits = spec.Limits.withDefaults()
	return nil
}

// runtimeOwn are the runtime's own directories, or ones it has none of:
// no host path at or beneath them can be shown.
var runtimeOwn = []string{"/tmp", "/home", "/dev", "/proc", "/sys", "/run", "/workspace", "/etc"}

// realReadOnly checks a ReadOnly path as what it names, not as it is
// spelled: symlinks are resolved (so /var/run/x is checked as /run/x) and
// the real path is returned. It must be a directory or a regular file
// outside the runtime's own directories.
func realReadOnly(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("read-only path %q: must be absolute", p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("read-only path: %w", err)
	}
	if real == "/" {
		return "", fmt.Errorf("read-only path %q: names /, all of the host", p)
	}
	for _, own := range runtimeOwn {
		if real == own || strings.HasPrefix(real, own+"/") {
			return "", fmt.Errorf("read-only path %q (really %s): the runtime has its own %s, or none", p, real, own)
		}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("read-only path: %w", err)
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("read-only path %q: only directories and regular files are shown, not a %s", p, kindOf(fi.Mode()))
	}
	return real, nil
}

// kindOf names the type of file a mode is.
func kindOf(m os.FileMode) string {
	switch {
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// plainName checks a name for a file under /run/ward: one path element.
func plainName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("file name %q: must be a plain name", name)
	}
	return nil
}
