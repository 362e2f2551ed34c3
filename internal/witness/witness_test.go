package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
)

const origin = "ward.test/audit"

type key struct {
	skey, vkey string
	signer     note.Signer
	verifier   note.Verifier
}

func newKey(t testing.TB, name string) key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return key{skey, vkey, s, v}
}

// openLog opens a real audit log holding n events.
func openLog(t testing.TB, dir string, k key, n int) *audit.Log {
	t.Helper()
	l, err := audit.Open(audit.Config{Dir: dir, Origin: origin, Signer: k.signer, Verifier: k.verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	appendN(t, l, n)
	return l
}

// appendN appends n events, then has the log sign a checkpoint over
// them (checkpoints otherwise follow on the log's cadence).
func appendN(t testing.TB, l *audit.Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), audit.Event{Type: "test", Actor: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// witnessNode is a Witness served over loopback HTTP.
type witnessNode struct {
	w    *Witness
	key  key
	srv  *httptest.Server
	url  string // the root; add-checkpoint is below it
	file string
}

func newWitness(t *testing.T, name string, logKey key) *witnessNode {
	t.Helper()
	k := newKey(t, name)
	file := filepath.Join(t.TempDir(), "state.json")
	w, err := New(Config{Key: k.skey, VerifierKey: k.vkey, Logs: []Log{{Origin: origin, Key: logKey.vkey}}, State: file})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/witness/add-checkpoint", w)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &witnessNode{w: w, key: k, srv: srv, url: srv.URL + "/witness", file: file}
}

func policyFor(t *testing.T, n string, ws ...*witnessNode) []byte {
	t.Helper()
	var b strings.Builder
	var names []string
	for i, w := range ws {
		fmt.Fprintf(&b, "witness w%d %s %s\n", i, w.w.VerifierKey(), w.url)
		names = append(names, fmt.Sprintf("w%d", i))
	}
	fmt.Fprintf(&b, "group g %s %s\nquorum g\n", n, strings.Join(names, " "))
	return []byte(b.String())
}

func newPublisher(t *testing.T, l Source, logKey key, policy []byte) *Publisher {
	t.Helper()
	g, err := ParsePolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(PublisherConfig{Log: l, Origin: origin, LogVerifier: logKey.verifier, Policy: g,
		Published: filepath.Join(t.TempDir(), "published")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cosignedBy checks a published checkpoint with the standard libraries:
// the log's signature with x/mod/sumdb/note and the witness's
// cosignature/v1 with transparency-dev/formats.
func cosignedBy(t *testing.T, cp []byte, logKey key, w *witnessNode) bool {
	t.Helper()
	cv, err := fnote.NewVerifierForCosignatureV1(w.w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(logKey.verifier, cv))
	if err != nil {
		t.Fatalf("published checkpoint does not open: %v", err)
	}
	logSigned, cosigned := false, false
	for _, s := range n.Sigs {
		logSigned = logSigned || s.Hash == logKey.verifier.KeyHash()
		cosigned = cosigned || s.Hash == cv.KeyHash()
	}
	if !logSigned {
		t.Fatal("published checkpoint lacks the log's signature")
	}
	return cosigned
}

// TestPublishWitnessedCheckpoints: checkpoints are cosigned by a ward
// witness over HTTP as the log grows, each cosignature verifies with the
// standard libraries, and the witness's state advances with consistency
// proofs.
func TestPublishWitnessedCheckpoints(t *testing.T) {
	logKey := newKey(t, origin)
	l := openLog(t, t.TempDir(), logKey, 5)
	w := newWitness(t, "witness.test/a", logKey)
	p := newPublisher(t, l, logKey, policyFor(t, "1", w))
	if p.Published() != nil {
		t.Fatal("published before any sync")
	}
	ctx := context.Background()
	for round, more := range []int{0, 7, 1, 30} {
		appendN(t, l, more)
		if err := p.Sync(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		pub := p.Published()
		if !bytes.HasPrefix(pub, l.Checkpoint()) || !cosignedBy(t, pub, logKey, w) {
			t.Fatalf("round %d: published checkpoint is not the log's, cosigned:\n%s", round, pub)
		}
		if got := w.w.Latest(origin); got != l.Size() {
			t.Fatalf("round %d: witness holds size %d, log %d", round, got, l.Size())
		}
	}
	// The published checkpoint survives a restart of the publisher.
	again, err := NewPublisher(PublisherConfig{Log: l, Origin: origin, LogVerifier: logKey.verifier, Policy: p.cfg.Policy, Published: p.cfg.Published})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Published(), p.Published()) {
		t.Fatal("published checkpoint not reloaded")
	}
}

// TestQuorumRequiredBeforePublishing: with "2 of 2" required and one
// witness down, nothing new is published; once both answer, it is.
func TestQuorumRequiredBeforePublishing(t *testing.T) {
	logKey := newKey(t, origin)
	l := openLog(t, t.TempDir(), logKey, 3)
	a, b := newWitness(t, "witness.test/a", logKey), newWitness(t, "witness.test/b", logKey)
	policy := policyFor(t, "2", a, b)
	p := newPublisher(t, l, logKey, policy)
	ctx := context.Background()
	if err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	first := p.Published()
	if !cosignedBy(t, first, logKey, a) || !cosignedBy(t, first, logKey, b) {
		t.Fatal("not cosigned by both")
	}

	b.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	})
	appendN(t, l, 4)
	err := p.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "lacks the cosignatures") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("sync with a witness down: %v", err)
	}
	if !bytes.Equal(p.Published(), first) {
		t.Fatal("a checkpoint without quorum was published")
	}

	mux := http.NewServeMux()
	mux.Handle("/witness/add-checkpoint", b.w)
	b.srv.Config.Handler = mux
	if err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if pub := p.Published(); !bytes.HasPrefix(pub, l.Checkpoint()) || !cosignedBy(t, pub, logKey, b) {
		t.Fatal("quorum met but not published")
	}
}

// TestWitnessRefusesForkAndRollback: a witness that cosigned one history
// refuses a different history under the same key (a fork) and a shorter
// one (a rollback), and keeps refusing after a restart.
func TestWitnessRefusesForkAndRollback(t *testing.T) {
	logKey := newKey(t, origin)
	honest := openLog(t, t.TempDir(), logKey, 10)
	w := newWitness(t, "witness.test/a", logKey)
	ctx := context.Background()
	if err := newPublisher(t, honest, logKey, policyFor(t, "1", w)).Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Same key, other entries, larger: no consistency proof can exist.
	fork := openLog(t, t.TempDir(), logKey, 0)
	appendN(t, fork, 1)
	if _, err := fork.Append(ctx, audit.Event{Type: "forged"}); err != nil {
		t.Fatal(err)
	}
	appendN(t, fork, 12)
	p := newPublisher(t, fork, logKey, policyFor(t, "1", w))
	err := p.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "422") || p.Published() != nil {
		t.Fatalf("fork: %v (published %q)", err, p.Published())
	}

	// Restart the witness from its state file: it still holds size 10.
	w2, err := New(Config{Key: w.key.skey, VerifierKey: w.key.vkey, Logs: []Log{{Origin: origin, Key: logKey.vkey}}, State: w.file})
	if err != nil {
		t.Fatal(err)
	}
	if w2.Latest(origin) != 10 {
		t.Fatalf("restarted witness holds %d", w2.Latest(origin))
	}
	w.srv.Config.Handler = http.StripPrefix("/witness", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { w2.ServeHTTP(rw, r) }))
	rollback := openLog(t, t.TempDir(), logKey, 4)
	p = newPublisher(t, rollback, logKey, policyFor(t, "1", w))
	err = p.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "rolled back or forked") || p.Published() != nil {
		t.Fatalf("rollback: %v", err)
	}
}

// TestAddCheckpointStatuses: each kind of bad request gets the status the
// protocol gives it, and changes nothing.
func TestAddCheckpointStatuses(t *testing.T) {
	logKey := newKey(t, origin)
	l := openLog(t, t.TempDir(), logKey, 6)
	w := newWitness(t, "witness.test/a", logKey)
	cp := l.Checkpoint()
	post := func(body []byte) (int, string) {
		resp, err := http.Post(w.url+"/add-checkpoint", "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := post(FormatRequest(0, nil, cp)); code != 200 || !strings.HasPrefix(body, "— witness.test/a ") {
		t.Fatalf("first checkpoint: %d %q", code, body)
	}
	appendN(t, l, 3)
	cp2 := l.Checkpoint()
	good, err := l.ConsistencyProof(6, 9)
	if err != nil {
		t.Fatal(err)
	}
	other := newKey(t, origin)
	otherLog := openLog(t, t.TempDir(), other, 9)
	unknown := bytes.Replace(cp2, []byte(origin), []byte("elsewhere.test/log"), 1)
	bad := append([][]byte{make([]byte, 32)}, good[1:]...)
	for _, c := range []struct {
		name string
		body []byte
		code int
		want string
	}{
		{"stale old size", FormatRequest(0, nil, cp2), 409, "6\n"},
		{"wrong proof", FormatRequest(6, bad, cp2), 422, "not consistent"},
		{"old larger than new", FormatRequest(12, good, cp2), 400, "larger"},
		{"unknown origin", FormatRequest(6, good, unknown), 404, "unknown log"},
		{"signed by another key", FormatRequest(6, good, otherLog.Checkpoint()), 403, "no trusted log signature"},
		{"no old line", []byte("6\n\n" + string(cp2)), 400, "old <size>"},
		{"leading zero", []byte("old 06\n\n" + string(cp2)), 400, "old <size>"},
		{"short hash", []byte("old 6\nAAAA\n\n" + string(cp2)), 400, "proof line 0"},
		{"no blank line", []byte("old 6\n"), 400, "no empty line"},
		{"no checkpoint", []byte("old 6\n\n"), 400, "no checkpoint"},
		{"too large", bytes.Repeat([]byte("x"), MaxRequestBytes+1), 400, ""},
	} {
		code, body := post(c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.code, c.want)
		}
	}
	if w.w.Latest(origin) != 6 {
		t.Fatal("a refused request changed the witness's state")
	}
	if code, _ := post(FormatRequest(6, good, cp2)); code != 200 || w.w.Latest(origin) != 9 {
		t.Fatalf("good update after refusals: %d", code)
	}
	resp, err := http.Get(w.url + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

// TestWitnessConfigErrors: a witness refuses keys that are not a pair,
// duplicate or keyless logs, and a corrupt state file.
func TestWitnessConfigErrors(t *testing.T) {
	a, b := newKey(t, "w.test/a"), newKey(t, "w.test/b")
	logKey := newKey(t, origin)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	for name, cfg := range map[string]Config{
		"mismatched keys": {Key: a.skey, VerifierKey: b.vkey, State: state},
		"bad log key":     {Key: a.skey, VerifierKey: a.vkey, State: state, Logs: []Log{{Origin: origin, Key: "nope"}}},
		"duplicate log":   {Key: a.skey, VerifierKey: a.vkey, State: state, Logs: []Log{{Origin: origin, Key: logKey.vkey}, {Origin: origin, Key: logKey.vkey}}},
		"no state":        {Key: a.skey, VerifierKey: a.vkey},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := os.WriteFile(state, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Key: a.skey, VerifierKey: a.vkey, State: state}); err == nil {
		t.Error("corrupt state accepted")
	}
}

func TestCheckCosignatureRejectsForeignAnswers(t *testing.T) {
	logKey := newKey(t, origin)
	l := openLog(t, t.TempDir(), logKey, 2)
	w := newWitness(t, "witness.test/a", logKey)
	other := newWitness(t, "witness.test/b", logKey)
	cp := l.Checkpoint()
	sigs, err := other.w.Add(context.Background(), 0, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(w.w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for name, answer := range map[string][]byte{
		"another witness's cosignature": sigs,
		"not signature lines":           []byte("hello\n"),
		"empty":                         nil,
	} {
		if _, err := checkCosignature(cp, answer, v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	own, err := w.w.Add(context.Background(), 0, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkCosignature(cp, append(bytes.Clone(sigs), own...), v)
	if err != nil || !bytes.Equal(got, own) {
		t.Fatalf("own cosignature among others: %q %v", got, err)
	}
	var stale *StaleError
	if _, err := w.w.Add(context.Background(), 0, nil, cp); !errors.As(err, &stale) || stale.Size != 2 {
		t.Fatalf("second add from 0: %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\norigin\n1\nAAAA\n\n— sig\n"))
	f.Add([]byte("old 12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\ncp"))
	f.Add([]byte("old 00\n\nx"))
	f.Fuzz(func(t *testing.T, body []byte) {
		old, proof, cp, err := ParseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error not ErrBadRequest: %v", err)
			}
			return
		}
		if len(cp) == 0 || len(proof) > MaxProofHashes {
			t.Fatal("accepted an empty checkpoint or too long a proof")
		}
		if !bytes.Equal(FormatRequest(old, proof, cp), body) {
			t.Fatalf("parse is not the inverse of format for %q", body)
		}
	})
}

// TestParsePolicyStrict: a policy that would let one witness count twice
// toward a quorum, or that says one thing twice, is refused; the format's
// own parser accepts every one of these.
func TestParsePolicyStrict(t *testing.T) {
	a, b := newKey(t, "w.test/a"), newKey(t, "w.test/b")
	va, err := fnote.VKeyToCosignatureV1(a.vkey)
	if err != nil {
		t.Fatal(err)
	}
	vb, _ := fnote.VKeyToCosignatureV1(b.vkey)
	w := func(name, vkey, url string) string { return fmt.Sprintf("witness %s %s %s\n", name, vkey, url) }
	good := w("w1", va, "https://a.example/w") + w("w2", vb, "https://b.example/w") + "group g 2 w1 w2\nquorum g\n"
	if _, err := ParsePolicy([]byte(good)); err != nil {
		t.Fatalf("good policy: %v", err)
	}
	for name, tc := range map[string]struct{ text, want string }{
		"same key twice": {w("w1", va, "https://a.example/w") + w("w2", va, "https://b.example/w") + "group g 2 w1 w2\nquorum g\n", "key of witness w1"},
		"same url twice": {w("w1", va, "https://a.example/w") + w("w2", vb, "https://a.example/w") + "group g 2 w1 w2\nquorum g\n", "URL of witness w1"},
		"member twice":   {w("w1", va, "https://a.example/w") + w("w2", vb, "https://b.example/w") + "group g 2 w1 w1\nquorum g\n", "lists w1 twice"},
		"two groups": {w("w1", va, "https://a.example/w") + w("w2", vb, "https://b.example/w") +
			"group x 1 w1\ngroup y 1 w1\ngroup g 2 x y\nquorum g\n", "groups x and y"},
		"zero threshold":    {w("w1", va, "https://a.example/w") + "group g 0 w1\nquorum g\n", "threshold \"0\""},
		"leading zero":      {w("w1", va, "https://a.example/w") + "group g 01 w1\nquorum g\n", "threshold \"01\""},
		"two quorums":       {w("w1", va, "https://a.example/w") + w("w2", vb, "https://b.example/w") + "group g 2 w1 w2\nquorum g\nquorum none\n", "second quorum"},
		"keyword case":      {"Witness w1 " + va + " https://a.example/w\nquorum w1\n", "unknown keyword"},
		"invalid utf-8":     {"# \xff\n" + w("w1", va, "https://a.example/w") + "quorum w1\n", "UTF-8"},
		"name case differs": {w("w1", va, "https://a.example/w") + "quorum W1\n", "not found"},
	} {
		if _, err := ParsePolicy([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}

// TestCheckCosignatureStrict: an answer that signs twice with the witness's
// key, or has a line that is not a signature line, is refused even when a
// valid cosignature is among its lines.
func TestCheckCosignatureStrict(t *testing.T) {
	logKey := newKey(t, origin)
	l := openLog(t, t.TempDir(), logKey, 2)
	w := newWitness(t, "witness.test/a", logKey)
	cp := l.Checkpoint()
	own, err := w.w.Add(context.Background(), 0, nil, cp)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := fnote.NewVerifierForCosignatureV1(w.w.VerifierKey())
	// A second line by the same key (name and key hash) with other
	// signature bytes, as a second cosignature with another timestamp
	// would be: note.Open keeps the first and drops it unseen.
	name, b64, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(string(own), "— "), "\n"), " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	again := []byte("— " + name + " " + base64.StdEncoding.EncodeToString(raw) + "\n")
	for name, answer := range map[string][]byte{
		"same key twice":         append(bytes.Clone(own), again...),
		"same line twice":        append(bytes.Clone(own), own...),
		"blank line":             append([]byte("\n"), own...),
		"not a signature line":   append(bytes.Clone(own), "— \n"...),
		"bad base64":             append(bytes.Clone(own), "— x.example/k AAAA!\n"...),
		"hyphen, not an em dash": append([]byte("- "), own[len("— "):]...),
	} {
		if _, err := checkCosignature(cp, answer, v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got, err := checkCosignature(cp, own, v); err != nil || !bytes.Equal(got, own) {
		t.Fatalf("own cosignature: %q %v", got, err)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"12\n", 12, true}, {"0\n", 0, true},
		{"12", 0, false}, {"012\n", 0, false}, {"+12\n", 0, false}, {" 12\n", 0, false}, {"12\n\n", 0, false},
		{"1 2\n", 0, false}, {"\n", 0, false}, {"99999999999999999999\n", 0, false},
	} {
		got, err := parseSize([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestWitnessStateStrict(t *testing.T) {
	a, logKey := newKey(t, "w.test/a"), newKey(t, origin)
	state := filepath.Join(t.TempDir(), "state.json")
	for name, body := range map[string]string{
		"duplicate log":  `{"ward.test/audit":{"size":1},"ward.test/audit":{"size":0}}`,
		"duplicate size": `{"ward.test/audit":{"size":5,"size":1}}`,
		"case variant":   `{"ward.test/audit":{"Size":5}}`,
	} {
		os.WriteFile(state, []byte(body), 0o600)
		if _, err := New(Config{Key: a.skey, VerifierKey: a.vkey, State: state, Logs: []Log{{Origin: origin, Key: logKey.vkey}}}); err == nil {
			t.Errorf("%s: state accepted", name)
		}
	}
}

// FuzzCheckCosignature: whatever a witness answers, what is accepted is
// lines of the answer, each a signature by the witness's key of exactly
// the checkpoint, once.
func FuzzCheckCosignature(f *testing.F) {
	logKey := newKey(f, origin)
	dir := f.TempDir()
	l, err := audit.Open(audit.Config{Dir: dir, Origin: origin, Signer: logKey.signer, Verifier: logKey.verifier})
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	k := newKey(f, "witness.test/f")
	w, err := New(Config{Key: k.skey, VerifierKey: k.vkey, Logs: []Log{{Origin: origin, Key: logKey.vkey}}, State: filepath.Join(dir, "state")})
	if err != nil {
		f.Fatal(err)
	}
	cp := l.Checkpoint()
	own, err := w.Add(context.Background(), 0, nil, cp)
	if err != nil {
		f.Fatal(err)
	}
	v, _ := fnote.NewVerifierForCosignatureV1(w.VerifierKey())
	f.Add(own)
	f.Add(append(bytes.Clone(own), own...))
	f.Add([]byte("— x.example/k AAAAAAA=\n"))
	f.Add(append([]byte("\n"), own...))
	f.Fuzz(func(t *testing.T, answer []byte) {
		got, err := checkCosignature(cp, answer, v)
		if err != nil {
			return
		}
		if !bytes.Contains(answer, got) && !bytes.Equal(got, own) {
			t.Fatalf("accepted lines %q are not the answer's", got)
		}
		n, err := note.Open(append(bytes.Clone(cp), got...), note.VerifierList(v))
		if err != nil || len(n.Sigs) != 1 || strings.Count(string(got), "\n") != 1 {
			t.Fatalf("accepted %q: %v", got, err)
		}
	})
}

// FuzzParsePolicy: an accepted policy asks no two witnesses with one key,
// so no key can count twice toward its quorum.
func FuzzParsePolicy(f *testing.F) {
	a, b := newKey(f, "w.test/a"), newKey(f, "w.test/b")
	va, _ := fnote.VKeyToCosignatureV1(a.vkey)
	vb, _ := fnote.VKeyToCosignatureV1(b.vkey)
	f.Add([]byte("witness w1 " + va + " https://a.example/w\nwitness w2 " + vb + " https://b.example/w\ngroup g 2 w1 w2\nquorum g\n"))
	f.Add([]byte("witness w1 " + va + " https://a.example/w\nwitness w2 " + va + " https://b.example/w\ngroup g 2 w1 w2\nquorum g\n"))
	f.Add([]byte("witness w1 " + va + " https://a.example/w\nquorum w1\n"))
	f.Add([]byte("quorum none\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		g, err := ParsePolicy(text)
		if err != nil {
			return
		}
		keys := map[string]bool{}
		for _, v := range g.Endpoints() {
			id := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
			if keys[id] {
				t.Fatalf("key %s asked twice in %q", id, text)
			}
			keys[id] = true
		}
	})
}
