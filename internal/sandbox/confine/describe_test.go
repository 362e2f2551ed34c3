//go:build linux

package confine

import (
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDescribe(t *testing.T) {
	neg := func(v int64) uint64 { return uint64(v) }
	tests := []struct {
		syscall string
		args    [6]uint64
		want    string
	}{
		{"socket", [6]uint64{unix.AF_PACKET, unix.SOCK_RAW, 768}, "socket(AF_PACKET, SOCK_RAW, 768)"},
		{"socket", [6]uint64{unix.AF_INET6, unix.SOCK_STREAM | unix.SOCK_CLOEXEC | unix.SOCK_NONBLOCK}, "socket(AF_INET6, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0)"},
		{"socket", [6]uint64{99, 14}, "socket(99, 14, 0)"},
		{"connect", [6]uint64{3, 0x7ffd0000, 16}, "connect(fd=3, addrlen=16)"},
		{"sendto", [6]uint64{4, 0x1000, 12, 0, 0, 0}, "sendto(fd=4, len=12)"},
		{"sendto", [6]uint64{4, 0x1000, 12, 0, 0x2000, 28}, "sendto(fd=4, len=12, addrlen=28)"},
		{"sendmsg", [6]uint64{5, 0x1000}, "sendmsg(fd=5)"},
		{"kill", [6]uint64{1, uint64(unix.SIGKILL)}, "kill(pid=1, SIGKILL)"},
		{"kill", [6]uint64{neg(-1), 0}, "kill(pid=-1, signal 0)"},
		{"tgkill", [6]uint64{10, 11, uint64(unix.SIGURG)}, "tgkill(tgid=10, tid=11, SIGURG)"},
		{"tkill", [6]uint64{10, 40}, "tkill(tid=10, signal 40)"},
		{"ptrace", [6]uint64{unix.PTRACE_ATTACH, 7}, "ptrace(PTRACE_ATTACH, pid=7)"},
		{"ptrace", [6]uint64{unix.PTRACE_SEIZE, 8}, "ptrace(PTRACE_SEIZE, pid=8)"},
		{"ptrace", [6]uint64{unix.PTRACE_TRACEME}, "ptrace(PTRACE_TRACEME)"},
		{"ptrace", [6]uint64{0x9999, 8}, "ptrace(request 0x9999, pid=8)"},
		{"process_vm_readv", [6]uint64{42}, "process_vm_readv(pid=42)"},
		{"pidfd_send_signal", [6]uint64{5, uint64(unix.SIGTERM)}, "pidfd_send_signal(pidfd=5, SIGTERM)"},
		{"unshare", [6]uint64{unix.CLONE_NEWUSER | unix.CLONE_NEWNET}, "unshare(CLONE_NEWUSER|CLONE_NEWNET)"},
		{"unshare", [6]uint64{unix.CLONE_NEWNS | 1}, "unshare(CLONE_NEWNS|0x1)"},
		{"setns", [6]uint64{3, 0}, "setns(fd=3, 0)"},
		{"clone", [6]uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, "clone(CLONE_NEWUSER, SIGCHLD)"},
		{"clone", [6]uint64{unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_NEWNET}, "clone(CLONE_NEWNET|CLONE_VM|CLONE_VFORK, signal 0)"},
		{"bpf", [6]uint64{unix.BPF_PROG_LOAD}, "bpf(BPF_PROG_LOAD)"},
		{"mount", [6]uint64{0x10, 0x20, 0x30}, "mount(0x10, 0x20, 0x30, ...)"},
		{"", [6]uint64{1}, "syscall 999(0x1, 0x0, 0x0, ...)"},
	}
	for _, tt := range tests {
		n := &Notif{Syscall: tt.syscall, Nr: 999, Args: tt.args}
		if got := Describe(n); got != tt.want {
			t.Errorf("Describe(%s %v) = %q, want %q", tt.syscall, tt.args, got, tt.want)
		}
	}
}

// FuzzDescribe: Describe is total and names the syscall first.
func FuzzDescribe(f *testing.F) {
	f.Add("socket", uint64(unix.AF_PACKET), uint64(unix.SOCK_RAW), uint64(768))
	f.Add("kill", ^uint64(0), uint64(1<<40), uint64(0))
	f.Add("unshare", ^uint64(0), uint64(0), uint64(0))
	f.Add("", uint64(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, name string, a0, a1, a2 uint64) {
		n := &Notif{Syscall: name, Nr: 7, Args: [6]uint64{a0, a1, a2, a0, a1, a2}}
		got := Describe(n)
		prefix := name + "("
		if name == "" {
			prefix = "syscall 7("
		}
		if !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, ")") {
			t.Fatalf("Describe = %q", got)
		}
	})
}

func TestSignalsOwnProcess(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := uint64(unix.Getpid()), uint64(unix.Gettid())
	urg := uint64(unix.SIGURG)
	tests := []struct {
		syscall string
		args    [6]uint64
		want    bool
	}{
		{"tgkill", [6]uint64{pid, tid, urg}, true},
		{"tgkill", [6]uint64{1, 1, urg}, false},
		{"kill", [6]uint64{pid, urg}, true},
		{"kill", [6]uint64{0, urg}, false}, // the process group: others too
		{"kill", [6]uint64{uint64(0xffffffff), urg}, false},
		{"tkill", [6]uint64{tid, urg}, true},
		{"tkill", [6]uint64{1, urg}, false},
		{"socket", [6]uint64{pid}, false},
	}
	for _, tt := range tests {
		n := &Notif{Pid: uint32(tid), Syscall: tt.syscall, Args: tt.args}
		got, err := SignalsOwnProcess(n)
		if err != nil || got != tt.want {
			t.Errorf("%s: %v, %v; want %v", Describe(n), got, err, tt.want)
		}
	}
	if _, err := SignalsOwnProcess(&Notif{Pid: 0x7fffffff, Syscall: "kill"}); err == nil {
		t.Error("no error for a missing process")
	}
}

func TestInnermostIDs(t *testing.T) {
	// A thread of PID 1 in a nested PID namespace, seen from the host.
	status := "Name:\tsh\nTgid:\t4242\nPid:\t4243\nNStgid:\t4242\t1\nNSpid:\t4243\t2\n"
	tgid, tid, err := innermostIDs([]byte(status))
	if err != nil || tgid != 1 || tid != 2 {
		t.Errorf("innermostIDs = %d, %d, %v; want 1, 2", tgid, tid, err)
	}
	for _, bad := range []string{"", "NStgid:\t1\n", "NStgid:\nNSpid:\t3\n", "NStgid:\tx\nNSpid:\t3\n"} {
		if _, _, err := innermostIDs([]byte(bad)); err == nil {
			t.Errorf("innermostIDs(%q) succeeded", bad)
		}
	}
}
