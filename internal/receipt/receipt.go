// Package receipt issues and checks ward's receipts: signed statements that
// ward observed a tool call and its result, so that an agent's claim ("the
// tests ran and passed") can be checked against what actually happened.
//
// A receipt is a DSSE envelope (github.com/secure-systems-lab/dsse) whose
// payload is an in-toto Statement v1:
//
//	{"payloadType": "application/vnd.in-toto+json",
//	 "payload": base64(statement),
//	 "signatures": [{"keyid": "<RFC 7638 thumbprint>", "sig": base64(ECDSA P-256 ASN.1 signature over PAE)}]}
//
//	statement = {"_type": "https://in-toto.io/Statement/v1",
//	  "subject": [{"name": "ward-call", "digest": {"sha256": sha256(arguments_sha256 ‖ result_sha256)}}],
//	  "predicateType": "https://ward.dev/receipt/v1",
//	  "predicate": {session, agent, spiffe_id, server, tool, arguments_sha256,
//	                result_sha256, outcome, log_index, decision_index, time}}
//
// PAE is DSSE's pre-authentication encoding: "DSSEv1 " + len(type) + " " +
// type + " " + len(payload) + " " + payload. Verification is strict: one
// known payload type and statement type, a signature by the expected key,
// no unknown fields, names spelled exactly, base64 in its one encoding, and
// the signature in its one form (DER, s ≤ n/2).
package receipt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/ward-dev/ward/internal/strictjson"
)

// Names fixed by the formats.
const (
	PayloadType   = "application/vnd.in-toto+json"
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://ward.dev/receipt/v1"
	// MaxEnvelope bounds a receipt accepted for verification.
	MaxEnvelope = 64 << 10
	// maxSignatures bounds the signatures of an envelope checked.
	maxSignatures = 8
)

// Outcomes of a call.
const (
	OutcomeSuccess   = "success"    // the tool answered without isError
	OutcomeToolError = "tool_error" // the tool answered with isError
	OutcomeError     = "error"      // the upstream failed the request
)

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("invalid receipt")

// Predicate is what ward attests about one call.
type Predicate struct {
	Session         string    `json:"session"`
	Agent           string    `json:"agent"`
	SPIFFEID        string    `json:"spiffe_id"`
	Server          string    `json:"server"`
	Tool            string    `json:"tool"`
	ArgumentsSHA256 string    `json:"arguments_sha256"`
	ResultSHA256    string    `json:"result_sha256"`
	Outcome         string    `json:"outcome"`
	LogIndex        uint64    `json:"log_index"`      // the audit event recording the result
	DecisionIndex   uint64    `json:"decision_index"` // the audit event recording the decision
	Time            time.Time `json:"time"`
}

// Subject is the digest a receipt is about.
func (p Predicate) Subject() string {
	sum := sha256.Sum256([]byte(p.ArgumentsSHA256 + "\n" + p.ResultSHA256))
	return hex.EncodeToString(sum[:])
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

type statement struct {
	Type          string    `json:"_type"`
	Subject       []subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Envelope is a DSSE envelope.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// PAE is DSSE's pre-authentication encoding.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// Sign issues a receipt for p with key, naming it keyID.
func Sign(key *ecdsa.PrivateKey, keyID string, p Predicate) (*Envelope, error) {
	switch p.Outcome {
	case OutcomeSuccess, OutcomeToolError, OutcomeError:
	default:
		return nil, fmt.Errorf("receipt: unknown outcome %q", p.Outcome)
	}
	st := statement{Type: StatementType, PredicateType: PredicateType, Predicate: p,
		Subject: []subject{{Name: "ward-call", Digest: map[string]string{"sha256": p.Subject()}}}}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(PAE(PayloadType, payload))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err == nil {
		sig, err = lowS(key.Curve, sig)
	}
	if err != nil {
		return nil, fmt.Errorf("receipt: sign: %w", err)
	}
	return &Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []Signature{{KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)}}}, nil
}

// Verify checks a receipt's encoding and its signature by pub, and returns
// what it attests.
func Verify(raw []byte, pub *ecdsa.PublicKey) (*Predicate, error) {
	return VerifyKeys(raw, []*ecdsa.PublicKey{pub})
}

// VerifyKeys is Verify for a set of keys, any one of which may have
// signed the receipt: the active receipt key and those retiring after a
// rotation (the node's DATA/keys/receipt.pub lists them).
func VerifyKeys(raw []byte, keys []*ecdsa.PublicKey) (*Predicate, error) {
	if len(raw) > MaxEnvelope {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxEnvelope)
	}
	var env Envelope
	if err := strictjson.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrInvalid, err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrInvalid, env.PayloadType, PayloadType)
	}
	payload, err := canonicalBase64(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not canonical base64", ErrInvalid)
	}
	digest := sha256.Sum256(PAE(env.PayloadType, payload))
	signed := false
	if len(env.Signatures) > maxSignatures {
		return nil, fmt.Errorf("%w: more than %d signatures", ErrInvalid, maxSignatures)
	}
	for _, s := range env.Signatures {
		sig, err := canonicalBase64(s.Sig)
		if err != nil {
			continue
		}
		for _, pub := range keys {
			if pub != nil && isLowS(pub.Curve, sig) && ecdsa.VerifyASN1(pub, digest[:], sig) {
				signed = true
				break
			}
		}
	}
	if !signed {
		return nil, fmt.Errorf("%w: not signed by ward's receipt key", ErrInvalid)
	}
	var st statement
	if err := strictjson.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrInvalid, err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return nil, fmt.Errorf("%w: statement type %q / predicate type %q", ErrInvalid, st.Type, st.PredicateType)
	}
	if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != st.Predicate.Subject() {
		return nil, fmt.Errorf("%w: subject digest does not match the predicate", ErrInvalid)
	}
	return &st.Predicate, nil
}

// An ECDSA signature (r, s) has a twin, (r, n−s), that verifies as well: a
// second text of the same receipt. ward signs with s ≤ n/2 and accepts
// only that one, as Bitcoin does (BIP 62's low-S rule).

// parseSig reads a DER ECDSA-Sig-Value exactly (minimal integers, nothing
// after it).
func parseSig(sig []byte) (r, s *big.Int, ok bool) {
	var inner cryptobyte.String
	in := cryptobyte.String(sig)
	r, s = new(big.Int), new(big.Int)
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(r) || !inner.ReadASN1Integer(s) || !inner.Empty() {
		return nil, nil, false
	}
	return r, s, true
}

// isLowS reports whether sig is a DER signature with 0 < s ≤ n/2.
func isLowS(c elliptic.Curve, sig []byte) bool {
	_, s, ok := parseSig(sig)
	half := new(big.Int).Rsh(c.Params().N, 1)
	return ok && s.Sign() > 0 && s.Cmp(half) <= 0
}

// lowS returns sig with s replaced by n−s if s > n/2.
func lowS(c elliptic.Curve, sig []byte) ([]byte, error) {
	r, s, ok := parseSig(sig)
	if !ok {
		return nil, errors.New("signature is not DER")
	}
	n := c.Params().N
	if s.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
		return sig, nil
	}
	s.Sub(n, s)
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(s)
	})
	return b.Bytes()
}

// canonicalBase64 decodes standard padded base64 in its one encoding:
// Go's decoder skips line breaks and (unless strict) ignores padding bits,
// so other texts would decode to the same bytes; re-encoding rules them
// out.
func canonicalBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("base64 not in canonical form")
	}
	return b, nil
}
