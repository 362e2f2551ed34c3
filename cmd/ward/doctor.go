package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/doctor"
	"github.com/ward-dev/ward/internal/server"
	"github.com/ward-dev/ward/internal/store"
)

// errUnhealthy makes `ward doctor` exit 1 when a check failed, after the
// report was printed.
var errUnhealthy = errors.New("some checks failed: see fix: above")

func cmdDoctor(args []string, stdout io.Writer) error {
	fs := flags("doctor")
	out := outputFlag(fs)
	configPath := fs.String("config", "", "the node's YAML configuration `file` (its store and servers are checked too)")
	data := fs.String("data", "", "the node's data `directory` (default the config's data, or ./ward-data)")
	keyFlag := fs.String("key", "", "the audit log's public key to pin, or a `file` holding it (your copy of DATA/keys/audit.pub)")
	noRuntime := fs.Bool("no-runtime", false, "skip the kernel features of ward run")
	if err := parseOut(fs, args, out); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *data != "" {
		cfg.Data = *data
	}
	dir := cfgData(cfg)
	dc := doctor.Config{Data: dir, Runtime: !*noRuntime}
	for _, u := range cfg.Upstreams {
		dc.Upstreams = append(dc.Upstreams, doctor.Upstream{Name: u.Name, URL: u.URL, Command: u.Command})
	}
	if paths := cfgPolicies(cfg, dir); len(cfg.Policies) > 0 || dirExists(paths[0]) {
		dc.Policies = func() (int, error) {
			set, err := server.LoadPolicies(paths)
			if err != nil {
				return 0, err
			}
			return set.Len(), nil
		}
	}
	if _, err := os.Stat(dir); err == nil {
		// Without the directory, its own check says what to do.
		dc.Store = storeCheck(cfg, dir)
		if _, err := os.Stat(filepath.Join(dir, "audit")); err == nil {
			dc.Audit, dc.LatestEvent = auditCheck(dir, *keyFlag)
		}
	}
	results := doctor.Run(context.Background(), dc)
	if *out == "json" {
		if err := printJSON(stdout, map[string]any{"status": doctor.Worst(results), "data": dir, "checks": results}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			fmt.Fprintf(stdout, "%-5s %-22s %s\n", r.Status, r.Check, r.Detail)
			if r.Fix != "" {
				fmt.Fprintf(stdout, "%-5s %-22s fix: %s\n", "", "", r.Fix)
			}
		}
		fmt.Fprintf(stdout, "\n%s: %s\n", dir, strings.ToUpper(string(doctor.Worst(results))))
	}
	if doctor.Worst(results) == doctor.Fail {
		return errUnhealthy
	}
	return nil
}

// storeCheck opens the node's store (SQLite in DATA, or PostgreSQL) and
// checks its integrity.
func storeCheck(cfg server.Config, dir string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var st *store.Store
		var err error
		where := filepath.Join(dir, "ward.db")
		if cfg.StoreDSN != "" {
			where = "PostgreSQL"
			if st, err = store.OpenPostgres(ctx, store.Config{DSN: cfg.StoreDSN, Schema: cfg.StoreSchema}); err == nil {
				where = st.Location()
			}
		} else if _, serr := os.Stat(where); serr != nil {
			return where, errors.New("no such file")
		} else {
			st, err = store.OpenSQLite(ctx, store.Config{Path: where})
		}
		if err != nil {
			return where, err
		}
		defer st.Close()
		damage, err := st.CheckIntegrity(ctx)
		if err != nil {
			return where, err
		}
		if len(damage) > 0 {
			return where, fmt.Errorf("%d damaged tables or indexes (first: %v)", len(damage), damage[0])
		}
		return where, nil
	}
}

// auditCheck verifies the audit log and remembers its latest event's time.
func auditCheck(dir, keyFlag string) (func(context.Context) (uint64, bool, error), func() time.Time) {
	var latest time.Time
	verify := func(ctx context.Context) (uint64, bool, error) {
		key, err := auditKey(dir, keyFlag)
		if err != nil {
			return 0, false, err
		}
		rep, err := audit.Verify(filepath.Join(dir, "audit"), key.v, key.v.Name())
		if err != nil {
			return 0, key.pinned, err
		}
		if rep.Size > 0 {
			if evs, err := audit.ReadDir(filepath.Join(dir, "audit"), rep.Size-1, rep.Size); err == nil && len(evs) == 1 {
				latest = evs[0].Time
			}
		}
		return rep.Size, key.pinned, nil
	}
	return verify, func() time.Time { return latest }
}
