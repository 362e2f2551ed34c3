package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/sandbox/confine"
)

// envRole tells a re-executed binary which part of a runtime it is.
const envRole = "_WARD_RUNTIME"

// Child runs this process's part of a runtime, if it is one, and exits; it
// returns at once otherwise. Call it first thing in main.
func Child() {
	switch os.Getenv(envRole) {
	case "":
		return
	case "init":
		os.Exit(initMain())
	case "stage2":
		stage2Main() // does not return
	}
	fmt.Fprintln(os.Stderr, "ward: unknown runtime role")
	os.Exit(125)
}

// Runtime is what a service running inside init can do.
type Runtime struct {
	ctrl   ctrl
	mu     sync.Mutex
	ports  map[string]initPort
	runDir string
}

// WriteFile places a file, read-only to the program, at /run/ward/NAME.
func (rt *Runtime) WriteFile(name string, data []byte) error {
	if err := plainName(name); err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	return os.WriteFile(filepath.Join(rt.runDir, "scratch", "run", name), data, 0o644)
}

// Call asks the service's Serve outside and decodes its answer into resp.
func (rt *Runtime) Call(method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err := rt.ctrl.send(message{Type: "call", Method: method, Body: body}, -1); err != nil {
		return err
	}
	m, fd, err := rt.ctrl.recv()
	if fd >= 0 {
		syscall.Close(fd)
	}
	if err != nil {
		return err
	}
	if m.Type != "reply" {
		return fmt.Errorf("runtime: expected a reply, got %q", m.Type)
	}
	if m.Error != "" {
		return errors.New(m.Error)
	}
	if resp == nil {
		return nil
	}
	return json.Unmarshal(m.Body, resp)
}

// Dial connects to a forward's destination outside, by name.
func (rt *Runtime) Dial(ctx context.Context, name string) (net.Conn, error) {
	p, ok := rt.ports[name]
	if !ok {
		return nil, fmt.Errorf("runtime: no forward named %q", name)
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", p.Socket)
}

// ServiceFunc runs inside init before the program starts. It may start
// goroutines that serve the program (they live as long as the runtime) and
// returns environment variables to add to the program's.
type ServiceFunc func(ctx context.Context, rt *Runtime) (env []string, err error)

var services = map[string]ServiceFunc{}

// RegisterService makes fn available as Spec.Service name. Call it from an
// init function: the runtime's init finds it by name after re-executing.
func RegisterService(name string, fn ServiceFunc) { services[name] = fn }

// initMain is PID 1 of the runtime. It returns the exit status of init
// itself, not of the program (which goes over the control channel).
func initMain() int {
	// Nothing the program sends may stop init; only ward, from outside,
	// ends it (SIGKILL). Nor may it read init's memory.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTSTP,
		syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE)
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	if err := syscall.SetNonblock(3, true); err != nil {
		fmt.Fprintln(os.Stderr, "ward runtime: control channel:", err)
		return 125
	}
	c := ctrl{os.NewFile(3, "ward-ctrl")}
	fail := func(format string, args ...any) int {
		c.send(message{Type: "failed", Error: fmt.Sprintf(format, args...)}, -1)
		return 125
	}
	m, fd, err := c.recv()
	if fd >= 0 {
		syscall.Close(fd)
	}
	if err != nil || m.Type != "spec" || m.Spec == nil {
		return fail("runtime init: no spec (%v)", err)
	}
	spec := m.Spec
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fail("runtime init: hostname: %v", err)
	}
	if err := loopbackUp(); err != nil {
		return fail("runtime init: loopback: %v", err)
	}
	root, err := buildRoot(spec)
	if err != nil {
		return fail("runtime init: file system: %v", err)
	}
	rt := &Runtime{ctrl: c, ports: map[string]initPort{}, runDir: spec.RunDir}
	for _, p := range spec.Ports {
		rt.ports[p.Name] = p
		if p.Port == 0 {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(p.Port)))
		if err != nil {
			return fail("runtime init: listen on port %d for %s: %v", p.Port, p.Name, err)
		}
		go relayIn(ln, p.Socket)
	}
	env := spec.Env
	if spec.Service != "" {
		fn, ok := services[spec.Service]
		if !ok {
			return fail("runtime init: no service %q registered in this binary", spec.Service)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		more, err := fn(ctx, rt)
		cancel()
		if err != nil {
			return fail("%v", err)
		}
		env = append(append([]string(nil), env...), more...)
	}
	s2 := stage2Spec{Root: root, Argv: spec.Argv, Env: env, Limits: spec.Limits, NprocRlimit: spec.NprocRlimit,
		ReadOnly: spec.ReadOnly, RequireLandlock: spec.RequireLandlock, ConnectTCP: spec.ServicePorts}
	for _, p := range spec.Ports {
		if p.Port != 0 {
			s2.ConnectTCP = append(s2.ConnectTCP, p.Port)
		}
	}
	st, report, err := startStage2(c, &s2)
	if len(report) > 0 {
		c.send(message{Type: "report", Report: report}, -1)
	}
	if err != nil {
		reapAll()
		return fail("%v", err)
	}
	if err := c.send(message{Type: "started", Pid: st.pid}, -1); err != nil {
		return 125
	}
	// ward may stop the program early ("stop"); init itself stays, so
	// that the change set can still be read, until ward closes the
	// channel or kills it.
	go func() {
		for {
			m, fd, err := c.recv()
			if fd >= 0 {
				syscall.Close(fd)
			}
			if err != nil {
				os.Exit(0)
			}
			if m.Type == "stop" {
				syscall.Kill(-1, syscall.SIGKILL)
			}
		}
	}()
	status, sig := reapUntil(st.pid)
	// stage2, the program's PID 1, is gone and with it every process of
	// the program's PID namespace; it said how the program ended, unless
	// it was killed first.
	if code, name, ok := st.exit(); ok {
		status, sig = code, name
	}
	syscall.Kill(-1, syscall.SIGKILL)
	reapAll()
	c.send(message{Type: "exit", Status: status, Signal: sig}, -1)
	select {}
}

// stage2Status is init's end of a running stage2's status pipe.
type stage2Status struct {
	pid int // stage2's, as init numbers it
	r   *bufio.Reader
	f   *os.File
}

// exit reads how the program ended, as stage2 reported it ("X CODE
// [SIGNAL]") before exiting.
func (st *stage2Status) exit() (code int, signal string, ok bool) {
	defer st.f.Close()
	line, _ := st.r.ReadString('\n')
	f := strings.Fields(strings.TrimPrefix(line, "X "))
	if !strings.HasPrefix(line, "X ") || len(f) == 0 || len(f) > 2 {
		return 0, "", false
	}
	code, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, "", false
	}
	if len(f) == 2 {
		signal = f[1]
	}
	return code, signal, true
}

// startStage2 starts the program's confining parent, stage2, as PID 1 of
// a PID namespace of its own, and takes its seccomp listener for ward. It
// returns once the program's execve succeeded, with the status pipe on
// which stage2 will say how the program ended.
func startStage2(c ctrl, s2 *stage2Spec) (st *stage2Status, report []string, err error) {
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(s2)
	if err != nil {
		return nil, nil, err
	}
	proc, err := os.StartProcess("/proc/self/exe", []string{"ward-runtime-stage2"}, &os.ProcAttr{
		Env:   []string{envRole + "=stage2", "GOGC=off", "GODEBUG=asyncpreemptoff=1"},
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, specR, statusW, ackR},
		Sys:   &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL},
	})
	specR.Close()
	statusW.Close()
	ackR.Close()
	if err != nil {
		statusR.Close()
		return nil, nil, fmt.Errorf("runtime init: start: %w", err)
	}
	st = &stage2Status{pid: proc.Pid, r: bufio.NewReader(statusR), f: statusR}
	go func() {
		specW.Write(b)
		specW.Close()
	}()
	defer ackW.Close()
	for {
		line, rerr := st.r.ReadString('\n')
		line = strings.TrimSuffix(line, "\n")
		switch {
		case rerr != nil && line == "":
			statusR.Close()
			return st, report, errors.New("runtime stage2 ended before the program started")
		case line == "S":
			return st, report, nil
		case strings.HasPrefix(line, "R "):
			report = append(report, line[2:])
		case strings.HasPrefix(line, "E "):
			statusR.Close()
			return st, report, errors.New(line[2:])
		case strings.HasPrefix(line, "L "):
			n, err := strconv.Atoi(line[2:])
			if err != nil {
				statusR.Close()
				return st, report, fmt.Errorf("runtime init: bad listener line %q", line)
			}
			lfd, err := confine.TakeListener(proc.Pid, n)
			if err != nil {
				statusR.Close()
				return st, report, fmt.Errorf("runtime init: take the seccomp listener: %w", err)
			}
			err = c.send(message{Type: "listener"}, lfd)
			syscall.Close(lfd)
			if err != nil {
				statusR.Close()
				return st, report, err
			}
			if _, err := ackW.Write([]byte{1}); err != nil {
				statusR.Close()
				return st, report, err
			}
		default:
			statusR.Close()
			return st, report, fmt.Errorf("runtime init: unexpected line from stage2: %q", line)
		}
	}
}

// reapUntil reaps children until pid ends, returning its status.
func reapUntil(pid int) (int, string) {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, ""
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
		}
		return ws.ExitStatus(), ""
	}
}

// reapAll reaps until no child is left (no child is PID 0).
func reapAll() { reapUntil(0) }

// relayIn accepts the program's connections on a forwarded port and joins
// each to ward outside through the relay socket.
func relayIn(ln net.Listener, sock string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			d, err := net.DialTimeout("unix", sock, 10*time.Second)
			if err != nil {
				c.Close()
				return
			}
			join(c, d)
		}()
	}
}

// loopbackUp brings up lo, the runtime's only interface.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr [unix.IFNAMSIZ + 24]byte
	copy(ifr[:], "lo")
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
		return e
	}
	flags := *(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ]))
	*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = flags | unix.IFF_UP | unix.IFF_RUNNING
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
		return e
	}
	return nil
}
