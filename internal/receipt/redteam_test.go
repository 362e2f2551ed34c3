package receipt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
)

// paddingVariant returns s (standard padded base64 ending in "=") with
// padding bits set in its last character: another text that a lenient
// decoder reads as the same bytes.
func paddingVariant(t *testing.T, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := len(strings.TrimRight(s, "=")) - 1
	v := alphabet[strings.IndexByte(alphabet, s[i])+1]
	out := s[:i] + string(v) + s[i+1:]
	a, err1 := base64.StdEncoding.DecodeString(s)
	b, err2 := base64.StdEncoding.DecodeString(out)
	if err1 != nil || err2 != nil || string(a) != string(b) {
		t.Fatalf("no padding variant of %q", s)
	}
	return out
}

// TestRedteamReceiptOneEncoding (red team, malleability of signed data).
//
// Attack: a receipt verified in texts other than the one ward signed: its
// payload or signature base64 with padding bits set or a line break
// inside (Go's lenient decoder reads the same bytes), or an envelope
// whose members were repeated in another case ("PayloadType" beside
// "payloadType": encoding/json matches names without regard to case and
// keeps the last, while a DSSE verifier reading the exact name keeps the
// other). Signed data has one encoding: each of these is refused.
func TestRedteamReceiptOneEncoding(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var env *Envelope
	for _, session := range []string{"s", "sx", "sxx"} {
		// A payload whose base64 ends in padding, so that it has spare bits.
		e, err := Sign(key, "k", Predicate{Session: session, Tool: "a.b", Outcome: OutcomeSuccess})
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Payload, "=") {
			env = e
			break
		}
	}
	good, _ := json.Marshal(env)
	if _, err := Verify(good, &key.PublicKey); err != nil {
		t.Fatalf("control: %v", err)
	}
	variant := func(f func(e *Envelope)) []byte {
		e := *env
		e.Signatures = append([]Signature(nil), env.Signatures...)
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	cases := map[string][]byte{
		"payload padding bits": variant(func(e *Envelope) { e.Payload = paddingVariant(t, e.Payload) }),
		"payload line break":   variant(func(e *Envelope) { e.Payload = e.Payload[:8] + "\n" + e.Payload[8:] }),
		"signature line break": variant(func(e *Envelope) { e.Signatures[0].Sig = e.Signatures[0].Sig[:8] + "\r\n" + e.Signatures[0].Sig[8:] }),
		"case-variant member": []byte(strings.Replace(string(good), `"payloadType":`,
			`"payloadType":"application/x-other","PayloadType":`, 1)),
		"case-variant only": []byte(strings.Replace(string(good), `"payloadType":`, `"PAYLOADTYPE":`, 1)),
	}
	if strings.HasSuffix(env.Signatures[0].Sig, "=") {
		cases["signature padding bits"] = variant(func(e *Envelope) { e.Signatures[0].Sig = paddingVariant(t, e.Signatures[0].Sig) })
	}
	for name, raw := range cases {
		if _, err := Verify(raw, &key.PublicKey); err == nil {
			t.Errorf("%s: verified %s", name, raw)
		}
	}
}

// TestRedteamReceiptHighS (red team, malleability of signed data).
//
// Attack: an ECDSA signature (r, s) has a twin (r, n−s) that verifies as
// well, so one receipt had two texts (and two digests). ward signs with a
// low s and refuses the twin.
func TestRedteamReceiptHighS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	n := elliptic.P256().Params().N
	for i := range 32 {
		env, err := Sign(key, "k", Predicate{Session: fmt.Sprint("s", i), Tool: "a.b", Outcome: OutcomeSuccess})
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
		if !isLowS(elliptic.P256(), sig) {
			t.Fatalf("ward signed with a high s: %x", sig)
		}
		good, _ := json.Marshal(env)
		if _, err := Verify(good, &key.PublicKey); err != nil {
			t.Fatalf("control: %v", err)
		}
		r, s, _ := parseSig(sig)
		twin, err := asn1.Marshal(struct{ R, S *big.Int }{r, new(big.Int).Sub(n, s)})
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := base64.StdEncoding.DecodeString(env.Payload)
		digest := sha256.Sum256(PAE(PayloadType, payload))
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], twin) {
			t.Fatal("the twin does not verify with the raw library: the test is wrong")
		}
		env.Signatures[0].Sig = base64.StdEncoding.EncodeToString(twin)
		bad, _ := json.Marshal(env)
		if _, err := Verify(bad, &key.PublicKey); err == nil {
			t.Fatal("the high-s twin of a receipt verified")
		}
	}
}
