//go:build linux

package confine

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// interpret runs a classic BPF seccomp program over data, a struct
// seccomp_data, and returns the action. It knows the instructions the
// assembler emits and fails on any other, on a jump out of the program, and
// on a load outside seccomp_data or not aligned to 4 bytes, as the kernel's
// checker would refuse those.
func interpret(prog []unix.SockFilter, data []byte) (uint32, error) {
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case opLoadAbsW:
			if in.K%4 != 0 || int(in.K)+4 > len(data) {
				return 0, fmt.Errorf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.NativeEndian.Uint32(data[in.K:])
		case opJEQ, opJGE, opJSET:
			taken := acc == in.K
			switch in.Code {
			case opJGE:
				taken = acc >= in.K
			case opJSET:
				taken = acc&in.K != 0
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
			if pc+1 >= len(prog) {
				return 0, fmt.Errorf("pc %d: jump out of the program", pc)
			}
		case opRet:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: unknown instruction %#x", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("program ran off its end")
}

// seccompData builds a struct seccomp_data.
func seccompDataFor(auditArch uint32, nr uint32, args ...uint64) []byte {
	b := make([]byte, unsafe.Sizeof(seccompData{}))
	binary.NativeEndian.PutUint32(b[0:], nr)
	binary.NativeEndian.PutUint32(b[4:], auditArch)
	for i, a := range args {
		binary.NativeEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

const (
	actNotify = unix.SECCOMP_RET_USER_NOTIF
	actAllow  = unix.SECCOMP_RET_ALLOW
	actKill   = unix.SECCOMP_RET_KILL_PROCESS
	actEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	actENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

	// The flags of pthread_create's and fork's clone calls.
	cloneThread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD |
		unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	cloneFork = unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | uint64(unix.SIGCHLD)

	auditI386 = 0x40000003 // AUDIT_ARCH_I386
	auditARM  = 0x40000028 // AUDIT_ARCH_ARM
)

func TestProgram(t *testing.T) {
	f := Filter{Notify: DefaultNotify(), Deny: []string{"acct", "mkdir"}}
	tests := []struct {
		name string
		arch arch
		data []byte
		want uint32
	}{
		{"amd64 connect", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 42), actNotify},
		{"amd64 socket", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 41, unix.AF_PACKET), actNotify},
		{"amd64 ptrace", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 101), actNotify},
		{"amd64 iopl", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 172), actNotify},
		{"amd64 mount_setattr", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 442), actNotify},
		{"amd64 read", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 0), actAllow},
		{"amd64 getpid", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 39), actAllow},
		{"amd64 pidfd_open", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 434), actAllow},
		{"amd64 seccomp", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 317), actAllow},
		{"amd64 acct", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 163), actEPERM},
		{"amd64 mkdir", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 83), actEPERM},
		{"amd64 x32 connect", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, x32Bit|42), actKill},
		{"amd64 x32 read", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, x32Bit), actKill},
		{"amd64 nr -1", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 0xffffffff), actKill},
		{"amd64 i386 socketcall", archAMD64, seccompDataFor(auditI386, 102), actKill},
		{"amd64 i386 read", archAMD64, seccompDataFor(auditI386, 3), actKill},
		{"amd64 filter, aarch64 call", archAMD64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 203), actKill},
		{"amd64 clone thread", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 56, cloneThread), actAllow},
		{"amd64 clone fork", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 56, cloneFork), actAllow},
		{"amd64 clone vfork", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 56, unix.CLONE_VM|unix.CLONE_VFORK|uint64(unix.SIGCHLD)), actAllow},
		{"amd64 clone userns", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 56, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), actNotify},
		{"amd64 clone netns", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 56, 1<<32|unix.CLONE_NEWNET), actNotify},
		{"amd64 clone mntns", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 56, unix.CLONE_NEWNS), actNotify},
		{"amd64 clone3", archAMD64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 435), actENOSYS},

		{"arm64 connect", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 203), actNotify},
		{"arm64 ptrace", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 117), actNotify},
		{"arm64 kill", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 129), actNotify},
		{"arm64 read", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 63), actAllow},
		{"arm64 acct", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 89), actEPERM},
		{"arm64 has no x32", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, x32Bit|63), actAllow},
		{"arm64 compat arm", archARM64, seccompDataFor(auditARM, 283), actKill},
		{"arm64 filter, x86_64 call", archARM64, seccompDataFor(unix.AUDIT_ARCH_X86_64, 42), actKill},
		{"arm64 clone thread", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 220, cloneThread), actAllow},
		{"arm64 clone pidns", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 220, unix.CLONE_NEWPID|uint64(unix.SIGCHLD)), actNotify},
		{"arm64 clone3", archARM64, seccompDataFor(unix.AUDIT_ARCH_AARCH64, 435), actENOSYS},
	}
	progs := map[string][]unix.SockFilter{}
	for _, a := range []arch{archAMD64, archARM64} {
		p, err := f.program(a)
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		progs[a.name] = p
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := interpret(progs[tt.arch.name], tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("action %#x, want %#x", got, tt.want)
			}
		})
	}
}

// TestProgramNotifiesEveryName checks every default name on every
// architecture that has it, and that every architecture knows most of them.
func TestProgramNotifiesEveryName(t *testing.T) {
	for _, a := range []arch{archAMD64, archARM64} {
		prog, err := Filter{Notify: DefaultNotify()}.program(a)
		if err != nil {
			t.Fatal(err)
		}
		var missing []string
		for _, name := range DefaultNotify() {
			nr, ok := a.nr[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			got, err := interpret(prog, seccompDataFor(a.audit, nr))
			if err != nil || got != actNotify {
				t.Errorf("%s %s (%d): action %#x, %v; want notify", a.name, name, nr, got, err)
			}
		}
		if len(missing) > 2 {
			t.Errorf("%s lacks %q", a.name, missing)
		}
		// Every other syscall is allowed, but clone3.
		notified := 0
		for name, nr := range a.nr {
			got, _ := interpret(prog, seccompDataFor(a.audit, nr))
			switch {
			case got == actNotify:
				notified++
			case name == "clone3" && got == actENOSYS:
			case got != actAllow:
				t.Errorf("%s %s: action %#x", a.name, name, got)
			}
		}
		if want := len(DefaultNotify()) - len(missing); notified != want {
			t.Errorf("%s: %d syscalls notified, want %d", a.name, notified, want)
		}
	}
}

// TestProgramClone: clone and clone3 follow unshare's action.
func TestProgramClone(t *testing.T) {
	userns := seccompDataFor(unix.AUDIT_ARCH_X86_64, 56, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD))
	clone3 := seccompDataFor(unix.AUDIT_ARCH_X86_64, 435)
	for _, tt := range []struct {
		name                string
		f                   Filter
		wantUserns, wantCl3 uint32
	}{
		{"unshare notified", Filter{Notify: []string{"unshare"}}, actNotify, actENOSYS},
		{"unshare denied", Filter{Deny: []string{"unshare"}}, actEPERM, actENOSYS},
		{"unshare allowed", Filter{Notify: []string{"connect"}}, actAllow, actAllow},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := tt.f.program(archAMD64)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := interpret(prog, userns); err != nil || got != tt.wantUserns {
				t.Errorf("clone(CLONE_NEWUSER): %#x, %v; want %#x", got, err, tt.wantUserns)
			}
			if got, err := interpret(prog, clone3); err != nil || got != tt.wantCl3 {
				t.Errorf("clone3: %#x, %v; want %#x", got, err, tt.wantCl3)
			}
		})
	}
}

func TestProgramErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    Filter
		want string
	}{
		{"unknown notify", Filter{Notify: []string{"connect", "frobnicate"}}, `unknown syscall "frobnicate"`},
		{"unknown deny", Filter{Deny: []string{"Connect"}}, `unknown syscall "Connect"`},
		{"both", Filter{Notify: []string{"connect"}, Deny: []string{"connect"}}, "both notified and denied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.f.program(archAMD64)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A name another architecture has is ignored, not an error.
	if _, err := (Filter{Notify: []string{"iopl", "connect"}}).program(archARM64); err != nil {
		t.Errorf("iopl on arm64: %v", err)
	}
}

func TestProgramEmpty(t *testing.T) {
	prog, err := Filter{}.Program()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := hostArch()
	if got, _ := interpret(prog, seccompDataFor(a.audit, a.nr["connect"])); got != actAllow {
		t.Errorf("empty filter: connect action %#x, want allow", got)
	}
}

func TestAssemblerRange(t *testing.T) {
	var a assembler
	a.jeq(1, "far", "")
	for range 256 {
		a.ret(0)
	}
	a.label("far")
	a.ret(1)
	if _, err := a.assemble(); err == nil {
		t.Error("a jump of 256 assembled")
	}
	var b assembler
	b.label("back")
	b.ret(0)
	b.jeq(1, "back", "")
	if _, err := b.assemble(); err == nil {
		t.Error("a backward jump assembled")
	}
	var c assembler
	c.jeq(1, "nowhere", "")
	if _, err := c.assemble(); err == nil {
		t.Error("a jump to an undefined label assembled")
	}
}

// TestLayouts checks the kernel structures and ioctl numbers against
// linux/seccomp.h as golang.org/x/sys/unix has them.
func TestLayouts(t *testing.T) {
	if got := unsafe.Sizeof(seccompNotif{}); got != 80 {
		t.Errorf("struct seccomp_notif is %d bytes, want 80", got)
	}
	if got := unsafe.Sizeof(seccompNotifResp{}); got != 24 {
		t.Errorf("struct seccomp_notif_resp is %d bytes, want 24", got)
	}
	for _, tt := range []struct {
		name      string
		got, want uintptr
	}{
		{"SECCOMP_IOCTL_NOTIF_RECV", ioctlNotifRecv, unix.SECCOMP_IOCTL_NOTIF_RECV},
		{"SECCOMP_IOCTL_NOTIF_SEND", ioctlNotifSend, unix.SECCOMP_IOCTL_NOTIF_SEND},
		{"SECCOMP_IOCTL_NOTIF_ID_VALID", ioctlNotifIDValid, 0x40082102},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

// TestSyscallTable checks the generated table of the running architecture
// against golang.org/x/sys/unix's constants.
func TestSyscallTable(t *testing.T) {
	a, err := hostArch()
	if err != nil {
		t.Skip(err)
	}
	for name, want := range hostSyscalls {
		if got, ok := a.nr[name]; !ok || got != want {
			t.Errorf("%s: table has %d, %v; unix has %d", name, got, ok, want)
		}
	}
	if len(a.nr) < 300 {
		t.Errorf("table has %d syscalls", len(a.nr))
	}
}
