//go:build linux

package confine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// systemExec are the program and library hierarchies a confined shell needs.
var systemExec = []string{"/usr", "/bin", "/lib", "/lib64"}

func needLandlock(t *testing.T, abi int) {
	t.Helper()
	if got := ABI(); got < abi {
		t.Skipf("needs Landlock ABI %d, kernel has %d", abi, got)
	}
}

// TestLandlockFilesystem runs sh under ReadExec system paths, a ReadOnly
// directory and a ReadWrite directory, and checks each access the policy
// grants or refuses, by its outcome and by the files left behind.
func TestLandlockFilesystem(t *testing.T) {
	needLandlock(t, 1)
	rw, ro, other := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "data"), []byte("ro-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "secret"), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const missing = "/nonexistent-ward-confine-test"

	script := `
		try() { name=$1; shift; if "$@" 2>/dev/null; then echo "$name ok"; else echo "$name denied"; fi; }
		try write-rw sh -c 'echo x > "$RW/ok"'
		try mkdir-rw mkdir "$RW/sub"
		try exec-rw sh -c 'cp "$RO/run.sh" "$RW/run.sh" && "$RW/run.sh" >/dev/null'
		try read-ro cat "$RO/data"
		try exec-ro "$RO/run.sh"
		try write-ro sh -c 'echo y > "$RO/new"'
		try read-other cat "$OTHER/secret"
		try write-other sh -c 'echo z > "$OTHER/new"'
		try list-other ls "$OTHER"
	`
	s := start(t, stage2Spec{
		Landlock: &Landlock{
			ReadExec:  append(slices.Clone(systemExec), missing),
			ReadOnly:  []string{ro},
			ReadWrite: []string{rw, "/dev/null"},
		},
		Argv: []string{"/bin/sh", "-c", script},
	}, "RW="+rw, "RO="+ro, "OTHER="+other)
	out := s.wait(t)

	want := strings.Join([]string{
		"write-rw ok", "mkdir-rw ok", "exec-rw ok",
		"ro-data", "read-ro ok", "exec-ro denied", "write-ro denied",
		"read-other denied", "write-other denied", "list-other denied",
	}, "\n") + "\n"
	if out != want {
		t.Errorf("sh printed\n%s\nwant\n%s\nstderr: %s", out, want, s.stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(rw, "ok")); err != nil || string(b) != "x\n" {
		t.Errorf("ReadWrite file: %q, %v", b, err)
	}
	for _, p := range []string{filepath.Join(ro, "new"), filepath.Join(other, "new")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written: %v", p, err)
		}
	}

	r := s.status.Report
	if r.ABI != ABI() {
		t.Errorf("Report.ABI = %d, want %d", r.ABI, ABI())
	}
	if !slices.Equal(r.Skipped, []string{missing}) {
		t.Errorf("Report.Skipped = %q, want [%s]", r.Skipped, missing)
	}
	if len(r.Enforced) == 0 || !strings.HasPrefix(r.Enforced[0], "filesystem access outside the listed paths") {
		t.Errorf("Report.Enforced = %q", r.Enforced)
	}
	t.Logf("report:\n%s", r)
}

// TestLandlockTCP: with Landlock ABI 4, a connect to a port not in
// ConnectTCP fails with EACCES and a listed one goes through.
func TestLandlockTCP(t *testing.T) {
	needLandlock(t, 4)
	bash := lookPath(t, "bash")
	allowed, refused := listenTCP(t), listenTCP(t)
	script := fmt.Sprintf(`
		(exec 3<>/dev/tcp/127.0.0.1/%d && echo refused >&3) && echo refused-port ok || echo refused-port denied
		(exec 3<>/dev/tcp/127.0.0.1/%d && echo allowed >&3) && echo allowed-port ok || echo allowed-port denied
	`, refused.port, allowed.port)
	s := start(t, stage2Spec{
		Landlock: &Landlock{ReadExec: systemExec, ReadWrite: []string{"/dev/null"}, ConnectTCP: []uint16{allowed.port}},
		Argv:     []string{bash, "-c", script},
	})
	out := s.wait(t)
	if want := "refused-port denied\nallowed-port ok\n"; out != want {
		t.Errorf("bash printed %q, want %q; stderr: %s", out, want, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "Permission denied") {
		t.Errorf("bash's error %q does not show EACCES", s.stderr.String())
	}
	if got := allowed.accepted(); !slices.Equal(got, []string{"allowed"}) {
		t.Errorf("allowed port accepted %q", got)
	}
	if got := refused.accepted(); len(got) != 0 {
		t.Errorf("refused port accepted %q", got)
	}
	wantLine := fmt.Sprintf("TCP connect only to ports %d", allowed.port)
	if !slices.Contains(s.status.Report.Enforced, wantLine) {
		t.Errorf("Report.Enforced = %q, want %q", s.status.Report.Enforced, wantLine)
	}
}

// TestLandlockSignalScope: with Landlock ABI 6, the confined shell may
// signal itself but not a process outside its domain.
func TestLandlockSignalScope(t *testing.T) {
	needLandlock(t, 6)
	victim := exec.Command(lookPath(t, "sleep"), "60")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { victim.Wait(); close(exited) }()
	t.Cleanup(func() { victim.Process.Kill(); <-exited })

	script := fmt.Sprintf(`
		kill -0 $$ 2>/dev/null && echo self ok || echo self denied
		kill -TERM %d 2>/dev/null && echo outside ok || echo outside denied
	`, victim.Process.Pid)
	s := start(t, stage2Spec{
		Landlock: &Landlock{ReadExec: systemExec, ReadWrite: []string{"/dev/null"}},
		Argv:     []string{"/bin/sh", "-c", script},
	})
	if out, want := s.wait(t), "self ok\noutside denied\n"; out != want {
		t.Errorf("sh printed %q, want %q; stderr: %s", out, want, s.stderr.String())
	}
	select {
	case <-exited:
		t.Error("the process outside the domain got the signal")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestLandlockOlderABI restricts as a kernel of ABI 3 would: the filesystem
// is confined, TCP is not, and the report says so.
func TestLandlockOlderABI(t *testing.T) {
	needLandlock(t, 4)
	bash := lookPath(t, "bash")
	ln := listenTCP(t)
	other := t.TempDir()
	script := fmt.Sprintf(`
		(echo z > "$OTHER/new") 2>/dev/null && echo write-other ok || echo write-other denied
		(exec 3<>/dev/tcp/127.0.0.1/%d && echo hi >&3) && echo connect ok || echo connect denied
	`, ln.port)
	s := start(t, stage2Spec{
		Landlock:    &Landlock{ReadExec: systemExec, ReadWrite: []string{"/dev/null"}}, // no ConnectTCP: ABI 4 would refuse every connect
		LandlockABI: 3,
		Argv:        []string{bash, "-c", script},
	}, "OTHER="+other)
	if out, want := s.wait(t), "write-other denied\nconnect ok\n"; out != want {
		t.Errorf("bash printed %q, want %q; stderr: %s", out, want, s.stderr.String())
	}
	r := s.status.Report
	for _, want := range []string{
		"network rules need Landlock ABI 4, kernel has 3",
		"device ioctl rules need Landlock ABI 5, kernel has 3",
		"signal and abstract unix socket scoping needs Landlock ABI 6, kernel has 3",
	} {
		if !slices.Contains(r.NotEnforced, want) {
			t.Errorf("Report.NotEnforced = %q, lacks %q", r.NotEnforced, want)
		}
	}
	if slices.ContainsFunc(r.Enforced, func(s string) bool { return strings.HasPrefix(s, "TCP") }) {
		t.Errorf("Report.Enforced = %q claims TCP rules", r.Enforced)
	}
}

func TestReportString(t *testing.T) {
	r := Report{ABI: 3, Enforced: []string{"a"}, NotEnforced: []string{"b"}, Skipped: []string{"/x"}}
	want := "landlock ABI 3\nenforced: a\nnot enforced: b\nskipped missing path: /x"
	if got := r.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestHandledFS(t *testing.T) {
	for abi, want := range map[int]uint64{1: 0x1fff, 2: 0x3fff, 3: 0x7fff, 4: 0x7fff, 5: 0xffff, 7: 0xffff} {
		if got := handledFS(abi); got != want {
			t.Errorf("handledFS(%d) = %#x, want %#x", abi, got, want)
		}
	}
}
