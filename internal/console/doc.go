// Package console is ward's operator console: a browser UI served by the
// node at /console/, on the API's own origin, for people who decide
// escalated calls, watch agents and sessions, and check the audit log.
//
// Pieces:
//
//   - users.go: local accounts in DATA/console/users.json, each with a
//     role (viewer, approver, admin) and an argon2id password hash.
//     `ward console user add NAME --role R` creates one and prints its
//     generated password once.
//   - console.go: login (rate limited, constant-time), sessions held in
//     memory and named by an HttpOnly, SameSite=Strict cookie (Secure on
//     TLS), a CSRF token required on every state-changing request, and the
//     console's JSON API under /console/api/.
//   - oidc.go: single sign-on with an OpenID Connect provider
//     (authorization code with PKCE S256, state bound to the browser by a
//     cookie, nonce; the ID token's signature, issuer, audience, expiry
//     and verified email checked here), each email given its role in
//     the configuration.
//   - stream.go: the session page's live stream of calls, Server-Sent
//     Events of the session's audit events as the log's appends wake it
//     (Signal), behind the same login and CSP, bounded per user; the
//     page polls when it gets no stream.
//   - static/: the pages, plain HTML, CSS and JavaScript embedded in the
//     binary and served with a Content-Security-Policy of
//     default-src 'self' (no inline script or style). Everything data
//     brings, a `ward run` session's diff of its workspace included, goes
//     into the page as text nodes; a diff's lines are coloured by class.
//
// The console decides nothing itself. Its data routes
// (/console/api/v1/…) are an allowlist of the node's own API routes
// (/v1/…), each with the least role that may use it; an allowed request is
// handed to the API's router with the operator as the acting principal
// (api.AsOperator), so listing, quarantine, ending sessions and votes
// run exactly the API's code, with its checks (an approver still has to be
// in the approver group a policy names, and may not approve its own
// agent's call) and its audit records. A console user acts as the
// principal of its own name with the API's admin view; its role, checked
// here on every request, is what bounds it. So an account may not have
// the name of a principal of the node (the operator "admin", a sponsor):
// it would be recorded as that principal and share its approver groups;
// such an account gets no session (Config.Principal). Roles are read from the users
// file at each request, so a removed account's sessions stop working.
//
// An audit event's inclusion proof is checked in the browser
// (static/verify.js): the Ed25519 signature of the C2SP checkpoint note
// with WebCrypto against the log's public key, and the RFC 6962 audit path
// from the event's own bytes to the checkpoint's root hash. The server
// only supplies the bytes.
package console
