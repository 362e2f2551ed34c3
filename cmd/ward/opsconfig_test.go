package main

import (
	"testing"
	"time"
)

// TestDPoPNonceConfig: nonces are on by default with a PostgreSQL store
// and off on SQLite, and dpop.nonce overrides either way.
func TestDPoPNonceConfig(t *testing.T) {
	const pg = "store: {postgres: \"postgres://u@127.0.0.1/db\"}\n"
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"listen: 127.0.0.1:0\n", false},
		{pg, true},
		{pg + "dpop: {nonce: false}\n", false},
		{"dpop: {nonce: true}\n", true},
	} {
		var fc fileConfig
		if err := parseConfig([]byte(tc.yaml), &fc); err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		cfg, err := fc.toServer(t.TempDir())
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if cfg.DPoPNonce != tc.want {
			t.Errorf("%q: DPoPNonce %v, want %v", tc.yaml, cfg.DPoPNonce, tc.want)
		}
	}
	var fc fileConfig
	if err := parseConfig([]byte("dpop: {nonce: true, nonces: 1}\n"), &fc); err == nil {
		t.Error("an unknown member of dpop: was accepted")
	}
}

// TestRetentionConfig: retention: names how long finished approvals and
// sessions stay in the store; unset keeps them; a bad duration is refused.
func TestRetentionConfig(t *testing.T) {
	var fc fileConfig
	if err := parseConfig([]byte("retention: {approvals: 720h, sessions: 48h}\n"), &fc); err != nil {
		t.Fatal(err)
	}
	cfg, err := fc.toServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention.Approvals != 720*time.Hour || cfg.Retention.Sessions != 48*time.Hour {
		t.Fatalf("retention %+v", cfg.Retention)
	}
	for _, bad := range []string{"retention: {sessions: -1h}\n", "retention: {approvals: soon}\n", "retention: {receipts: 1h}\n"} {
		var fc fileConfig
		err := parseConfig([]byte(bad), &fc)
		if err == nil {
			_, err = fc.toServer(t.TempDir())
		}
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
