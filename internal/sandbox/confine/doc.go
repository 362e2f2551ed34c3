// Package confine applies the kernel confinement of ward's agent sandbox to
// one thread just before it execs the agent program: a Landlock domain that
// limits the files it may touch and the TCP ports it may use, and a seccomp
// filter that stops chosen syscalls (connects, raw sockets, tracing,
// signals, mounts, kernel-wide operations) and reports them to a supervisor
// in another process, which lets each one run or fails it.
//
// Everything here acts on the calling thread only, with raw syscalls: no
// AllThreadsSyscall, no TSYNC, nothing that cares whether the runtime linked
// cgo. The program the thread execs inherits both: execve keeps only the
// calling thread, and with it the thread's no_new_privs flag, seccomp filter
// and Landlock domain.
//
// # Stage2 and the supervisor
//
// The sandbox's stage2 process, already in its namespaces, does:
//
//	runtime.LockOSThread()
//	report, err := landlock.Restrict()     // a Landlock value; print report
//	fd, err := confine.Filter{Notify: confine.DefaultNotify()}.Install()
//	// write fd's number to the supervisor, wait for its go-ahead
//	syscall.Exec(agent, argv, env)         // the listener is close-on-exec
//	                                       // (or ForkExec from this thread)
//
// and the supervisor, its parent, on reading the number:
//
//	lfd, err := confine.TakeListener(stage2Pid, fd) // pidfd_getfd
//	l := confine.NewListener(lfd)
//	// tell stage2 to go on, then:
//	for {
//		n, err := l.Receive() // io.EOF once the sandbox has exited
//		...
//		record(confine.Describe(n))         // "kill(pid=1, SIGKILL)"
//		l.Deny(n.ID, unix.EPERM)            // or l.Continue(n.ID)
//	}
//
// Between Install and exec the thread should make few syscalls: the filter
// already applies to them, and a notified one (the Go runtime signalling
// another thread with tgkill, say) waits until the supervisor answers.
//
// # What notifications are for
//
// A notification carries the syscall's registers. Pointer arguments, such as
// the address a connect goes to, point into the caller's memory:
// [ReadSockaddr] reads and decodes them, but the kernel reads that memory
// again only when the supervisor continues the call, and another thread may
// have changed it in between. So a decision to continue based on a pointer
// argument is racy by design: notifications make the supervisor an observer
// and recorder that can refuse what is plainly out of policy, while the
// network and mount namespaces remain the boundary. Register arguments (the
// family of a socket, the target of a kill) cannot change under the
// supervisor. The supervisor also sees the Go runtime's and libc's own
// signals to their threads (tgkill from the process to itself), which it will
// usually continue without a record.
//
// # Architectures
//
// The filter supports linux/amd64 and linux/arm64, and kills a process that
// makes a syscall with any other convention (32-bit compat, x32), whose
// numbers the policy does not cover. Syscall names resolve through tables
// generated from golang.org/x/sys/unix (zsysnum_linux.go, by gen_sysnum.go).
package confine

//go:generate go run gen_sysnum.go
