package grant

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Compact JWS (RFC 7515) with ES256 only, written out by hand so that every
// byte of a token is checked before it is believed: the alphabet, the number
// of parts, the exact signature length and the header are all strict.

const (
	algES256 = "ES256"
	// es256SigLen is the length of an ES256 signature: R and S, 32 bytes each.
	es256SigLen = 64
	// coordLen is the length of a P-256 coordinate.
	coordLen = 32
)

// b64 is the unpadded base64url encoding with canonical trailing bits. It is
// read-only.
var b64 = base64.RawURLEncoding.Strict()

// splitCompact splits a compact JWS of at most max bytes into its three
// base64url parts. It refuses anything but [A-Za-z0-9_-] and two dots, so
// the lenient parts of base64 decoding (skipped newlines) never come into play.
func splitCompact(tok string, max int) (header, payload, sig string, err error) {
	if len(tok) > max {
		return "", "", "", fmt.Errorf("%d bytes, more than %d", len(tok), max)
	}
	dots := 0
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case b64URLByte(c):
		case c == '.':
			dots++
		default:
			return "", "", "", fmt.Errorf("byte %d outside the base64url alphabet", i)
		}
	}
	if dots != 2 {
		return "", "", "", fmt.Errorf("%d parts, want 3", dots+1)
	}
	header, rest, _ := strings.Cut(tok, ".")
	payload, sig, _ = strings.Cut(rest, ".")
	if header == "" || payload == "" || sig == "" {
		return "", "", "", errors.New("empty part")
	}
	return header, payload, sig, nil
}

// decodeSig decodes an ES256 signature part.
func decodeSig(part string) ([]byte, error) {
	if b64.DecodedLen(len(part)) != es256SigLen {
		return nil, errors.New("signature is not 64 bytes")
	}
	sig, err := b64.DecodeString(part)
	if err != nil || len(sig) != es256SigLen {
		return nil, errors.New("signature is not 64 bytes of base64url")
	}
	return sig, nil
}

// verifyES256 checks sig over signingInput (header "." payload) under pub.
func verifyES256(pub *ecdsa.PublicKey, signingInput string, sig []byte) bool {
	if len(sig) != es256SigLen {
		return false
	}
	sum := sha256.Sum256([]byte(signingInput))
	r := new(big.Int).SetBytes(sig[:coordLen])
	s := new(big.Int).SetBytes(sig[coordLen:])
	return ecdsa.Verify(pub, sum[:], r, s)
}

// signES256 signs signingInput with a P-256 signer and returns the JWS
// signature (R || S).
func signES256(signer crypto.Signer, signingInput string) ([]byte, error) {
	sum := sha256.Sum256([]byte(signingInput))
	var r, s *big.Int
	if k, ok := signer.(*ecdsa.PrivateKey); ok {
		var err error
		if r, s, err = ecdsa.Sign(rand.Reader, k, sum[:]); err != nil {
			return nil, err
		}
	} else {
		der, err := signer.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		var v struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(der, &v)
		if err != nil || len(rest) != 0 {
			return nil, errors.New("signer returned a malformed ECDSA signature")
		}
		r, s = v.R, v.S
	}
	if r == nil || s == nil || r.Sign() <= 0 || s.Sign() <= 0 || r.BitLen() > 8*coordLen || s.BitLen() > 8*coordLen {
		return nil, errors.New("signer returned an out-of-range ECDSA signature")
	}
	sig := make([]byte, es256SigLen)
	r.FillBytes(sig[:coordLen])
	s.FillBytes(sig[coordLen:])
	return sig, nil
}

// p256Public returns pub as a P-256 public key, or an error.
func p256Public(pub crypto.PublicKey) (*ecdsa.PublicKey, error) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil {
		return nil, fmt.Errorf("key type %T, want *ecdsa.PublicKey", pub)
	}
	if k.Curve != elliptic.P256() {
		return nil, errors.New("key is not on P-256")
	}
	return k, nil
}

// ecJWK is the public JWK (RFC 7517) of a P-256 key, members in the
// lexicographic order RFC 7638 thumbprints require.
type ecJWK struct {
	Crv string `json:"crv"`
	Kty string `json:"kty"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// publicJWK returns the JWK of a P-256 public key.
func publicJWK(k *ecdsa.PublicKey) (ecJWK, error) {
	raw, err := k.Bytes() // 0x04 || X || Y; fails off the curve
	if err != nil {
		return ecJWK{}, fmt.Errorf("public key: %w", err)
	}
	if len(raw) != 1+2*coordLen {
		return ecJWK{}, errors.New("public key is not an uncompressed P-256 point")
	}
	return ecJWK{
		Crv: "P-256",
		Kty: "EC",
		X:   b64.EncodeToString(raw[1 : 1+coordLen]),
		Y:   b64.EncodeToString(raw[1+coordLen:]),
	}, nil
}

// thumbprint is the RFC 7638 thumbprint of a JWK already in canonical form.
func (j ecJWK) thumbprint() string {
	// The required members in lexicographic order, no whitespace. The
	// values are base64url and fixed names, so no JSON escaping applies.
	sum := sha256.Sum256([]byte(`{"crv":"` + j.Crv + `","kty":"` + j.Kty + `","x":"` + j.X + `","y":"` + j.Y + `"}`))
	return b64.EncodeToString(sum[:])
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of a P-256 *ecdsa.PublicKey or an ed25519.PublicKey. It is the
// value of a grant's cnf.jkt and of a proof's JKT.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", errors.New("thumbprint: malformed Ed25519 key")
		}
		sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(k) + `"}`))
		return b64.EncodeToString(sum[:]), nil
	case *ed25519.PublicKey:
		if k == nil {
			return "", errors.New("thumbprint: nil key")
		}
		return Thumbprint(*k)
	}
	k, err := p256Public(pub)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	j, err := publicJWK(k)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return j.thumbprint(), nil
}

// validJKT reports whether s looks like a SHA-256 thumbprint: 43 base64url
// characters.
func validJKT(s string) bool {
	if len(s) != 43 || !isB64URL(s) {
		return false
	}
	_, err := b64.DecodeString(s)
	return err == nil
}

// b64URLByte reports whether c is in the base64url alphabet.
func b64URLByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// isB64URL reports whether s is non-empty and only uses the base64url
// alphabet.
func isB64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !b64URLByte(s[i]) {
			return false
		}
	}
	return true
}
