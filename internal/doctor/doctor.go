// Package doctor checks a ward deployment and says what to fix: the data
// directory and the modes of its keys, the store, the audit log's
// integrity, the policies, the reachability of the configured upstreams, the kernel
// features `ward run` relies on, and the clock.
//
// [Run] returns one [Result] per check, each ok, warn (ward works, with
// less than it could) or fail (ward will refuse to start, or start
// unsafe), with the exact fix for anything not ok:
//
//	fail  key mode        keys/grant.key is mode 0644: other users can read a signing key
//	      fix: chmod 600 /var/lib/ward/keys/grant.key
//
// Checks read and change nothing (the store is opened as a node opens it,
// after its file's mode was checked), and nothing is sent anywhere but to
// the configured upstreams' addresses (a TCP connection, closed at once).
package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Status is a check's outcome.
type Status string

// Statuses, from good to bad.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one check's outcome.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Upstream is a configured MCP server, as far as reachability goes.
type Upstream struct {
	Name    string
	URL     string   // Streamable HTTP endpoint, or
	Command []string // stdio argv, or neither (builtin)
}

// Config says what to check.
type Config struct {
	// Data is the node's data directory.
	Data string
	// Store checks the store; nil: not checked. It returns how the store
	// was reached (a path or a redacted DSN) or why it could not be.
	Store func(ctx context.Context) (string, error)
	// Audit verifies the audit log; nil: not checked. It returns the
	// number of events verified and whether the key was pinned.
	Audit func(ctx context.Context) (events uint64, pinned bool, err error)
	// LatestEvent is the time of the log's latest event, for the clock
	// check; nil or a zero time: not checked.
	LatestEvent func() time.Time
	// Policies loads the node's policies and says how many; nil: not
	// checked. Its error names the file, line and column.
	Policies  func() (int, error)
	Upstreams []Upstream
	// Runtime says whether to check the kernel features of `ward run`.
	Runtime bool
	// Timeout bounds each network check; default DefaultTimeout.
	Timeout time.Duration
	Now     func() time.Time
}

// DefaultTimeout bounds each network check.
const DefaultTimeout = 3 * time.Second

// Run runs every check cfg asks for.
func Run(ctx context.Context, cfg Config) []Result {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var out []Result
	out = append(out, checkData(cfg.Data)...)
	if cfg.Store != nil {
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		where, err := cfg.Store(ctx)
		cancel()
		if err != nil {
			out = append(out, Result{"store", Fail, fmt.Sprintf("%s cannot be read: %v", where, err),
				"restore the store from a backup, or for PostgreSQL check store.postgres and that the server is up"})
		} else {
			out = append(out, Result{"store", OK, where + " opens and answers", ""})
		}
	}
	if cfg.Audit != nil {
		n, pinned, err := cfg.Audit(ctx)
		switch {
		case err != nil:
			out = append(out, Result{"audit log", Fail, "fails verification: " + err.Error(),
				"run ward audit verify --key YOUR-COPY-OF-audit.pub to see where; restore DATA/audit from a backup that holds everything it had"})
		case !pinned:
			out = append(out, Result{"audit log", Warn, fmt.Sprintf("%d events verify, against the key found in DATA/keys/audit.pub (not pinned)", n),
				"keep a copy of DATA/keys/audit.pub elsewhere and pass it with --key: a key beside the log proves nothing about the log"})
		default:
			out = append(out, Result{"audit log", OK, fmt.Sprintf("%d events verify against the pinned key", n), ""})
		}
	}
	if cfg.Policies != nil {
		switch n, err := cfg.Policies(); {
		case err != nil:
			out = append(out, Result{"policies", Fail, err.Error(), "correct the file and line named; ward policy check FILE shows every error (ward does not start on policies that fail to load)"})
		case n == 0:
			out = append(out, Result{"policies", Warn, "no policy is loaded: every call is denied", "add policies (ward up writes a starter policy to DATA/policies on first start)"})
		default:
			out = append(out, Result{"policies", OK, fmt.Sprintf("%d policies load", n), ""})
		}
	}
	for _, u := range cfg.Upstreams {
		out = append(out, checkUpstream(ctx, u, cfg.Timeout))
	}
	if cfg.Runtime {
		out = append(out, kernelChecks()...)
	}
	out = append(out, checkClock(cfg)...)
	return out
}

// Worst is the worst status of results.
func Worst(results []Result) Status {
	w := OK
	for _, r := range results {
		switch {
		case r.Status == Fail:
			return Fail
		case r.Status == Warn:
			w = Warn
		}
	}
	return w
}

// secretFiles are the data directory's private keys and secrets, by path
// relative to it, and whether a node needs it.
var secretFiles = []struct {
	path     string
	required bool
}{
	{"ca/ca.key", true}, {"ca/jwt.key", true}, {"keys/grant.key", true}, {"keys/receipt.key", true},
	{"keys/audit.key", true}, {"keys/redact.salt", true}, {"keys/witness.key", false}, {"keys/egress-ca.key", false},
	{"ward.db", false}, // credential hashes and sessions (absent with PostgreSQL)
	// The join token unseals the system's keys from the shared store; the
	// console's accounts are password hashes.
	{"keys/join.token", false}, {"console/users.json", false},
	// The key ring holds the active signing keys and a retiring CA's
	// (absent only before a node's first start with rotation).
	{"keys/ring.json", false},
}

// checkData checks the data directory and the modes and owners of its
// secrets.
func checkData(data string) []Result {
	st, err := os.Stat(data)
	if err != nil {
		return []Result{{"data directory", Fail, fmt.Sprintf("%s: %v", data, err),
			"pass --data with the node's data directory (ward up --data), or start ward once to create it"}}
	}
	var out []Result
	if !st.IsDir() {
		return []Result{{"data directory", Fail, data + " is not a directory", "pass --data with the node's data directory"}}
	}
	if st.Mode().Perm()&0o077 != 0 {
		// The secrets inside are checked one by one: an open directory
		// shows their names, not their contents.
		out = append(out, Result{"data directory", Warn, fmt.Sprintf("%s is mode %04o: other users can list the node's files", data, st.Mode().Perm()),
			"chmod 700 " + data})
	} else {
		out = append(out, Result{"data directory", OK, fmt.Sprintf("%s is mode %04o", data, st.Mode().Perm()), ""})
	}
	for _, dir := range []string{"ca", "keys"} {
		p := filepath.Join(data, dir)
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
			out = append(out, Result{"key directory", Fail, fmt.Sprintf("%s is mode %04o", p, st.Mode().Perm()), "chmod 700 " + p})
		}
	}
	bad, missing := 0, 0
	for _, f := range secretFiles {
		p := filepath.Join(data, f.path)
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			if f.required {
				missing++
				out = append(out, Result{"key " + f.path, Fail, p + " is missing: ward would make a new one, and what the old one signed could no longer be verified",
					"restore " + f.path + " from the backup of this data directory"})
			}
			continue
		}
		if err != nil {
			bad++
			out = append(out, Result{"key " + f.path, Fail, err.Error(), "check the file's permissions"})
			continue
		}
		if !st.Mode().IsRegular() {
			bad++
			out = append(out, Result{"key " + f.path, Fail, p + " is not a regular file (a symlink?)", "replace it with the key file itself, mode 600"})
			continue
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			bad++
			out = append(out, Result{"key " + f.path, Fail, fmt.Sprintf("%s is mode %04o: other users can read a secret", p, perm), "chmod 600 " + p})
			continue
		}
		if uid, ok := owner(st); ok && uid != os.Getuid() {
			bad++
			out = append(out, Result{"key " + f.path, Warn, fmt.Sprintf("%s is owned by uid %d, not by the user running ward (uid %d)", p, uid, os.Getuid()),
				fmt.Sprintf("chown %d %s (run ward as the owner of its data)", os.Getuid(), p)})
		}
	}
	if bad == 0 && missing == 0 {
		out = append(out, Result{"keys", OK, "every private key and secret is mode 600 or stricter and owned by this user", ""})
	}
	return out
}

// checkUpstream tries to reach one upstream.
func checkUpstream(ctx context.Context, u Upstream, timeout time.Duration) Result {
	name := "upstream " + u.Name
	switch {
	case u.URL != "":
		pu, err := url.Parse(u.URL)
		if err != nil || pu.Host == "" {
			return Result{name, Fail, "its url does not parse", "correct servers[].url in the configuration"}
		}
		host := pu.Host
		if pu.Port() == "" {
			port := "80"
			if pu.Scheme == "https" {
				port = "443"
			}
			host = net.JoinHostPort(pu.Hostname(), port)
		}
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			// The host and port, never the URL: its path or query may
			// carry a token.
			return Result{name, Fail, fmt.Sprintf("%s cannot be reached: %v", host, unwrapOp(err)),
				"start the server, or correct servers[].url; ward starts without it and answers its calls with an upstream error"}
		}
		c.Close()
		return Result{name, OK, host + " accepts connections", ""}
	case len(u.Command) > 0:
		p, err := exec.LookPath(u.Command[0])
		if err != nil {
			return Result{name, Fail, fmt.Sprintf("command %q is not found", u.Command[0]),
				"install it, or give its absolute path in servers[].command (ward runs it with its own PATH)"}
		}
		return Result{name, OK, "runs " + p, ""}
	}
	return Result{name, OK, "built in", ""}
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// checkClock checks the clock is synchronized and not behind what ward
// has already seen: certificates and audit events from the future mean
// the clock went back.
func checkClock(cfg Config) []Result {
	now := cfg.Now()
	var out []Result
	if r, ok := clockSync(); ok {
		out = append(out, r)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.Data, "ca", "ca.pem")); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
				switch {
				case now.Before(c.NotBefore):
					out = append(out, Result{"clock vs CA", Fail, fmt.Sprintf("the clock (%s) is before the trust domain CA was made (%s): certificates ward issues will not verify",
						now.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339)), "set the clock right (enable NTP: chrony or systemd-timesyncd)"})
				case now.After(c.NotAfter):
					out = append(out, Result{"CA certificate", Fail, "the trust domain CA certificate expired on " + c.NotAfter.UTC().Format(time.RFC3339),
						"rotate the CA (ward keys rotate --kind ca; see README: Key rotation) or check that the clock is not ahead"})
				}
			}
		}
	}
	if cfg.LatestEvent != nil {
		if t := cfg.LatestEvent(); !t.IsZero() && t.After(now.Add(time.Minute)) {
			out = append(out, Result{"clock vs audit log", Fail, fmt.Sprintf("the audit log's latest event (%s) is after the clock (%s): the clock went back",
				t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)), "set the clock right (enable NTP) before starting ward"})
		}
	}
	return out
}
