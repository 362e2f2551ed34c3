// Package identity is the trust domain's root of identity: its keys, its
// certificate authority, the SPIFFE IDs it names agents and sessions with,
// the X.509-SVIDs and JWT-SVIDs it mints, and the trust bundle and JWKS that
// let anyone verify them.
//
// # Data directory
//
// A trust domain lives in one directory (Config.Dir, created 0700):
//
//	ca.key   ECDSA P-256 CA signing key, PKCS#8 PEM, 0600
//	ca.pem   self-signed root certificate, valid ten years
//	jwt.key  ECDSA P-256 JWT-SVID signing key (ES256), PKCS#8 PEM, 0600
//
// Open creates whatever is missing on first use and afterwards refuses to run
// on a directory that does not hang together: a certificate whose key is not
// ca.key, a certificate for another trust domain, a certificate without key
// (ca.pem present, ca.key gone), an expired root. Key files are written to a
// temporary file and then linked into place, so a crash leaves either no
// file or a complete one, and two processes racing to create a key end up
// sharing the same one.
//
// # Names
//
// An agent is spiffe://TD/agent/NAME and one session of it is
// spiffe://TD/agent/NAME/session/ID. NAME and ID are 1 to 64 characters of
// [a-z0-9._-] starting with a letter or digit (ValidName). ParseSessionID is
// the strict inverse of SessionID. Paths under /ward are reserved for ward
// itself (its TLS server is spiffe://TD/ward/server) and are never minted
// for callers.
//
// # SVIDs
//
// MintX509SVID turns a PKCS#10 certificate request into a leaf certificate
// whose only name is the SPIFFE ID the caller decided on: the subject and
// names in the request are ignored, its signature is checked as proof that
// the requester holds the private key, and only ECDSA P-256 and Ed25519 keys
// are accepted. The chain it returns is the leaf alone; the root is the
// bundle.
//
// MintJWTSVID signs an ES256 JWT-SVID with claims sub, aud, exp and iat and
// a header naming the signing key by its RFC 7638 thumbprint (kid).
//
// Lifetimes default to DefaultX509TTL and DefaultJWTTTL when the caller
// passes zero; anything above MaxSVIDTTL is refused. An X.509-SVID never
// outlives its CA.
//
// # Verification
//
// Everything ward mints verifies with go-spiffe against Bundle, and
// VerifyX509SVID and VerifyJWTSVID are thin, stricter wrappers around
// x509svid.Verify and jwtsvid.ParseAndValidate: a JWT-SVID must carry an
// ES256 header with exactly alg, kid and typ "JWT", no more than 8 KiB, be
// checked against a non-empty audience, and is also held to Config.Now
// without leeway.
//
// # Publishing trust
//
// BundleJSON is the SPIFFE bundle document served at
// /.well-known/spiffe-bundle (X.509 authorities with "use":"x509-svid",
// JWT authorities with "use":"jwt-svid", a refresh hint and a sequence
// number). JWKS is a plain JSON Web Key Set of the JWT-SVID keys for
// relying parties that only speak OIDC-style JWKS. BundlePEM is the root
// certificates (active first) for command-line clients.
//
// A typical server:
//
//	ca, _, err := identity.Open(identity.Config{TrustDomain: "example.org", Dir: dataDir})
//	srvCert, err := ca.ServerCertificate([]string{"localhost", "127.0.0.1", "::1"}, 0)
//	id, err := identity.SessionID(ca.TrustDomain(), "reporter", "01hx3k")
//	chain, err := ca.MintX509SVID(csrDER, id, 0)
//	token, exp, err := ca.MintJWTSVID(id, []string{"spiffe://example.org/ward/server"}, 0)
//
// # Rotation
//
// Install replaces the CA's keys as a whole (rotate.go): a new active root
// and JWT key sign everything new at once, while the roots and JWT keys
// given as retiring stay in the bundle, the JWKS and both verifications
// until the caller leaves them out. NewRoot makes the root certificate of
// a new CA key. ward keeps the keys' rotation state in package keyring.
//
// A CA is safe for concurrent use; its keys change only by Install, and a
// call sees either the keys before or those after, never a mix.
package identity
