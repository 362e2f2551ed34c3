package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/server"
)

// frames splits a log file into its length-prefixed frames.
func frames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if len(b) < 4+n {
			break
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

func unframes(fs [][]byte) []byte {
	var out []byte
	for _, f := range fs {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

// merkleRoot is RFC 6962's Merkle tree hash.
func merkleRoot(leaves [][]byte) []byte {
	h := rfc6962.DefaultHasher
	switch len(leaves) {
	case 0:
		return h.EmptyRoot()
	case 1:
		return h.HashLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return h.HashChildren(merkleRoot(leaves[:k]), merkleRoot(leaves[k:]))
}

// forgeLog is what an attacker with write access to DATA does: delete entry
// drop, renumber the index and session chain fields of the rest, re-sign
// every checkpoint with their own key, and put that key in
// DATA/keys/audit.pub. The head file, which they cannot make agree with the
// real key, they delete.
func forgeLog(t *testing.T, data string, drop int) {
	t.Helper()
	dir := filepath.Join(data, "audit")
	entries := frames(must(os.ReadFile(filepath.Join(dir, "entries"))))
	origin := strings.SplitN(string(frames(must(os.ReadFile(filepath.Join(dir, "checkpoints"))))[0]), "\n", 2)[0]
	prefix := regexp.MustCompile(`^\{"v":(\d+),"index":\d+(,"seq":\d+)?(,"prev":\d+)?,`)
	type link struct{ seq, last int }
	chains := map[string]link{}
	var out [][]byte
	for i, e := range entries {
		if i == drop {
			continue
		}
		var ev struct{ Session string }
		json.Unmarshal(e, &ev)
		m := prefix.FindSubmatch(e)
		idx := len(out)
		head := `{"v":` + string(m[1]) + `,"index":` + strconv.Itoa(idx)
		if ev.Session != "" && string(m[1]) == "2" {
			c := chains[ev.Session]
			head += `,"seq":` + strconv.Itoa(c.seq+1)
			if c.seq > 0 {
				head += `,"prev":` + strconv.Itoa(c.last)
			}
			chains[ev.Session] = link{c.seq + 1, idx}
		}
		out = append(out, append([]byte(head+","), e[len(m[0]):]...))
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	var recs [][]byte
	for size := 0; size <= len(out); size++ {
		text := origin + "\n" + strconv.Itoa(size) + "\n" + base64.StdEncoding.EncodeToString(merkleRoot(out[:size])) + "\n"
		signed, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, signed)
	}
	os.WriteFile(filepath.Join(dir, "entries"), unframes(out), 0o600)
	os.WriteFile(filepath.Join(dir, "checkpoints"), unframes(recs), 0o600)
	os.WriteFile(filepath.Join(data, "keys", "audit.pub"), []byte(vkey+"\n"), 0o644)
	os.Remove(filepath.Join(data, "audit.head"))
}

// auditNode runs a node, records a little history and stops it. It returns
// the data directory and the operator's own copy of the log key.
func auditNode(t *testing.T) (data, key string) {
	t.Helper()
	n := startNode(t, server.Config{})
	data = filepath.Dir(os.Getenv("WARD_CA"))
	for _, name := range []string{"ann", "ben", "cy", "dee"} {
		mustCLI(t, "sponsor", "create", name, "--allow", "tool:*")
	}
	n.Close()
	key = filepath.Join(t.TempDir(), "audit.pub")
	os.WriteFile(key, must(os.ReadFile(filepath.Join(data, "keys", "audit.pub"))), 0o600)
	return data, key
}

// TestCLIAuditVerifyPinsItsTrust: a log with an entry deleted, re-signed
// with another key that replaced DATA/keys/audit.pub. Before, `ward audit
// verify` said ok. Now: without --key it never says ok; with the pinned
// key it fails and says the key file was replaced; with a checkpoint kept
// from before it says how many entries are gone, and with a copy of the
// checkpoints file which one.
func TestCLIAuditVerifyPinsItsTrust(t *testing.T) {
	data, key := auditNode(t)
	kept := filepath.Join(t.TempDir(), "checkpoint")
	var v struct{ Checkpoint string }
	json.Unmarshal([]byte(mustCLI(t, "audit", "verify", "--data", data, "--key", key, "-o", "json")), &v)
	os.WriteFile(kept, []byte(v.Checkpoint), 0o600)
	backup := filepath.Join(t.TempDir(), "checkpoints.bak")
	os.WriteFile(backup, must(os.ReadFile(filepath.Join(data, "audit", "checkpoints"))), 0o600)
	size := strings.Split(v.Checkpoint, "\n")[1]

	forgeLog(t, data, 3)

	out := mustCLI(t, "audit", "verify", "--data", data)
	if strings.Contains(out, "ok:") || !strings.HasPrefix(out, "UNPINNED: ") || !strings.Contains(out, "ward's remembered head") {
		t.Fatalf("unpinned verify of a forged log: %s", out)
	}
	var j struct {
		OK, Pinned bool
		KeySource  string `json:"key_source"`
	}
	json.Unmarshal([]byte(mustCLI(t, "audit", "verify", "--data", data, "-o", "json")), &j)
	if j.OK || j.Pinned || j.KeySource != filepath.Join(data, "keys", "audit.pub") {
		t.Fatalf("unpinned verify -o json: %+v", j)
	}

	code, _, errOut := wardCLI("audit", "verify", "--data", data, "--key", key)
	if code != 1 || !strings.Contains(errOut, "AUDIT LOG FAILED VERIFICATION against the pinned key") || !strings.Contains(errOut, "it was replaced") ||
		!strings.Contains(errOut, "not signed by the log key") {
		t.Fatalf("pinned verify: exit %d %s", code, errOut)
	}
	keyText := strings.TrimSpace(string(must(os.ReadFile(key))))
	code, _, errOut = wardCLI("audit", "verify", "--data", data, "--key", keyText, "--checkpoint", kept)
	if n, _ := strconv.Atoi(size); code != 1 || !strings.Contains(errOut, "covers "+size+", so at least 1 were removed") || !strings.Contains(errOut, "the log holds "+strconv.Itoa(n-1)+" entries") {
		t.Fatalf("pinned verify with a kept checkpoint: exit %d %s", code, errOut)
	}
	code, _, errOut = wardCLI("audit", "verify", "--data", data, "--key", key, "--checkpoint", backup)
	if code != 1 || !namesEntry(errOut, 3) {
		t.Fatalf("pinned verify with a copy of the checkpoints file: exit %d %s", code, errOut)
	}
}

// namesEntry says whether a verification error narrows the first
// alteration to entry i: alone, or within the entries between the two
// checkpoints around it (checkpoints come on the log's cadence, not one
// per event).
func namesEntry(msg string, i int) bool {
	if strings.Contains(msg, fmt.Sprintf("still matches: entry %d was altered or removed", i)) {
		return true
	}
	m := regexp.MustCompile(`still matches: the first alteration or removal is in entries (\d+)\.\.(\d+)`).FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a <= i && i <= b
}

// TestCLIAuditVerifyCheckpoints: what --checkpoint and --key accept.
func TestCLIAuditVerifyCheckpoints(t *testing.T) {
	data, key := auditNode(t)
	var v struct{ Checkpoint string }
	json.Unmarshal([]byte(mustCLI(t, "audit", "verify", "--data", data, "--key", key, "-o", "json")), &v)
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept")
	os.WriteFile(kept, []byte(v.Checkpoint), 0o600)
	// A later log still extends it.
	token := os.Getenv("WARD_TOKEN")
	n := startNode(t, server.Config{Data: data})
	t.Setenv("WARD_TOKEN", token)
	mustCLI(t, "sponsor", "create", "eve", "--allow", "tool:*")
	n.Close()
	out := mustCLI(t, "audit", "verify", "--data", data, "--key", key, "--checkpoint", kept, "--checkpoint", filepath.Join(data, "audit", "checkpoints"))
	if !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "the checkpoint in "+kept) || strings.Contains(out, "no --checkpoint") {
		t.Fatalf("verify with checkpoints: %s", out)
	}
	// A checkpoint of another log is refused, as are bad arguments.
	other, _ := auditNode(t)
	var o struct{ Checkpoint string }
	json.Unmarshal([]byte(mustCLI(t, "audit", "verify", "--data", other, "-o", "json")), &o)
	foreign := filepath.Join(dir, "foreign")
	os.WriteFile(foreign, []byte(o.Checkpoint), 0o600)
	if code, _, errOut := wardCLI("audit", "verify", "--data", data, "--key", key, "--checkpoint", foreign); code != 1 || !strings.Contains(errOut, "not signed by the log key") {
		t.Fatalf("foreign checkpoint: exit %d %s", code, errOut)
	}
	for _, args := range [][]string{
		{"--checkpoint", filepath.Join(dir, "missing")},
		{"--key", "cli.test/audit+0000000+AAAA"},
		{"--key", strings.ToUpper(strings.TrimSpace(string(must(os.ReadFile(key)))))},
	} {
		if code, _, errOut := wardCLI(append([]string{"audit", "verify", "--data", data}, args...)...); code == 0 {
			t.Fatalf("%v accepted: %s", args, errOut)
		}
	}
	if code, _, _ := wardCLI("audit", "tail", "--data", data, "--checkpoint", kept); code != 2 {
		t.Fatal("--checkpoint accepted by tail")
	}
}

// TestCLIAuditRollbackRefusesStart: the checkpoints file replaced by an
// older copy. Before, ward up cut the log back and recorded audit.recover
// as after a crash. Now verify fails, ward up refuses and says how to
// recover, and the recorded override keeps every entry.
func TestCLIAuditRollbackRefusesStart(t *testing.T) {
	data, key := auditNode(t)
	old := must(os.ReadFile(filepath.Join(data, "audit", "checkpoints")))
	token := os.Getenv("WARD_TOKEN")
	n := startNode(t, server.Config{Data: data})
	t.Setenv("WARD_TOKEN", token)
	mustCLI(t, "sponsor", "create", "fay", "--allow", "tool:*")
	size := n.Audit.Size()
	n.Close()
	entries := must(os.ReadFile(filepath.Join(data, "audit", "entries")))
	os.WriteFile(filepath.Join(data, "audit", "checkpoints"), old, 0o600)

	if code, _, errOut := wardCLI("audit", "verify", "--data", data, "--key", key); code != 1 || !strings.Contains(errOut, "the checkpoints file was rolled back") {
		t.Fatalf("verify: exit %d %s", code, errOut)
	}
	_, err := server.Open(context.Background(), server.Config{Data: data, TrustDomain: "cli.test"})
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "restore DATA/audit from a backup") || !strings.Contains(err.Error(), "--allow-unverified-audit") {
		t.Fatalf("ward up on a rolled-back log: %v", err)
	}
	if got := must(os.ReadFile(filepath.Join(data, "audit", "entries"))); string(got) != string(entries) {
		t.Fatal("the refused start changed the entries")
	}
	n = startNode(t, server.Config{Data: data, AllowUnverifiedAudit: true})
	if n.Audit.Size() <= size {
		t.Fatalf("override: size %d, had %d", n.Audit.Size(), size)
	}
	n.Close()
	out := mustCLI(t, "audit", "search", "--data", data, "--type", "audit.unverified-open", "-o", "json")
	if !strings.Contains(out, "rolled back") || !strings.Contains(out, `\"remembered\"`) && !strings.Contains(out, `remembered`) {
		t.Fatalf("the override is not recorded: %s", out)
	}
	if out := mustCLI(t, "audit", "verify", "--data", data, "--key", key); !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("after the override: %s", out)
	}
}
