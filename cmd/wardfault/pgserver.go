package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pgServer is a PostgreSQL server of wardfault's own, made with initdb in
// a temporary directory and listening on a loopback port of its own, so
// that a scenario may stop and start it without touching any other
// server on the machine. PostgreSQL refuses to run as root: as root, its
// files belong to the postgres user and its programs run as that user
// (runuser).
type pgServer struct {
	bin  string // the directory of initdb, pg_ctl and postgres
	dir  string // its own temporary directory (data, socket, log)
	data string
	port int
	as   []string // the prefix that runs a program as the server's user
	uid  int      // owner of dir; -1 when not root
	gid  int
}

// errNoPostgres is startPostgres's error when the machine has no
// PostgreSQL server binaries or no user to run them as.
var errNoPostgres = errors.New("no PostgreSQL server binaries")

// postgresBin finds the directory of initdb: $WARDFAULT_PG_BIN, then the
// newest of Debian's /usr/lib/postgresql/*/bin, then $PATH.
func postgresBin() (string, error) {
	if d := os.Getenv("WARDFAULT_PG_BIN"); d != "" {
		return d, nil
	}
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(dirs) > 0 {
		slices.SortFunc(dirs, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
		return filepath.Dir(dirs[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("%w: install PostgreSQL (Debian: apt-get install postgresql) or set WARDFAULT_PG_BIN to the directory of initdb and pg_ctl", errNoPostgres)
}

func pgVersion(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// startPostgres makes and starts a server of its own. Its directory is
// made under the system's temporary directory (the server's user must
// be able to reach it), not in a directory of the caller's.
func startPostgres(ctx context.Context) (*pgServer, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("%w: PostgreSQL refuses to run as root and there is no postgres user to run it as", errNoPostgres)
		}
		s.uid, _ = strconv.Atoi(u.Uid)
		s.gid, _ = strconv.Atoi(u.Gid)
		s.as = []string{"runuser", "-u", "postgres", "--"}
	}
	if s.dir, err = os.MkdirTemp("", "wardfault-pg-"); err != nil {
		return nil, err
	}
	s.data = filepath.Join(s.dir, "data")
	if s.uid >= 0 {
		if err := os.Chown(s.dir, s.uid, s.gid); err != nil {
			s.remove()
			return nil, err
		}
	}
	if s.port, err = freePort(); err != nil {
		s.remove()
		return nil, err
	}
	// No fsync at initdb (the cluster is thrown away); the server itself
	// syncs as in production.
	if err := s.run(ctx, "initdb", "-D", s.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		s.remove()
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		s.remove()
		return nil, err
	}
	return s, nil
}

// dsn is the server's database as a node names it.
func (s *pgServer) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// start starts the server and waits until it accepts connections.
func (s *pgServer) start(ctx context.Context) error {
	return s.run(ctx, "pg_ctl", "-D", s.data, "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", s.port, s.dir), "start")
}

// crash stops the server at once, as a crash would: no checkpoint, every
// connection cut (pg_ctl stop -m immediate); the next start recovers from
// its write-ahead log.
func (s *pgServer) crash(ctx context.Context) error {
	return s.run(ctx, "pg_ctl", "-D", s.data, "-w", "-t", "60", "-m", "immediate", "stop")
}

// remove stops the server if it runs and deletes its directory.
func (s *pgServer) remove() {
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s.run(ctx, "pg_ctl", "-D", s.data, "-w", "-t", "60", "-m", "immediate", "stop")
		cancel()
	}
	os.RemoveAll(s.dir)
}

// run runs one of the server's programs as its user.
func (s *pgServer) run(ctx context.Context, prog string, args ...string) error {
	argv := append(append(slices.Clone(s.as), filepath.Join(s.bin, prog)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.dir
	// pg_ctl start leaves the server running: what it says goes to a
	// file, not to a pipe the server would hold open.
	out, err := os.CreateTemp(s.dir, "ctl-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		said, _ := os.ReadFile(out.Name())
		logTail := ""
		if b, err := os.ReadFile(filepath.Join(s.dir, "log")); err == nil {
			logTail = string(b[max(0, len(b)-2000):])
		}
		return fmt.Errorf("%s %s: %v: %s%s", prog, strings.Join(args, " "), err, strings.TrimSpace(string(said)), logTail)
	}
	return nil
}
