package main

import (
	"strings"
	"testing"
	"time"
)

// TestStoreConfig: store.postgres selects PostgreSQL, with ${VAR}
// expanded; without store: the node keeps SQLite in DATA; a store section
// that names no database is an error that does not echo the DSN.
func TestStoreConfig(t *testing.T) {
	t.Setenv("WARD_DB_PW", "s3cret")
	load := func(body string) (string, string, error) {
		t.Helper()
		var fc fileConfig
		if err := parseConfig([]byte(body), &fc); err != nil {
			return "", "", err
		}
		cfg, err := fc.toServer(t.TempDir())
		return cfg.StoreDSN, cfg.StoreSchema, err
	}
	dsn, schema, err := load("store: {postgres: \"postgres://ward:${WARD_DB_PW}@db:5432/ward\", schema: ward}\n")
	if err != nil || dsn != "postgres://ward:s3cret@db:5432/ward" || schema != "ward" {
		t.Fatalf("postgres store: %q %q %v", dsn, schema, err)
	}
	if dsn, schema, err := load("trust_domain: example.org\n"); err != nil || dsn != "" || schema != "" {
		t.Fatalf("default store: %q %q %v", dsn, schema, err)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"no dsn":        {"store: {schema: ward}\n", "store.postgres"},
		"empty section": {"store: {}\n", "store.postgres"},
		"unset var":     {"store: {postgres: \"${WARD_UNSET_DSN_VAR}\"}\n", "unset"},
		"unknown key":   {"store: {sqlite: x.db}\n", `unknown key "sqlite"`},
		"case":          {"store: {Postgres: \"postgres://a@b/c\"}\n", `unknown key "Postgres"`},
		"twice":         {"store: {postgres: \"postgres://a@b/c\", postgres: \"postgres://a@b/d\"}\n", `key "postgres" is given twice`},
	} {
		_, _, err := load(tc.body)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}
}

// TestLogKeyOverlapConfig: audit.log_key_overlap bounds a log key
// rotation's overlap; unset, the node's default applies; a value that is
// not a positive duration is refused.
func TestLogKeyOverlapConfig(t *testing.T) {
	load := func(body string) (time.Duration, error) {
		t.Helper()
		var fc fileConfig
		if err := parseConfig([]byte(body), &fc); err != nil {
			return 0, err
		}
		cfg, err := fc.toServer(t.TempDir())
		return cfg.LogKeyOverlap, err
	}
	if d, err := load("audit: {log_key_overlap: 10m}\n"); err != nil || d != 10*time.Minute {
		t.Fatalf("10m: %v %v", d, err)
	}
	if d, err := load("trust_domain: example.org\n"); err != nil || d != 0 {
		t.Fatalf("unset: %v %v", d, err)
	}
	for _, bad := range []string{"-1h", "0s", "soon"} {
		if _, err := load("audit: {log_key_overlap: " + bad + "}\n"); err == nil || !strings.Contains(err.Error(), "audit.log_key_overlap") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
