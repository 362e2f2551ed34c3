package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/ward-dev/ward/internal/strictjson"
)

// maxMessage bounds one control message.
const maxMessage = 1 << 20

// ctrl is one end of the control channel between ward (outside) and the
// runtime's init (inside): a SOCK_SEQPACKET socket pair carrying one JSON
// message per packet and, on one message, a file descriptor.
type ctrl struct{ f *os.File }

// message is everything that crosses the control channel; Type says which
// fields mean something.
type message struct {
	Type string `json:"type"`
	// "spec": outside → inside
	Spec *initSpec `json:"spec,omitempty"`
	// "call" (inside → outside) and "reply" (outside → inside): a
	// service's request and its answer.
	Method string          `json:"method,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
	Error  string          `json:"error,omitempty"`
	// "started": the program is running (carries the seccomp listener).
	Pid int `json:"pid,omitempty"`
	// "report": what confinement is in force.
	Report []string `json:"report,omitempty"`
	// "exit": the program ended.
	Status int    `json:"status,omitempty"`
	Signal string `json:"signal,omitempty"`
	// "failed": the runtime could not start the program.
	// (Error above.)
}

func newCtrlPair() (outside, inside *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("control channel: %w", err)
	}
	// Our end is non-blocking, so Go's poller serves it and closing it
	// wakes a blocked read; the inside end is made so by init.
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "ward-ctrl"), os.NewFile(uintptr(fds[1]), "ward-ctrl-init"), nil
}

// send writes m, with fd attached when fd >= 0.
func (c ctrl) send(m message, fd int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("control message of %d bytes, more than %d", len(b), maxMessage)
	}
	var oob []byte
	if fd >= 0 {
		oob = syscall.UnixRights(fd)
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(s uintptr) bool {
		serr = syscall.Sendmsg(int(s), b, oob, nil, 0)
		return serr != syscall.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}

// recv reads one message and the descriptor that came with it (-1 if
// none). io.EOF-like: a closed peer gives errClosed.
func (c ctrl) recv() (message, int, error) {
	buf := make([]byte, maxMessage+1)
	oob := make([]byte, syscall.CmsgSpace(4))
	rc, err := c.f.SyscallConn()
	if err != nil {
		return message{}, -1, err
	}
	var n, oobn int
	var rerr error
	if err := rc.Read(func(s uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(s), buf, oob, syscall.MSG_CMSG_CLOEXEC)
		return rerr != syscall.EAGAIN
	}); err != nil {
		return message{}, -1, err
	}
	if rerr != nil {
		return message{}, -1, rerr
	}
	fd := -1
	if oobn > 0 {
		cms, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err == nil && len(cms) == 1 {
			if fds, err := syscall.ParseUnixRights(&cms[0]); err == nil && len(fds) == 1 {
				fd = fds[0]
			} else {
				for _, f := range fds {
					syscall.Close(f)
				}
			}
		}
	}
	if n == 0 {
		if fd >= 0 {
			syscall.Close(fd)
		}
		return message{}, -1, errClosed
	}
	if n > maxMessage {
		return message{}, -1, fmt.Errorf("control message larger than %d bytes", maxMessage)
	}
	var m message
	if err := strictjson.Unmarshal(buf[:n], &m); err != nil {
		if fd >= 0 {
			syscall.Close(fd)
		}
		return message{}, -1, fmt.Errorf("control message: %w", err)
	}
	return m, fd, nil
}

var errClosed = errors.New("control channel closed")
