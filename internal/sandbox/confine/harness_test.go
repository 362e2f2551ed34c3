//go:build linux

package confine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests never confine the test process itself. They re-exec the test
// binary in two roles, chosen by environment variables that TestMain reads
// before anything else:
//
//   - envStage2 holds a stage2Spec: the child plays the sandbox's stage2. It
//     applies Landlock and the seccomp filter to its locked thread, reports
//     on descriptor 3 (the listener's number, the Landlock report), waits
//     for a byte on descriptor 4 if it installed a filter, and execs the
//     spec's program, as ward's stage2 does.
//   - envHelper names an operation that the test binary, exec'd as that
//     program, performs under the confinement and prints the outcome of.
const (
	envStage2 = "WARD_CONFINE_CHILD"
	envHelper = "WARD_CONFINE_HELPER"
	envTarget = "WARD_CONFINE_TARGET"
)

// childTimeout bounds every wait for a child process.
const childTimeout = 60 * time.Second

type stage2Spec struct {
	Landlock    *Landlock
	LandlockABI int // if not 0, restrict as a kernel of this older ABI would
	Filter      *Filter
	Argv        []string
}

type stage2Status struct {
	Report   Report
	Listener int
	Err      string
}

func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(envStage2); ok {
		os.Exit(stage2(spec))
	}
	if op, ok := os.LookupEnv(envHelper); ok {
		os.Exit(helper(op))
	}
	os.Exit(m.Run())
}

func stage2(specJSON string) int {
	runtime.LockOSThread()
	// No garbage collection between Install and exec: its workers would be
	// preempted with tgkill from this thread, a notified syscall.
	debug.SetGCPercent(-1)
	var spec stage2Spec
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "stage2:", err)
		st, _ := json.Marshal(stage2Status{Err: err.Error()})
		unix.Write(3, append(st, '\n'))
		return 126
	}
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fail(err)
	}
	var st stage2Status
	if spec.Landlock != nil {
		var err error
		if spec.LandlockABI != 0 {
			st.Report, err = spec.Landlock.restrict(spec.LandlockABI)
		} else {
			st.Report, err = spec.Landlock.Restrict()
		}
		if err != nil {
			return fail(err)
		}
	}
	argv0, err := exec.LookPath(spec.Argv[0])
	if err != nil {
		return fail(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envStage2+"=") {
			env = append(env, kv)
		}
	}
	if spec.Filter != nil {
		if st.Listener, err = spec.Filter.Install(); err != nil {
			return fail(err)
		}
	}
	b, _ := json.Marshal(st)
	if _, err := unix.Write(3, append(b, '\n')); err != nil {
		return fail(err)
	}
	if spec.Filter != nil {
		var resume [1]byte
		if n, err := unix.Read(4, resume[:]); n != 1 {
			return fail(fmt.Errorf("wait for the supervisor: %d, %v", n, err))
		}
	}
	unix.Close(3)
	unix.Close(4)
	err = syscall.Exec(argv0, spec.Argv, env)
	fmt.Fprintln(os.Stderr, "stage2: exec:", err)
	return 127
}

// helper performs op and prints its outcome as "op: ok" or "op: ENAME".
func helper(op string) int {
	switch op {
	case "ptrace":
		pid, _ := strconv.Atoi(os.Getenv(envTarget))
		err := unix.PtraceAttach(pid)
		if err == nil {
			unix.PtraceDetach(pid)
		}
		fmt.Println("ptrace:", outcome(err))
	case "rawsocket":
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err == nil {
			unix.Close(fd)
		}
		fmt.Println("socket:", outcome(err))
	case "clone-userns":
		// A plain fork and exec, then one into a new user namespace.
		fmt.Println("fork:", outcome(exec.Command(os.Getenv(envTarget)).Run()))
		cmd := exec.Command(os.Getenv(envTarget))
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
		fmt.Println("clone-userns:", outcome(cmd.Run()))
	case "connect-loop":
		return connectLoop(os.Getenv(envTarget))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", op)
		return 2
	}
	return 0
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func outcome(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// connectLoop connects to the IPv4 addr once for every byte it reads on
// stdin and answers each with a byte on stdout, until stdin ends.
func connectLoop(addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	var b [1]byte
	for {
		if n, _ := unix.Read(0, b[:]); n != 1 {
			return 0
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, sa)
			// Reset instead of TIME_WAIT: a long benchmark would run out
			// of ephemeral ports.
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(fd)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			return 1
		}
		if _, err := unix.Write(1, b[:]); err != nil {
			return 1
		}
	}
}

// sandbox is a child run through stage2.
type sandbox struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	status         stage2Status
	listener       *Listener // nil without a filter
	exited         chan struct{}
	waitErr        error
}

// start runs argv through stage2 with the given confinement and extra
// environment, takes the listener if there is a filter, and lets stage2
// exec argv. It fails the test if stage2 fails.
func start(t testing.TB, spec stage2Spec, env ...string) *sandbox {
	t.Helper()
	return startWith(t, spec, nil, env...)
}

// startWith is start with the child's stdin and stdout connected to
// stdio[0] and stdio[1] where those are not nil.
func startWith(t testing.TB, spec stage2Spec, stdio []*os.File, env ...string) *sandbox {
	t.Helper()
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	resumeR, resumeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer statusR.Close()
	defer resumeW.Close()

	s := &sandbox{exited: make(chan struct{})}
	s.cmd = exec.Command(os.Args[0])
	// LC_ALL=C: tests read programs' error messages.
	s.cmd.Env = append(append(os.Environ(), envStage2+"="+string(specJSON), "LC_ALL=C"), env...)
	s.cmd.ExtraFiles = []*os.File{statusW, resumeR}
	s.cmd.Stdout = &s.stdout
	if stdio != nil && stdio[0] != nil {
		s.cmd.Stdin = stdio[0]
	}
	if stdio != nil && stdio[1] != nil {
		s.cmd.Stdout = stdio[1]
	}
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	statusW.Close()
	resumeR.Close()
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
		if s.listener != nil {
			s.listener.Close()
		}
	})

	statusR.SetReadDeadline(time.Now().Add(childTimeout))
	line, err := bufio.NewReader(statusR).ReadBytes('\n')
	if err != nil {
		t.Fatalf("stage2 status: %v; stderr: %s", err, s.stderrText())
	}
	if err := json.Unmarshal(line, &s.status); err != nil {
		t.Fatalf("stage2 status %q: %v", line, err)
	}
	if s.status.Err != "" {
		t.Fatalf("stage2: %s", s.status.Err)
	}
	if spec.Filter != nil {
		lfd, err := TakeListener(s.cmd.Process.Pid, s.status.Listener)
		if err != nil {
			t.Fatal(err)
		}
		s.listener = NewListener(lfd)
		if _, err := resumeW.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// stderrText reads stderr; only safe once the child has exited.
func (s *sandbox) stderrText() string {
	select {
	case <-s.exited:
		return s.stderr.String()
	case <-time.After(time.Second):
		return "(still running)"
	}
}

// wait waits for the child to exit and returns its stdout.
func (s *sandbox) wait(t testing.TB) string {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(childTimeout):
		s.cmd.Process.Kill()
		<-s.exited
		t.Fatalf("child did not exit within %v; stdout: %s; stderr: %s", childTimeout, s.stdout.String(), s.stderr.String())
	}
	if s.waitErr != nil {
		t.Logf("child: %v; stderr: %s", s.waitErr, s.stderr.String())
	}
	return s.stdout.String()
}

// seen is a notification the supervisor received, and what it knew of it.
type seen struct {
	n        Notif
	desc     string
	addr     Sockaddr // of a connect, if it could be read
	addrErr  error
	validNow bool // Valid before answering
	validAft bool // Valid after answering
	answered error
}

// supervisor answers a listener's notifications with decide's verdict (0:
// continue) until Receive fails, and records each one.
type supervisor struct {
	mu   sync.Mutex
	seen []seen
	end  chan error // Receive's final error
}

func supervise(l *Listener, decide func(*Notif, Sockaddr) syscall.Errno) *supervisor {
	sv := &supervisor{end: make(chan error, 1)}
	go func() {
		for {
			n, err := l.Receive()
			if err != nil {
				sv.end <- err
				return
			}
			rec := seen{n: *n, desc: Describe(n)}
			if n.Syscall == "connect" {
				rec.addr, rec.addrErr = ReadSockaddr(n.Pid, n.Args[1], n.Args[2])
			}
			rec.validNow = l.Valid(n.ID)
			if errno := decide(n, rec.addr); errno != 0 {
				rec.answered = l.Deny(n.ID, errno)
			} else {
				rec.answered = l.Continue(n.ID)
			}
			rec.validAft = l.Valid(n.ID)
			sv.mu.Lock()
			sv.seen = append(sv.seen, rec)
			sv.mu.Unlock()
		}
	}()
	return sv
}

// records returns the notifications of syscall name seen so far.
func (sv *supervisor) records(name string) []seen {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	var out []seen
	for _, r := range sv.seen {
		if r.n.Syscall == name {
			out = append(out, r)
		}
	}
	return out
}

// ended waits for the supervisor's Receive to fail and returns the error.
func (sv *supervisor) ended(t testing.TB) error {
	t.Helper()
	select {
	case err := <-sv.end:
		return err
	case <-time.After(childTimeout):
		t.Fatal("Receive did not return")
		return nil
	}
}

// tcpListener listens on 127.0.0.1 and collects the first line sent on each
// connection it accepts, up to 1024.
type tcpListener struct {
	ln    net.Listener
	port  uint16
	lines chan string
}

func listenTCP(t testing.TB) *tcpListener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &tcpListener{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port), lines: make(chan string, 1024)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(childTimeout))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return // a benchmark's connection, closed without a line
				}
				select {
				case l.lines <- strings.TrimSpace(line):
				default:
				}
			}()
		}
	}()
	return l
}

// accepted returns the lines received so far, waiting briefly for more.
func (l *tcpListener) accepted() []string {
	var out []string
	timeout := time.After(200 * time.Millisecond)
	for {
		select {
		case line := <-l.lines:
			out = append(out, line)
		case <-timeout:
			return out
		}
	}
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found", name)
	}
	return p
}
