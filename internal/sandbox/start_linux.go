package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/sandbox/confine"
)

// initSpec is what init needs to know, sent over the control channel.
type initSpec struct {
	Argv            []string          `json:"argv"`
	Env             []string          `json:"env"`
	Workspace       string            `json:"workspace,omitempty"`
	ReadOnly        []string          `json:"read_only,omitempty"`
	RunDir          string            `json:"run_dir"`
	Hostname        string            `json:"hostname"`
	Limits          Limits            `json:"limits"`
	Ports           []initPort        `json:"ports,omitempty"`
	Files           map[string][]byte `json:"files,omitempty"`
	Service         string            `json:"service,omitempty"`
	RequireLandlock bool              `json:"require_landlock,omitempty"`
	ServicePorts    []uint16          `json:"service_ports,omitempty"`
	// NprocRlimit asks stage2 for RLIMIT_NPROC: the host gave no pids
	// cgroup.
	NprocRlimit bool `json:"nproc_rlimit,omitempty"`
}

type initPort struct {
	Name   string `json:"name"`
	Port   uint16 `json:"port"`
	Socket string `json:"socket"`
}

// hostSide is the outside half of a runtime.
type hostSide struct {
	spec   *Spec
	cmd    *exec.Cmd
	ctrl   ctrl
	cg     *cgroup
	lock   *os.File // holds the run directory's lock
	relays []net.Listener
	exited chan struct{} // init has been waited for

	mu       sync.Mutex
	sup      *supervisor // once init handed over the seccomp listener
	released bool
	killed   sync.Once
	relOnce  sync.Once
	relErr   error
}

// Start starts a runtime and returns once its program is running (its
// execve succeeded) or has failed to start. ctx bounds only the start.
func Start(ctx context.Context, spec Spec) (*Sandbox, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	h := &hostSide{spec: &spec, exited: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			h.releaseNow()
		}
	}()
	var err error
	if h.lock, err = lockRunDir(spec.RunDir); err != nil {
		return nil, err
	}
	is := &initSpec{Argv: spec.Argv, Env: spec.Env, Workspace: spec.Workspace, ReadOnly: spec.ReadOnly, RunDir: spec.RunDir,
		Hostname: spec.Hostname, Limits: spec.Limits, Files: spec.Files, Service: spec.Service, RequireLandlock: spec.RequireLandlock,
		ServicePorts: spec.ServicePorts}
	if is.Hostname == "" {
		is.Hostname = "ward"
	}
	for i, f := range spec.Forwards {
		sock := filepath.Join(spec.RunDir, "relay-"+strconv.Itoa(i)+".sock")
		os.Remove(sock)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("relay %s: %w", f.Name, err)
		}
		h.relays = append(h.relays, ln)
		go relayOut(ln, f.Dial)
		is.Ports = append(is.Ports, initPort{Name: f.Name, Port: f.Port, Socket: sock})
	}
	outside, inside, err := newCtrlPair()
	if err != nil {
		return nil, err
	}
	h.ctrl = ctrl{outside}
	h.cmd = exec.Command("/proc/self/exe")
	h.cmd.Args = []string{"ward-runtime-init"}
	h.cmd.Env = []string{envRole + "=init"}
	h.cmd.ExtraFiles = []*os.File{inside}
	h.cmd.Stdin, h.cmd.Stdout, h.cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	h.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
		// A session of its own: the program has no controlling terminal,
		// so it cannot push input into the operator's (TIOCSTI needs
		// CAP_SYS_ADMIN on a terminal that is not one's own), and its
		// process group is not ward's.
		Setsid: true,
	}
	err = h.cmd.Start()
	inside.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot create the runtime's namespaces (user, mount, PID, network, IPC, UTS): %w; "+
			"this host may forbid user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, "+
			"or an AppArmor restriction): ward does not run agents unconfined", err)
	}
	go func() {
		h.cmd.Wait()
		close(h.exited)
	}()
	// The OOM killer of the runtime's memory cgroup should end the program
	// that outgrew the limit, not init, whose death ends the runtime
	// without saying why: init is the last choice (but not exempt, which
	// could leave a cgroup at its limit with nothing to kill). Best effort:
	// only a privileged ward run may lower it.
	_ = os.WriteFile(filepath.Join("/proc", strconv.Itoa(h.cmd.Process.Pid), "oom_score_adj"), []byte("-999"), 0)

	var report []string
	if h.cg, err = newCgroup(spec.RunDir, spec.Limits); err != nil {
		if os.Getuid() == 0 {
			// The program would be the host's root, which RLIMIT_NPROC
			// does not bind: without a cgroup nothing limits it.
			return nil, fmt.Errorf("limits: running as root, ward needs a cgroup for the runtime's limits: %w", err)
		}
		report = append(report, "limits: no cgroup ("+err.Error()+"): memory and CPU are not limited; processes by RLIMIT_NPROC")
		is.NprocRlimit = true
	} else {
		if err := h.cg.add(h.cmd.Process.Pid); err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		report = append(report, h.cg.describe())
	}
	if err := h.ctrl.send(message{Type: "spec", Spec: is}, -1); err != nil {
		return nil, fmt.Errorf("runtime init: %w", err)
	}

	s := &Sandbox{start: t0, host: h, done: make(chan struct{})}
	startErr := make(chan error, 1)
	go h.serve(s, report, startErr)
	select {
	case err := <-startErr:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("starting the runtime: %w", ctx.Err())
	}
	ok = true
	return s, nil
}

// serve answers init until the program ends. startErr gets one value: nil
// once the program runs, or why it could not start.
func (h *hostSide) serve(s *Sandbox, report []string, startErr chan<- error) {
	started := false
	finish := func(code int, signal string, err error) {
		if !started {
			if err == nil {
				err = errors.New("the runtime ended before the program started")
			}
			startErr <- err
			return
		}
		s.result.ExitCode, s.result.Signal, s.err = code, signal, err
		close(s.done)
	}
	for {
		m, fd, err := h.ctrl.recv()
		if err != nil {
			if errors.Is(err, errClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
				err = nil
			}
			<-h.exited
			if err == nil {
				err = fmt.Errorf("the runtime's init ended unexpectedly (%v)", h.cmd.ProcessState)
			}
			// A limit the runtime ran into may be why (the OOM killer
			// can choose init): say so.
			if s.result.Limits = h.limitsHit(); len(s.result.Limits) > 0 {
				err = fmt.Errorf("%w: %s", err, strings.Join(s.result.Limits, "; "))
			}
			finish(-1, "", err)
			return
		}
		switch m.Type {
		case "call":
			var reply message
			v, err := h.spec.Serve(m.Method, m.Body)
			if err != nil {
				reply = message{Type: "reply", Error: err.Error()}
			} else if reply.Body, err = json.Marshal(v); err != nil {
				reply = message{Type: "reply", Error: err.Error()}
			} else {
				reply.Type = "reply"
			}
			if err := h.ctrl.send(reply, -1); err != nil {
				finish(-1, "", err)
				return
			}
		case "report":
			report = append(report, m.Report...)
		case "listener":
			if fd < 0 {
				finish(-1, "", errors.New("runtime init sent no seccomp listener"))
				return
			}
			sup := newSupervisor(confine.NewListener(fd), h.spec)
			h.mu.Lock()
			if h.released { // Start gave up meanwhile
				h.mu.Unlock()
				sup.l.Close()
				break
			}
			h.sup = sup
			h.mu.Unlock()
			go sup.run()
		case "started":
			started = true
			s.report, s.result.Started = report, time.Since(s.start)
			s.result.Upper = filepath.Join("/proc", strconv.Itoa(h.cmd.Process.Pid), "root", h.spec.RunDir, "scratch", "upper")
			startErr <- nil
		case "failed":
			finish(-1, "", errors.New(m.Error))
			return
		case "exit":
			s.result.Limits = h.limitsHit()
			finish(m.Status, m.Signal, nil)
			return
		}
		if fd >= 0 && m.Type != "listener" {
			syscall.Close(fd)
		}
	}
}

// kill kills init, and with it every process of the runtime.
func (h *hostSide) kill() {
	h.killed.Do(func() {
		if h.cmd != nil && h.cmd.Process != nil {
			h.cmd.Process.Kill()
		}
	})
}

func (h *hostSide) release() error {
	h.releaseNow()
	return h.relErr
}

func (h *hostSide) releaseNow() {
	h.relOnce.Do(func() {
		h.kill()
		if h.cmd != nil && h.cmd.Process != nil {
			select {
			case <-h.exited:
			case <-time.After(10 * time.Second):
				h.relErr = errors.New("the runtime's init did not exit within 10s of SIGKILL")
			}
		}
		if h.ctrl.f != nil {
			h.ctrl.f.Close()
		}
		h.mu.Lock()
		sup := h.sup
		h.released = true
		h.mu.Unlock()
		if sup != nil {
			sup.close()
		}
		for _, ln := range h.relays {
			ln.Close()
		}
		removed := true
		if h.cg != nil {
			if err := h.cg.remove(); err != nil {
				removed = false
				if h.relErr == nil {
					h.relErr = err
				}
			}
		}
		if h.lock != nil {
			// What is left is Reap's to remove: keep the record.
			if removed {
				os.Remove(filepath.Join(h.spec.RunDir, recordName))
			}
			h.lock.Close()
		}
	})
}

// newCgroup plans the runtime's cgroup, records it in the run directory,
// then makes it: a ward process killed at any moment leaves nothing that
// Reap does not know of.
func newCgroup(runDir string, l Limits) (*cgroup, error) {
	cg, err := planCgroup(cgroupName(), l)
	if err != nil {
		return nil, err
	}
	if err := writeRecord(runDir, cg.dirs); err != nil {
		return nil, err
	}
	if err := cg.create(); err != nil {
		return nil, err
	}
	return cg, nil
}

// limitsHit says which of the runtime's limits its program ran into: the
// cgroup's counts of OOM kills and of refused forks, and a full scratch
// space. Read when the program has ended, before the cgroup is removed.
func (h *hostSide) limitsHit() []string {
	var out []string
	if h.cg != nil {
		out = h.cg.hits()
	}
	var st unix.Statfs_t
	scratch := filepath.Join("/proc", strconv.Itoa(h.cmd.Process.Pid), "root", h.spec.RunDir, "scratch")
	if unix.Statfs(scratch, &st) == nil && (st.Bavail == 0 || st.Ffree == 0) {
		out = append(out, fmt.Sprintf("disk: the %d MiB of scratch space (the workspace's changes and /tmp) is full (--disk)", h.spec.Limits.Disk>>20))
	}
	return out
}

// maxRelayed bounds the connections one forward relays at once: each costs
// ward, outside the runtime's limits, two descriptors and two goroutines.
const maxRelayed = 256

// relayOut accepts init's connections on a relay socket and joins each to
// a fresh connection to the forward's destination; past maxRelayed at
// once, it closes new ones.
func relayOut(ln net.Listener, dial func(context.Context) (net.Conn, error)) {
	slots := make(chan struct{}, maxRelayed)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close()
			continue
		}
		go func() {
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			d, err := dial(ctx)
			cancel()
			if err != nil {
				c.Close()
				return
			}
			join(c, d)
		}()
	}
}

// join copies both ways until both sides are done, then closes both.
func join(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}
