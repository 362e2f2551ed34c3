package main

import "testing"

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
