// Package keyring keeps the rotation state of a trust domain's signing
// keys: for each kind of key (the CA, the JWT-SVID key, the grant key, the
// receipt key) the one active key, which signs everything new, the
// retiring ones, which sign nothing but still verify what they signed,
// and a short history of the retired ones, of which nothing but the name
// is kept.
//
// # Lifecycle
//
//	active ──Rotate──► retiring ──Sweep (at not_after)──► retired
//
// Rotate makes a new active key of a kind at once: from that moment every
// new credential of the kind is signed by it. The key it replaces becomes
// retiring, with not_after = now + lifetime, where lifetime is the longest
// a credential it signed can still be valid (the caller's maximum TTL plus
// clock skew): until then it stays in every verification set (bundle,
// JWKS, grant verifier, receipt keys). Its private key is destroyed at once
// (only the CA's is kept, to issue ward's own TLS certificate during the
// overlap; see identity.KeySet). Sweep retires what has passed its
// not_after: its material is dropped and only its key ID, dates and state
// remain, so that a list shows the history and a data directory can be
// recognised as the system's.
//
// # Format
//
// A Ring is one JSON document, read strictly (no unknown or duplicate
// members, at most MaxSize bytes) and checked whole by Parse:
//
//	{"version": 1, "sequence": 1767225600,
//	 "keys": [
//	  {"kind": "ca", "kid": "Vb3…", "state": "active", "created": "2026-01-01T00:00:00Z",
//	   "private": "-----BEGIN PRIVATE KEY-----…", "cert": "-----BEGIN CERTIFICATE-----…"},
//	  {"kind": "grant", "kid": "q1Z…", "state": "retiring", "created": "…",
//	   "retiring": "2026-03-01T00:00:00Z", "not_after": "2026-03-02T00:01:00Z",
//	   "public": "-----BEGIN PUBLIC KEY-----…"},
//	  {"kind": "jwt", "kid": "x0P…", "state": "retired", "created": "…", "retiring": "…", "not_after": "…"}]}
//
// kid is the RFC 7638 thumbprint (SHA-256, base64url) of the key's public
// part and is checked against it. sequence grows with every change and is
// the SPIFFE bundle's spiffe_sequence. A ring holds private keys: it is
// kept 0600 on a node, and sealed in the store of several nodes.
package keyring

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/ward-dev/ward/internal/identity"
	"github.com/ward-dev/ward/internal/strictjson"
)

// ErrTooMany refuses a rotation of a kind that has MaxRetiring keys
// retiring already (an HTTP server answers 409: try again after the
// oldest has retired).
var ErrTooMany = errors.New("too many retiring keys")

// Kind is what a key signs.
type Kind string

// The kinds of keys a ring holds.
const (
	CA      Kind = "ca"      // the root that issues X.509-SVIDs (and ward's TLS certificate)
	JWT     Kind = "jwt"     // the JWT-SVID signing key
	Grant   Kind = "grant"   // the session grant signing key
	Receipt Kind = "receipt" // the receipt signing key
)

// Kinds lists every kind, in the order lists show them.
var Kinds = []Kind{CA, JWT, Grant, Receipt}

// ParseKind returns the Kind named s, exactly.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown key kind %q (known: ca, jwt, grant, receipt)", truncate(s))
}

// State is where a key is in its lifecycle.
type State string

// States of a key.
const (
	Active   State = "active"   // signs everything new of its kind
	Retiring State = "retiring" // signs nothing, verifies until not_after
	Retired  State = "retired"  // dropped: nothing but its name remains
)

const (
	// Version is the format's version.
	Version = 1
	// MaxSize bounds a ring document.
	MaxSize = 256 << 10
	// MaxRetired is how many retired keys of a kind a ring remembers; the
	// oldest are forgotten first.
	MaxRetired = 64
	// MaxRetiring is how many retiring keys of a kind a ring holds: a
	// rotation beyond waits until the oldest has retired.
	MaxRetiring = 8
	// maxKeys bounds the keys of a document (active, retiring and
	// retired, all kinds).
	maxKeys = 4 * (MaxRetired + MaxRetiring + 1)
)

// Key is one key of a ring.
type Key struct {
	Kind    Kind      `json:"kind"`
	KID     string    `json:"kid"`
	State   State     `json:"state"`
	Created time.Time `json:"created"`
	// Retiring is when the key stopped signing; NotAfter when it leaves
	// the verification sets. Both zero while active.
	Retiring time.Time `json:"retiring,omitzero"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// Private is the PKCS#8 PEM private key: of an active key, and of a
	// retiring CA. Public is the PKIX PEM public key of a retiring key of
	// another kind. Cert is a CA's root certificate, PEM. A retired key
	// has none of them.
	Private string `json:"private,omitempty"`
	Public  string `json:"public,omitempty"`
	Cert    string `json:"cert,omitempty"`
}

// Ring is the rotation state of a trust domain's keys.
type Ring struct {
	Version  int    `json:"version"`
	Sequence uint64 `json:"sequence"`
	Keys     []Key  `json:"keys"`
}

// Parse reads a ring strictly and checks it (see Check).
func Parse(b []byte) (*Ring, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("key ring: larger than %d bytes", MaxSize)
	}
	var r Ring
	if err := strictjson.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Marshal returns the ring's JSON document.
func (r *Ring) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	return append(b, '\n'), nil
}

// Check verifies that the ring hangs together: version 1, known kinds and
// states, exactly one active key per kind, key IDs that are the
// thumbprints of the keys they name and appear once, the material each
// state has and no other, a root certificate that matches its key, and
// retiring dates in order.
func (r *Ring) Check() error {
	if r.Version != Version {
		return fmt.Errorf("key ring: version %d, want %d", r.Version, Version)
	}
	if len(r.Keys) > maxKeys {
		return fmt.Errorf("key ring: more than %d keys", maxKeys)
	}
	active := map[Kind]int{}
	seen := map[string]bool{}
	for i, k := range r.Keys {
		if err := k.check(); err != nil {
			return fmt.Errorf("key ring: key %d (%.16s %.64s): %w", i, k.Kind, k.KID, err)
		}
		if seen[k.KID] {
			return fmt.Errorf("key ring: key %.64s appears twice", k.KID)
		}
		seen[k.KID] = true
		if k.State == Active {
			active[k.Kind]++
		}
	}
	for _, kind := range Kinds {
		if active[kind] != 1 {
			return fmt.Errorf("key ring: %d active %s keys, want 1", active[kind], kind)
		}
	}
	return nil
}

func (k Key) check() error {
	if _, err := ParseKind(string(k.Kind)); err != nil {
		return err
	}
	if k.KID == "" || len(k.KID) > 64 {
		return errors.New("bad kid")
	}
	if k.Created.IsZero() {
		return errors.New("no created time")
	}
	switch k.State {
	case Active:
		if !k.Retiring.IsZero() || !k.NotAfter.IsZero() || k.Public != "" {
			return errors.New("an active key has a private key and no retiring dates")
		}
		if k.Private == "" || (k.Kind == CA) != (k.Cert != "") {
			return errors.New("an active key has its private key (and a CA its certificate)")
		}
	case Retiring, Retired:
		if k.Retiring.IsZero() || k.NotAfter.IsZero() || k.NotAfter.Before(k.Retiring) || k.Retiring.Before(k.Created) {
			return errors.New("retiring dates missing or out of order")
		}
		if k.State == Retired {
			if k.Private != "" || k.Public != "" || k.Cert != "" {
				return errors.New("a retired key keeps no material")
			}
			return nil
		}
		if k.Kind == CA {
			if k.Cert == "" || k.Public != "" {
				return errors.New("a retiring CA keeps its certificate (and maybe its private key) only")
			}
		} else if k.Public == "" || k.Private != "" || k.Cert != "" {
			return errors.New("a retiring key keeps its public key only")
		}
	default:
		return fmt.Errorf("unknown state %q", truncate(string(k.State)))
	}
	pub, err := k.PublicKey()
	if err != nil {
		return err
	}
	if kid, err := Thumbprint(pub); err != nil || kid != k.KID {
		return errors.New("kid is not the thumbprint of the key")
	}
	if k.Private != "" {
		priv, err := ParsePrivate(k.Private)
		if err != nil {
			return err
		}
		if !priv.PublicKey.Equal(pub) {
			return errors.New("private key does not match")
		}
	}
	return nil
}

// PublicKey returns the key's public key (from its certificate, private
// or public key).
func (k Key) PublicKey() (*ecdsa.PublicKey, error) {
	switch {
	case k.Cert != "":
		c, err := k.Certificate()
		if err != nil {
			return nil, err
		}
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, errors.New("certificate key is not ECDSA P-256")
		}
		return pub, nil
	case k.Private != "":
		priv, err := ParsePrivate(k.Private)
		if err != nil {
			return nil, err
		}
		return &priv.PublicKey, nil
	case k.Public != "":
		der, err := OnePEM(k.Public, "PUBLIC KEY")
		if err != nil {
			return nil, err
		}
		p, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, errors.New("public key does not parse")
		}
		pub, ok := p.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, errors.New("public key is not ECDSA P-256")
		}
		return pub, nil
	}
	return nil, errors.New("no key material")
}

// PrivateKey returns the key's private key, if the ring keeps it.
func (k Key) PrivateKey() (*ecdsa.PrivateKey, error) {
	if k.Private == "" {
		return nil, fmt.Errorf("key %s: no private key kept", k.KID)
	}
	return ParsePrivate(k.Private)
}

// Certificate returns a CA key's root certificate.
func (k Key) Certificate() (*x509.Certificate, error) {
	der, err := OnePEM(k.Cert, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errors.New("certificate does not parse")
	}
	return c, nil
}

// ParsePrivate reads one PEM PKCS#8 ECDSA P-256 private key, strictly.
func ParsePrivate(s string) (*ecdsa.PrivateKey, error) {
	der, err := OnePEM(s, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("private key does not parse")
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("private key is not ECDSA P-256")
	}
	return ec, nil
}

// OnePEM returns the bytes of the one PEM block of s, of type typ, with
// nothing around it but white space.
func OnePEM(s, typ string) ([]byte, error) {
	b, rest := pem.Decode([]byte(s))
	if b == nil || b.Type != typ || len(b.Headers) != 0 || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("not one PEM %s block", typ)
	}
	return b.Bytes, nil
}

// Thumbprint is the RFC 7638 thumbprint of an ECDSA P-256 public key: the
// key ID of ward's JWT-SVIDs, grants and receipts.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	return identity.Thumbprint(pub)
}

// Active returns the active key of kind.
func (r *Ring) Active(kind Kind) Key {
	for _, k := range r.Keys {
		if k.Kind == kind && k.State == Active {
			return k
		}
	}
	return Key{}
}

// Verifying returns the keys of kind that verify at now: the active key
// first, then the retiring ones whose not_after is after now, oldest
// first.
func (r *Ring) Verifying(kind Kind, now time.Time) []Key {
	out := []Key{r.Active(kind)}
	for _, k := range r.Keys {
		if k.Kind == kind && k.State == Retiring && now.Before(k.NotAfter) {
			out = append(out, k)
		}
	}
	slices.SortStableFunc(out[1:], func(a, b Key) int { return a.Retiring.Compare(b.Retiring) })
	return out
}

// Known reports whether kid names a key of kind the ring holds or
// remembers, in any state.
func (r *Ring) Known(kind Kind, kid string) bool {
	for _, k := range r.Keys {
		if k.Kind == kind && k.KID == kid {
			return true
		}
	}
	return false
}

// clone returns a deep enough copy to change.
func (r *Ring) clone() *Ring {
	c := *r
	c.Keys = slices.Clone(r.Keys)
	return &c
}

// NewKey makes a new active key of kind, created at now. A CA key comes
// with a new root certificate for td.
func NewKey(kind Kind, td spiffeid.TrustDomain, now time.Time) (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("new %s key: %w", kind, err)
	}
	k := Key{Kind: kind, State: Active, Created: now.UTC().Truncate(time.Second)}
	if k.Private, err = privatePEM(priv); err != nil {
		return Key{}, err
	}
	if k.KID, err = Thumbprint(&priv.PublicKey); err != nil {
		return Key{}, err
	}
	if kind == CA {
		cert, err := identity.NewRoot(td, priv, now)
		if err != nil {
			return Key{}, err
		}
		k.Cert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	}
	return k, nil
}

// FromKey makes the active key of kind from existing material (a node's
// key files from before rotation existed), created at created.
func FromKey(kind Kind, priv *ecdsa.PrivateKey, cert *x509.Certificate, created time.Time) (Key, error) {
	k := Key{Kind: kind, State: Active, Created: created.UTC().Truncate(time.Second)}
	var err error
	if k.Private, err = privatePEM(priv); err != nil {
		return Key{}, err
	}
	if k.KID, err = Thumbprint(&priv.PublicKey); err != nil {
		return Key{}, err
	}
	if cert != nil {
		k.Cert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	}
	return k, k.check()
}

// New returns a ring of the given active keys, one per kind.
func New(sequence uint64, active ...Key) (*Ring, error) {
	r := &Ring{Version: Version, Sequence: sequence, Keys: active}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return r, nil
}

func privatePEM(k *ecdsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("marshal key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// Rotate returns the ring with next as the active key of its kind: the
// key it replaces becomes retiring from now until now + lifetime. The
// replaced key's private key is dropped, but for a CA's (see the package
// comment). r is not changed.
func (r *Ring) Rotate(next Key, now time.Time, lifetime time.Duration) (*Ring, error) {
	if lifetime <= 0 {
		return nil, errors.New("rotate: the lifetime of what a key signs must be positive")
	}
	if next.State != Active || next.check() != nil {
		return nil, errors.New("rotate: the new key is not a well-formed active key")
	}
	var retiring []Key
	for _, k := range r.Keys {
		if k.Kind == next.Kind && k.State == Retiring {
			retiring = append(retiring, k)
		}
	}
	if len(retiring) >= MaxRetiring {
		oldest := slices.MinFunc(retiring, func(a, b Key) int { return a.NotAfter.Compare(b.NotAfter) })
		return nil, fmt.Errorf("%w: %d %s keys are retiring already, the most a ring holds; the next retires at %s",
			ErrTooMany, len(retiring), next.Kind, oldest.NotAfter.UTC().Format(time.RFC3339))
	}
	c := r.clone()
	now = now.UTC().Truncate(time.Second)
	for i, k := range c.Keys {
		if k.Kind != next.Kind || k.State != Active {
			continue
		}
		k.State, k.Retiring, k.NotAfter = Retiring, now, now.Add(lifetime)
		if k.Retiring.Before(k.Created) {
			k.Retiring = k.Created
		}
		if k.Kind != CA {
			pub, err := k.PublicKey()
			if err != nil {
				return nil, err
			}
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				return nil, err
			}
			k.Public, k.Private = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), ""
		}
		c.Keys[i] = k
	}
	c.Keys = append(c.Keys, next)
	c.Sequence++
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// ErrNotRetiring refuses to retire early a key that is not retiring
// (an active key is rotated first; a retired one is gone already).
var ErrNotRetiring = errors.New("not a retiring key")

// RetireNow returns the ring with the retiring key kid retired at now,
// ahead of its not_after (a key that must not be trusted any more: its
// material leaked), and the key as it was. r is not changed.
func (r *Ring) RetireNow(kid string, now time.Time) (*Ring, Key, error) {
	now = now.UTC().Truncate(time.Second)
	for i, k := range r.Keys {
		if k.KID != kid {
			continue
		}
		if k.State != Retiring || !now.Before(k.NotAfter) {
			return nil, k, fmt.Errorf("%w: key %s is %s", ErrNotRetiring, kid, k.State)
		}
		c := r.clone()
		na := now
		if na.Before(k.Retiring) {
			na = k.Retiring
		}
		c.Keys[i] = Key{Kind: k.Kind, KID: k.KID, State: Retired, Created: k.Created, Retiring: k.Retiring, NotAfter: na}
		c.Sequence++
		if err := c.Check(); err != nil {
			return nil, k, err
		}
		return c, k, nil
	}
	return nil, Key{}, fmt.Errorf("%w: no key %.64s", ErrNotRetiring, kid)
}

// Sweep returns the ring with every retiring key whose not_after is not
// after now retired (its material dropped), keeping the newest MaxRetired
// retired keys of each kind, and whether anything changed. r is not
// changed.
func (r *Ring) Sweep(now time.Time) (*Ring, bool) {
	c := r.clone()
	changed := false
	for i, k := range c.Keys {
		if k.State == Retiring && !now.Before(k.NotAfter) {
			c.Keys[i] = Key{Kind: k.Kind, KID: k.KID, State: Retired, Created: k.Created, Retiring: k.Retiring, NotAfter: k.NotAfter}
			changed = true
		}
	}
	for _, kind := range Kinds {
		var retired []int
		for i, k := range c.Keys {
			if k.Kind == kind && k.State == Retired {
				retired = append(retired, i)
			}
		}
		if len(retired) <= MaxRetired {
			continue
		}
		slices.SortFunc(retired, func(a, b int) int { return c.Keys[a].NotAfter.Compare(c.Keys[b].NotAfter) })
		drop := map[int]bool{}
		for _, i := range retired[:len(retired)-MaxRetired] {
			drop[i] = true
		}
		var keep []Key
		for i, k := range c.Keys {
			if !drop[i] {
				keep = append(keep, k)
			}
		}
		c.Keys = keep
		changed = true
	}
	if !changed {
		return r, false
	}
	c.Sequence++
	return c, true
}

// View is what a list shows of a key: never its material.
type View struct {
	Kind     Kind       `json:"kind"`
	KID      string     `json:"kid"`
	State    State      `json:"state"`
	Created  time.Time  `json:"created"`
	Retiring *time.Time `json:"retiring,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
}

// Views lists the ring's keys by kind (in Kinds order), the active key
// first, then the retiring and the retired ones, newest first. A
// retiring key whose not_after has passed at now is shown retired.
func (r *Ring) Views(now time.Time) []View {
	out := []View{}
	for _, kind := range Kinds {
		var ks []Key
		for _, k := range r.Keys {
			if k.Kind == kind {
				ks = append(ks, k)
			}
		}
		rank := func(k Key) int {
			switch {
			case k.State == Active:
				return 0
			case k.State == Retiring && now.Before(k.NotAfter):
				return 1
			}
			return 2
		}
		slices.SortStableFunc(ks, func(a, b Key) int {
			if ra, rb := rank(a), rank(b); ra != rb {
				return ra - rb
			}
			return b.Retiring.Compare(a.Retiring)
		})
		for _, k := range ks {
			v := View{Kind: k.Kind, KID: k.KID, State: k.State, Created: k.Created}
			if k.State == Retiring && !now.Before(k.NotAfter) {
				v.State = Retired
			}
			if !k.Retiring.IsZero() {
				t, n := k.Retiring, k.NotAfter
				v.Retiring, v.NotAfter = &t, &n
			}
			out = append(out, v)
		}
	}
	return out
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
