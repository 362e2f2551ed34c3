package server

import "github.com/ward-dev/ward/internal/grant"

// newProofVerifier returns the node's DPoP proof verifier. With
// Config.DPoPNonce it asks for nonces under a key of this process's own
// (grant.Nonces): a proof made for this node is refused by every other
// node, so a proof captured behind a load balancer cannot be replayed once
// to each other node, only to this one, whose replay cache refuses it. A
// restart makes the nonces it issued stale; clients retry once with the
// new one (sessioncred.Transport does).
func newProofVerifier(cfg Config) (*grant.ProofVerifier, error) {
	var pc grant.ProofVerifierConfig
	if cfg.DPoPNonce {
		n, err := grant.NewNonces(grant.NoncesConfig{})
		if err != nil {
			return nil, err
		}
		pc.Nonces = n
	}
	return grant.NewProofVerifier(pc), nil
}
