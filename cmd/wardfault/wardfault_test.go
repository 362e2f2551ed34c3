package main

import (
	"bytes"
	"context"
	"slices"
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
	cfg.Dir = t.TempDir()
	cfg.Scenarios = scenarioNames
	var progress bytes.Buffer
	results, err := run(ctx, &cfg, &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	report(&out, results)
	t.Logf("\n%s", out.String())
	for _, name := range scenarioNames {
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
