// Package grant implements ward's session grants: short-lived signed tokens
// that name a session, bind it to the session's key, and carry its scope,
// objective hash and delegation chain.
//
// # Grants
//
// A grant is a compact JWS (RFC 7515), ES256 only, with header
//
//	{"alg":"ES256","typ":"ward-grant+jwt","kid":"<RFC 7638 thumbprint of the issuer key>"}
//
// and claims
//
//	{"jti":"Yd3-…","iss":"spiffe://example.org","sub":"spiffe://example.org/agent/report/session/s1",
//	 "aud":"ward","sid":"s1","spiffe_id":"spiffe://example.org/agent/report/session/s1",
//	 "agent":"report","sponsor":"alice@example.org","dep":0,
//	 "scope":{"tools":["db.read_*"],"resources":["db://customers/*"],"hosts":["api.example.com"]},
//	 "obj":"<hex sha256 of the objective>","cnf":{"jkt":"<thumbprint of the session key>"},
//	 "iat":1767225600,"nbf":1767225600,"exp":1767226500}
//
// An Issuer signs them; a Verifier checks them strictly: size, alphabet,
// header (alg, typ, kid, no crit), signature, duplicate or unknown JSON
// members, issuer, audience, consistency of the chain claims, scope syntax,
// and time with leeway. Every refusal wraps ErrInvalid or ErrExpired.
//
// # Scope
//
// A Scope lists patterns per Kind (tools, resources, prompts, hosts). Tool,
// resource and prompt patterns are exact names or a prefix and one trailing
// '*'. Host patterns are exact hosts as policy.CanonicalHost writes them,
// "*", or "*." and a DNS name, which matches the names below it:
//
//	"*.example.com" allows api.example.com and a.b.example.com, not example.com
//	"*.example.com" covers "api.example.com" and "*.x.example.com", not "*"
//	"api.example.com" covers only itself
//
// Because a prefix pattern is a set of names closed under extension of the
// prefix, and a host pattern one closed under adding labels in front, two
// patterns of a kind matching a common name are always nested, which makes
// containment (Scope.Covers) and intersection (Scope.Intersect) exact.
//
// An empty list allows nothing of its kind. In particular a grant reaches no
// HTTP destination its Hosts do not list: ward's egress proxy refuses such a
// request before policy is asked, so a session's network reach is what its
// sponsor granted it, and a sub-agent's is at most its parent's. Policy
// still decides each request the grant lets through.
//
// # Delegation
//
// A session hands work to a sub-agent by RFC 8693 token exchange: Narrow
// turns the verified parent grant and a Delegation into the child's claims.
// The child keeps the root session as Subject, names its parent grant in
// par, gets depth parent+1 (bounded, ErrDepth), its own key (never the
// parent's), a scope the parent's covers (ErrWiden otherwise) and an expiry
// no later than the parent's. The act chain lists the current actor first
// and prior actors nested, the root excluded:
//
//	root  A: sub A, spiffe_id A, dep 0, act —
//	child B: sub A, spiffe_id B, dep 1, act {sub B}
//	grandchild C: sub A, spiffe_id C, dep 2, act {sub C, act {sub B}}
//
// RFC 8693 treats the act chain as informational; containment is enforced by
// Narrow and by ward's policy, not by the chain.
//
// # Proof of possession
//
// A grant alone is useless: every request carries it as "Authorization: DPoP
// <grant>" together with a "DPoP: <proof>" header (RFC 9449), a JWS the
// session signs with its own key for that method and URL (NewProof). A
// ProofVerifier checks the proof, its binding to the request and to the
// grant (ath), and refuses a jti seen before (ErrReplay); its replay cache
// never forgets a live entry and refuses when full (ErrCapacity). The caller
// finally checks that the proof's key is the grant's key with
// Claims.CheckBinding:
//
//	claims, err := verifier.Verify(grantToken)  // ErrInvalid, ErrExpired → 401
//	proof, err := proofs.Verify(dpop, r.Method, url, grantToken) // ErrInvalid, ErrReplay → 401; ErrCapacity → 503
//	err = claims.CheckBinding(proof)            // ErrInvalid → 401
//
// A replay cache is one process's. Where several servers answer one URL, a
// verifier given Nonces (ProofVerifierConfig.Nonces) asks every proof to
// carry a nonce it issued (RFC 9449 §8, NewProofNonce): stateless, an HMAC
// over a time slot under a key of the process's own, so a proof one server
// accepted is refused by every other (ErrUseNonce → 401 with
// `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a fresh nonce from
// ProofVerifier.Nonce in the DPoP-Nonce header).
//
// Revocation is not this package's job: a grant dies with its expiry, and
// the gateway refuses grants of ended sessions by their sid.
package grant
