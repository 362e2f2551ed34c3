//go:build linux

package confine_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/sandbox/confine"
)

// stage2 confines its thread and execs the agent. It reports the listener's
// descriptor number on status and waits for a byte on resume, by which time
// the supervisor has taken the listener.
func stage2(agent string, argv, env []string, status, resume *os.File) error {
	runtime.LockOSThread()
	report, err := confine.Landlock{
		ReadExec:   []string{"/usr", "/bin", "/lib", "/lib64"},
		ReadOnly:   []string{"/etc"},
		ReadWrite:  []string{"/workspace", "/tmp", "/dev/null"},
		ConnectTCP: []uint16{3128}, // the egress proxy
	}.Restrict()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, report)
	fd, err := confine.Filter{Notify: confine.DefaultNotify()}.Install()
	if err != nil {
		return err
	}
	fmt.Fprintf(status, "%d\n", fd)
	if _, err := resume.Read(make([]byte, 1)); err != nil {
		return err
	}
	return syscall.Exec(agent, argv, env) // closes the listener: close-on-exec
}

// supervise takes the listener from stage2 and answers until the sandbox
// has exited.
func supervise(stage2Pid, fd int, resume *os.File) error {
	lfd, err := confine.TakeListener(stage2Pid, fd)
	if err != nil {
		return err
	}
	l := confine.NewListener(lfd)
	defer l.Close()
	resume.Write([]byte{1})
	for {
		n, err := l.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if own, _ := confine.SignalsOwnProcess(n); own && l.Valid(n.ID) {
			l.Continue(n.ID)
			continue
		}
		attrs := []any{"pid", n.Pid, "call", confine.Describe(n)}
		if n.Syscall == "connect" {
			addr, err := confine.ReadSockaddr(n.Pid, n.Args[1], n.Args[2])
			if err == nil && l.Valid(n.ID) {
				attrs = append(attrs, "addr", addr.String())
			}
		}
		slog.Info("sandbox syscall", attrs...)
		switch n.Syscall {
		case "connect", "socket", "sendto", "sendmsg", "sendmmsg":
			// The network namespace is the boundary; record and let it run.
			l.Continue(n.ID)
		default:
			l.Deny(n.ID, unix.EPERM)
		}
	}
}

// Example shows the two halves of a sandbox: stage2, which confines itself
// and execs the agent, and the supervisor, which answers notifications.
func Example() {
	_, _ = stage2, supervise
}

func ExampleParseSockaddr() {
	// struct sockaddr_in for 127.0.0.1:8080 on a little-endian machine.
	b := []byte{2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	s, err := confine.ParseSockaddr(b)
	fmt.Println(s, err)
	// Output: 127.0.0.1:8080 <nil>
}
