package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestShortRun is the short fault run CI makes: every scenario (crash,
// disk-full, store-loss, wal-loss, damage) against real ward processes
// built from this repository, with nothing lost or broken. disk-full needs root (CI runs as root)
// and is skipped, saying why, where it cannot mount.
func TestShortRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := shortConfig
	cfg.Dir, cfg.Ward = t.TempDir(), wardBinary(t)
	cfg.Scenarios = singleNodeScenarioNames
	var progress bytes.Buffer
	results, err := run(ctx, &cfg, &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	report(&out, results)
	t.Logf("\n%s", out.String())
	for _, name := range singleNodeScenarioNames {
		t.Run(name, func(t *testing.T) {
			i := slices.IndexFunc(results, func(r *result) bool { return r.Scenario == name })
			if i < 0 {
				t.Fatal("not run")
			}
			r := results[i]
			switch {
			case r.Skipped != "":
				t.Skip(r.Skipped)
			case r.failed():
				t.Fatalf("lost: %s; problems: %q", describeLoss(r.Loss), r.Problems)
			case r.Acked == 0:
				t.Fatal("no call was acknowledged: the scenario checked nothing")
			}
			if name == "crash" && (r.Budget == nil || r.Budget.Allowed != cfg.Budget) {
				t.Fatalf("budget %+v: the log must allow exactly the budget", r.Budget)
			}
		})
	}
}

// TestClusterShortRun is the short run of the scenarios of several nodes
// (node-kill, db-restart, db-cut): two real nodes on a PostgreSQL server of
// the test's own, each scenario well under a minute. Without PostgreSQL's
// server binaries they skip, unless WARD_REQUIRE_POSTGRES=1 (as in CI).
func TestClusterShortRun(t *testing.T) {
	bin := wardBinary(t)
	for _, name := range clusterScenarioNames {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cfg := shortConfig
			cfg.Dir, cfg.Ward, cfg.Scenarios = t.TempDir(), bin, []string{name}
			var progress bytes.Buffer
			results, err := run(ctx, &cfg, &progress)
			if err != nil {
				t.Fatalf("%v\n%s", err, progress.String())
			}
			var out bytes.Buffer
			report(&out, results)
			t.Logf("\n%s", out.String())
			r := results[0]
			switch {
			case r.Skipped != "" && os.Getenv("WARD_REQUIRE_POSTGRES") == "1":
				t.Fatalf("WARD_REQUIRE_POSTGRES=1, but: %s", r.Skipped)
			case r.Skipped != "":
				t.Skip(r.Skipped)
			case r.failed():
				t.Fatalf("lost: %s; problems: %q", describeLoss(r.Loss), r.Problems)
			case r.Acked == 0:
				t.Fatal("no call was acknowledged: the scenario checked nothing")
			}
			if r.Budget == nil || r.Budget.Allowed == 0 || r.Budget.Allowed > cfg.Budget {
				t.Fatalf("budget %+v: the logs must allow some of the budget of %d and no more", r.Budget, cfg.Budget)
			}
		})
	}
}

var (
	buildOnce sync.Once
	builtWard string
	buildErr  error
)

// wardBinary builds the ward binary once for every test of the package,
// in a directory removed when the test binary exits (see TestMain).
func wardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		builtWard, buildErr = buildWard(ctx, buildDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtWard
}

var buildDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "wardfault-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	buildDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// TestCompare: the check finds each kind of loss, and none where there is
// none.
func TestCompare(t *testing.T) {
	logged := &logCalls{
		allowed:  map[string]string{"a": toolWork, "b": toolSpend, "c": toolSpend, "d": toolSpend, "e": toolWork},
		answered: map[string]bool{"a": true, "b": true, "c": true, "d": true},
		refunded: map[string]bool{"d": true},
	}
	for _, tc := range []struct {
		name       string
		acked, ran map[string]string
		budget     int
		want       loss
		allowed    int
	}{
		{"nothing lost", map[string]string{"a": toolWork, "b": toolSpend}, map[string]string{"a": toolWork, "b": toolSpend, "e": toolWork}, 2, loss{}, 2},
		{"acknowledged, not in the log", map[string]string{"a": toolWork, "x": toolWork}, nil, 0, loss{Lost: []string{"x"}}, 2},
		{"acknowledged, allowed but no result", map[string]string{"e": toolWork}, nil, 0, loss{Lost: []string{"e"}}, 2},
		{"run, never recorded", nil, map[string]string{"a": toolWork, "y": toolSpend}, 0, loss{Unrecorded: []string{"y"}}, 2},
		{"the log allows more than the budget", nil, nil, 1, loss{Over: 1}, 2},
		{"the upstream ran more than the budget", nil, map[string]string{"b": toolSpend, "c": toolSpend, "d": toolSpend}, 2, loss{Over: 1}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, use := compare(tc.acked, tc.ran, logged, tc.budget)
			if !slices.Equal(got.Lost, tc.want.Lost) || !slices.Equal(got.Unrecorded, tc.want.Unrecorded) || got.Over != tc.want.Over {
				t.Errorf("loss %+v, want %+v", got, tc.want)
			}
			if got.none() != tc.want.none() {
				t.Errorf("none() = %v", got.none())
			}
			if use.Allowed != tc.allowed {
				t.Errorf("%d budgeted calls allowed, want %d (a refunded call does not count)", use.Allowed, tc.allowed)
			}
		})
	}
}

// fakeWard writes a stand-in for the ward binary: `audit verify` exits
// with verify's status, `audit search` prints search.
func fakeWard(t *testing.T, verify int, search string) *node {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "search.jsonl"), []byte(search), 0o600)
	script := fmt.Sprintf("#!/bin/sh\ncase \"$2\" in\nverify) echo 'FAILED VERIFICATION' >&2; exit %d;;\nsearch) cat %s;;\nesac\n", verify, filepath.Join(dir, "search.jsonl"))
	bin := filepath.Join(dir, "ward")
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return &node{bin: bin, dir: dir, data: dir}
}

// TestReadLog: the log's allowed calls are read by the id in their
// recorded arguments, answered and refunded ones by their result's
// decision_event; a log that does not verify is errUnverified, and a call
// allowed twice is an error.
func TestReadLog(t *testing.T) {
	ctx := context.Background()
	events := `{"index":1,"type":"decision","data":{"name":"up.work","decision":"allow","arguments":{"id":"a0-1"}}}
{"index":2,"type":"decision","data":{"name":"up.spend","decision":"allow","arguments":{"id":"a0-2"}}}
{"index":3,"type":"decision","data":{"name":"up.spend","decision":"deny","arguments":{"id":"a0-3"}}}
{"index":4,"type":"result","data":{"name":"up.work","decision_event":1}}
{"index":5,"type":"result","data":{"name":"up.spend","decision_event":2,"refunded":true}}
{"index":6,"type":"decision","data":{"name":"demo.echo","decision":"allow","arguments":{"id":"other"}}}
`
	lc, err := readLog(ctx, fakeWard(t, 0, events), "key")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(lc.allowed, map[string]string{"a0-1": toolWork, "a0-2": toolSpend}) ||
		!maps.Equal(lc.answered, map[string]bool{"a0-1": true, "a0-2": true}) || !maps.Equal(lc.refunded, map[string]bool{"a0-2": true}) {
		t.Fatalf("read %+v", lc)
	}
	if _, err := readLog(ctx, fakeWard(t, 1, events), "key"); !errors.Is(err, errUnverified) {
		t.Fatalf("a log that does not verify: %v", err)
	}
	twice := events + `{"index":7,"type":"decision","data":{"name":"up.work","decision":"allow","arguments":{"id":"a0-1"}}}` + "\n"
	if _, err := readLog(ctx, fakeWard(t, 0, twice), "key"); err == nil || !strings.Contains(err.Error(), "allowed twice") {
		t.Fatalf("a call allowed twice: %v", err)
	}
}
