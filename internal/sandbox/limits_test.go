package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// envHold makes the test binary start a runtime in the run directory it
// names, say "started" and wait to be killed: a ward process that dies
// without releasing its runtime.
const envHold = "WARD_SANDBOX_HOLD"

func hold(runDir string) {
	null, _ := os.Open(os.DevNull)
	sb, err := Start(context.Background(), Spec{Argv: []string{"/bin/sleep", "300"}, RunDir: runDir,
		Env: []string{"PATH=/usr/bin:/bin"}, Stdin: null, Stdout: null, Stderr: null})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("started")
	sb.Wait()
	os.Exit(0)
}

// needCgroup skips a test that needs the runtime's cgroup.
func needCgroup(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root, for a cgroup")
	}
	if _, err := planCgroup(cgroupName(), Limits{}.withDefaults()); err != nil {
		t.Skipf("no cgroup: %v", err)
	}
}

// TestLimitsSayWhy: a program the OOM killer ends, one that meets the
// process limit and one that fills the scratch space are told apart from
// any other exit: Result.Limits names the limit.
func TestLimitsSayWhy(t *testing.T) {
	needCgroup(t)
	for _, tt := range []struct {
		name   string
		limits Limits
		script string
		want   string
	}{
		{"memory", Limits{Memory: 64 << 20}, `exec python3 -c 'b = b"x" * (512 << 20)'`, "memory: out of memory: the kernel killed"},
		{"processes", Limits{Pids: 40}, `for i in $(seq 60); do sleep 30 & done 2>/dev/null; exit 0`, "processes: "},
		{"disk", Limits{Disk: 8 << 20}, `dd if=/dev/zero of=/workspace/big bs=1M count=32 2>/dev/null; exit 0`, "disk: the 8 MiB of scratch space"},
		{"none", Limits{}, `exit 3`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runIn(t, Spec{Limits: tt.limits, Argv: []string{"/bin/sh", "-c", tt.script}})
			got := strings.Join(r.res.Limits, "\n")
			t.Logf("exit %d %s; limits: %q", r.res.ExitCode, r.res.Signal, r.res.Limits)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("limits %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReapAfterKill: a ward process killed with SIGKILL takes its runtime
// with it but leaves its cgroups and run directory, which Reap removes;
// a run directory in use, another user's, or one whose record names
// something else, is left alone.
func TestReapAfterKill(t *testing.T) {
	needCgroup(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(t.TempDir(), "run")
	os.Mkdir(run, 0o700)
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), envHold+"="+run)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "started\n" {
		t.Fatalf("helper: %q", line)
	}
	if ok, err := Reap(run); ok || err != nil {
		t.Fatalf("Reap of a live runtime's directory: %v, %v", ok, err)
	}
	b, err := os.ReadFile(filepath.Join(run, recordName))
	if err != nil {
		t.Fatal(err)
	}
	var rec runRecord
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Cgroups) == 0 {
		t.Fatalf("record %s: %v", b, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for _, d := range rec.Cgroups {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("cgroup %s: %v: nothing was left to reap", d, err)
		}
	}
	ok, err := Reap(run)
	if !ok || err != nil {
		t.Fatalf("Reap: %v, %v", ok, err)
	}
	for _, d := range append(rec.Cgroups, run) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", d, err)
		}
	}

	// A record naming a cgroup that is not a runtime's.
	forged := filepath.Join(t.TempDir(), "forged")
	os.Mkdir(forged, 0o700)
	victim := filepath.Join(filepath.Dir(rec.Cgroups[0]), "not-ward-"+strings.TrimPrefix(filepath.Base(rec.Cgroups[0]), "ward-"))
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(victim)
	os.WriteFile(filepath.Join(forged, recordName), []byte(`{"cgroups":["`+victim+`"]}`), 0o600)
	if ok, err := Reap(forged); ok || err == nil {
		t.Errorf("Reap of a forged record: %v, %v", ok, err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the forged record's cgroup was removed: %v", err)
	}
	// Another user's directory, and one open to others.
	for name, fix := range map[string]func(string){
		"other user": func(d string) { os.Chown(d, 65534, 65534) },
		"open":       func(d string) { os.Chmod(d, 0o755) },
	} {
		d := filepath.Join(t.TempDir(), "d")
		os.Mkdir(d, 0o700)
		os.WriteFile(filepath.Join(d, recordName), []byte(`{"cgroups":[]}`), 0o600)
		fix(d)
		if ok, err := Reap(d); ok || err != nil {
			t.Errorf("%s: Reap: %v, %v", name, ok, err)
		}
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: removed", name)
		}
	}
}
