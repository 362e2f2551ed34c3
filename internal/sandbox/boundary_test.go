package sandbox

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// envProbe makes the test binary, run as a program inside a runtime, run
// one of the probes below instead of the tests.
const envProbe = "WARD_SANDBOX_PROBE"

// runProbe runs the probe the environment names, if any, and exits.
func runProbe() {
	if dir := os.Getenv(envHold); dir != "" {
		hold(dir)
	}
	switch os.Getenv(envProbe) {
	case "":
		return
	case "sockets":
		probeSockets(os.Args[1], os.Args[2])
	case "own-sockets":
		probeOwnSockets()
	default:
		fmt.Println("unknown probe")
		os.Exit(2)
	}
	os.Exit(0)
}

// probeSockets tries every way a program might reach the host's Unix
// sockets and FIFOs under dir (shown read-only), and the host's abstract
// socket @abstract, and prints one line per attempt: "NAME ok" or
// "NAME refused (ERROR)".
func probeSockets(dir, abstract string) {
	try := func(name string, f func() error) {
		if err := f(); err != nil {
			fmt.Printf("%s refused (%v)\n", name, err)
		} else {
			fmt.Printf("%s ok\n", name)
		}
	}
	stream, dgram := filepath.Join(dir, "stream.sock"), filepath.Join(dir, "dgram.sock")
	socket := func(typ int) (int, error) { return unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0) }
	connect := func(path string, typ int) error {
		fd, err := socket(typ)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	}
	sendto := func(path string) error {
		fd, err := socket(unix.SOCK_DGRAM)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrUnix{Name: path})
	}
	try("stream-direct", func() error { return connect(stream, unix.SOCK_STREAM) })
	try("seqpacket-direct", func() error { return connect(stream, unix.SOCK_SEQPACKET) })
	try("stream-symlink", func() error {
		if err := os.Symlink(stream, "/tmp/stream-link"); err != nil {
			return err
		}
		return connect("/tmp/stream-link", unix.SOCK_STREAM)
	})
	try("stream-workspace-symlink", func() error {
		if err := os.Symlink(dir, "/workspace/dir-link"); err != nil {
			return err
		}
		return connect("/workspace/dir-link/stream.sock", unix.SOCK_STREAM)
	})
	try("stream-race", func() error { return raceConnect(stream) })
	try("dgram-connect", func() error { return connect(dgram, unix.SOCK_DGRAM) })
	try("dgram-sendto", func() error { return sendto(dgram) })
	try("dgram-sendmsg", func() error {
		fd, err := socket(unix.SOCK_DGRAM)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_, err = unix.SendmsgN(fd, []byte("x"), nil, &unix.SockaddrUnix{Name: dgram}, 0)
		return err
	})
	try("dgram-sendmmsg", func() error { return sendmmsg(dgram) })
	try("dgram-symlink", func() error {
		if err := os.Symlink(dgram, "/tmp/dgram-link"); err != nil {
			return err
		}
		return sendto("/tmp/dgram-link")
	})
	try("abstract", func() error { return connect("@"+abstract, unix.SOCK_STREAM) })
	try("workspace-socket", func() error { return connect("/workspace/host.sock", unix.SOCK_STREAM) })
	try("fifo", func() error {
		fd, err := unix.Open(filepath.Join(dir, "fifo"), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_, err = unix.Write(fd, []byte("x"))
		return err
	})
	try("fifo-read", func() error {
		fd, err := unix.Open(filepath.Join(dir, "fifo"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, 64)
		n, err := unix.Read(fd, buf)
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("nothing to read")
		}
		return nil
	})
}

// probeOwnSockets checks that the program's own Unix sockets work, in
// each place it may write: one process may serve another.
func probeOwnSockets() {
	for _, dir := range []string{"/workspace", "/tmp", "/home/agent", "/dev/shm"} {
		p := filepath.Join(dir, "own.sock")
		ln, err := net.Listen("unix", p)
		if err != nil {
			fmt.Printf("%s refused (%v)\n", p, err)
			continue
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Write([]byte("hi"))
				c.Close()
			}
		}()
		c, err := net.Dial("unix", p)
		if err != nil {
			fmt.Printf("%s refused (%v)\n", p, err)
			ln.Close()
			continue
		}
		b, _ := io.ReadAll(c)
		c.Close()
		ln.Close()
		fmt.Printf("%s ok %s\n", p, b)
	}
}

// raceConnect connects to path through a sockaddr whose text another
// thread keeps switching between path and a harmless name of the same
// length: what a supervisor that reads the address, then lets the kernel
// read it again, would be fooled by.
func raceConnect(path string) error {
	decoy := "/tmp/" + strings.Repeat("x", len(path)-5)
	var sa unix.RawSockaddrUnix
	sa.Family = unix.AF_UNIX
	set := func(s string) {
		for i := range len(s) {
			sa.Path[i] = int8(s[i])
		}
	}
	set(decoy)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			set(path)
			set(decoy)
		}
	}()
	defer func() { stop.Store(true); <-done }()
	var last error
	for range 3000 {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_, _, errno := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(2+len(path)))
		unix.Close(fd)
		if errno == 0 {
			return nil
		}
		last = errno
	}
	return last
}

// sendmmsg sends one datagram to path with sendmmsg(2).
func sendmmsg(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var sa unix.RawSockaddrUnix
	sa.Family = unix.AF_UNIX
	for i := range len(path) {
		sa.Path[i] = int8(path[i])
	}
	payload := []byte("x")
	iov := unix.Iovec{Base: &payload[0]}
	iov.SetLen(1)
	var m [1]unix.Mmsghdr
	m[0].Hdr.Name = (*byte)(unsafe.Pointer(&sa))
	m[0].Hdr.Namelen = uint32(2 + len(path))
	m[0].Hdr.Iov = &iov
	m[0].Hdr.SetIovlen(1)
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m[0])), 1, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if n != 1 {
		return fmt.Errorf("sendmmsg sent %d messages", n)
	}
	return nil
}

// hostDir is a directory outside /tmp (which the runtime has its own of),
// removed at the end of the test.
func hostDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "ward-test-")
	if err != nil {
		t.Skipf("no directory outside /tmp to show: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	return dir
}

// programCopy copies the test binary into dir, where a runtime whose
// workspace is dir can execute it as /workspace/probe.
func programCopy(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return "/workspace/probe"
}

// TestHostSocketsUnreachable: a host daemon's Unix sockets and FIFOs in a
// tree shown with ReadOnly cannot be used from inside, whatever the
// program does: connect or send directly, through a symlink it made,
// while racing the address in memory, with sendmsg or sendmmsg, to an
// abstract name. Shown trees are overlays, in which a socket or FIFO is
// an inode of the overlay's, bound to nothing.
func TestHostSocketsUnreachable(t *testing.T) {
	dir := hostDir(t)
	var accepted, datagrams atomic.Int32
	sl, err := net.Listen("unix", filepath.Join(dir, "stream.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	dl, err := net.ListenPacket("unixgram", filepath.Join(dir, "dgram.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := dl.ReadFrom(buf); err != nil {
				return
			}
			datagrams.Add(1)
		}
	}()
	for _, p := range []string{"stream.sock", "dgram.sock"} {
		os.Chmod(filepath.Join(dir, p), 0o777) // as a daemon's public socket would be
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	// Held open both ways, with data waiting: a program that reached
	// this pipe could read the data, or write to it.
	fifo, err := unix.Open(filepath.Join(dir, "fifo"), unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fifo)
	const waiting = "host-pipe-data"
	if _, err := unix.Write(fifo, []byte(waiting)); err != nil {
		t.Fatal(err)
	}
	abstract := "ward-test-" + rand.Text()
	al, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	var abstractHits atomic.Int32
	go func() {
		for {
			c, err := al.Accept()
			if err != nil {
				return
			}
			abstractHits.Add(1)
			c.Close()
		}
	}()

	ws := t.TempDir()
	wl, err := net.Listen("unix", filepath.Join(ws, "host.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	go func() {
		for {
			c, err := wl.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	prog := programCopy(t, ws)
	r := runIn(t, Spec{Workspace: ws, ReadOnly: []string{dir}, Argv: []string{prog, dir, abstract},
		Env: []string{"PATH=/usr/bin:/bin", envProbe + "=sockets"}})
	t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 14 {
		t.Fatalf("the probe did not run every attempt (exit %d)", r.res.ExitCode)
	}
	for _, line := range lines {
		if !strings.Contains(line, " refused ") {
			t.Errorf("reached the host: %s", line)
		}
	}
	buf := make([]byte, 64)
	n, _ := unix.Read(fifo, buf)
	if n < 0 || string(buf[:max(n, 0)]) != waiting {
		t.Errorf("the host's pipe holds %q, want %q untouched", buf[:max(n, 0)], waiting)
	}
	if accepted.Load() != 0 || datagrams.Load() != 0 || abstractHits.Load() != 0 {
		t.Errorf("the host's sockets were reached: %d connections, %d datagrams, %d abstract",
			accepted.Load(), datagrams.Load(), abstractHits.Load())
	}
}

// TestOwnSocketsWork: the program's own Unix sockets, wherever it may
// write, work: masking the host's sockets does not break programs that
// serve each other.
func TestOwnSocketsWork(t *testing.T) {
	ws := t.TempDir()
	prog := programCopy(t, ws)
	r := runIn(t, Spec{Workspace: ws, Argv: []string{prog}, Env: []string{"PATH=/usr/bin:/bin", envProbe + "=own-sockets"}})
	t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	if got := strings.Count(r.stdout, " ok hi\n"); got != 4 {
		t.Errorf("%d of 4 places serve Unix sockets", got)
	}
}

// TestReadOnlyPathsCanonical: a ReadOnly path is checked as what it
// names, not as it is spelled: a symlink to one of the runtime's own
// directories is refused like the directory itself, a socket or FIFO
// cannot be shown, and an accepted path is replaced by its real path.
func TestReadOnlyPathsCanonical(t *testing.T) {
	dir := hostDir(t)
	for name, target := range map[string]string{"run": "/run", "proc": "/proc", "etc": "/etc", "tmp": os.TempDir(), "sys": "/sys"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	os.Symlink("data", filepath.Join(dir, "data-link"))
	sock, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	refused := []string{"/run/lock", dir + "/run", dir + "/run/lock", dir + "/proc/self", dir + "/etc", dir + "/tmp", dir + "/sys",
		dir + "/s.sock", dir + "/fifo", "/sys", "/"}
	if fi, err := os.Lstat("/var/run"); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		refused = append(refused, "/var/run", "/var/run/lock")
	}
	for _, p := range refused {
		spec := Spec{Argv: []string{"true"}, RunDir: t.TempDir(), ReadOnly: []string{p}}
		if err := spec.Validate(); err == nil {
			t.Errorf("read-only %s: accepted as %v", p, spec.ReadOnly)
		}
	}
	spec := Spec{Argv: []string{"true"}, RunDir: t.TempDir(), ReadOnly: []string{dir + "/data-link", dir + "/./data"}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data"); spec.ReadOnly[0] != want || spec.ReadOnly[1] != want {
		t.Errorf("read-only paths %q, want both %s", spec.ReadOnly, want)
	}
}

// TestProcIsTheRuntimes: the program's /proc is that of a PID namespace of
// its own, whose PID 1 shares its mount namespace: neither the host's
// mount table nor the workspace's or run directory's host paths show, and
// the runtime's init, which holds the session key, is not there to signal.
func TestProcIsTheRuntimes(t *testing.T) {
	ws := t.TempDir()
	run := t.TempDir()
	// The separator is made at run time: the script's own text, in the
	// shell's command line, does not hold it.
	r := runIn(t, Spec{Workspace: ws, RunDir: run, Argv: []string{"/bin/sh", "-c", `s=$(printf '%s-%s' sec tion)
cat /proc/1/mountinfo; echo $s
cat /proc/self/mountinfo; echo $s
for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f; echo; done; echo $s
kill -TERM 1; kill -ABRT 1
python3 -c 'import os, signal
fd = os.pidfd_open(1)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGUSR1, signal.SIGPIPE, signal.SIGSYS, signal.SIGTSTP, signal.SIGSTOP, signal.SIGKILL):
    try: signal.pidfd_send_signal(fd, s)
    except OSError: pass
'
sleep 0.2; echo signalled`}})
	t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	parts := strings.Split(r.stdout, "sec-tion\n")
	if len(parts) != 4 {
		t.Fatalf("unexpected output (exit %d)", r.res.ExitCode)
	}
	if parts[0] != parts[1] {
		t.Error("PID 1 has another mount table than the program's")
	}
	for _, host := range []string{ws, run} {
		if strings.Contains(parts[0]+parts[1], host) {
			t.Errorf("the program's mount table shows the host's %q", host)
		}
	}
	if strings.Contains(parts[2], "ward-runtime-init") {
		t.Errorf("the runtime's init is visible to the program:\n%s", parts[2])
	}
	if !strings.Contains(parts[3], "signalled") {
		t.Errorf("signalling PID 1 ended the runtime: exit %d", r.res.ExitCode)
	}
}
