//go:build linux

package confine

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Notif is one notified syscall. The thread that made it is stopped until
// the listener answers it with Continue or Deny, or until the thread dies
// (a fatal signal), which withdraws the notification.
type Notif struct {
	// ID names the notification in Continue, Deny and Valid.
	ID uint64
	// Pid is the calling thread's ID in the listener's PID namespace: its
	// memory is /proc/Pid/mem.
	Pid uint32
	// Syscall is the syscall's name, or "" for a number the table lacks.
	Syscall string
	// Nr is the syscall's number on the running architecture.
	Nr int32
	// Args are the syscall's arguments as the caller passed them. Pointer
	// arguments point into the caller's memory; see [ReadSockaddr].
	Args [6]uint64
}

// Listener receives a seccomp filter's notifications and answers them. Its
// methods may be called from several goroutines: Receive calls take turns,
// and Continue, Deny and Valid do not wait for a blocked Receive. A blocked
// Receive holds an OS thread: it waits in poll(2), which hands a notification
// over faster than the Go runtime's poller (BenchmarkNotifyRoundTrip on two
// virtual CPUs: about 15µs per notification, against 50µs through the
// runtime's poller).
type Listener struct {
	fd           int
	wakeR, wakeW int   // a pipe: Close writes to it to wake Receive
	err          error // set by NewListener if fd is unusable
	names        map[int32]string

	recvMu    sync.Mutex   // one Receive at a time: its poll and the ioctl after it
	mu        sync.RWMutex // read-held while fd is in use, write-held by Close
	closed    bool         // guarded by mu
	closeOnce sync.Once
}

// struct seccomp_notif and struct seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	id    uint64
	pid   uint32
	flags uint32
	data  seccompData
}

type seccompData struct {
	nr   int32
	arch uint32
	ip   uint64
	args [6]uint64
}

type seccompNotifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

// ioctl request numbers are _IOC(dir, type, nr, size) of linux/ioctl.h, in
// the generic encoding that amd64 and arm64 use.
const (
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

var (
	// SECCOMP_IOWR(0, struct seccomp_notif)
	ioctlNotifRecv = ioc(iocRead|iocWrite, '!', 0, unsafe.Sizeof(seccompNotif{}))
	// SECCOMP_IOWR(1, struct seccomp_notif_resp)
	ioctlNotifSend = ioc(iocRead|iocWrite, '!', 1, unsafe.Sizeof(seccompNotifResp{}))
	// SECCOMP_IOW(2, __u64). Older headers had SECCOMP_IOR, the wrong
	// direction, which the kernel still accepts too.
	ioctlNotifIDValid = ioc(iocWrite, '!', 2, unsafe.Sizeof(uint64(0)))
)

// NewListener takes ownership of fd, a listener from [Filter.Install] or
// [TakeListener]. If the listener cannot be set up, every method returns why.
func NewListener(fd int) *Listener {
	l := &Listener{fd: fd, wakeR: -1, wakeW: -1}
	a, err := hostArch()
	if err != nil {
		l.err = err
		unix.Close(fd)
		return l
	}
	l.names = make(map[int32]string, len(a.nr))
	for name, nr := range a.nr {
		l.names[int32(nr)] = name
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		l.err = fmt.Errorf("seccomp listener: %w", err)
		unix.Close(fd)
		return l
	}
	l.wakeR, l.wakeW = p[0], p[1]
	return l
}

// Receive waits for the next notification. It returns io.EOF once every
// process under the filter has exited and been reaped, and an error wrapping
// os.ErrClosed after Close, including when Close interrupts it.
func (l *Listener) Receive() (*Notif, error) {
	if l.err != nil {
		return nil, l.err
	}
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, fmt.Errorf("seccomp listener: receive: %w", os.ErrClosed)
	}
	for {
		pfd := [2]unix.PollFd{
			{Fd: int32(l.fd), Events: unix.POLLIN},
			{Fd: int32(l.wakeR), Events: unix.POLLIN},
		}
		if _, err := unix.Poll(pfd[:], -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return nil, fmt.Errorf("seccomp listener: poll: %w", err)
		}
		if pfd[1].Revents != 0 {
			return nil, fmt.Errorf("seccomp listener: receive: %w", os.ErrClosed)
		}
		rev := pfd[0].Revents
		if rev&unix.POLLIN == 0 {
			if rev&unix.POLLHUP != 0 {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("seccomp listener: poll events %#x", rev)
		}
		// A notification is pending, so the ioctl does not block: Receive
		// calls take turns, and a notification withdrawn since the poll
		// makes it fail with ENOENT. The kernel refuses a buffer that is
		// not zeroed.
		var raw seccompNotif
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd), ioctlNotifRecv, uintptr(unsafe.Pointer(&raw)))
		switch errno {
		case 0:
			return &Notif{
				ID:      raw.id,
				Pid:     raw.pid,
				Syscall: l.names[raw.data.nr],
				Nr:      raw.data.nr,
				Args:    raw.data.args,
			}, nil
		case unix.EINTR, unix.ENOENT:
			// ENOENT: the caller died, or a signal interrupted its syscall,
			// between the poll and the receive.
			continue
		default:
			return nil, fmt.Errorf("seccomp listener: receive: %w", errno)
		}
	}
}

// Continue lets the notified syscall run as if there were no filter. The
// kernel reads the syscall's arguments only now: pointer arguments may have
// changed since Receive (see [ReadSockaddr]). It fails with ENOENT if the
// caller died or the notification was already answered.
func (l *Listener) Continue(id uint64) error {
	if err := l.send(seccompNotifResp{id: id, flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}); err != nil {
		return fmt.Errorf("seccomp listener: continue %#x: %w", id, err)
	}
	return nil
}

// Deny fails the notified syscall with errno, which must not be 0. It fails
// with ENOENT if the caller died or the notification was already answered.
func (l *Listener) Deny(id uint64, errno syscall.Errno) error {
	if errno == 0 {
		return fmt.Errorf("seccomp listener: deny %#x: errno 0 is success", id)
	}
	if err := l.send(seccompNotifResp{id: id, error: -int32(errno)}); err != nil {
		return fmt.Errorf("seccomp listener: deny %#x: %w", id, err)
	}
	return nil
}

func (l *Listener) send(resp seccompNotifResp) error {
	return l.ioctl(ioctlNotifSend, unsafe.Pointer(&resp))
}

// Valid reports whether notification id still waits for an answer: its
// caller has not died. A supervisor that read the caller's memory checks
// Valid afterwards, so that it knows the memory was the caller's and not
// that of a new process that reused its PID.
func (l *Listener) Valid(id uint64) bool {
	return l.ioctl(ioctlNotifIDValid, unsafe.Pointer(&id)) == nil
}

func (l *Listener) ioctl(req uintptr, arg unsafe.Pointer) error {
	if l.err != nil {
		return l.err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return os.ErrClosed
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

// Close closes the listener, waking a Receive blocked in another goroutine.
// Once every copy of the descriptor is closed (stage2's closes when it
// execs), notifications not yet answered fail with ENOSYS in their callers,
// and so does every notified syscall from then on: without a listener, the
// filter refuses what it would have notified.
func (l *Listener) Close() error {
	if l.err != nil {
		return l.err
	}
	var err error
	l.closeOnce.Do(func() {
		unix.Write(l.wakeW, []byte{0}) // the pipe stays readable: every Receive wakes
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closed = true
		err = unix.Close(l.fd)
		unix.Close(l.wakeR)
		unix.Close(l.wakeW)
	})
	return err
}

// TakeListener copies descriptor fd of process pid into the calling process
// with pidfd_getfd (Linux 5.6), close-on-exec, and returns the copy. The
// sandbox's stage2 installs its filter, reports the listener's descriptor
// number and waits; the supervisor takes the listener with TakeListener and
// then lets stage2 exec the confined program. The caller needs ptrace access
// to pid (as its parent, with CAP_SYS_PTRACE or the same credentials).
func TakeListener(pid, fd int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("take listener from %d: pidfd_open: %w", pid, err)
	}
	defer unix.Close(pidfd)
	lfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return -1, fmt.Errorf("take listener %d from %d: pidfd_getfd: %w", fd, pid, err)
	}
	return lfd, nil
}
