package sandbox

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Child()
	runProbe()
	os.Exit(m.Run())
}

// output runs argv in a runtime and returns what it printed, its result
// and the events it caused.
type run struct {
	stdout, stderr string
	res            Result
	events         []Event
	sb             *Sandbox
}

func runIn(t *testing.T, spec Spec) run {
	t.Helper()
	if spec.RunDir == "" {
		spec.RunDir = t.TempDir()
	}
	if spec.Env == nil {
		spec.Env = []string{"PATH=/usr/bin:/bin"}
	}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	spec.Stdout, spec.Stderr = outW, errW
	var mu sync.Mutex
	var r run
	spec.OnEvent = func(e Event) {
		mu.Lock()
		r.events = append(r.events, e)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	var ob, eb bytes.Buffer
	wg.Add(2)
	go func() { defer wg.Done(); ob.ReadFrom(outR) }()
	go func() { defer wg.Done(); eb.ReadFrom(errR) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := Start(ctx, spec)
	outW.Close()
	errW.Close()
	if err != nil {
		wg.Wait()
		t.Fatalf("Start: %v (stderr %q)", err, eb.String())
	}
	r.sb = sb
	res, err := sb.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	r.res = res
	if err := sb.Release(); err != nil {
		t.Errorf("Release: %v", err)
	}
	wg.Wait()
	r.stdout, r.stderr = ob.String(), eb.String()
	mu.Lock()
	defer mu.Unlock()
	return r
}

// TestRuntimeBasics: the program sees the workspace, its writes land in
// the capture and not in the workspace, the host's secrets and processes
// are not there, and the report says what is in force.
func TestRuntimeBasics(t *testing.T) {
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "a.txt"), []byte("hello\n"), 0o644)
	r := runIn(t, Spec{Workspace: ws, Argv: []string{"/bin/sh", "-c",
		"cat a.txt; echo new > b.txt; echo more >> a.txt; hostname; ls -d /proc/[0-9]* | wc -l; cat /etc/shadow; ls /root; exit 3"}})
	t.Logf("stdout:\n%s\nstderr:\n%s\nreport %q", r.stdout, r.stderr, r.sb.Report())
	if r.res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", r.res.ExitCode)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || lines[0] != "hello" || lines[1] != "ward" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(lines[2])); n == 0 || n > 5 {
		t.Errorf("%s processes visible: the PID namespace is not the runtime's own", lines[2])
	}
	for _, want := range []string{"/etc/shadow: No such file", "/root"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "a.txt")); string(b) != "hello\n" {
		t.Errorf("the workspace itself changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(ws, "b.txt")); !os.IsNotExist(err) {
		t.Error("a new file reached the workspace itself")
	}
	report := strings.Join(r.sb.Report(), "\n")
	for _, want := range []string{"landlock", "seccomp: filter installed", "capabilities: none"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestRuntimeUnprivileged runs TestRuntimeBasics again as an ordinary user
// (nobody): the runtime needs no privilege where the kernel allows user
// namespaces, and says that it has no cgroup.
func TestRuntimeUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runs as root, to become an ordinary user")
	}
	if os.Getenv("WARD_TEST_UNPRIVILEGED") != "" {
		t.Skip("already unprivileged")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "ward-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "sandbox.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o1777)
	os.Chmod(tmp, 0o1777)
	cmd := exec.Command(bin, "-test.run", "^TestRuntimeBasics$", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + tmp, "WARD_TEST_UNPRIVILEGED=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRuntimeBasics") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "limits: no cgroup") {
		t.Errorf("an unprivileged runtime does not say it has no cgroup:\n%s", out)
	}
}

// TestValidate: bad input is refused before anything starts.
func TestValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	for name, spec := range map[string]Spec{
		"no program":        {RunDir: "/tmp"},
		"relative run dir":  {Argv: []string{"true"}, RunDir: "run"},
		"missing workspace": {Argv: []string{"true"}, RunDir: "/tmp", Workspace: "/nonexistent/ws"},
		"file workspace":    {Argv: []string{"true"}, RunDir: "/tmp", Workspace: file},
		"comma workspace":   {Argv: []string{"true"}, RunDir: "/tmp", Workspace: "/tmp/a,b"},
		"relative ro":       {Argv: []string{"true"}, RunDir: "/tmp", ReadOnly: []string{"usr"}},
		"bad file name":     {Argv: []string{"true"}, RunDir: "/tmp", Files: map[string][]byte{"../x": nil}},
	} {
		if err := spec.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSignalsStayInside: the program has a process group of its own, not
// init's; a signal to its group, or to every process it may signal, does
// not reach the runtime's init (a Go program, which SIGABRT would crash)
// nor anything outside. (Landlock's signal scoping, where the kernel has
// it, holds this too.)
func TestSignalsStayInside(t *testing.T) {
	r := runIn(t, Spec{Argv: []string{"/bin/sh", "-c", `trap "" ABRT
test "$(cut -d' ' -f5 /proc/$$/stat)" != "$(cut -d' ' -f5 /proc/1/stat)" && echo own-group
kill -ABRT 0; kill -ABRT -1; echo survived`}})
	if r.res.ExitCode != 0 || !strings.Contains(r.stdout, "own-group") || !strings.Contains(r.stdout, "survived") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", r.res.ExitCode, r.stdout, r.stderr)
	}
}
