package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// threshold is the score at which the node labels a session suspicious
// (enforce.SuspiciousScore).
const threshold = 3

// flagged reports whether text scores at or above threshold.
func flagged(text string) bool { return Score(Result(text)) >= threshold }

// confusion counts a detector's answers on labelled texts.
type confusion struct{ tp, fn, fp, tn int }

func (c confusion) String() string {
	p, r := 0.0, 0.0
	if c.tp+c.fp > 0 {
		p = float64(c.tp) / float64(c.tp+c.fp)
	}
	if c.tp+c.fn > 0 {
		r = float64(c.tp) / float64(c.tp+c.fn)
	}
	return fmt.Sprintf("precision %.1f%% recall %.1f%% (%d of %d injections flagged, %d of %d benign texts flagged)",
		100*p, 100*r, c.tp, c.tp+c.fn, c.fp, c.fp+c.tn)
}

func (c *confusion) add(injection, hit bool) {
	switch {
	case injection && hit:
		c.tp++
	case injection:
		c.fn++
	case hit:
		c.fp++
	default:
		c.tn++
	}
}

// bipiaDir is where BIPIA's data files are kept: beside the repository
// (shared/corpora/bipia, see its SOURCE.md), or $WARD_BIPIA.
func bipiaDir() string {
	if d := os.Getenv("WARD_BIPIA"); d != "" {
		return d
	}
	return "../../../shared/corpora/bipia"
}

// TestBIPIA measures the scanner on BIPIA (github.com/microsoft/BIPIA,
// MIT): its 150 injected instructions for text tasks, alone and inside
// its e-mails, against those 100 e-mails. The data is not in ward's
// repository; without it the test is skipped. The figures are in
// BENCHMARKS.md.
func TestBIPIA(t *testing.T) {
	dir := bipiaDir()
	var attacks []string
	for _, f := range []string{"text_attack_train.json", "text_attack_test.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Skipf("BIPIA data not found (%v): see shared/corpora/bipia/SOURCE.md", err)
		}
		var byKind map[string][]string
		if err := json.Unmarshal(b, &byKind); err != nil {
			t.Fatal(err)
		}
		for _, k := range slices.Sorted(mapsKeys(byKind)) {
			attacks = append(attacks, byKind[k]...)
		}
	}
	var emails []string
	for _, f := range []string{"email-train.jsonl", "email-test.jsonl"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r struct{ Context string }
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			emails = append(emails, r.Context)
		}
	}
	var alone, inside confusion
	for i, a := range attacks {
		alone.add(true, flagged(a))
		inside.add(true, flagged(emails[i%len(emails)]+"\n\n"+a))
	}
	for _, e := range emails {
		alone.add(false, flagged(e))
		inside.add(false, flagged(e))
	}
	t.Logf("BIPIA, instructions alone: %v", alone)
	t.Logf("BIPIA, instructions inside e-mails: %v", inside)
	if len(attacks) != 150 || len(emails) != 100 {
		t.Fatalf("%d attacks, %d e-mails: not the data SOURCE.md names", len(attacks), len(emails))
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestCorpusInjections measures the scanner on ward's own labelled corpus
// (testdata/corpus): a session is flagged when a result it received
// scores at or above the threshold; attacked sessions (every one holds an
// injection, whether or not the agent followed it) against their benign
// twins.
func TestCorpusInjections(t *testing.T) {
	var c confusion
	byWording := map[string]*confusion{}
	for _, set := range []string{"dev", "heldout"} {
		files, _ := filepath.Glob(filepath.Join("../../testdata/corpus", set, "*.jsonl"))
		if len(files) == 0 {
			t.Fatal("no corpus")
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(nil, 1<<20)
			var label, id string
			hit := false
			end := func() {
				if label == "" {
					return
				}
				c.add(label == "attack", hit)
				w := wordingOf(id)
				if byWording[w] == nil {
					byWording[w] = &confusion{}
				}
				byWording[w].add(label == "attack", hit)
			}
			for sc.Scan() {
				var r struct {
					Type, Label, Session string
					Result               json.RawMessage
				}
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatal(err)
				}
				if r.Type == "session" {
					end()
					label, id, hit = r.Label, r.Session, false
					continue
				}
				for _, txt := range Texts(r.Result, 0) {
					hit = hit || flagged(txt)
				}
			}
			end()
		}
	}
	t.Logf("ward corpus, sessions: %v", c)
	if c.fp > 0 {
		t.Errorf("benign sessions flagged: %v", c)
	}
	for _, w := range slices.Sorted(mapsKeys(byWording)) {
		t.Logf("  %-8s %v", w, byWording[w])
	}
}

// wordingOf returns the wording of an attacked session's injection, from
// its id (SCENARIO-vN-ATTACK-WORDING-MODE), or "benign".
func wordingOf(id string) string {
	for _, w := range []string{"asuser", "ignore", "plain", "sysnote", "note", "polite", "comment", "chatml", "newtask", "authority"} {
		if bytes.Contains([]byte(id), []byte("-"+w+"-")) {
			return w
		}
	}
	return "benign"
}
