package grant

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Errors callers branch on. Every error Verify returns wraps ErrInvalid or
// ErrExpired; an HTTP server answers both with 401 (for ErrExpired the client
// should obtain a fresh grant). ErrWiden and ErrDepth refuse a delegation and
// map to 403. ErrReplay (401) and ErrCapacity (503, retry later) come from
// ProofVerifier.
var (
	// ErrInvalid: the token or proof is malformed, forged, signed with an
	// algorithm other than ES256 or by an unknown key, or its claims are
	// inconsistent, not yet valid, or not bound to the presented key.
	ErrInvalid = errors.New("grant: invalid token")
	// ErrExpired: the grant's expiry (plus leeway) has passed.
	ErrExpired = errors.New("grant: token expired")
	// ErrReplay: a DPoP proof's jti was already seen within its validity
	// window.
	ErrReplay = errors.New("grant: proof replayed")
	// ErrWiden: a delegation asked for more than its parent grant holds.
	ErrWiden = errors.New("grant: requested scope widens parent scope")
	// ErrDepth: a delegation would exceed the maximum chain depth.
	ErrDepth = errors.New("grant: delegation depth exceeded")
	// ErrCapacity: the replay cache is full of live entries, so a proof
	// cannot be checked for replay and is refused (fail closed).
	ErrCapacity = errors.New("grant: proof replay cache full")
)

const (
	// TokenType is the JWS "typ" header of a grant.
	TokenType = "ward-grant+jwt"
	// Audience is the only "aud" a grant may carry.
	Audience = "ward"
	// MaxTokenSize is the largest grant, in bytes, Verify reads and Issue
	// produces.
	MaxTokenSize = 8 << 10
	// DefaultLeeway is the clock skew a Verifier tolerates on exp, nbf and
	// iat when VerifierConfig.Leeway is zero.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxDepth is the delegation depth ward allows by default: a
	// root session, its sub-agents, theirs, and theirs.
	DefaultMaxDepth = 3

	// maxChainDepth bounds the depth any token may claim, whatever the
	// policy, so a token cannot make a verifier walk a long act chain.
	maxChainDepth = 64
	// maxIDLen bounds jti and par.
	maxIDLen = 128
	// maxTextLen bounds sid, agent, sponsor and SPIFFE IDs.
	maxTextLen = 512
	// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused so
	// time arithmetic cannot overflow.
	maxNumericDate = 253402300799
	// idBytes is the entropy of a grant or proof jti.
	idBytes = 16
)

// Actor is one link of the RFC 8693 "act" chain: Sub is the current actor's
// SPIFFE ID and Act the actor before it. The chain is informational in RFC
// 8693; ward enforces containment itself, through Scope and Narrow.
type Actor struct {
	Sub string `json:"sub"`
	Act *Actor `json:"act,omitempty"`
}

// Claims is the content of a grant.
type Claims struct {
	ID        string // jti: random 128-bit value, base64url
	Issuer    string // iss: "spiffe://TD"
	Subject   string // sub: SPIFFE ID of the root session of the chain, on whose behalf
	Audience  string // aud: "ward"
	Session   string // sid: id of the session this grant belongs to
	SPIFFEID  string // spiffe_id: SPIFFE ID of the session presenting it; == Subject at depth 0
	Agent     string // agent: registered agent name
	Sponsor   string // sponsor: accountable principal
	Parent    string // par: jti of the parent grant; "" at depth 0
	Depth     int    // dep: 0 for a root grant, parent's + 1 for a child
	Scope     Scope  // scope: what the session may reach
	Objective string // obj: hex SHA-256 of the declared objective, or ""
	JKT       string // cnf.jkt: RFC 7638 thumbprint of the session's public key
	// Act is nil at depth 0. For a child it is {Sub: child SPIFFE ID, Act:
	// parent's Act}: the current actor first, prior actors nested, the
	// subject (root) excluded, so the chain has exactly Depth links.
	Act                         *Actor
	IssuedAt, NotBefore, Expiry time.Time // iat, nbf, exp: whole seconds
}

// CheckBinding returns nil if the proof was made with the key the grant is
// bound to (cnf.jkt), compared in constant time, and an error wrapping
// ErrInvalid otherwise. A grant presented without its key is useless.
func (c *Claims) CheckBinding(p *Proof) error {
	if c == nil || p == nil || c.JKT == "" {
		return fmt.Errorf("%w: missing grant or proof", ErrInvalid)
	}
	if subtle.ConstantTimeCompare([]byte(c.JKT), []byte(p.JKT)) != 1 {
		return fmt.Errorf("%w: proof key does not match the key the grant is bound to", ErrInvalid)
	}
	return nil
}

// wireClaims is the JSON payload of a grant.
type wireClaims struct {
	ID        string  `json:"jti"`
	Issuer    string  `json:"iss"`
	Subject   string  `json:"sub"`
	Audience  string  `json:"aud"`
	Session   string  `json:"sid"`
	SPIFFEID  string  `json:"spiffe_id"`
	Agent     string  `json:"agent,omitempty"`
	Sponsor   string  `json:"sponsor,omitempty"`
	Parent    string  `json:"par,omitempty"`
	Depth     int     `json:"dep,omitzero"`
	Scope     Scope   `json:"scope"`
	Objective string  `json:"obj,omitempty"`
	Cnf       wireCnf `json:"cnf"`
	Act       *Actor  `json:"act,omitzero"`
	IssuedAt  int64   `json:"iat"`
	NotBefore int64   `json:"nbf"`
	Expiry    int64   `json:"exp"`
}

type wireCnf struct {
	JKT string `json:"jkt"`
}

// grantHeader is the JOSE header of a grant. Crit is decoded only to be
// refused by name; any other unknown member is refused by the decoder.
type grantHeader struct {
	Alg  string         `json:"alg"`
	Typ  string         `json:"typ"`
	Kid  string         `json:"kid"`
	Crit jsontext.Value `json:"crit,omitzero"`
}

// strict is the decoding mode for signed JSON: unknown members, duplicate
// names and invalid UTF-8 are errors, names match case-sensitively.
func strict() jsonv2.Options { return jsonv2.RejectUnknownMembers(true) }

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	Key         *ecdsa.PrivateKey // P-256 signing key; required
	TrustDomain string            // "example.org" or "spiffe://example.org"; required
	Now         func() time.Time  // clock; nil means time.Now
}

// Issuer signs grants. It is safe for concurrent use.
type Issuer struct {
	key    *ecdsa.PrivateKey
	kid    string
	td     spiffeid.TrustDomain
	iss    string
	header string // encoded JOSE header, the same for every grant
	now    func() time.Time
}

// NewIssuer validates cfg and returns an Issuer.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if cfg.Key == nil {
		return nil, errors.New("new grant issuer: no signing key")
	}
	pub, err := p256Public(&cfg.Key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("new grant issuer: %w", err)
	}
	kid, err := Thumbprint(pub)
	if err != nil {
		return nil, fmt.Errorf("new grant issuer: %w", err)
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("new grant issuer: trust domain: %w", err)
	}
	h, err := jsonv2.Marshal(grantHeader{Alg: algES256, Typ: TokenType, Kid: kid})
	if err != nil {
		return nil, fmt.Errorf("new grant issuer: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Issuer{key: cfg.Key, kid: kid, td: td, iss: td.IDString(), header: b64.EncodeToString(h), now: now}, nil
}

// PublicKey returns the key grants are verified with.
func (i *Issuer) PublicKey() *ecdsa.PublicKey { return &i.key.PublicKey }

// KeyID returns the "kid" of issued grants: the RFC 7638 thumbprint of the
// signing key.
func (i *Issuer) KeyID() string { return i.kid }

// Issue signs c as a grant. It fills ID (random), IssuedAt (now), NotBefore
// (IssuedAt), Issuer, Audience, and, at depth 0, Subject (SPIFFEID) where
// they are zero, truncates times to whole seconds, and refuses claims a
// Verifier would refuse: Expiry must be after now, and Session, SPIFFEID and
// JKT must be set.
func (i *Issuer) Issue(c Claims) (string, error) {
	now := i.now()
	if c.ID == "" {
		var raw [idBytes]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", fmt.Errorf("issue grant: %w", err)
		}
		c.ID = b64.EncodeToString(raw[:])
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = c.IssuedAt
	}
	if c.Issuer == "" {
		c.Issuer = i.iss
	}
	if c.Audience == "" {
		c.Audience = Audience
	}
	if c.Subject == "" && c.Depth == 0 {
		c.Subject = c.SPIFFEID
	}
	c.IssuedAt = time.Unix(c.IssuedAt.Unix(), 0)
	c.NotBefore = time.Unix(c.NotBefore.Unix(), 0)
	c.Expiry = time.Unix(c.Expiry.Unix(), 0)
	if !c.Expiry.After(now) {
		return "", errors.New("issue grant: expiry is not in the future")
	}
	if err := checkClaims(&c, i.td); err != nil {
		return "", fmt.Errorf("issue grant: %w", err)
	}
	w := wireClaims{
		ID: c.ID, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		Session: c.Session, SPIFFEID: c.SPIFFEID, Agent: c.Agent, Sponsor: c.Sponsor,
		Parent: c.Parent, Depth: c.Depth, Scope: c.Scope, Objective: c.Objective,
		Cnf: wireCnf{JKT: c.JKT}, Act: c.Act,
		IssuedAt: c.IssuedAt.Unix(), NotBefore: c.NotBefore.Unix(), Expiry: c.Expiry.Unix(),
	}
	payload, err := jsonv2.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("issue grant: %w", err)
	}
	input := i.header + "." + b64.EncodeToString(payload)
	if len(input)+1+b64.EncodedLen(es256SigLen) > MaxTokenSize {
		return "", fmt.Errorf("issue grant: token larger than %d bytes", MaxTokenSize)
	}
	sig, err := signES256(i.key, input)
	if err != nil {
		return "", fmt.Errorf("issue grant: sign: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	Keys        map[string]*ecdsa.PublicKey // kid → P-256 key; at least one
	TrustDomain string                      // "example.org" or "spiffe://example.org"; required
	Now         func() time.Time            // clock; nil means time.Now
	Leeway      time.Duration               // clock skew allowed; 0 means DefaultLeeway
}

// Verifier checks grants. It is immutable and safe for concurrent use.
type Verifier struct {
	keys   map[string]*ecdsa.PublicKey
	td     spiffeid.TrustDomain
	iss    string
	now    func() time.Time
	leeway time.Duration
}

// NewVerifier validates cfg and returns a Verifier. It copies cfg.Keys.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("new grant verifier: no keys")
	}
	keys := make(map[string]*ecdsa.PublicKey, len(cfg.Keys))
	for kid, k := range cfg.Keys {
		if kid == "" {
			return nil, errors.New("new grant verifier: empty key id")
		}
		if _, err := p256Public(k); err != nil {
			return nil, fmt.Errorf("new grant verifier: key %.64q: %w", kid, err)
		}
		keys[kid] = k
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("new grant verifier: trust domain: %w", err)
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("new grant verifier: negative leeway")
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, td: td, iss: td.IDString(), now: now, leeway: leeway}, nil
}

// Verify checks a grant and returns its claims. It refuses, with an error
// wrapping ErrInvalid: input over MaxTokenSize, anything but three non-empty
// base64url parts, a header other than exactly {alg: ES256, typ:
// ward-grant+jwt, kid: known key} (so "none", HS256, RS256 and "crit" are
// refused), a bad signature, duplicate or unknown JSON members in header or
// payload, a wrong iss or aud, missing or inconsistent claims, a malformed
// scope, and nbf or iat later than now plus leeway. It refuses with
// ErrExpired a grant whose exp plus leeway has passed. Errors never quote the
// token.
func (v *Verifier) Verify(token string) (*Claims, error) {
	hPart, pPart, sPart, err := splitCompact(token, MaxTokenSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	hJSON, err := b64.DecodeString(hPart)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrInvalid)
	}
	var h grantHeader
	if err := jsonv2.Unmarshal(hJSON, &h, strict()); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrInvalid, jsonErr(err))
	}
	switch {
	case h.Crit != nil:
		return nil, fmt.Errorf("%w: header has crit", ErrInvalid)
	case h.Alg != algES256:
		return nil, fmt.Errorf("%w: alg %.16q, want ES256", ErrInvalid, h.Alg)
	case h.Typ != TokenType:
		return nil, fmt.Errorf("%w: typ %.32q, want %q", ErrInvalid, h.Typ, TokenType)
	}
	key, ok := v.keys[h.Kid]
	if !ok {
		return nil, fmt.Errorf("%w: unknown kid %.64q", ErrInvalid, h.Kid)
	}
	sig, err := decodeSig(sPart)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !verifyES256(key, token[:len(hPart)+1+len(pPart)], sig) {
		return nil, fmt.Errorf("%w: bad signature", ErrInvalid)
	}
	pJSON, err := b64.DecodeString(pPart)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrInvalid)
	}
	var w wireClaims
	if err := jsonv2.Unmarshal(pJSON, &w, strict()); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalid, jsonErr(err))
	}
	c := &Claims{
		ID: w.ID, Issuer: w.Issuer, Subject: w.Subject, Audience: w.Audience,
		Session: w.Session, SPIFFEID: w.SPIFFEID, Agent: w.Agent, Sponsor: w.Sponsor,
		Parent: w.Parent, Depth: w.Depth, Scope: w.Scope, Objective: w.Objective,
		JKT: w.Cnf.JKT, Act: w.Act,
		IssuedAt: time.Unix(w.IssuedAt, 0), NotBefore: time.Unix(w.NotBefore, 0), Expiry: time.Unix(w.Expiry, 0),
	}
	if err := checkClaims(c, v.td); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	now := v.now()
	if !now.Before(c.Expiry.Add(v.leeway)) {
		return nil, fmt.Errorf("%w: expired at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	if now.Add(v.leeway).Before(c.NotBefore) {
		return nil, fmt.Errorf("%w: not valid before %s", ErrInvalid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.Add(v.leeway).Before(c.IssuedAt) {
		return nil, fmt.Errorf("%w: issued in the future", ErrInvalid)
	}
	return c, nil
}

// jsonErr shortens a decoding error to its kind, so that no part of the
// token's content is echoed back.
func jsonErr(err error) string {
	var se *jsonv2.SemanticError
	if errors.As(err, &se) {
		if errors.Is(err, jsonv2.ErrUnknownName) {
			return "unknown member"
		}
		return "wrong type or value"
	}
	var ste *jsontext.SyntacticError
	if errors.As(err, &ste) {
		if errors.Is(err, jsontext.ErrDuplicateName) {
			return "duplicate member"
		}
		return "malformed JSON"
	}
	return "malformed JSON"
}

// checkClaims checks that c is complete and self-consistent for trust
// domain td. It does not look at the clock.
func checkClaims(c *Claims, td spiffeid.TrustDomain) error {
	switch {
	case !validID(c.ID):
		return errors.New("jti missing or malformed")
	case c.Issuer != td.IDString():
		return errors.New("wrong iss")
	case c.Audience != Audience:
		return errors.New("wrong aud")
	case !validText(c.Session, true):
		return errors.New("sid missing or malformed")
	case !validText(c.Agent, false):
		return errors.New("agent malformed")
	case !validText(c.Sponsor, false):
		return errors.New("sponsor malformed")
	case !validJKT(c.JKT):
		return errors.New("cnf.jkt missing or malformed")
	case c.Objective != "" && !validHexSHA256(c.Objective):
		return errors.New("obj is not a hex SHA-256")
	case c.Depth < 0 || c.Depth > maxChainDepth:
		return errors.New("dep out of range")
	case !validDate(c.IssuedAt) || !validDate(c.NotBefore) || !validDate(c.Expiry):
		return errors.New("iat, nbf or exp missing or out of range")
	case !c.Expiry.After(c.IssuedAt) || !c.Expiry.After(c.NotBefore):
		return errors.New("exp not after iat and nbf")
	}
	if err := memberOf(c.Subject, td); err != nil {
		return fmt.Errorf("sub: %w", err)
	}
	if err := memberOf(c.SPIFFEID, td); err != nil {
		return fmt.Errorf("spiffe_id: %w", err)
	}
	if c.Depth == 0 {
		if c.Parent != "" || c.Act != nil || c.SPIFFEID != c.Subject {
			return errors.New("root grant with par, act, or spiffe_id other than sub")
		}
	} else {
		if !validID(c.Parent) {
			return errors.New("child grant without valid par")
		}
		if c.Act == nil || c.Act.Sub != c.SPIFFEID {
			return errors.New("child grant whose act.sub is not its spiffe_id")
		}
		n := 0
		for a := c.Act; a != nil; a = a.Act {
			if n++; n > c.Depth {
				break
			}
			if err := memberOf(a.Sub, td); err != nil {
				return fmt.Errorf("act: %w", err)
			}
		}
		if n != c.Depth {
			return errors.New("act chain length differs from dep")
		}
	}
	return c.Scope.Validate()
}

// validDate reports whether t is a whole second between the epoch
// (exclusive) and the end of year 9999.
func validDate(t time.Time) bool {
	u := t.Unix()
	return u > 0 && u <= maxNumericDate && t.Nanosecond() == 0
}

// memberOf checks that s is a SPIFFE ID in td.
func memberOf(s string, td spiffeid.TrustDomain) error {
	if len(s) > maxTextLen {
		return errors.New("SPIFFE ID too long")
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		return errors.New("not a SPIFFE ID")
	}
	if !id.MemberOf(td) {
		return errors.New("SPIFFE ID outside the trust domain")
	}
	return nil
}

// validID reports whether s is a plausible jti: 1 to maxIDLen base64url
// characters.
func validID(s string) bool { return len(s) <= maxIDLen && isB64URL(s) }

// validText reports whether s is at most maxTextLen printable ASCII
// characters without spaces, and non-empty if required.
func validText(s string, required bool) bool {
	if s == "" {
		return !required
	}
	if len(s) > maxTextLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validHexSHA256 reports whether s is 64 lowercase hex digits.
func validHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
