package grant

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// DefaultNonceLifetime is how long a DPoP nonce issued by a Nonces stays
// usable at least when NoncesConfig.Lifetime is zero; it is accepted for
// at most twice as long (the slot it was issued in and the next one).
const DefaultNonceLifetime = 2 * time.Minute

// nonceLen is the raw length of a nonce: an 8-byte slot number and a
// 16-byte truncated HMAC-SHA256.
const nonceLen = 8 + 16

// ErrUseNonce: the proof carries no nonce, or one this server did not issue
// or that has gone stale (RFC 9449 §8). An HTTP server answers 401 with
// `WWW-Authenticate: DPoP error="use_dpop_nonce"` (a token endpoint: 400
// with error "use_dpop_nonce") and a fresh nonce in the DPoP-Nonce header.
var ErrUseNonce = errors.New("grant: use the server's DPoP nonce")

// NoncesConfig configures Nonces.
type NoncesConfig struct {
	// Key is the HMAC key (at least 32 bytes). Nil: 32 random bytes, so
	// the nonces are this process's own and no other process accepts them.
	Key []byte
	// Lifetime is the length of a time slot; a nonce is accepted in its
	// slot and the next. Zero: DefaultNonceLifetime.
	Lifetime time.Duration
}

// Nonces issues and checks stateless DPoP server nonces (RFC 9449 §8).
// A nonce is base64url(slot || HMAC-SHA256(key, "ward-dpop-nonce-v1" ||
// slot)[:16]), where slot is the number of Lifetime periods since the Unix
// epoch, big-endian in 8 bytes. It keeps no state: checking one recomputes
// its MAC. A proof that must carry a nonce cannot be made in advance for
// later than the nonce's slot and the next, and, since each process has
// its own key unless given one, a proof made for one server is refused by
// every other: its replay cache, which refuses a second use, is the only
// one that accepts it.
type Nonces struct {
	key      []byte
	lifetime time.Duration
}

// NewNonces returns a Nonces. It fails if the key is shorter than 32 bytes
// or cannot be drawn.
func NewNonces(cfg NoncesConfig) (*Nonces, error) {
	n := &Nonces{key: cfg.Key, lifetime: cfg.Lifetime}
	if n.lifetime <= 0 {
		n.lifetime = DefaultNonceLifetime
	}
	if n.key == nil {
		n.key = make([]byte, 32)
		if _, err := rand.Read(n.key); err != nil {
			return nil, fmt.Errorf("dpop nonce key: %w", err)
		}
	}
	if len(n.key) < 32 {
		return nil, errors.New("dpop nonce key: shorter than 32 bytes")
	}
	return n, nil
}

func (n *Nonces) slot(now time.Time) uint64 {
	return uint64(now.UnixNano() / int64(n.lifetime))
}

func (n *Nonces) mac(slot uint64) []byte {
	h := hmac.New(sha256.New, n.key)
	h.Write([]byte("ward-dpop-nonce-v1"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], slot)
	h.Write(b[:])
	return h.Sum(nil)[:16]
}

// Issue returns the nonce for the slot now falls in.
func (n *Nonces) Issue(now time.Time) string {
	s := n.slot(now)
	raw := make([]byte, 8, nonceLen)
	binary.BigEndian.PutUint64(raw, s)
	return b64.EncodeToString(append(raw, n.mac(s)...))
}

// Check returns nil if nonce was issued by n (its MAC matches, compared in
// constant time) in now's slot or the one before, and an error wrapping
// ErrUseNonce otherwise.
func (n *Nonces) Check(nonce string, now time.Time) error {
	if nonce == "" {
		return fmt.Errorf("%w: the proof has no nonce", ErrUseNonce)
	}
	// The length first: the decoder skips CR and LF, so a nonce with
	// line breaks in it would decode to the same bytes.
	if len(nonce) != b64.EncodedLen(nonceLen) {
		return fmt.Errorf("%w: the proof's nonce is not one this server issued", ErrUseNonce)
	}
	raw, err := b64.DecodeString(nonce)
	if err != nil || len(raw) != nonceLen {
		return fmt.Errorf("%w: the proof's nonce is not one this server issued", ErrUseNonce)
	}
	s := binary.BigEndian.Uint64(raw[:8])
	if subtle.ConstantTimeCompare(raw[8:], n.mac(s)) != 1 {
		return fmt.Errorf("%w: the proof's nonce is not one this server issued", ErrUseNonce)
	}
	if cur := n.slot(now); s != cur && s+1 != cur {
		return fmt.Errorf("%w: the proof's nonce is stale", ErrUseNonce)
	}
	return nil
}
