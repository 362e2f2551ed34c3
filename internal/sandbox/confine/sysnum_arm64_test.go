//go:build linux && arm64

package confine

import "golang.org/x/sys/unix"

// hostSyscalls are syscall numbers from golang.org/x/sys/unix to check the
// generated table against.
var hostSyscalls = map[string]uint32{
	"read": unix.SYS_READ, "getpid": unix.SYS_GETPID, "execve": unix.SYS_EXECVE,
	"socket": unix.SYS_SOCKET, "connect": unix.SYS_CONNECT, "sendto": unix.SYS_SENDTO,
	"sendmsg": unix.SYS_SENDMSG, "sendmmsg": unix.SYS_SENDMMSG, "ptrace": unix.SYS_PTRACE,
	"kill": unix.SYS_KILL, "tgkill": unix.SYS_TGKILL, "mount": unix.SYS_MOUNT,
	"umount2": unix.SYS_UMOUNT2, "unshare": unix.SYS_UNSHARE, "setns": unix.SYS_SETNS,
	"bpf": unix.SYS_BPF, "pidfd_getfd": unix.SYS_PIDFD_GETFD, "mount_setattr": unix.SYS_MOUNT_SETATTR,
	"newfstatat": unix.SYS_NEWFSTATAT,
}
