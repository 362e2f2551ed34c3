package sessioncred

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// CheckListen validates a sidecar address without opening anything:
// "unix:PATH" (an absolute or relative path) or a loopback "HOST:PORT"
// (127.0.0.0/8, ::1 or localhost).
func CheckListen(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return errors.New("unix: needs a path, e.g. unix:$XDG_RUNTIME_DIR/ward/mcp.sock")
		}
		if !hasPeerCredentials {
			return errors.New("a Unix socket sidecar needs peer credentials, which ward reads on Linux only: listen on 127.0.0.1:PORT")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("the sidecar holds the session key and listens on loopback or a Unix socket only")
	}
	return nil
}

// Listen opens a sidecar's listener at addr (see [CheckListen]).
//
// For "unix:PATH" the socket's directory must be one only the current user
// can reach: Listen creates it (mode 0700) if it is missing and refuses one
// that belongs to someone else or that group or others may enter. The
// socket itself is mode 0600. A leftover socket that nothing answers on
// is replaced; a live one, or any other file, is left alone and refused.
func Listen(addr string) (net.Listener, error) {
	if err := CheckListen(addr); err != nil {
		return nil, err
	}
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: choose another path", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("another process already serves %s: stop it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the old socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	return ln, nil
}

// privateDir refuses a directory that is a link, that is not the current
// user's, or that group or others may enter.
func privateDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory (a link is not accepted): give the real path", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("socket directory %s belongs to uid %d, not to you (uid %d): use a directory of your own, e.g. $XDG_RUNTIME_DIR/ward", dir, sys.Uid, os.Geteuid())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("socket directory %s is mode %04o, so others can reach the socket: chmod 700 %s, or use a directory only you can enter", dir, perm, dir)
	}
	return nil
}
