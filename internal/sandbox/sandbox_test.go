package sandbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Child()
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

func TestSmoke(t *testing.T) {
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "a.txt"), []byte("hello\n"), 0o644)
	r := runIn(t, Spec{Argv: []string{"/bin/sh", "-c", "id; hostname; cat a.txt; echo new > b.txt; ls -la /; cat /etc/shadow; echo pid $$"}, Workspace: ws})
	t.Logf("stdout:\n%s\nstderr:\n%s\nresult %+v\nreport %q\nevents %+v", r.stdout, r.stderr, r.res, r.sb.Report(), r.events)
	if !strings.Contains(r.stdout, "hello") {
		t.Fatal("no hello")
	}
}
