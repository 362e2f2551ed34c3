package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateECKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "k.key")
	k1, created, err := LoadOrCreateECKey(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	if k1.Curve != elliptic.P256() {
		t.Fatalf("curve %s, want P-256", k1.Curve.Params().Name)
	}
	checkMode(t, path, 0o600)
	checkMode(t, dir, 0o700)
	k2, created, err := LoadOrCreateECKey(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if !k1.Equal(k2) {
		t.Fatal("reloaded key differs from created key")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("file is not a PKCS#8 PEM block: %q", data)
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatalf("file is not PKCS#8: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

func TestLoadOrCreateEd25519Key(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "ed.key")
	k1, created, err := LoadOrCreateEd25519Key(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	checkMode(t, path, 0o600)
	k2, created, err := LoadOrCreateEd25519Key(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if !k1.Equal(k2) {
		t.Fatal("reloaded key differs from created key")
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("%s mode %o, want %o", path, got, want)
	}
}

func writePKCS8(t *testing.T, path string, key any) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeyRejects(t *testing.T) {
	dir := t.TempDir()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	file := func(name string, write func(string)) string {
		p := filepath.Join(dir, name)
		write(p)
		return p
	}
	ecFile := file("ec.key", func(p string) { writePKCS8(t, p, ecKey) })
	p384File := file("p384.key", func(p string) { writePKCS8(t, p, p384) })
	edFile := file("ed.key", func(p string) { writePKCS8(t, p, edKey) })
	rsaFile := file("rsa.key", func(p string) { writePKCS8(t, p, rsaKey) })
	garbage := file("garbage.key", func(p string) { os.WriteFile(p, []byte("not a key"), 0o600) })
	sec1 := file("sec1.key", func(p string) {
		der, _ := x509.MarshalECPrivateKey(ecKey)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	})
	trailing := file("trailing.key", func(p string) {
		der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
		os.WriteFile(p, append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "junk"...), 0o600)
	})
	huge := file("huge.key", func(p string) { os.WriteFile(p, make([]byte, maxPEMFile+1), 0o600) })

	tests := []struct {
		name, path, want string
		ed               bool
	}{
		{"ed25519 as ec", edFile, "want ECDSA P-256", false},
		{"p384 as ec", p384File, "want P-256", false},
		{"rsa as ec", rsaFile, "want ECDSA P-256", false},
		{"ec as ed25519", ecFile, "want Ed25519", true},
		{"rsa as ed25519", rsaFile, "want Ed25519", true},
		{"garbage", garbage, "no PEM", false},
		{"sec1 block", sec1, `"EC PRIVATE KEY"`, false},
		{"trailing data", trailing, "trailing data", false},
		{"oversize", huge, "larger than", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(tt.path)
			var err error
			if tt.ed {
				_, _, err = LoadOrCreateEd25519Key(tt.path)
			} else {
				_, _, err = LoadOrCreateECKey(tt.path)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			after, _ := os.ReadFile(tt.path)
			if string(before) != string(after) {
				t.Fatal("a rejected key file was overwritten")
			}
		})
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	const n = 16
	keys := make([]*ecdsa.PrivateKey, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], created[i], errs[i] = LoadOrCreateECKey(path) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if created[i] {
			creators++
		}
		if !keys[i].Equal(keys[0]) {
			t.Fatalf("goroutine %d got a different key", i)
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers report creating the key, want 1", creators)
	}
}
