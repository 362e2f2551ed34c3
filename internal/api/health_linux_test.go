package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ward-dev/ward/internal/audit"
	"github.com/ward-dev/ward/internal/server"
)

// TestHealthDiskFull: with the node's data directory on a real file
// system that fills up, /healthz answers 503 (the audit log cannot
// write), and once space is freed it answers 200 again, without a
// restart; the log recorded the fault and verifies.
func TestHealthDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	data := t.TempDir()
	if err := unix.Mount("tmpfs", data, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", 48<<20)); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(data, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	n := newNodeWith(t, func(c *server.Config) { c.Data = data })
	if code, r, body := n.ready(t, "/healthz", false); code != http.StatusOK || r.Status != "ready" {
		t.Fatalf("healthz: %d %s", code, body)
	}

	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1 << 20, 1 << 12, 1} {
		for b := make([]byte, chunk); ; {
			if _, err := f.Write(b); err != nil {
				break
			}
		}
	}
	f.Close()
	code, r, body := n.ready(t, "/healthz", false)
	if ok, reason := r.check(t, "audit"); code != http.StatusServiceUnavailable || ok || reason != "the audit log's disk is full" {
		t.Fatalf("healthz on a full disk: %d %s", code, body)
	}
	// A call that must be recorded is refused, and the log knows why.
	if rec := n.op("POST", "/v1/sponsors", `{"name":"full","kind":"human","ceiling":{"tools":["*"]}}`); rec.Code < 400 {
		t.Fatalf("a call on a full disk was answered %d", rec.Code)
	}
	// (What is left of the files' last pages may take a few events.)
	var aerr error
	for i := 0; i < 10000 && aerr == nil; i++ {
		_, aerr = n.n.Audit.Append(context.Background(), audit.Event{Type: "test.full"})
	}
	if !errors.Is(aerr, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", aerr)
	}
	if err := n.n.Audit.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Err on a full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, body = n.ready(t, "/healthz", false)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz did not recover by itself: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.must("POST", "/v1/sponsors", `{"name":"freed","kind":"human","ceiling":{"tools":["*"]}}`, nil)
	found := false
	for _, e := range n.events(0) {
		found = found || (e.Type == "audit.fault" && strings.Contains(string(e.Data), "no space left on device"))
	}
	if !found {
		t.Fatal("the fault was not recorded")
	}
	if _, err := n.n.Audit.Verify(context.Background()); err != nil {
		t.Fatalf("verification pass: %v", err)
	}
}
