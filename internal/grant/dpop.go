package grant

import (
	"container/heap"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

const (
	// ProofType is the JWS "typ" header of a DPoP proof.
	ProofType = "dpop+jwt"
	// MaxProofSize is the largest proof, in bytes, ProofVerifier reads.
	MaxProofSize = 4 << 10
	// DefaultProofMaxAge is how old a proof's iat may be when
	// ProofVerifierConfig.MaxAge is zero.
	DefaultProofMaxAge = 60 * time.Second
	// DefaultProofLeeway is how far in the future a proof's iat may be when
	// ProofVerifierConfig.Leeway is zero.
	DefaultProofLeeway = 5 * time.Second
	// DefaultReplayCacheSize is how many live jti values a ProofVerifier
	// remembers when ProofVerifierConfig.ReplayCacheSize is zero: about 16k
	// proofs a second sustained over the default window, in about 64 MiB.
	DefaultReplayCacheSize = 1 << 20

	// maxJTILen bounds a proof's jti.
	maxJTILen = 256
)

// NewProof makes an RFC 9449 DPoP proof for one request: a JWS with header
// {typ: dpop+jwt, alg: ES256, jwk: public key} and claims jti (random), htm
// (method), htu (url normalised: scheme and host lowercased, default port,
// query and fragment dropped), iat (now), and, when accessToken is not
// empty, ath (base64url SHA-256 of accessToken). key must be a P-256 signer.
func NewProof(key crypto.Signer, method, url, accessToken string, now time.Time) (string, error) {
	return NewProofNonce(key, method, url, accessToken, "", now)
}

// NewProofNonce is NewProof with the server-provided nonce claim (RFC 9449
// §8) when nonce is not empty.
func NewProofNonce(key crypto.Signer, method, url, accessToken, nonce string, now time.Time) (string, error) {
	if key == nil {
		return "", errors.New("new proof: no key")
	}
	pub, err := p256Public(key.Public())
	if err != nil {
		return "", fmt.Errorf("new proof: %w", err)
	}
	jwk, err := publicJWK(pub)
	if err != nil {
		return "", fmt.Errorf("new proof: %w", err)
	}
	if !validMethod(method) {
		return "", errors.New("new proof: malformed method")
	}
	htu, err := normalizeHTU(url)
	if err != nil {
		return "", fmt.Errorf("new proof: %w", err)
	}
	var raw [idBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("new proof: %w", err)
	}
	h, err := jsonv2.Marshal(struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		JWK ecJWK  `json:"jwk"`
	}{ProofType, algES256, jwk})
	if err != nil {
		return "", fmt.Errorf("new proof: %w", err)
	}
	c := proofClaims{JTI: b64.EncodeToString(raw[:]), HTM: method, HTU: htu, IAT: now.Unix(), Nonce: nonce}
	if accessToken != "" {
		ath := accessTokenHash(accessToken)
		c.ATH = &ath
	}
	p, err := jsonv2.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("new proof: %w", err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sig, err := signES256(key, input)
	if err != nil {
		return "", fmt.Errorf("new proof: sign: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// Nonce returns a fresh nonce for the DPoP-Nonce header, or "" when p asks
// for none.
func (p *ProofVerifier) Nonce() string {
	if p.nonces == nil {
		return ""
	}
	return p.nonces.Issue(p.now())
}

// Proof is what a verified DPoP proof establishes.
type Proof struct {
	JKT      string    // RFC 7638 thumbprint of the key that signed the proof
	ID       string    // jti
	Method   string    // htm
	URL      string    // htu, normalised
	IssuedAt time.Time // iat
}

// ProofVerifierConfig configures a ProofVerifier. Zero or negative values
// mean the defaults.
type ProofVerifierConfig struct {
	MaxAge          time.Duration    // oldest iat accepted; DefaultProofMaxAge
	Leeway          time.Duration    // newest iat accepted, ahead of now; DefaultProofLeeway
	Now             func() time.Time // clock; nil means time.Now
	ReplayCacheSize int              // live jti values remembered; DefaultReplayCacheSize
	// Nonces, when set, makes every proof carry a nonce it issued and
	// still accepts (RFC 9449 §8); nil: no nonce is asked for.
	Nonces *Nonces
}

// ProofVerifier checks DPoP proofs and refuses replays. It holds the replay
// cache, so one ProofVerifier serves every request of a gateway. It is safe
// for concurrent use.
type ProofVerifier struct {
	maxAge, leeway time.Duration
	now            func() time.Time
	seen           *replayCache
	nonces         *Nonces
}

// NewProofVerifier returns a ProofVerifier with an empty replay cache.
func NewProofVerifier(cfg ProofVerifierConfig) *ProofVerifier {
	p := &ProofVerifier{maxAge: cfg.MaxAge, leeway: cfg.Leeway, now: cfg.Now, nonces: cfg.Nonces}
	if p.maxAge <= 0 {
		p.maxAge = DefaultProofMaxAge
	}
	if p.leeway <= 0 {
		p.leeway = DefaultProofLeeway
	}
	if p.now == nil {
		p.now = time.Now
	}
	size := cfg.ReplayCacheSize
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	p.seen = &replayCache{max: size, index: make(map[replayKey]struct{})}
	return p
}

// proofHeader is the JOSE header of a proof; other members are refused.
type proofHeader struct {
	Typ  string         `json:"typ"`
	Alg  string         `json:"alg"`
	JWK  jsontext.Value `json:"jwk"`
	Crit jsontext.Value `json:"crit,omitzero"`
}

// proofJWK is the jwk header member. Private-key members are decoded only to
// be refused; other members (kid, use, alg) are ignored.
type proofJWK struct {
	Kty string         `json:"kty"`
	Crv string         `json:"crv"`
	X   string         `json:"x"`
	Y   string         `json:"y"`
	D   jsontext.Value `json:"d,omitzero"`
	P   jsontext.Value `json:"p,omitzero"`
	Q   jsontext.Value `json:"q,omitzero"`
	DP  jsontext.Value `json:"dp,omitzero"`
	DQ  jsontext.Value `json:"dq,omitzero"`
	QI  jsontext.Value `json:"qi,omitzero"`
	Oth jsontext.Value `json:"oth,omitzero"`
	K   jsontext.Value `json:"k,omitzero"`
}

// proofClaims is the payload of a proof. Unknown members are ignored.
type proofClaims struct {
	JTI   string  `json:"jti"`
	HTM   string  `json:"htm"`
	HTU   string  `json:"htu"`
	IAT   int64   `json:"iat"`
	ATH   *string `json:"ath,omitzero"`
	Nonce string  `json:"nonce,omitzero"`
}

// Verify checks a DPoP proof for a request with the given method, url and
// access token (the grant; "" when none is presented) and returns what it
// proves. It refuses, with an error wrapping ErrInvalid: input over
// MaxProofSize; a header other than {typ: dpop+jwt, alg: ES256, jwk}; a jwk
// that is not a public P-256 key or carries private members; a signature not
// made by that jwk; duplicate JSON members; htm different from method (case
// matters); htu different from url once both are normalised; iat older than
// MaxAge or further ahead than Leeway; a missing or over-long jti; ath
// absent, present or different from the token's hash (compared in constant
// time); when the verifier asks for nonces, a nonce missing, not its own or
// stale, with ErrUseNonce. Only then does it record the jti, keyed with the proof's key, and
// refuse one already seen in its window with ErrReplay, or, when the cache
// is full of live entries, refuse with ErrCapacity. The caller must still
// check the proof's key against the grant with Claims.CheckBinding.
func (p *ProofVerifier) Verify(proof, method, url, accessToken string) (*Proof, error) {
	return p.verify(proof, method, url, accessToken, "")
}

// VerifyBound is Verify for a proof that must be signed by the key whose
// thumbprint is jkt (the grant's cnf.jkt). A proof by any other key is
// refused before its jti is recorded, so someone holding a leaked grant but
// not its key cannot fill the replay cache.
func (p *ProofVerifier) VerifyBound(proof, method, url, accessToken, jkt string) (*Proof, error) {
	if jkt == "" {
		return nil, fmt.Errorf("%w: no key to bind the proof to", ErrInvalid)
	}
	return p.verify(proof, method, url, accessToken, jkt)
}

func (p *ProofVerifier) verify(proof, method, url, accessToken, bound string) (*Proof, error) {
	hPart, pPart, sPart, err := splitCompact(proof, MaxProofSize)
	if err != nil {
		return nil, fmt.Errorf("%w: proof: %v", ErrInvalid, err)
	}
	hJSON, err := b64.DecodeString(hPart)
	if err != nil {
		return nil, fmt.Errorf("%w: proof header is not base64url", ErrInvalid)
	}
	var h proofHeader
	if err := jsonv2.Unmarshal(hJSON, &h, strict()); err != nil {
		return nil, fmt.Errorf("%w: proof header: %v", ErrInvalid, jsonErr(err))
	}
	switch {
	case h.Crit != nil:
		return nil, fmt.Errorf("%w: proof header has crit", ErrInvalid)
	case h.Typ != ProofType:
		return nil, fmt.Errorf("%w: proof typ %.32q, want %q", ErrInvalid, h.Typ, ProofType)
	case h.Alg != algES256:
		return nil, fmt.Errorf("%w: proof alg %.16q, want ES256", ErrInvalid, h.Alg)
	case h.JWK == nil:
		return nil, fmt.Errorf("%w: proof header has no jwk", ErrInvalid)
	}
	pub, jkt, err := parseProofJWK(h.JWK)
	if err != nil {
		return nil, fmt.Errorf("%w: proof jwk: %v", ErrInvalid, err)
	}
	sig, err := decodeSig(sPart)
	if err != nil {
		return nil, fmt.Errorf("%w: proof %v", ErrInvalid, err)
	}
	if !verifyES256(pub, proof[:len(hPart)+1+len(pPart)], sig) {
		return nil, fmt.Errorf("%w: proof signature not made by its jwk", ErrInvalid)
	}
	pJSON, err := b64.DecodeString(pPart)
	if err != nil {
		return nil, fmt.Errorf("%w: proof payload is not base64url", ErrInvalid)
	}
	var c proofClaims
	if err := jsonv2.Unmarshal(pJSON, &c); err != nil {
		return nil, fmt.Errorf("%w: proof payload: %v", ErrInvalid, jsonErr(err))
	}
	if c.JTI == "" || len(c.JTI) > maxJTILen {
		return nil, fmt.Errorf("%w: proof jti missing or longer than %d bytes", ErrInvalid, maxJTILen)
	}
	if c.HTM != method || !validMethod(method) {
		return nil, fmt.Errorf("%w: proof htm does not match the request method", ErrInvalid)
	}
	want, err := normalizeHTU(url)
	if err != nil {
		return nil, fmt.Errorf("%w: request url: %v", ErrInvalid, err)
	}
	if got, err := normalizeHTU(c.HTU); err != nil || got != want {
		return nil, fmt.Errorf("%w: proof htu does not match the request url", ErrInvalid)
	}
	now := p.now()
	if c.IAT <= 0 || c.IAT > maxNumericDate {
		return nil, fmt.Errorf("%w: proof iat missing or out of range", ErrInvalid)
	}
	iat := time.Unix(c.IAT, 0)
	if iat.Before(now.Add(-p.maxAge)) {
		return nil, fmt.Errorf("%w: proof older than %s", ErrInvalid, p.maxAge)
	}
	if iat.After(now.Add(p.leeway)) {
		return nil, fmt.Errorf("%w: proof issued in the future", ErrInvalid)
	}
	switch {
	case accessToken == "" && c.ATH != nil:
		return nil, fmt.Errorf("%w: proof has ath but no access token was presented", ErrInvalid)
	case accessToken != "" && c.ATH == nil:
		return nil, fmt.Errorf("%w: proof has no ath", ErrInvalid)
	case accessToken != "" && subtle.ConstantTimeCompare([]byte(*c.ATH), []byte(accessTokenHash(accessToken))) != 1:
		return nil, fmt.Errorf("%w: proof ath does not match the access token", ErrInvalid)
	}
	if bound != "" && subtle.ConstantTimeCompare([]byte(jkt), []byte(bound)) != 1 {
		return nil, fmt.Errorf("%w: proof is not signed by the grant's key", ErrInvalid)
	}
	if p.nonces != nil {
		if err := p.nonces.Check(c.Nonce, now); err != nil {
			return nil, err
		}
	}
	if err := p.seen.add(newReplayKey(jkt, c.JTI), iat.Add(p.maxAge+p.leeway), now); err != nil {
		return nil, err
	}
	return &Proof{JKT: jkt, ID: c.JTI, Method: c.HTM, URL: want, IssuedAt: iat}, nil
}

// parseProofJWK returns the key in a proof's jwk member and its thumbprint.
func parseProofJWK(raw jsontext.Value) (*ecdsa.PublicKey, string, error) {
	var j proofJWK
	if err := jsonv2.Unmarshal(raw, &j); err != nil {
		return nil, "", errors.New(jsonErr(err))
	}
	if j.D != nil || j.P != nil || j.Q != nil || j.DP != nil || j.DQ != nil || j.QI != nil || j.Oth != nil || j.K != nil {
		return nil, "", errors.New("private key members present")
	}
	if j.Kty != "EC" || j.Crv != "P-256" {
		return nil, "", errors.New("not an EC P-256 key")
	}
	x, errX := b64.DecodeString(j.X)
	y, errY := b64.DecodeString(j.Y)
	if errX != nil || errY != nil || len(x) != coordLen || len(y) != coordLen || !isB64URL(j.X) || !isB64URL(j.Y) {
		return nil, "", errors.New("coordinates are not 32 bytes of base64url")
	}
	point := make([]byte, 0, 1+2*coordLen)
	point = append(append(append(point, 4), x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, "", errors.New("point not on P-256")
	}
	// Strict decoding makes X and Y canonical, so they are the thumbprint's.
	return pub, ecJWK{Crv: j.Crv, Kty: j.Kty, X: j.X, Y: j.Y}.thumbprint(), nil
}

// accessTokenHash is the ath of a token: base64url SHA-256 of its bytes.
func accessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return b64.EncodeToString(sum[:])
}

// validMethod reports whether m is an HTTP method token (RFC 9110).
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// normalizeHTU returns an absolute http or https URL without query and
// fragment, its scheme and host lowercased, its default port removed, and
// an empty path written "/". User information is refused.
func normalizeHTU(raw string) (string, error) {
	if raw == "" || len(raw) > MaxProofSize {
		return "", errors.New("url empty or too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("malformed url")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("url scheme is not http or https")
	}
	if u.Opaque != "" || u.Host == "" || u.User != nil {
		return "", errors.New("url must be absolute with a host and no user information")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", errors.New("url has an empty host")
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	hostport := host
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		hostport = "[" + host + "]"
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + hostport + path, nil
}

// replayKey identifies a proof in the replay cache: a truncated SHA-256 of
// its key thumbprint and jti, so entries are small and fixed-size.
type replayKey [16]byte

func newReplayKey(jkt, jti string) replayKey {
	// jkt is a fixed 43 bytes, so the concatenation is unambiguous.
	sum := sha256.Sum256([]byte(jkt + jti))
	return replayKey(sum[:16])
}

// replayCache remembers jti values until their proofs could no longer pass
// the iat check. It never forgets a live entry: when full, it refuses.
type replayCache struct {
	mu    sync.Mutex
	max   int
	index map[replayKey]struct{}
	byExp expiryHeap
}

// add records key as seen until expires, first forgetting entries whose
// time has passed at now.
func (r *replayCache) add(key replayKey, expires, now time.Time) error {
	nowNS, expNS := now.UnixNano(), expires.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.byExp) > 0 && r.byExp[0].expires < nowNS {
		e := heap.Pop(&r.byExp).(replayEntry)
		delete(r.index, e.key)
	}
	if _, ok := r.index[key]; ok {
		return fmt.Errorf("%w: jti already used", ErrReplay)
	}
	if len(r.index) >= r.max {
		return ErrCapacity
	}
	r.index[key] = struct{}{}
	heap.Push(&r.byExp, replayEntry{expires: expNS, key: key})
	return nil
}

type replayEntry struct {
	expires int64 // unix nanoseconds
	key     replayKey
}

// expiryHeap is a min-heap of entries by expiry (container/heap).
type expiryHeap []replayEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
