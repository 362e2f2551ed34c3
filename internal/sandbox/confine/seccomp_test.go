//go:build linux

package confine

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func defaultFilter() *Filter { return &Filter{Notify: DefaultNotify()} }

// TestConnectDenyThenContinue: bash connects twice to a listener of the
// test's; the supervisor sees both connects with the listener's address,
// fails the first with EACCES and continues the second, which the listener
// accepts. Once bash exits, Receive returns io.EOF.
func TestConnectDenyThenContinue(t *testing.T) {
	bash := lookPath(t, "bash")
	ln := listenTCP(t)
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ln.port)

	script := fmt.Sprintf(`for i in 1 2; do
		if (exec 3<>/dev/tcp/127.0.0.1/%d && echo hello$i >&3); then echo connect$i ok; else echo connect$i failed; fi
	done`, ln.port)
	s := start(t, stage2Spec{Filter: defaultFilter(), Argv: []string{bash, "-c", script}})

	connects := 0
	sv := supervise(s.listener, func(n *Notif, addr Sockaddr) syscall.Errno {
		if n.Syscall == "connect" && addr.Addr == target {
			connects++
			if connects == 1 {
				return unix.EACCES
			}
		}
		return 0
	})
	out := s.wait(t)

	if want := "connect1 failed\nconnect2 ok\n"; out != want {
		t.Errorf("bash printed %q, want %q; stderr: %s", out, want, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "Permission denied") {
		t.Errorf("bash's error does not show EACCES: %q", s.stderr.String())
	}
	if got := ln.accepted(); !slices.Equal(got, []string{"hello2"}) {
		t.Errorf("listener accepted %q, want only the continued connection's hello2", got)
	}
	if err := sv.ended(t); err != io.EOF {
		t.Errorf("Receive after the sandbox exited: %v, want io.EOF", err)
	}

	var ours []seen
	for _, r := range sv.records("connect") {
		if r.addr.Addr == target {
			ours = append(ours, r)
		}
	}
	if len(ours) != 2 {
		t.Fatalf("supervisor saw %d connects to %v, want 2: %+v", len(ours), target, sv.records("connect"))
	}
	for i, r := range ours {
		if r.addrErr != nil || r.addr.Family != unix.AF_INET || r.addr.String() != target.String() {
			t.Errorf("connect %d: address %v (%v), want %v", i+1, r.addr, r.addrErr, target)
		}
		if want := fmt.Sprintf("connect(fd=%d, addrlen=16)", int32(r.n.Args[0])); r.desc != want {
			t.Errorf("connect %d: Describe = %q, want %q", i+1, r.desc, want)
		}
		if !r.validNow || r.validAft || r.answered != nil {
			t.Errorf("connect %d: valid before answer %v, after %v, answer error %v; want true, false, nil", i+1, r.validNow, r.validAft, r.answered)
		}
	}
	if len(sv.records("socket")) < 2 {
		t.Errorf("supervisor saw %d socket calls, want at least 2", len(sv.records("socket")))
	}
}

// TestPtraceDenied: a program that tries to attach to a process of the
// test's gets the supervisor's EACCES, where root would otherwise succeed.
func TestPtraceDenied(t *testing.T) {
	victim := exec.Command(lookPath(t, "sleep"), "60")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	pid := victim.Process.Pid

	s := start(t, stage2Spec{Filter: defaultFilter(), Argv: []string{os.Args[0]}},
		envHelper+"=ptrace", fmt.Sprintf("%s=%d", envTarget, pid))
	sv := supervise(s.listener, func(n *Notif, _ Sockaddr) syscall.Errno {
		if n.Syscall == "ptrace" {
			return unix.EACCES
		}
		return 0
	})
	if out := s.wait(t); out != "ptrace: EACCES\n" {
		t.Errorf("helper printed %q, want ptrace: EACCES; stderr: %s", out, s.stderr.String())
	}
	recs := sv.records("ptrace")
	if len(recs) != 1 {
		t.Fatalf("supervisor saw %d ptrace calls, want 1", len(recs))
	}
	if want := fmt.Sprintf("ptrace(PTRACE_ATTACH, pid=%d)", pid); recs[0].desc != want {
		t.Errorf("Describe = %q, want %q", recs[0].desc, want)
	}
	if err := sv.ended(t); err != io.EOF {
		t.Errorf("Receive after the sandbox exited: %v, want io.EOF", err)
	}
}

// TestRawSocketRecorded: socket(AF_PACKET, SOCK_RAW) is notified, named by
// Describe, and fails with the errno the supervisor chose.
func TestRawSocketRecorded(t *testing.T) {
	s := start(t, stage2Spec{Filter: defaultFilter(), Argv: []string{os.Args[0]}}, envHelper+"=rawsocket")
	sv := supervise(s.listener, func(n *Notif, _ Sockaddr) syscall.Errno {
		if n.Syscall == "socket" && n.Args[0] == unix.AF_PACKET {
			return unix.EACCES
		}
		return 0
	})
	if out := s.wait(t); out != "socket: EACCES\n" {
		t.Errorf("helper printed %q, want socket: EACCES; stderr: %s", out, s.stderr.String())
	}
	var descs []string
	for _, r := range sv.records("socket") {
		descs = append(descs, r.desc)
	}
	if !slices.Contains(descs, "socket(AF_PACKET, SOCK_RAW, 768)") {
		t.Errorf("socket notifications %q lack socket(AF_PACKET, SOCK_RAW, 768)", descs)
	}
}

// TestCloneNamespace: creating a user namespace with clone is notified like
// unshare and fails with the supervisor's errno; a plain fork is not
// notified.
func TestCloneNamespace(t *testing.T) {
	s := start(t, stage2Spec{Filter: defaultFilter(), Argv: []string{os.Args[0]}},
		envHelper+"=clone-userns", envTarget+"="+lookPath(t, "true"))
	sv := supervise(s.listener, func(n *Notif, _ Sockaddr) syscall.Errno {
		if n.Syscall == "clone" {
			return unix.EACCES
		}
		return 0
	})
	if out, want := s.wait(t), "fork: ok\nclone-userns: EACCES\n"; out != want {
		t.Errorf("helper printed %q, want %q; stderr: %s", out, want, s.stderr.String())
	}
	recs := sv.records("clone")
	if len(recs) != 1 || !strings.HasPrefix(recs[0].desc, "clone(CLONE_NEWUSER") || !strings.HasSuffix(recs[0].desc, ", SIGCHLD)") {
		var descs []string
		for _, r := range recs {
			descs = append(descs, r.desc)
		}
		t.Errorf("clone notifications %q, want one clone(CLONE_NEWUSER..., SIGCHLD)", descs)
	}
}

// TestDeniedSyscall: a syscall in Filter.Deny fails with EPERM without a
// notification; "mkdir" exists on amd64 only and is ignored on arm64.
func TestDeniedSyscall(t *testing.T) {
	dir := t.TempDir()
	s := start(t, stage2Spec{
		Filter: &Filter{Notify: []string{"kill"}, Deny: []string{"mkdir", "mkdirat"}},
		Argv:   []string{lookPath(t, "mkdir"), dir + "/denied"},
	})
	sv := supervise(s.listener, func(*Notif, Sockaddr) syscall.Errno { return 0 })
	s.wait(t)
	if !strings.Contains(s.stderr.String(), "Operation not permitted") {
		t.Errorf("mkdir's error %q does not show EPERM", s.stderr.String())
	}
	if _, err := os.Stat(dir + "/denied"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mkdir was not denied: %v", err)
	}
	if err := sv.ended(t); err != io.EOF {
		t.Errorf("Receive: %v, want io.EOF", err)
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, r := range sv.seen {
		if r.n.Syscall != "kill" {
			t.Errorf("notified of %s, which the filter does not notify", r.desc)
		}
	}
}

// TestCloseUnblocksReceive: Close wakes a Receive blocked in another
// goroutine, which then reports os.ErrClosed.
func TestCloseUnblocksReceive(t *testing.T) {
	s := start(t, stage2Spec{Filter: defaultFilter(), Argv: []string{lookPath(t, "sleep"), "30"}})
	received := make(chan error, 1)
	go func() {
		_, err := s.listener.Receive()
		received <- err
	}()
	select {
	case err := <-received:
		t.Fatalf("Receive returned before Close: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.listener.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-received:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Receive after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Receive")
	}
	if _, err := s.listener.Receive(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Receive after Close: %v, want os.ErrClosed", err)
	}
	if err := s.listener.Continue(1); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Continue after Close: %v, want os.ErrClosed", err)
	}
}

// TestClosedListenerRefuses: once every copy of the listener is closed, a
// notified syscall fails with ENOSYS instead of blocking.
func TestClosedListenerRefuses(t *testing.T) {
	bash := lookPath(t, "bash")
	ln := listenTCP(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// bash waits for a line on stdin, then connects: by then stage2's copy
	// of the listener went with its exec.
	s := startWith(t, stage2Spec{
		Filter: &Filter{Notify: []string{"connect"}},
		Argv:   []string{bash, "-c", fmt.Sprintf(`read x; (exec 3<>/dev/tcp/127.0.0.1/%d) && echo connected || echo refused`, ln.port)},
	}, []*os.File{r, nil})
	if err := s.listener.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	if out := s.wait(t); out != "refused\n" {
		t.Errorf("bash printed %q, want refused; stderr: %s", out, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "Function not implemented") {
		t.Errorf("bash's error %q does not show ENOSYS", s.stderr.String())
	}
	if got := ln.accepted(); len(got) != 0 {
		t.Errorf("listener accepted %q, want nothing", got)
	}
}
