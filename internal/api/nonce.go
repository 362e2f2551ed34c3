package api

import "net/http"

// askNonce answers a proof without the node's DPoP nonce (RFC 9449 §8):
// the challenge names error use_dpop_nonce and DPoP-Nonce carries a fresh
// nonce, with which the client makes a new proof and sends the request
// again.
func (s *Server) askNonce(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="send the request again with a proof that carries the DPoP-Nonce", algs="ES256"`)
	w.Header().Set("DPoP-Nonce", s.cfg.Proofs.Nonce())
	w.Header().Add("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate")
}

// offerNonce gives the client of a request with a DPoP proof the node's
// current nonce with every answer (RFC 9449 §8.2), so it moves on to the
// next one before the one it holds goes stale, without a refusal.
func (s *Server) offerNonce(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("DPoP") == "" {
		return
	}
	if n := s.cfg.Proofs.Nonce(); n != "" {
		w.Header().Set("DPoP-Nonce", n)
		w.Header().Add("Access-Control-Expose-Headers", "DPoP-Nonce")
	}
}
