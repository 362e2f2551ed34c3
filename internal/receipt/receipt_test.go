package receipt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/ward-dev/ward/internal/audit"
)

// logWith writes a real audit log holding a decision and a result for each
// (session, tool, outcome) and returns the result events.
func logWith(t *testing.T, dir string, calls [][3]string) (note.Verifier, []audit.Event) {
	t.Helper()
	skey, vkey, _ := audit.NewNoteKey("test/audit")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	l, err := audit.Open(audit.Config{Dir: dir, Origin: "test/audit", Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var results []audit.Event
	for i, c := range calls {
		data := map[string]any{"name": c[1], "result_sha256": strings.Repeat("ab", 32)[:62] + string(rune('0'+i)) + "0"}
		switch c[2] {
		case OutcomeError:
			data["error"] = "upstream failed"
		case OutcomeToolError:
			data["is_error"] = true
		}
		b, _ := json.Marshal(data)
		dec, _ := json.Marshal(map[string]any{"method": "tools/call", "name": c[1], "decision": "allow", "arguments_sha256": strings.Repeat("0", 64)})
		if _, err := l.Append(context.Background(), audit.Event{Type: "decision", Session: c[0], Data: dec}); err != nil {
			t.Fatal(err)
		}
		idx, err := l.Append(context.Background(), audit.Event{Type: "result", Session: c[0], Agent: "a", Data: b})
		if err != nil {
			t.Fatal(err)
		}
		evs, _ := l.Read(idx, idx+1)
		results = append(results, evs[0])
	}
	return verifier, results
}

func TestClaims(t *testing.T) {
	dir := t.TempDir()
	v, results := logWith(t, dir, [][3]string{{"s1", "ci.run_tests", OutcomeSuccess}, {"s1", "ci.deploy", OutcomeToolError}, {"s2", "ci.run_tests", OutcomeSuccess}})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issueWith := func(k *ecdsa.PrivateKey, ev audit.Event, args string, decision uint64) []byte {
		p, err := PredicateFor(ev, "spiffe://t/agent/a/session/"+ev.Session, "ci", args, decision)
		if err != nil {
			t.Fatal(err)
		}
		env, err := Sign(k, "k1", p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(env)
		return b
	}
	zero := strings.Repeat("0", 64)
	issue := func(k *ecdsa.PrivateKey, ev audit.Event) []byte { return issueWith(k, ev, zero, ev.Index-1) }
	good := issue(key, results[0])
	if _, err := CheckClaim(Claim{"s1", "ci.run_tests", OutcomeSuccess, zero}, good, &key.PublicKey, dir, v, "test/audit"); err != nil {
		t.Fatalf("true claim with its arguments refused: %v", err)
	}
	if p, err := CheckClaim(Claim{"s1", "ci.run_tests", OutcomeSuccess, ""}, good, &key.PublicKey, dir, v, "test/audit"); err != nil || p.LogIndex != results[0].Index {
		t.Fatalf("true claim refused: %v", err)
	}
	// Altering the payload breaks the signature.
	var env Envelope
	json.Unmarshal(good, &env)
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	env.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"success"`, `"tool_error"`, 1)))
	altered, _ := json.Marshal(env)
	// A receipt whose predicate lies about the log (signed by the right key).
	lying := results[1]
	lying.Data = json.RawMessage(`{"name":"ci.deploy","result_sha256":"` + strings.Repeat("ab", 32)[:62] + `10"}`)
	cases := []struct {
		name    string
		claim   Claim
		receipt []byte
		want    string
	}{
		{"false outcome", Claim{"s1", "ci.deploy", OutcomeSuccess, ""}, issue(key, results[1]), "records outcome tool_error"},
		{"receipt from another session", Claim{"s1", "ci.run_tests", OutcomeSuccess, ""}, issue(key, results[2]), "for session s2"},
		{"forged by another key", Claim{"s1", "ci.run_tests", OutcomeSuccess, ""}, issue(other, results[0]), "not signed"},
		{"altered receipt", Claim{"s1", "ci.run_tests", OutcomeToolError, ""}, altered, "not signed"},
		{"no receipt", Claim{"s1", "ci.run_tests", OutcomeSuccess, ""}, nil, "envelope"},
		{"receipt that contradicts the log", Claim{"s1", "ci.deploy", OutcomeSuccess, ""}, issue(key, lying), "does not record what the receipt says"},
		{"other arguments claimed", Claim{"s1", "ci.run_tests", OutcomeSuccess, strings.Repeat("1", 64)}, good, "other arguments"},
		{"receipt naming arguments the decision did not allow", Claim{"s1", "ci.run_tests", OutcomeSuccess, ""}, issueWith(key, results[0], strings.Repeat("1", 64), results[0].Index-1), "decision event"},
		{"receipt naming another call's decision", Claim{"s1", "ci.run_tests", OutcomeSuccess, ""}, issueWith(key, results[0], zero, results[1].Index-1), "does not precede"},
		{"receipt naming a result as its decision", Claim{"s1", "ci.deploy", OutcomeToolError, ""}, issueWith(key, results[1], zero, results[0].Index), "not a decision"},
		{"duplicate keys", Claim{"s1", "ci.run_tests", OutcomeSuccess, ""}, []byte(`{"payloadType":"a","payloadType":"b","payload":"","signatures":[]}`), "duplicate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckClaim(tc.claim, tc.receipt, &key.PublicKey, dir, v, "test/audit")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzVerify: arbitrary envelopes never panic and never verify unless
// signed by the key.
func FuzzVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	env, _ := Sign(key, "k", Predicate{Session: "s", Tool: "a.b", Outcome: OutcomeSuccess})
	b, _ := json.Marshal(env)
	f.Add(b)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"AA=="}]}`))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := Verify(raw, &other.PublicKey); err == nil {
			t.Fatal("verified with a key that signed nothing")
		}
		_, _ = Verify(raw, &key.PublicKey)
	})
}
