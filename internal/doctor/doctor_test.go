package doctor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dataDir makes a data directory with every required secret, mode 0600.
func dataDir(t *testing.T) string {
	d := t.TempDir()
	os.Chmod(d, 0o700)
	for _, f := range secretFiles {
		if !f.required {
			continue
		}
		p := filepath.Join(d, f.path)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func find(rs []Result, check string) (Result, bool) {
	for _, r := range rs {
		if r.Check == check {
			return r, true
		}
	}
	return Result{}, false
}

func TestDoctor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	t.Run("healthy", func(t *testing.T) {
		d := dataDir(t)
		rs := Run(context.Background(), Config{Data: d,
			Store:     func(context.Context) (string, error) { return "ward.db", nil },
			Audit:     func(context.Context) (uint64, bool, error) { return 7, true, nil },
			Upstreams: []Upstream{{Name: "up", URL: "http://" + ln.Addr().String() + "/mcp"}, {Name: "sh", Command: []string{"sh"}}, {Name: "demo"}}})
		for _, r := range rs {
			if r.Status == Fail {
				t.Errorf("healthy deployment: %+v", r)
			}
		}
		if r, _ := find(rs, "keys"); r.Status != OK {
			t.Errorf("keys: %+v", r)
		}
	})
	t.Run("problems", func(t *testing.T) {
		d := dataDir(t)
		grant := filepath.Join(d, "keys", "grant.key")
		os.Chmod(grant, 0o644)
		os.Remove(filepath.Join(d, "keys", "audit.key"))
		os.Chmod(filepath.Join(d, "ca"), 0o755)
		rs := Run(context.Background(), Config{Data: d,
			Store:       func(context.Context) (string, error) { return "ward.db", errors.New("file is not a database") },
			Policies:    func() (int, error) { return 0, errors.New("p.cedar:3:1: unexpected token") },
			Audit:       func(context.Context) (uint64, bool, error) { return 0, false, errors.New("entry 3 does not match") },
			LatestEvent: func() time.Time { return time.Now().Add(time.Hour) },
			Upstreams: []Upstream{{Name: "down", URL: "http://" + closedAddr + "/mcp?token=s3cret"},
				{Name: "missing", Command: []string{"no-such-command-ward-doctor"}}},
			Timeout: time.Second})
		for check, fix := range map[string]string{
			"key keys/grant.key": "chmod 600 " + grant,
			"key keys/audit.key": "restore keys/audit.key",
			"key directory":      "chmod 700 " + filepath.Join(d, "ca"),
			"store":              "restore the store",
			"audit log":          "ward audit verify",
			"upstream down":      "start the server",
			"upstream missing":   "install it",
			"clock vs audit log": "set the clock right",
			"policies":           "ward policy check",
		} {
			r, ok := find(rs, check)
			if !ok || r.Status != Fail || !strings.Contains(r.Fix, fix) {
				t.Errorf("%s: %+v, want a failure with fix ~%q", check, r, fix)
			}
		}
		for _, r := range rs {
			if strings.Contains(r.Detail+r.Fix, "s3cret") {
				t.Errorf("%s shows the upstream URL's token: %+v", r.Check, r)
			}
		}
		if Worst(rs) != Fail {
			t.Error("Worst is not fail")
		}
	})
	t.Run("unpinned log and open directory warn", func(t *testing.T) {
		d := dataDir(t)
		os.Chmod(d, 0o755)
		rs := Run(context.Background(), Config{Data: d, Audit: func(context.Context) (uint64, bool, error) { return 3, false, nil }})
		if r, _ := find(rs, "audit log"); r.Status != Warn || !strings.Contains(r.Fix, "--key") {
			t.Errorf("unpinned: %+v", r)
		}
		if r, _ := find(rs, "data directory"); r.Status != Warn || !strings.Contains(r.Fix, "chmod 700") {
			t.Errorf("open data directory: %+v", r)
		}
	})
	t.Run("runtime", func(t *testing.T) {
		rs := Run(context.Background(), Config{Data: dataDir(t), Runtime: true})
		if len(rs) < 3 {
			t.Fatalf("no kernel checks: %+v", rs)
		}
		for _, r := range rs {
			if r.Status != OK && r.Fix == "" {
				t.Errorf("%s is %s without a fix", r.Check, r.Status)
			}
		}
	})
}
