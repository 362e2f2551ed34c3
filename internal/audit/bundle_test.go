package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// bundleLog writes 25 events of sessions s1 and s2 (every third is s2),
// seals both, and adds an event of s3 that stays open.
func bundleLog(t *testing.T) (string, testKey) {
	t.Helper()
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	cfg := testConfig(dir, k)
	cfg.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) } // entries of fixed lengths
	l := mustOpen(t, cfg)
	for i := 0; i < 25; i++ {
		session := "s1"
		if i%3 == 0 {
			session = "s2"
		}
		if _, err := l.Append(context.Background(), Event{Type: "decision", Session: session, Data: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	sealAll(t, l, "s1", "s2")
	if _, err := l.Append(context.Background(), Event{Type: "decision", Session: "s3"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	return dir, k
}

func export(t *testing.T, dir string, k testKey, sessions ...string) []byte {
	t.Helper()
	b, err := Export(dir, ExportConfig{Verifier: k.verifier, Origin: testOrigin, LogKey: k.vkey, Sessions: sessions})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.MarshalIndent(b, "", "  ")
	return raw
}

func TestBundleRoundTrip(t *testing.T) {
	dir, k := bundleLog(t)
	raw := export(t, dir, k, "s1")
	rep, err := VerifyBundleWith(raw, BundleCheck{Verifier: k.verifier, Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) != 17 || len(rep.Sessions) != 1 || !rep.Sessions[0].Sealed || rep.Sessions[0].Events != 17 {
		t.Fatalf("%d events, sessions %+v; want 16 and the seal", len(rep.Events), rep.Sessions)
	}
	for i, e := range rep.Events {
		if e.Session != "s1" || e.Seq != uint64(i+1) {
			t.Fatalf("event %d: session %q seq %d", e.Index, e.Session, e.Seq)
		}
	}
	if last := rep.Events[16]; last.Type != typeSeal || last.Actor != "ward" {
		t.Fatalf("last event %+v, want the seal", last)
	}
	// Two sessions, s2 first.
	rep, err = VerifyBundleWith(export(t, dir, k, "s2", "s1"), BundleCheck{Verifier: k.verifier, Session: "s2"})
	if err != nil || len(rep.Sessions) != 2 || rep.Sessions[0].ID != "s2" || rep.Sessions[0].Events != 10 {
		t.Fatalf("two sessions: %+v, %v", rep, err)
	}
}

// TestExportBundleMatch: ExportBundle bundles the whole sessions of what
// match selects, and refuses events without a session.
func TestExportBundleMatch(t *testing.T) {
	dir, k := bundleLog(t)
	b, err := ExportBundle(dir, k.verifier, testOrigin, k.vkey, "", nil, func(e Event) bool { return e.Session == "s2" && e.Seq == 3 })
	if err != nil || len(b.Events) != 10 || !slices.Equal(b.Sessions, []string{"s2"}) {
		t.Fatalf("bundle of s2: %v, %v", b, err)
	}
	l := mustOpen(t, testConfig(dir, k))
	if _, err := l.Append(context.Background(), Event{Type: "server.start"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := ExportBundle(dir, k.verifier, testOrigin, k.vkey, "", nil, func(Event) bool { return true }); err == nil || !strings.Contains(err.Error(), "no session") {
		t.Fatalf("sessionless event: %v", err)
	}
	if _, err := Export(dir, ExportConfig{Verifier: k.verifier, Origin: testOrigin, Sessions: []string{"nobody"}}); err == nil {
		t.Fatal("exported a session with no events")
	}
}

// mutate decodes a bundle leniently, changes it and encodes it again.
func mutate(t *testing.T, raw []byte, f func(b *Bundle)) []byte {
	t.Helper()
	var b Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	f(&b)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBundleAttacks: every way of editing a bundle found so far is refused,
// and where events are missing the error names them.
func TestBundleAttacks(t *testing.T) {
	dir, k := bundleLog(t)
	raw := export(t, dir, k, "s2", "s1")
	s3 := export(t, dir, k, "s3")
	evil := newTestKey(t, testOrigin)
	var orig Bundle
	json.Unmarshal(raw, &orig)
	// Indices of s2's events: 0, 3, …, 24, then its seal.
	s2 := func(b *Bundle) []int {
		var out []int
		for i, be := range b.Events {
			if strings.Contains(string(be.Entry), `"session":"s2"`) {
				out = append(out, i)
			}
		}
		return out
	}
	drop := func(b *Bundle, i int) { b.Events = slices.Delete(b.Events, i, i+1) }
	resign := func(cp string, key testKey) string {
		n := noteText(t, []byte(cp), k.verifier)
		signed, err := note.Sign(&note.Note{Text: n}, key.signer)
		if err != nil {
			t.Fatal(err)
		}
		return string(signed)
	}
	tests := []struct {
		name  string
		edit  func() []byte
		check BundleCheck
		says  string
	}{
		{"middle event removed", func() []byte { return mutate(t, raw, func(b *Bundle) { drop(b, s2(b)[3]) }) }, BundleCheck{},
			`session "s2": its event 4 (log index 9) is missing between log indices 6 and 12`},
		{"first event removed", func() []byte { return mutate(t, raw, func(b *Bundle) { drop(b, s2(b)[0]) }) }, BundleCheck{},
			`session "s2": its event 1 (log index 0) is missing before its event at log index 3`},
		{"two events removed", func() []byte {
			return mutate(t, raw, func(b *Bundle) { i := s2(b); drop(b, i[5]); drop(b, i[4]) })
		}, BundleCheck{}, `session "s2": its events 5..6 are missing between log indices 9 and 18; the last of them is log index 15`},
		{"last event before the seal removed", func() []byte { return mutate(t, raw, func(b *Bundle) { drop(b, s2(b)[8]) }) }, BundleCheck{},
			`its event 9 (log index 24) is missing`},
		{"seal removed", func() []byte { return mutate(t, raw, func(b *Bundle) { drop(b, s2(b)[9]) }) }, BundleCheck{},
			`session "s2" is not sealed under the checkpoint of size 28: its last event in the bundle is its event 9 (log index 24)`},
		{"seal and last event removed", func() []byte {
			return mutate(t, raw, func(b *Bundle) { i := s2(b); drop(b, i[9]); drop(b, i[8]) })
		}, BundleCheck{AllowUnsealed: false}, `session "s2" is not sealed`},
		{"middle event removed, unsealed allowed", func() []byte { return mutate(t, raw, func(b *Bundle) { drop(b, s2(b)[3]) }) }, BundleCheck{AllowUnsealed: true},
			`(log index 9) is missing`},
		{"whole listed session removed", func() []byte {
			return mutate(t, raw, func(b *Bundle) {
				for _, i := range slices.Backward(s2(b)) {
					drop(b, i)
				}
			})
		}, BundleCheck{}, `session "s2" is listed but none of its events is in the bundle`},
		{"session unlisted", func() []byte { return mutate(t, raw, func(b *Bundle) { b.Sessions = b.Sessions[1:] }) }, BundleCheck{},
			`of session "s2", which the bundle does not list`},
		{"session listed twice", func() []byte { return mutate(t, raw, func(b *Bundle) { b.Sessions = append(b.Sessions, "s1") }) }, BundleCheck{},
			`listed twice`},
		{"no session listed", func() []byte { return mutate(t, raw, func(b *Bundle) { b.Sessions = nil }) }, BundleCheck{}, `lists no session`},
		{"duplicated event", func() []byte {
			return mutate(t, raw, func(b *Bundle) { b.Events = slices.Insert(b.Events, 3, b.Events[3]) })
		}, BundleCheck{}, `the event at log index 3 appears twice`},
		{"reordered events", func() []byte {
			return mutate(t, raw, func(b *Bundle) { b.Events[3], b.Events[4] = b.Events[4], b.Events[3] })
		}, BundleCheck{}, `events out of order`},
		{"bundle of another session", func() []byte { return raw }, BundleCheck{Session: "s1"}, `it is of session "s2", not "s1"`},
		{"open session", func() []byte { return s3 }, BundleCheck{}, `session "s3" is not sealed`},
		{"altered entry", func() []byte {
			return mutate(t, raw, func(b *Bundle) {
				b.Events[3].Entry = []byte(strings.Replace(string(b.Events[3].Entry), `"n":`, `"n":1`, 1))
			})
		}, BundleCheck{}, `bundle event 3: not included`},
		{"swapped proofs", func() []byte {
			return mutate(t, raw, func(b *Bundle) { b.Events[2].Proof, b.Events[3].Proof = b.Events[3].Proof, b.Events[2].Proof })
		}, BundleCheck{}, `its proof names index 3`},
		{"extra data in a proof", func() []byte {
			return mutate(t, raw, func(b *Bundle) {
				b.Events[1].Proof = strings.Replace(b.Events[1].Proof, "\nindex", "\nextra AAAA\nindex", 1)
			})
		}, BundleCheck{}, `extra data`},
		{"checkpoint and key swapped for another key", func() []byte {
			return mutate(t, raw, func(b *Bundle) {
				// The attacker re-signs the same tree with their key, and
				// names it in the bundle.
				cp := resign(b.Checkpoint, evil)
				for i := range b.Events {
					b.Events[i].Proof = strings.Replace(b.Events[i].Proof, b.Checkpoint, cp, 1)
				}
				b.Checkpoint, b.LogKey = cp, evil.vkey
			})
		}, BundleCheck{}, `not the pinned`},
		{"checkpoint re-signed, key kept", func() []byte {
			return mutate(t, raw, func(b *Bundle) {
				cp := resign(b.Checkpoint, evil)
				for i := range b.Events {
					b.Events[i].Proof = strings.Replace(b.Events[i].Proof, b.Checkpoint, cp, 1)
				}
				b.Checkpoint = cp
			})
		}, BundleCheck{}, `not signed by the log key`},
		{"only the bundle's key swapped", func() []byte { return mutate(t, raw, func(b *Bundle) { b.LogKey = evil.vkey }) }, BundleCheck{},
			`not the pinned`},
		{"key with a line break", func() []byte {
			return mutate(t, raw, func(b *Bundle) { b.LogKey = b.LogKey[:len(b.LogKey)-4] + "\n" + b.LogKey[len(b.LogKey)-4:] })
		}, BundleCheck{}, `canonical`},
		{"checkpoint signature in a second encoding", func() []byte {
			return mutate(t, raw, func(b *Bundle) {
				i := strings.LastIndexByte(b.Checkpoint[:len(b.Checkpoint)-1], ' ')
				cp := b.Checkpoint[:i+1] + malleate(t, strings.TrimSuffix(b.Checkpoint[i+1:], "\n")) + "\n"
				for i := range b.Events {
					b.Events[i].Proof = strings.Replace(b.Events[i].Proof, b.Checkpoint, cp, 1)
				}
				b.Checkpoint = cp
			})
		}, BundleCheck{}, `canonical base64`},
		{"checkpoint signature repeated", func() []byte {
			return mutate(t, raw, func(b *Bundle) {
				i := strings.Index(b.Checkpoint, "\n\n")
				cp := b.Checkpoint + b.Checkpoint[i+2:]
				for i := range b.Events {
					b.Events[i].Proof = strings.Replace(b.Events[i].Proof, b.Checkpoint, cp, 1)
				}
				b.Checkpoint = cp
			})
		}, BundleCheck{}, `two signatures`},
		{"bundle of another log under the same key", func() []byte {
			return mutate(t, raw, func(b *Bundle) { b.Origin = "elsewhere/audit" })
		}, BundleCheck{}, `of the log "elsewhere/audit"`},
		{"older format", func() []byte { return mutate(t, raw, func(b *Bundle) { b.Format = "ward-audit-bundle/v1" }) }, BundleCheck{}, `format`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check.Verifier = k.verifier
			_, err := VerifyBundleWith(tt.edit(), tt.check)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got %v\nwant an error containing %q", err, tt.says)
			}
		})
	}
	// What the unsealed session does prove.
	rep, err := VerifyBundleWith(s3, BundleCheck{Verifier: k.verifier, AllowUnsealed: true})
	if err != nil || rep.Sessions[0].Sealed || rep.Sessions[0].Events != 1 {
		t.Fatalf("open session, allowed: %+v, %v", rep, err)
	}
	if _, err := VerifyBundle(s3, k.verifier); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("open session: %v", err)
	}
	if _, err := VerifyBundle(raw, nil); err == nil {
		t.Fatal("verified without a pinned key")
	}
	if _, err := VerifyBundle(raw, evil.verifier); err == nil || !strings.Contains(err.Error(), "not the pinned") {
		t.Fatalf("another pinned key: %v", err)
	}
}

// TestBundleJSONStrict: the bundle's JSON is read one way only, and every
// encoded value has one encoding.
func TestBundleJSONStrict(t *testing.T) {
	dir, k := bundleLog(t)
	raw := string(export(t, dir, k, "s1"))
	// An entry whose base64 ends in padding.
	var entry string
	for rest := raw; entry == "" || !strings.HasSuffix(entry, "="); {
		i := strings.Index(rest, `"entry": "`)
		if i < 0 {
			t.Fatal("no entry with base64 padding in the bundle")
		}
		rest = rest[i+len(`"entry": "`):]
		entry = rest[:strings.IndexByte(rest, '"')]
	}
	for name, text := range map[string]string{
		"duplicate member":       strings.Replace(raw, `"format": `, `"format": "x", "format": `, 1),
		"member in another case": strings.Replace(raw, `"format": `, `"Format": `, 1),
		"unknown member":         strings.Replace(raw, `"format": `, `"note": 1, "format": `, 1),
		"entry with a newline":   strings.Replace(raw, entry, entry[:8]+`\n`+entry[8:], 1),
		"entry without padding":  strings.Replace(raw, entry, strings.TrimRight(entry, "="), 1),
		"trailing data":          raw + "{}",
	} {
		if _, err := VerifyBundle([]byte(text), k.verifier); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if _, err := VerifyBundle([]byte(strings.Replace(raw, entry, malleate(t, entry), 1)), k.verifier); err == nil {
		t.Error("an entry in a second base64 encoding verified")
	}
}

// TestSealKeepsSessionsSealed: once sealed, a session gets a new seal after
// every batch with its events, so a bundle under any later checkpoint is
// complete; an unsealed session gets none.
func TestSealKeepsSessionsSealed(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	cfg := testConfig(dir, k)
	l := mustOpen(t, cfg)
	ctx := context.Background()
	l.Append(ctx, Event{Type: "decision", Session: "a"})
	l.Append(ctx, Event{Type: "decision", Session: "b"})
	idx, err := l.Seal(ctx, "a")
	if err != nil || idx != 2 {
		t.Fatalf("seal: %d, %v", idx, err)
	}
	if _, err := l.Seal(ctx, ""); err == nil {
		t.Fatal("sealed the empty session")
	}
	l.Close()
	l = mustOpen(t, cfg) // sealed-ness survives a restart
	if idx, err := l.Append(ctx, Event{Type: "result", Session: "a"}); err != nil || idx != 3 {
		t.Fatalf("late event: %d, %v", idx, err)
	}
	l.Append(ctx, Event{Type: "result", Session: "b"})
	evs, err := l.Read(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Session+":"+e.Type+":"+strconv.FormatUint(e.Seq, 10))
	}
	want := []string{"a:decision:1", "b:decision:1", "a:audit.seal:2", "a:result:3", "a:audit.seal:4", "b:result:2"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v\nwant %v", got, want)
	}
	if *evs[4].Prev != 3 || *evs[3].Prev != 2 || *evs[5].Prev != 1 {
		t.Fatal("prev fields do not chain the sessions")
	}
	l.Close()
	rep, err := VerifyBundle(export(t, dir, k, "a"), k.verifier)
	if err != nil || !rep.Sessions[0].Sealed || rep.Sessions[0].Events != 4 {
		t.Fatalf("bundle of a: %+v, %v", rep, err)
	}
}

// TestBundleWithStandardLibrariesOnly verifies an exported bundle the way a
// third party would: JSON, the C2SP tlog-proof text format, signed notes
// and RFC 6962, with no ward code.
func TestBundleWithStandardLibrariesOnly(t *testing.T) {
	dir, k := bundleLog(t)
	raw := export(t, dir, k, "s2")
	var b struct {
		LogKey     string   `json:"log_key"`
		Checkpoint string   `json:"checkpoint"`
		Sessions   []string `json:"sessions"`
		Events     []struct {
			Index uint64 `json:"index"`
			Entry []byte `json:"entry"` // base64 of the exact bytes
			Proof string `json:"proof"`
		} `json:"events"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(k.vkey) // the pinned key, not the bundle's
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(b.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseUint(body[1], 10, 64)
	root, _ := base64.StdEncoding.DecodeString(body[2])
	h := rfc6962.DefaultHasher
	// The chain, read with encoding/json: seq 1, 2, … and prev the index
	// before, ending in the seal.
	var prev struct {
		Index uint64
		Seq   uint64
		Type  string
	}
	for _, e := range b.Events {
		lines := strings.Split(e.Proof, "\n")
		if lines[0] != "c2sp.org/tlog-proof@v1" || lines[1] != "index "+strconv.FormatUint(e.Index, 10) {
			t.Fatalf("proof header: %q", lines[:2])
		}
		var hashes [][]byte
		i := 2
		for ; lines[i] != ""; i++ {
			hb, err := base64.StdEncoding.DecodeString(lines[i])
			if err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, hb)
		}
		if strings.Join(lines[i+1:], "\n") != b.Checkpoint {
			t.Fatal("the proof does not end with the bundle's checkpoint")
		}
		if err := proof.VerifyInclusion(h, e.Index, size, h.HashLeaf(e.Entry), hashes, root); err != nil {
			t.Fatalf("event %d: %v", e.Index, err)
		}
		var ev struct {
			Index, Seq uint64
			Prev       *uint64
			Type       string
			Session    string
		}
		if err := json.Unmarshal(e.Entry, &ev); err != nil || ev.Session != "s2" || ev.Seq != prev.Seq+1 || (ev.Seq > 1) != (ev.Prev != nil) || (ev.Prev != nil && *ev.Prev != prev.Index) {
			t.Fatalf("event %d breaks the chain: %+v", e.Index, ev)
		}
		prev.Index, prev.Seq, prev.Type = ev.Index, ev.Seq, ev.Type
	}
	if len(b.Events) != 10 || prev.Type != "audit.seal" || !slices.Equal(b.Sessions, []string{"s2"}) {
		t.Fatalf("%d events ending in %q, want 9 and the seal", len(b.Events), prev.Type)
	}
}

// TestBundleAtWitnessedCheckpoint: a bundle can be proved under an earlier,
// cosigned checkpoint: it keeps the cosignature, holds only the events that
// checkpoint covers, and verifies; a checkpoint of another history under
// the same key is refused.
func TestBundleAtWitnessedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	k := newTestKey(t, testOrigin)
	l := mustOpen(t, testConfig(dir, k))
	ctx := context.Background()
	for range 9 {
		l.Append(ctx, Event{Type: "decision", Session: "w"})
	}
	sealAll(t, l, "w")
	witness := newTestKey(t, "witness.test")
	cosigned, err := note.Sign(&note.Note{Text: noteText(t, syncCP(t, l), k.verifier)}, k.signer, witness.signer)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 15)
	l.Append(ctx, Event{Type: "late", Session: "w"})
	l.Close()
	b, err := Export(dir, ExportConfig{Verifier: k.verifier, Origin: testOrigin, LogKey: k.vkey, At: cosigned, Sessions: []string{"w"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 10 || b.Checkpoint != string(cosigned) {
		t.Fatalf("bundle at size 10: %d events, checkpoint %q", len(b.Events), b.Checkpoint)
	}
	raw, _ := json.Marshal(b)
	rep, err := VerifyBundle(raw, k.verifier)
	if err != nil || rep.TreeSize != 10 || string(rep.Checkpoint) != string(cosigned) {
		t.Fatalf("verify: %v", err)
	}
	if _, err := note.Open(rep.Checkpoint, note.VerifierList(witness.verifier)); err != nil {
		t.Fatalf("the cosignature did not survive: %v", err)
	}
	// At the latest checkpoint the late event and its reseal are there.
	latest, err := Export(dir, ExportConfig{Verifier: k.verifier, Origin: testOrigin, Sessions: []string{"w"}})
	if err != nil || len(latest.Events) != 12 {
		t.Fatalf("latest: %v, %v", latest, err)
	}

	otherDir := t.TempDir()
	other := mustOpen(t, testConfig(otherDir, k))
	if _, err := other.Append(context.Background(), Event{Type: "forged"}); err != nil {
		t.Fatal(err)
	}
	fill(t, other, 9)
	if _, err := Export(dir, ExportConfig{Verifier: k.verifier, Origin: testOrigin, At: other.Checkpoint(), Sessions: []string{"w"}}); err == nil || !strings.Contains(err.Error(), "not the root") {
		t.Fatalf("checkpoint of another history: %v", err)
	}
}

func noteText(t *testing.T, signed []byte, v note.Verifier) string {
	t.Helper()
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	return n.Text
}

// TestParseVerifierKey: a log key is read in its one encoding only.
func TestParseVerifierKey(t *testing.T) {
	if _, err := ParseVerifierKey(fuzzVkey); err != nil {
		t.Fatal(err)
	}
	for name, vkey := range map[string]string{
		"upper-case hash": strings.Replace(fuzzVkey, "d1a2bb3f", "D1A2BB3F", 1),
		"line break":      fuzzVkey[:30] + "\n" + fuzzVkey[30:],
		"carriage return": fuzzVkey[:30] + "\r" + fuzzVkey[30:],
		"trailing space":  fuzzVkey + " ",
		"no key":          "ward.test/audit+d1a2bb3f+",
	} {
		if _, err := ParseVerifierKey(vkey); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
